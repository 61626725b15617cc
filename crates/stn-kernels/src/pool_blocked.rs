//! AVX2 2x2 max pooling fused with ReLU, forward and backward, on the batch-blocked layout
//! [N / 8, C, H, W, 8] (see [`crate::conv_blocked`]).

use std::arch::x86_64::*;

use rayon::prelude::*;

use crate::conv_blocked::LANES;

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
