//! AVX2 + FMA convolution kernels for the batch-blocked layout
//! [N / 8, C, H, W, 8]: eight images side by side in every vector.
//!
//! Spatial-transformer networks run small images with few channels, where vectorizing over
//! pixels wastes lanes at every row end and over channels wastes lanes on 8- or 10-channel
//! layers. Vectorizing over the batch wastes nothing, needs no padding for alignment, and
//! keeps every load aligned; conversions happen only at the ends of a convolution stack.
//!
//! - forward: register tiles of up to 5 output channels x 2 output pixels (10 accumulators of
//!   8 images), streaming the kernel taps: per tap, 2 loads, 5 weight broadcasts and 10 FMAs;
//! - input gradient: the forward kernel over the output gradient zero-padded by k - 1, with the
//!   kernel rotated by 180 degrees and its channel axes swapped; rows of taps that only meet
//!   padding are skipped;
//! - weight gradient: per (output channels, input channel, kernel row) the products are summed
//!   over blocks, rows and pixels in a fixed order (deterministic for any thread count), then
//!   over the 8 lanes.

use std::arch::x86_64::*;

use rayon::prelude::*;

/// Images per block (the lanes of an AVX2 f32 vector).
pub const LANES: usize = 8;

/// Largest kernel side the weight-gradient kernel is specialized for.
pub const MAX_K: usize = 7;

/// Geometry of a valid, stride-1 convolution on blocked tensors: input [nb, c, h, w, 8],
/// kernel [o, c, k, k].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ConvShape {
    /// Blocks of 8 images.
    pub nb: usize,
    /// Input channels.
    pub c: usize,
    /// Input height.
    pub h: usize,
    /// Input width.
    pub w: usize,
    /// Output channels.
    pub o: usize,
    /// Kernel side.
    pub k: usize,
}

impl ConvShape {
    /// Output height.
    pub fn ho(&self) -> usize {
        self.h + 1 - self.k
    }
    /// Output width.
    pub fn wo(&self) -> usize {
        self.w + 1 - self.k
    }
    /// Whether the kernels handle this shape.
    pub fn supported(&self) -> bool {
        (1..=MAX_K).contains(&self.k)
            && self.h >= self.k
            && self.w >= self.k
            && self.c > 0
            && self.o > 0
    }
}

/// One block's valid correlation: out[o][y][x] = bias[o] + sum_{c,ky,kx} wgt[o][c][ky][kx] *
/// inp[c][y + ky + top][x + kx], for output rows `y` in 0..ho, where input rows outside
/// 0..ih read as zero (their taps are skipped). `inp` is [c, ih, iw, 8], `out` [o, ho, wo, 8].
#[target_feature(enable = "avx2,fma")]
#[allow(clippy::too_many_arguments)]
fn correlate_block(
    inp: &[f32],
    c: usize,
    ih: usize,
    iw: usize,
    top: isize,
    wgt: &[f32],
    bias: Option<&[f32]>,
    o: usize,
    k: usize,
    ho: usize,
    wo: usize,
    out: &mut [f32],
) {
    assert!(inp.len() >= c * ih * iw * LANES && out.len() >= o * ho * wo * LANES);
    assert!(wgt.len() >= o * c * k * k && wo + k - 1 <= iw);
    let geo = TileGeometry {
        c,
        ih,
        iw,
        top,
        k,
        ho,
        wo,
    };
    for y in 0..ho {
        // Kernel rows whose input row exists.
        let first = y as isize + top;
        let ky_lo = (-first).max(0) as usize;
        let ky_hi = ((ih as isize - first).min(k as isize)).max(0) as usize;
        // Output channels per tile: 5 when they divide evenly (10, 20, ...), else 4; with 2
        // pixels that is at most 10 accumulators, which leaves registers for the loads.
        let block = if o.is_multiple_of(5) { 5 } else { 4 };
        let mut ob = 0;
        while ob < o {
            let nb = (o - ob).min(block);
            let mut x = 0;
            while x < wo {
                let np = (wo - x).min(2);
                // SAFETY: bounds asserted above; features enabled on this function.
                unsafe {
                    match (nb, np) {
                        (5, 2) => tile::<5, 2>(inp, &geo, wgt, bias, ob, y, x, ky_lo, ky_hi, out),
                        (5, _) => tile::<5, 1>(inp, &geo, wgt, bias, ob, y, x, ky_lo, ky_hi, out),
                        (4, 2) => tile::<4, 2>(inp, &geo, wgt, bias, ob, y, x, ky_lo, ky_hi, out),
                        (4, _) => tile::<4, 1>(inp, &geo, wgt, bias, ob, y, x, ky_lo, ky_hi, out),
                        (3, 2) => tile::<3, 2>(inp, &geo, wgt, bias, ob, y, x, ky_lo, ky_hi, out),
                        (3, _) => tile::<3, 1>(inp, &geo, wgt, bias, ob, y, x, ky_lo, ky_hi, out),
                        (2, 2) => tile::<2, 2>(inp, &geo, wgt, bias, ob, y, x, ky_lo, ky_hi, out),
                        (2, _) => tile::<2, 1>(inp, &geo, wgt, bias, ob, y, x, ky_lo, ky_hi, out),
                        (_, 2) => tile::<1, 2>(inp, &geo, wgt, bias, ob, y, x, ky_lo, ky_hi, out),
                        (_, _) => tile::<1, 1>(inp, &geo, wgt, bias, ob, y, x, ky_lo, ky_hi, out),
                    }
                }
                x += np;
            }
            ob += nb;
        }
    }
}

struct TileGeometry {
    c: usize,
    ih: usize,
    iw: usize,
    top: isize,
    k: usize,
    ho: usize,
    wo: usize,
}

#[inline(always)]
#[allow(clippy::too_many_arguments)]
unsafe fn tile<const NB: usize, const NP: usize>(
    inp: &[f32],
    g: &TileGeometry,
    wgt: &[f32],
    bias: Option<&[f32]>,
    ob: usize,
    y: usize,
    x: usize,
    ky_lo: usize,
    ky_hi: usize,
    out: &mut [f32],
) {
    unsafe {
        let (k, kk) = (g.k, g.k * g.k);
        let wstride = g.c * kk;
        let mut acc = [[_mm256_setzero_ps(); NP]; NB];
        let ip = inp.as_ptr();
        let wp = wgt.as_ptr().add(ob * wstride);
        for ci in 0..g.c {
            for ky in ky_lo..ky_hi {
                let row = (y as isize + g.top + ky as isize) as usize;
                let base = ip.add(((ci * g.ih + row) * g.iw + x) * LANES);
                let wrow = wp.add(ci * kk + ky * k);
                for kx in 0..k {
                    let mut v = [_mm256_setzero_ps(); NP];
                    for p in 0..NP {
                        v[p] = _mm256_loadu_ps(base.add((kx + p) * LANES));
                    }
                    for b in 0..NB {
                        let wv = _mm256_broadcast_ss(&*wrow.add(b * wstride + kx));
                        for p in 0..NP {
                            acc[b][p] = _mm256_fmadd_ps(wv, v[p], acc[b][p]);
                        }
                    }
                }
            }
        }
        for b in 0..NB {
            let bv = _mm256_set1_ps(bias.map_or(0.0, |bs| bs[ob + b]));
            let dst = out
                .as_mut_ptr()
                .add((((ob + b) * g.ho + y) * g.wo + x) * LANES);
            for p in 0..NP {
                _mm256_storeu_ps(dst.add(p * LANES), _mm256_add_ps(acc[b][p], bv));
            }
        }
    }
}

/// y = conv(x, w) + b on blocked tensors, parallel over blocks. `x` [nb, c, h, w, 8],
/// `y` [nb, o, ho, wo, 8].
///
/// # Safety
/// AVX2 and FMA must be available.
pub unsafe fn forward(x: &[f32], w: &[f32], b: Option<&[f32]>, y: &mut [f32], s: ConvShape) {
    assert!(s.supported());
    let (ho, wo) = (s.ho(), s.wo());
    let (img_in, img_out) = (s.c * s.h * s.w * LANES, s.o * ho * wo * LANES);
    assert_eq!(x.len(), s.nb * img_in, "conv2d: input length");
    assert_eq!(w.len(), s.o * s.c * s.k * s.k, "conv2d: weight length");
    assert_eq!(y.len(), s.nb * img_out, "conv2d: output length");
    if let Some(b) = b {
        assert_eq!(b.len(), s.o, "conv2d: bias length");
    }
    y.par_chunks_mut(img_out).enumerate().for_each(|(n, out)| {
        // SAFETY: the caller guarantees the CPU features.
        unsafe {
            correlate_block(
                &x[n * img_in..(n + 1) * img_in],
                s.c,
                s.h,
                s.w,
                0,
                w,
                b,
                s.o,
                s.k,
                ho,
                wo,
                out,
            )
        };
    });
}

/// Gradients of [`forward`]: `dx` (when given, [nb, c, h, w, 8]), `dw` [o, c, k, k] and
/// `db` [o], all overwritten.
///
/// # Safety
/// AVX2 and FMA must be available.
pub unsafe fn backward(
    x: &[f32],
    w: &[f32],
    dy: &[f32],
    dx: Option<&mut [f32]>,
    dw: &mut [f32],
    db: &mut [f32],
    s: ConvShape,
) {
    assert!(s.supported());
    let (ho, wo, k) = (s.ho(), s.wo(), s.k);
    let (img_in, img_out) = (s.c * s.h * s.w * LANES, s.o * ho * wo * LANES);
    assert_eq!(x.len(), s.nb * img_in, "conv2d backward: input length");
    assert_eq!(w.len(), s.o * s.c * k * k, "conv2d backward: weight length");
    assert_eq!(dy.len(), s.nb * img_out, "conv2d backward: grad length");
    assert_eq!(dw.len(), w.len(), "conv2d backward: weight grad length");
    assert_eq!(db.len(), s.o, "conv2d backward: bias grad length");

    // SAFETY (all blocks below): the caller guarantees the CPU features.
    unsafe { bias_grad(dy, s.nb, s.o, ho * wo, db) };

    let kk = k * k;
    let pairs = s.o.div_ceil(2);
    let parts: Vec<(usize, usize, Vec<f32>)> = (0..pairs * s.c)
        .into_par_iter()
        .map(|task| {
            let (pair, ci) = (task / s.c, task % s.c);
            let o0 = pair * 2;
            let nbo = (s.o - o0).min(2);
            let mut out = vec![0.0f32; nbo * kk];
            unsafe { wgrad_dispatch(x, dy, &s, ci, o0, nbo, &mut out) };
            (o0, ci, out)
        })
        .collect();
    for (o0, ci, vals) in parts {
        for b in 0..vals.len() / kk {
            let d = ((o0 + b) * s.c + ci) * kk;
            dw[d..d + kk].copy_from_slice(&vals[b * kk..(b + 1) * kk]);
        }
    }

    if let Some(dx) = dx {
        assert_eq!(dx.len(), x.len(), "conv2d backward: input grad length");
        // Rotated kernel with swapped channel axes: wr[c][o][ky][kx] = w[o][c][k-1-ky][k-1-kx].
        let mut wr = vec![0.0f32; w.len()];
        for o in 0..s.o {
            for ci in 0..s.c {
                for ky in 0..k {
                    for kx in 0..k {
                        wr[((ci * s.o + o) * k + ky) * k + kx] =
                            w[((o * s.c + ci) * k + (k - 1 - ky)) * k + (k - 1 - kx)];
                    }
                }
            }
        }
        // Columns are zero-padded by k - 1 on both sides; rows are not: the kernel skips taps
        // on rows outside the gradient (top = -(k - 1)).
        let pw = wo + 2 * (k - 1);
        dx.par_chunks_mut(img_in).enumerate().for_each(|(n, out)| {
            let g = &dy[n * img_out..(n + 1) * img_out];
            let mut padded = vec![0.0f32; s.o * ho * pw * LANES];
            for p in 0..s.o * ho {
                let src = &g[p * wo * LANES..(p + 1) * wo * LANES];
                let d = (p * pw + k - 1) * LANES;
                padded[d..d + wo * LANES].copy_from_slice(src);
            }
            unsafe {
                correlate_block(
                    &padded,
                    s.o,
                    ho,
                    pw,
                    -(k as isize - 1),
                    &wr,
                    None,
                    s.c,
                    k,
                    s.h,
                    s.w,
                    out,
                )
            };
        });
    }
}

#[target_feature(enable = "avx2,fma")]
fn bias_grad(dy: &[f32], nb: usize, o: usize, plane: usize, db: &mut [f32]) {
    for (oc, g) in db.iter_mut().enumerate() {
        let mut acc = _mm256_setzero_ps();
        for n in 0..nb {
            let base = (n * o + oc) * plane * LANES;
            for p in 0..plane {
                // SAFETY: in bounds by construction of the offsets.
                acc = _mm256_add_ps(acc, unsafe {
                    _mm256_loadu_ps(dy.as_ptr().add(base + p * LANES))
                });
            }
        }
        *g = hsum(acc);
    }
}

#[target_feature(enable = "avx2,fma")]
fn wgrad_dispatch(
    x: &[f32],
    dy: &[f32],
    s: &ConvShape,
    ci: usize,
    o0: usize,
    nbo: usize,
    out: &mut [f32],
) {
    macro_rules! for_kernel_sides {
        ($($kv:literal),*) => {
            match (nbo, s.k) {
                $((2, $kv) => wgrad::<2, $kv>(x, dy, s, ci, o0, out),)*
                $((_, $kv) => wgrad::<1, $kv>(x, dy, s, ci, o0, out),)*
                _ => unreachable!("kernel side checked by ConvShape::supported"),
            }
        };
    }
    for_kernel_sides!(1, 2, 3, 4, 5, 6, 7)
}

/// dw[o0 + b][ci][ky][kx] for b < NB: products of the output gradient and the shifted input,
/// summed over blocks, rows and pixels (in that order), then over lanes.
#[inline(always)]
fn wgrad<const NB: usize, const K: usize>(
    x: &[f32],
    dy: &[f32],
    s: &ConvShape,
    ci: usize,
    o0: usize,
    out: &mut [f32],
) {
    // Large kernels keep one output channel per pass to stay within 16 registers.
    if NB == 2 && K > 5 {
        let (a, b) = out.split_at_mut(K * K);
        wgrad::<1, K>(x, dy, s, ci, o0, a);
        wgrad::<1, K>(x, dy, s, ci, o0 + 1, b);
        return;
    }
    let (ho, wo) = (s.ho(), s.wo());
    let (img_in, img_out) = (s.c * s.h * s.w * LANES, s.o * ho * wo * LANES);
    // SAFETY: offsets stay within the blocks checked by the caller; features are enabled on
    // the caller (this function is always inlined into it).
    unsafe {
        for ky in 0..K {
            let mut acc = [[_mm256_setzero_ps(); K]; NB];
            for n in 0..s.nb {
                let xb = x.as_ptr().add(n * img_in + (ci * s.h + ky) * s.w * LANES);
                let gb = dy.as_ptr().add(n * img_out + o0 * ho * wo * LANES);
                for y in 0..ho {
                    let xr = xb.add(y * s.w * LANES);
                    let gr = gb.add(y * wo * LANES);
                    for xx in 0..wo {
                        let mut g = [_mm256_setzero_ps(); NB];
                        for b in 0..NB {
                            g[b] = _mm256_loadu_ps(gr.add((b * ho * wo + xx) * LANES));
                        }
                        for kx in 0..K {
                            let v = _mm256_loadu_ps(xr.add((xx + kx) * LANES));
                            for b in 0..NB {
                                acc[b][kx] = _mm256_fmadd_ps(g[b], v, acc[b][kx]);
                            }
                        }
                    }
                }
            }
            for b in 0..NB {
                for kx in 0..K {
                    out[b * K * K + ky * K + kx] = hsum(acc[b][kx]);
                }
            }
        }
    }
}

#[inline(always)]
fn hsum(v: __m256) -> f32 {
    // SAFETY: SSE/AVX are available wherever this module's kernels run.
    unsafe {
        let lo = _mm256_castps256_ps128(v);
        let hi = _mm256_extractf128_ps::<1>(v);
        let s = _mm_add_ps(lo, hi);
        let s = _mm_add_ps(s, _mm_movehl_ps(s, s));
        let s = _mm_add_ss(s, _mm_shuffle_ps::<0b01>(s, s));
        _mm_cvtss_f32(s)
    }
}
