//! Convolution, 2x2 max pooling and ReLU in one AVX2 pass on the batch-blocked layout
//! [N / 8, C, H, W, 8] (see [`crate::conv_blocked`]): the convolution's output is never stored.

use std::arch::x86_64::*;

use rayon::prelude::*;

use crate::conv_blocked::{ConvShape, LANES};

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
