//! AVX2 + FMA convolution, pooling and layout kernels for the batch-blocked layout
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
    let geo = Geo {
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

struct Geo {
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
    g: &Geo,
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
    macro_rules! go {
        ($($kv:literal),*) => {
            match (nbo, s.k) {
                $((2, $kv) => wgrad::<2, $kv>(x, dy, s, ci, o0, out),)*
                $((_, $kv) => wgrad::<1, $kv>(x, dy, s, ci, o0, out),)*
                _ => unreachable!("kernel side checked by ConvShape::supported"),
            }
        };
    }
    go!(1, 2, 3, 4, 5, 6, 7)
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

/// relu(max_pool2d(x, 2)) on blocked f32 planes [planes, h, w, 8] -> [planes, h/2, w/2, 8],
/// with PyTorch's rules (first maximum wins, NaN propagates).
///
/// # Safety
/// AVX2 must be available.
pub unsafe fn pool_forward(x: &[f32], planes: usize, h: usize, w: usize) -> Vec<f32> {
    let (ho, wo) = (h / 2, w / 2);
    assert_eq!(x.len(), planes * h * w * LANES);
    let mut out = vec![0.0f32; planes * ho * wo * LANES];
    if out.is_empty() {
        return out;
    }
    out.par_chunks_mut(ho * wo * LANES)
        .enumerate()
        .for_each(|(p, out)| {
            let plane = &x[p * h * w * LANES..(p + 1) * h * w * LANES];
            // SAFETY: the caller guarantees AVX2; offsets stay inside the plane.
            unsafe { pool_forward_plane(plane, h, w, out) }
        });
    out
}

#[target_feature(enable = "avx2,fma")]
fn pool_forward_plane(plane: &[f32], h: usize, w: usize, out: &mut [f32]) {
    let (ho, wo) = (h / 2, w / 2);
    assert!(plane.len() >= h * w * LANES && out.len() >= ho * wo * LANES);
    for i in 0..ho {
        for j in 0..wo {
            // SAFETY: window offsets are inside the plane; the output index inside `out`.
            unsafe {
                let (m, _) = window(plane.as_ptr(), w, i, j);
                let keep = _mm256_or_ps(
                    _mm256_cmp_ps::<_CMP_GT_OQ>(m, _mm256_setzero_ps()),
                    _mm256_cmp_ps::<_CMP_UNORD_Q>(m, m),
                );
                _mm256_storeu_ps(
                    out.as_mut_ptr().add((i * wo + j) * LANES),
                    _mm256_and_ps(m, keep),
                );
            }
        }
    }
}

/// The window maximum and, per position, the lanes where it is the chosen one.
#[inline(always)]
unsafe fn window(p: *const f32, w: usize, i: usize, j: usize) -> (__m256, [__m256; 4]) {
    unsafe {
        let a = ((2 * i) * w + 2 * j) * LANES;
        let v =
            [a, a + LANES, a + w * LANES, a + (w + 1) * LANES].map(|o| _mm256_loadu_ps(p.add(o)));
        let mut m = v[0];
        let mut take = [_mm256_setzero_ps(); 4];
        for k in 1..4 {
            let t = _mm256_or_ps(
                _mm256_cmp_ps::<_CMP_GT_OQ>(v[k], m),
                _mm256_cmp_ps::<_CMP_UNORD_Q>(v[k], v[k]),
            );
            take[k] = t;
            m = _mm256_blendv_ps(m, v[k], t);
        }
        let later3 = take[3];
        let later2 = _mm256_or_ps(take[2], later3);
        let later1 = _mm256_or_ps(take[1], later2);
        let chosen = [
            _mm256_andnot_ps(later1, _mm256_castsi256_ps(_mm256_set1_epi32(-1))),
            _mm256_andnot_ps(later2, take[1]),
            _mm256_andnot_ps(later3, take[2]),
            take[3],
        ];
        (m, chosen)
    }
}

/// Gradient of [`pool_forward`] with respect to x.
///
/// # Safety
/// AVX2 must be available.
pub unsafe fn pool_backward(
    x: &[f32],
    grad: &[f32],
    planes: usize,
    h: usize,
    w: usize,
) -> Vec<f32> {
    let (ho, wo) = (h / 2, w / 2);
    assert_eq!(x.len(), planes * h * w * LANES);
    assert_eq!(grad.len(), planes * ho * wo * LANES);
    let mut dx = vec![0.0f32; x.len()];
    if dx.is_empty() || ho * wo == 0 {
        return dx;
    }
    dx.par_chunks_mut(h * w * LANES)
        .enumerate()
        .for_each(|(p, dx)| {
            let plane = &x[p * h * w * LANES..(p + 1) * h * w * LANES];
            let g = &grad[p * ho * wo * LANES..(p + 1) * ho * wo * LANES];
            // SAFETY: the caller guarantees AVX2.
            unsafe { pool_backward_plane(plane, g, h, w, dx) }
        });
    dx
}

#[target_feature(enable = "avx2,fma")]
fn pool_backward_plane(plane: &[f32], g: &[f32], h: usize, w: usize, dx: &mut [f32]) {
    let (ho, wo) = (h / 2, w / 2);
    assert!(
        plane.len() >= h * w * LANES && dx.len() >= h * w * LANES && g.len() >= ho * wo * LANES
    );
    for i in 0..ho {
        for j in 0..wo {
            // SAFETY: window offsets are inside the planes.
            unsafe {
                let (m, chosen) = window(plane.as_ptr(), w, i, j);
                let pos = _mm256_cmp_ps::<_CMP_GT_OQ>(m, _mm256_setzero_ps());
                let gi = _mm256_and_ps(_mm256_loadu_ps(g.as_ptr().add((i * wo + j) * LANES)), pos);
                let a = ((2 * i) * w + 2 * j) * LANES;
                for (k, o) in [a, a + LANES, a + w * LANES, a + (w + 1) * LANES]
                    .into_iter()
                    .enumerate()
                {
                    _mm256_storeu_ps(dx.as_mut_ptr().add(o), _mm256_and_ps(gi, chosen[k]));
                }
            }
        }
    }
}

/// relu(max_pool2d(conv(x, w) + b, 2)) on blocked tensors in one pass, without writing the
/// convolution's output: each register tile is a 2x2 pixel window of up to 2 output channels,
/// pooled before it is stored. Returns the pooled output [nb, o, ho/2, wo/2, 8] and, per
/// pooled value, which window position won (0..4 row-major, PyTorch's first-maximum rule),
/// or 4 where the ReLU zeroed the value: what the backward pass needs.
///
/// # Safety
/// AVX2 and FMA must be available.
pub unsafe fn conv_pool_forward(
    x: &[f32],
    w: &[f32],
    b: &[f32],
    s: ConvShape,
) -> (Vec<f32>, Vec<u8>) {
    assert!(s.supported());
    let (ph, pw) = (s.ho() / 2, s.wo() / 2);
    let img_in = s.c * s.h * s.w * LANES;
    let img_out = s.o * ph * pw * LANES;
    assert_eq!(x.len(), s.nb * img_in, "conv_pool: input length");
    assert_eq!(w.len(), s.o * s.c * s.k * s.k, "conv_pool: weight length");
    assert_eq!(b.len(), s.o, "conv_pool: bias length");
    let mut y = vec![0.0f32; s.nb * img_out];
    let mut arg = vec![0u8; s.nb * img_out];
    if img_out == 0 {
        return (y, arg);
    }
    y.par_chunks_mut(img_out)
        .zip(arg.par_chunks_mut(img_out))
        .enumerate()
        .for_each(|(n, (y, arg))| {
            // SAFETY: the caller guarantees the CPU features.
            unsafe { conv_pool_block(&x[n * img_in..(n + 1) * img_in], w, b, &s, y, arg) };
        });
    (y, arg)
}

#[target_feature(enable = "avx2,fma")]
fn conv_pool_block(
    inp: &[f32],
    wgt: &[f32],
    bias: &[f32],
    s: &ConvShape,
    y: &mut [f32],
    arg: &mut [u8],
) {
    let (ph, pw) = (s.ho() / 2, s.wo() / 2);
    assert!(inp.len() >= s.c * s.h * s.w * LANES);
    assert!(y.len() >= s.o * ph * pw * LANES && arg.len() >= y.len());
    for py in 0..ph {
        for px in 0..pw {
            let mut ob = 0;
            while ob < s.o {
                // Two channels x four window positions: 8 accumulators, 4 loads and a broadcast
                // fit the 16 registers (three channels would spill).
                let nb = (s.o - ob).min(2);
                // SAFETY: bounds asserted above; features enabled on this function.
                unsafe {
                    match nb {
                        2 => pool_tile::<2>(inp, s, wgt, bias, ob, py, px, y, arg),
                        _ => pool_tile::<1>(inp, s, wgt, bias, ob, py, px, y, arg),
                    }
                }
                ob += nb;
            }
        }
    }
}

#[inline(always)]
#[allow(clippy::too_many_arguments)]
unsafe fn pool_tile<const NB: usize>(
    inp: &[f32],
    s: &ConvShape,
    wgt: &[f32],
    bias: &[f32],
    ob: usize,
    py: usize,
    px: usize,
    y: &mut [f32],
    arg: &mut [u8],
) {
    unsafe {
        let (k, kk) = (s.k, s.k * s.k);
        let wstride = s.c * kk;
        // acc[b][window position]: (2py, 2px), (2py, 2px+1), (2py+1, 2px), (2py+1, 2px+1).
        let mut acc = [[_mm256_setzero_ps(); 4]; NB];
        let ip = inp.as_ptr();
        let wp = wgt.as_ptr().add(ob * wstride);
        let (y0, x0) = (2 * py, 2 * px);
        for ci in 0..s.c {
            for ky in 0..k {
                let top = ip.add(((ci * s.h + y0 + ky) * s.w + x0) * LANES);
                let bottom = top.add(s.w * LANES);
                let wrow = wp.add(ci * kk + ky * k);
                for kx in 0..k {
                    let v = [
                        _mm256_loadu_ps(top.add(kx * LANES)),
                        _mm256_loadu_ps(top.add((kx + 1) * LANES)),
                        _mm256_loadu_ps(bottom.add(kx * LANES)),
                        _mm256_loadu_ps(bottom.add((kx + 1) * LANES)),
                    ];
                    for b in 0..NB {
                        let wv = _mm256_broadcast_ss(&*wrow.add(b * wstride + kx));
                        for p in 0..4 {
                            acc[b][p] = _mm256_fmadd_ps(wv, v[p], acc[b][p]);
                        }
                    }
                }
            }
        }
        let (ph, pw) = (s.ho() / 2, s.wo() / 2);
        let zero = _mm256_setzero_ps();
        for b in 0..NB {
            let bv = _mm256_set1_ps(bias[ob + b]);
            let v = acc[b].map(|a| _mm256_add_ps(a, bv));
            // PyTorch's max pooling: a later value wins when greater, or NaN.
            let mut m = v[0];
            let mut best = _mm256_setzero_si256();
            for (p, &vp) in v.iter().enumerate().skip(1) {
                let take = _mm256_or_ps(
                    _mm256_cmp_ps::<_CMP_GT_OQ>(vp, m),
                    _mm256_cmp_ps::<_CMP_UNORD_Q>(vp, vp),
                );
                m = _mm256_blendv_ps(m, vp, take);
                best = _mm256_blendv_epi8(
                    best,
                    _mm256_set1_epi32(p as i32),
                    _mm256_castps_si256(take),
                );
            }
            // relu (NaN stays, like PyTorch's); a zeroed value passes no gradient (code 4).
            let keep = _mm256_or_ps(
                _mm256_cmp_ps::<_CMP_GT_OQ>(m, zero),
                _mm256_cmp_ps::<_CMP_UNORD_Q>(m, m),
            );
            let alive = _mm256_cmp_ps::<_CMP_GT_OQ>(m, zero);
            best = _mm256_blendv_epi8(_mm256_set1_epi32(4), best, _mm256_castps_si256(alive));
            let at = (((ob + b) * ph + py) * pw + px) * LANES;
            _mm256_storeu_ps(y.as_mut_ptr().add(at), _mm256_and_ps(m, keep));
            let mut codes = [0i32; 8];
            _mm256_storeu_si256(codes.as_mut_ptr().cast(), best);
            for (dst, &c) in arg[at..at + LANES].iter_mut().zip(&codes) {
                *dst = c as u8;
            }
        }
    }
}

/// The convolution's output gradient [nb, o, ho, wo, 8] from the pooled output's gradient and
/// the window codes of [`conv_pool_forward`].
pub fn unpool_grad(grad: &[f32], arg: &[u8], s: ConvShape) -> Vec<f32> {
    let (ho, wo) = (s.ho(), s.wo());
    let (ph, pw) = (ho / 2, wo / 2);
    assert_eq!(
        grad.len(),
        s.nb * s.o * ph * pw * LANES,
        "unpool: grad length"
    );
    assert_eq!(arg.len(), grad.len(), "unpool: codes length");
    let plane = ho * wo * LANES;
    let mut dz = vec![0.0f32; s.nb * s.o * plane];
    dz.par_chunks_mut(plane).enumerate().for_each(|(p, dz)| {
        let g = &grad[p * ph * pw * LANES..(p + 1) * ph * pw * LANES];
        let a = &arg[p * ph * pw * LANES..(p + 1) * ph * pw * LANES];
        for py in 0..ph {
            for px in 0..pw {
                for l in 0..LANES {
                    let i = (py * pw + px) * LANES + l;
                    let code = a[i] as usize;
                    if code < 4 {
                        let (yy, xx) = (2 * py + code / 2, 2 * px + code % 2);
                        dz[(yy * wo + xx) * LANES + l] = g[i];
                    }
                }
            }
        }
    });
    dz
}
