//! 2x2 max pooling (stride 2, floor) followed by ReLU, fused, with PyTorch's tie and NaN rules:
//! the first maximum in row-major window order wins, and NaN propagates.

use rayon::prelude::*;

use super::{Real, with_simd};

/// The window position (0..4, row-major) of the maximum, and the maximum.
#[inline(always)]
fn window_max<T: Real>(v: [T; 4]) -> (usize, T) {
    let (mut best, mut m) = (0, v[0]);
    for (i, &x) in v.iter().enumerate().skip(1) {
        if x > m || x.is_nan() {
            best = i;
            m = x;
        }
    }
    (best, m)
}

#[inline(always)]
fn window<T: Real>(plane: &[T], w: usize, i: usize, j: usize) -> [T; 4] {
    let a = (2 * i) * w + 2 * j;
    [plane[a], plane[a + 1], plane[a + w], plane[a + w + 1]]
}

/// relu(max_pool2d(x, 2)) of `planes` planes of h x w; the output is [planes, h / 2, w / 2].
pub fn forward<T: Real>(x: &[T], planes: usize, h: usize, w: usize) -> Vec<T> {
    assert_eq!(x.len(), planes * h * w, "pool: input length");
    let (ho, wo) = (h / 2, w / 2);
    let mut out = vec![T::zero(); planes * ho * wo];
    if out.is_empty() {
        return out;
    }
    out.par_chunks_mut(ho * wo).enumerate().for_each(|(p, out)| {
        let plane = &x[p * h * w..(p + 1) * h * w];
        with_simd(#[inline(always)] || {
            for i in 0..ho {
                for j in 0..wo {
                    let (_, m) = window_max(window(plane, w, i, j));
                    // relu keeps NaN, like PyTorch's.
                    out[i * wo + j] = if m > T::zero() || m.is_nan() { m } else { T::zero() };
                }
            }
        });
    });
    out
}

/// Gradient of [`forward`] with respect to x: each output's gradient goes to its window's
/// maximum when the output is positive.
pub fn backward<T: Real>(x: &[T], grad: &[T], planes: usize, h: usize, w: usize) -> Vec<T> {
    let (ho, wo) = (h / 2, w / 2);
    assert_eq!(x.len(), planes * h * w, "pool backward: input length");
    assert_eq!(grad.len(), planes * ho * wo, "pool backward: grad length");
    let mut dx = vec![T::zero(); planes * h * w];
    if dx.is_empty() || ho * wo == 0 {
        return dx;
    }
    dx.par_chunks_mut(h * w).enumerate().for_each(|(p, dx)| {
        let plane = &x[p * h * w..(p + 1) * h * w];
        let g = &grad[p * ho * wo..(p + 1) * ho * wo];
        with_simd(#[inline(always)] || {
            for i in 0..ho {
                for j in 0..wo {
                    let (k, m) = window_max(window(plane, w, i, j));
                    if m > T::zero() {
                        dx[(2 * i + k / 2) * w + 2 * j + k % 2] = g[i * wo + j];
                    }
                }
            }
        });
    });
    dx
}
