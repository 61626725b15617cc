//! AVX2 + FMA direct convolution (valid, stride 1) of f32 tensors, forward and backward,
//! for the small channel counts of spatial-transformer networks.
//!
//! Layout: NCHW, weights [out, in, k, k] (PyTorch's). No im2col buffer: the micro-kernel keeps
//! a 4 output channels x 3 row-vectors (8 pixels each) tile of accumulators in registers and
//! streams the kernel taps, broadcasting weights against unaligned input loads. Inputs are
//! first copied into zero-padded rows whose length is a multiple of 8 plus k - 1, so that
//! every vector load is in bounds and the extra lanes are simply not stored.
//!
//! - input gradient: the same forward kernel on the zero-padded output gradient with the
//!   kernel rotated by 180 degrees and its channel axes swapped;
//! - weight gradient: each (2 output channels, 1 input channel) task sums products over the
//!   batch in a fixed order, so the result is deterministic whatever the thread count;
//! - bias gradient: sums in a fixed order.

use std::arch::x86_64::*;

use rayon::prelude::*;

/// Geometry of a valid, stride-1 convolution: input [n, c, h, w], kernel [o, c, k, k].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ConvShape {
    /// Batch size.
    pub n: usize,
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
    /// Whether the fast kernels handle this shape.
    pub fn supported(&self) -> bool {
        (1..=MAX_K).contains(&self.k) && self.h >= self.k && self.w >= self.k && self.c > 0 && self.o > 0
    }
}

/// Largest kernel side the weight-gradient kernel is specialized for.
pub const MAX_K: usize = 7;

const OB: usize = 4;
const RB: usize = 3;

/// A zero-padded copy of planes: `rows` rows of `stride` floats per plane.
struct Padded {
    data: Vec<f32>,
    stride: usize,
    plane: usize,
}

/// Copies `planes` planes of h x w from `src` into rows of `stride` (>= w), placing each
/// plane at row offset `top` and column offset `left` of a `rows`-row padded plane.
fn pad_planes(src: &[f32], planes: usize, h: usize, w: usize, rows: usize, stride: usize, top: usize, left: usize) -> Padded {
    let plane = rows * stride;
    let mut data = vec![0.0f32; planes * plane + 8];
    for p in 0..planes {
        for y in 0..h {
            let s = &src[(p * h + y) * w..(p * h + y + 1) * w];
            let d = p * plane + (top + y) * stride + left;
            data[d..d + w].copy_from_slice(s);
        }
    }
    Padded { data, stride, plane }
}

/// One image's output [o, ho, wo] from its padded input planes [c][rows x stride]:
/// out[o][y][x] = bias[o] + sum_{c,ky,kx} wgt[o][c][ky][kx] * in[c][y + ky][x + kx].
///
/// # Safety
/// AVX2 and FMA must be available; `inp` must hold c planes whose rows are at least
/// ceil(wo / 8) * 8 + k - 1 long and at least ho + k - 1 rows.
#[target_feature(enable = "avx2,fma")]
#[allow(clippy::too_many_arguments)]
unsafe fn conv_image(inp: &Padded, c: usize, k: usize, wgt: &[f32], bias: Option<&[f32]>, o: usize, ho: usize, wo: usize, out: &mut [f32]) {
    let chunks = wo.div_ceil(8);
    debug_assert!(inp.stride >= chunks * 8 + k - 1);
    debug_assert!(inp.data.len() >= c * inp.plane);
    debug_assert!(wgt.len() == o * c * k * k && out.len() == o * ho * wo);
    let tiles = ho * chunks;
    let mut ob = 0;
    while ob < o {
        let nb = (o - ob).min(OB);
        let mut t = 0;
        while t < tiles {
            let nr = (tiles - t).min(RB);
            unsafe {
                match (nb, nr) {
                    (4, 3) => tile::<4, 3>(inp, c, k, wgt, bias, ob, t, chunks, ho, wo, out),
                    (4, 2) => tile::<4, 2>(inp, c, k, wgt, bias, ob, t, chunks, ho, wo, out),
                    (4, _) => tile::<4, 1>(inp, c, k, wgt, bias, ob, t, chunks, ho, wo, out),
                    (3, 3) => tile::<3, 3>(inp, c, k, wgt, bias, ob, t, chunks, ho, wo, out),
                    (3, 2) => tile::<3, 2>(inp, c, k, wgt, bias, ob, t, chunks, ho, wo, out),
                    (3, _) => tile::<3, 1>(inp, c, k, wgt, bias, ob, t, chunks, ho, wo, out),
                    (2, 3) => tile::<2, 3>(inp, c, k, wgt, bias, ob, t, chunks, ho, wo, out),
                    (2, 2) => tile::<2, 2>(inp, c, k, wgt, bias, ob, t, chunks, ho, wo, out),
                    (2, _) => tile::<2, 1>(inp, c, k, wgt, bias, ob, t, chunks, ho, wo, out),
                    (_, 3) => tile::<1, 3>(inp, c, k, wgt, bias, ob, t, chunks, ho, wo, out),
                    (_, 2) => tile::<1, 2>(inp, c, k, wgt, bias, ob, t, chunks, ho, wo, out),
                    (_, _) => tile::<1, 1>(inp, c, k, wgt, bias, ob, t, chunks, ho, wo, out),
                }
            }
            t += nr;
        }
        ob += nb;
    }
}

/// Lane mask storing the first `n` of 8 lanes.
#[inline(always)]
unsafe fn lane_mask(n: usize) -> __m256i {
    const M: [i32; 16] = [-1, -1, -1, -1, -1, -1, -1, -1, 0, 0, 0, 0, 0, 0, 0, 0];
    unsafe { _mm256_loadu_si256(M.as_ptr().add(8 - n.min(8)).cast()) }
}

#[inline(always)]
#[allow(clippy::too_many_arguments)]
unsafe fn tile<const NB: usize, const NR: usize>(
    inp: &Padded,
    c: usize,
    k: usize,
    wgt: &[f32],
    bias: Option<&[f32]>,
    ob: usize,
    t0: usize,
    chunks: usize,
    ho: usize,
    wo: usize,
    out: &mut [f32],
) {
    unsafe {
        let kk = k * k;
        let wstride = c * kk;
        let mut acc = [[_mm256_setzero_ps(); NR]; NB];
        let mut off = [0usize; NR];
        let mut pos = [(0usize, 0usize); NR];
        for r in 0..NR {
            let (y, xc) = ((t0 + r) / chunks, (t0 + r) % chunks);
            pos[r] = (y, xc * 8);
            off[r] = y * inp.stride + xc * 8;
        }
        let ip = inp.data.as_ptr();
        let wp = wgt.as_ptr().add(ob * wstride);
        for ci in 0..c {
            for ky in 0..k {
                let row = ci * inp.plane + ky * inp.stride;
                let wrow = wp.add(ci * kk + ky * k);
                for kx in 0..k {
                    let mut v = [_mm256_setzero_ps(); NR];
                    for r in 0..NR {
                        v[r] = _mm256_loadu_ps(ip.add(row + kx + off[r]));
                    }
                    for b in 0..NB {
                        let wv = _mm256_broadcast_ss(&*wrow.add(b * wstride + kx));
                        for r in 0..NR {
                            acc[b][r] = _mm256_fmadd_ps(wv, v[r], acc[b][r]);
                        }
                    }
                }
            }
        }
        let plane = ho * wo;
        for b in 0..NB {
            let bv = _mm256_set1_ps(bias.map_or(0.0, |bs| bs[ob + b]));
            for r in 0..NR {
                let (y, x) = pos[r];
                let v = _mm256_add_ps(acc[b][r], bv);
                let dst = out.as_mut_ptr().add((ob + b) * plane + y * wo + x);
                let valid = wo - x;
                if valid >= 8 {
                    _mm256_storeu_ps(dst, v);
                } else {
                    _mm256_maskstore_ps(dst, lane_mask(valid), v);
                }
            }
        }
    }
}

/// y = conv(x, w) + b over the batch, parallel over images.
///
/// # Safety
/// AVX2 and FMA must be available.
pub unsafe fn forward(x: &[f32], w: &[f32], b: Option<&[f32]>, y: &mut [f32], s: ConvShape) {
    let (ho, wo) = (s.ho(), s.wo());
    assert!(s.supported());
    assert_eq!(x.len(), s.n * s.c * s.h * s.w, "conv2d: input length");
    assert_eq!(w.len(), s.o * s.c * s.k * s.k, "conv2d: weight length");
    assert_eq!(y.len(), s.n * s.o * ho * wo, "conv2d: output length");
    if let Some(b) = b {
        assert_eq!(b.len(), s.o, "conv2d: bias length");
    }
    let stride = wo.div_ceil(8) * 8 + s.k - 1;
    let img = s.c * s.h * s.w;
    y.par_chunks_mut(s.o * ho * wo).enumerate().for_each(|(n, out)| {
        let inp = pad_planes(&x[n * img..(n + 1) * img], s.c, s.h, s.w, s.h, stride, 0, 0);
        // SAFETY: the caller guarantees the CPU features; `inp` is padded as required.
        unsafe { conv_image(&inp, s.c, s.k, w, b, s.o, ho, wo, out) };
    });
}

/// Gradients of [`forward`]: `dx` (when given), `dw` and `db`, all overwritten.
///
/// # Safety
/// AVX2 and FMA must be available.
pub unsafe fn backward(x: &[f32], w: &[f32], dy: &[f32], dx: Option<&mut [f32]>, dw: &mut [f32], db: &mut [f32], s: ConvShape) {
    let (ho, wo, k) = (s.ho(), s.wo(), s.k);
    assert!(s.supported());
    assert_eq!(x.len(), s.n * s.c * s.h * s.w, "conv2d backward: input length");
    assert_eq!(w.len(), s.o * s.c * k * k, "conv2d backward: weight length");
    assert_eq!(dy.len(), s.n * s.o * ho * wo, "conv2d backward: grad length");
    assert_eq!(dw.len(), w.len(), "conv2d backward: weight grad length");
    assert_eq!(db.len(), s.o, "conv2d backward: bias grad length");

    // Bias: per channel, images and pixels in order.
    for (o, g) in db.iter_mut().enumerate() {
        let mut acc = 0.0f32;
        for n in 0..s.n {
            let base = (n * s.o + o) * ho * wo;
            acc += dy[base..base + ho * wo].iter().sum::<f32>();
        }
        *g = acc;
    }

    // Padded copies shared by the weight-gradient tasks.
    let chunks = wo.div_ceil(8);
    let xs = chunks * 8 + k - 1;
    let img = s.c * s.h * s.w;
    let xpad: Vec<Padded> = (0..s.n)
        .into_par_iter()
        .map(|n| pad_planes(&x[n * img..(n + 1) * img], s.c, s.h, s.w, s.h, xs, 0, 0))
        .collect();
    let gimg = s.o * ho * wo;
    let dpad: Vec<Padded> = (0..s.n)
        .into_par_iter()
        .map(|n| pad_planes(&dy[n * gimg..(n + 1) * gimg], s.o, ho, wo, ho, chunks * 8, 0, 0))
        .collect();

    // Weight gradient: one task per (pair of output channels, input channel).
    let kk = k * k;
    let pairs = s.o.div_ceil(2);
    let results: Vec<(usize, usize, Vec<f32>)> = (0..pairs * s.c)
        .into_par_iter()
        .map(|task| {
            let (pair, ci) = (task / s.c, task % s.c);
            let o0 = pair * 2;
            let nb = (s.o - o0).min(2);
            let mut out = vec![0.0f32; nb * kk];
            // SAFETY: the caller guarantees the CPU features; buffers are padded as required.
            unsafe { wgrad_dispatch(&xpad, &dpad, ci, o0, nb, k, ho, chunks, &mut out) };
            (o0, ci, out)
        })
        .collect();
    for (o0, ci, vals) in results {
        for b in 0..vals.len() / kk {
            let d = ((o0 + b) * s.c + ci) * kk;
            dw[d..d + kk].copy_from_slice(&vals[b * kk..(b + 1) * kk]);
        }
    }

    // Input gradient: full correlation of dy with the rotated kernel.
    if let Some(dx) = dx {
        assert_eq!(dx.len(), x.len(), "conv2d backward: input grad length");
        let mut wr = vec![0.0f32; w.len()];
        for o in 0..s.o {
            for ci in 0..s.c {
                for ky in 0..k {
                    for kx in 0..k {
                        wr[((ci * s.o + o) * k + ky) * k + kx] = w[((o * s.c + ci) * k + (k - 1 - ky)) * k + (k - 1 - kx)];
                    }
                }
            }
        }
        let stride = s.w.div_ceil(8) * 8 + k - 1;
        let rows = ho + 2 * (k - 1);
        dx.par_chunks_mut(img).enumerate().for_each(|(n, out)| {
            let g = pad_planes(&dy[n * gimg..(n + 1) * gimg], s.o, ho, wo, rows, stride, k - 1, k - 1);
            // SAFETY: as above; the padded gradient has h + k - 1 rows of `stride`.
            unsafe { conv_image(&g, s.o, k, &wr, None, s.c, s.h, s.w, out) };
        });
    }
}

/// Dispatches the weight-gradient kernel on the block size and kernel side.
#[target_feature(enable = "avx2,fma")]
#[allow(clippy::too_many_arguments)]
unsafe fn wgrad_dispatch(xpad: &[Padded], dpad: &[Padded], ci: usize, o0: usize, nb: usize, k: usize, ho: usize, chunks: usize, out: &mut [f32]) {
    macro_rules! go {
        ($($kv:literal),*) => {
            match (nb, k) {
                $((2, $kv) => unsafe { wgrad::<2, $kv>(xpad, dpad, ci, o0, ho, chunks, out) },)*
                $((_, $kv) => unsafe { wgrad::<1, $kv>(xpad, dpad, ci, o0, ho, chunks, out) },)*
                _ => unreachable!("kernel side checked by ConvShape::supported"),
            }
        };
    }
    go!(1, 2, 3, 4, 5, 6, 7)
}

/// dw[o0 + b][ci][ky][kx] = sum over images, rows and pixels of dy[o0 + b] * x[ci] shifted.
#[inline(always)]
unsafe fn wgrad<const NB: usize, const K: usize>(xpad: &[Padded], dpad: &[Padded], ci: usize, o0: usize, ho: usize, chunks: usize, out: &mut [f32]) {
    unsafe {
        // Large kernels keep one output channel per pass to stay within 16 registers.
        if NB == 2 && K > 5 {
            let (a, b) = out.split_at_mut(K * K);
            wgrad::<1, K>(xpad, dpad, ci, o0, ho, chunks, a);
            wgrad::<1, K>(xpad, dpad, ci, o0 + 1, ho, chunks, b);
            return;
        }
        for ky in 0..K {
            let mut acc = [[_mm256_setzero_ps(); K]; NB];
            for (xp, dp) in xpad.iter().zip(dpad) {
                let xb = xp.data.as_ptr().add(ci * xp.plane + ky * xp.stride);
                for y in 0..ho {
                    for xc in 0..chunks {
                        let mut g = [_mm256_setzero_ps(); NB];
                        for b in 0..NB {
                            g[b] = _mm256_loadu_ps(dp.data.as_ptr().add((o0 + b) * dp.plane + y * dp.stride + xc * 8));
                        }
                        let row = xb.add(y * xp.stride + xc * 8);
                        for kx in 0..K {
                            let v = _mm256_loadu_ps(row.add(kx));
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
unsafe fn hsum(v: __m256) -> f32 {
    unsafe {
        let lo = _mm256_castps256_ps128(v);
        let hi = _mm256_extractf128_ps::<1>(v);
        let s = _mm_add_ps(lo, hi);
        let s = _mm_add_ps(s, _mm_movehl_ps(s, s));
        let s = _mm_add_ss(s, _mm_shuffle_ps::<0b01>(s, s));
        _mm_cvtss_f32(s)
    }
}
