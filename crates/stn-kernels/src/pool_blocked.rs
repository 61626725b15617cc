//! 2x2 max pooling fused with ReLU, forward and backward, on the batch-blocked layout
//! [N / L, C, H, W, L] (see [`crate::conv_blocked`]), with PyTorch's rules (first maximum
//! wins, NaN propagates). One source for every path ([`crate::simd`]).

use rayon::prelude::*;

use crate::simd::{Isa, Simd, dispatch};

/// relu(max_pool2d(x, 2)) on blocked f32 planes [planes, h, w, L] -> [planes, h/2, w/2, L],
/// L = `isa.lanes()`.
pub fn pool_forward(isa: Isa, x: &[f32], planes: usize, h: usize, w: usize) -> Vec<f32> {
    assert!(isa.supported(), "pool: {isa} unsupported");
    let (ho, wo, l) = (h / 2, w / 2, isa.lanes());
    assert_eq!(x.len(), planes * h * w * l, "pool: input length");
    let mut out = vec![0.0f32; planes * ho * wo * l];
    if out.is_empty() {
        return out;
    }
    out.par_chunks_mut(ho * wo * l)
        .enumerate()
        .for_each(|(p, out)| {
            let plane = &x[p * h * w * l..(p + 1) * h * w * l];
            dispatch!(isa, forward_plane(plane, h, w, out));
        });
    out
}

#[inline(always)]
fn forward_plane<S: Simd>(simd: S, plane: &[f32], h: usize, w: usize, out: &mut [f32]) {
    let (ho, wo, l) = (h / 2, w / 2, S::LANES);
    assert!(plane.len() >= h * w * l && out.len() >= ho * wo * l);
    for i in 0..ho {
        for j in 0..wo {
            // SAFETY: i < h / 2 and j < w / 2: the window is inside the h x w plane.
            let (m, _) = unsafe { window(simd, plane.as_ptr(), w, i, j) };
            let keep = simd.or(simd.gt(m, simd.zero()), simd.is_nan(m));
            let v = simd.select(keep, m, simd.zero());
            // SAFETY: (i * wo + j + 1) L <= ho wo L <= out.len() (asserted above).
            unsafe { simd.store(out.as_mut_ptr().add((i * wo + j) * l), v) };
        }
    }
}

/// The window maximum and, per position, the lanes where it is the chosen one.
///
/// # Safety
/// `p` must be valid for reading the window of pooled pixel (i, j) in a plane of width `w`:
/// rows 2i and 2i + 1, columns 2j and 2j + 1, of LANES floats each.
#[inline(always)]
unsafe fn window<S: Simd>(
    simd: S,
    p: *const f32,
    w: usize,
    i: usize,
    j: usize,
) -> (S::F, [S::M; 4]) {
    let l = S::LANES;
    let a = ((2 * i) * w + 2 * j) * l;
    // SAFETY: the caller guarantees the window is readable.
    let v = [a, a + l, a + w * l, a + (w + 1) * l].map(|o| unsafe { simd.load(p.add(o)) });
    let mut m = v[0];
    let mut take = [simd.all_set(); 4];
    for k in 1..4 {
        let t = simd.or(simd.gt(v[k], m), simd.is_nan(v[k]));
        take[k] = t;
        m = simd.select(t, v[k], m);
    }
    let later3 = take[3];
    let later2 = simd.or(take[2], later3);
    let later1 = simd.or(take[1], later2);
    let chosen = [
        simd.andnot(later1, simd.all_set()),
        simd.andnot(later2, take[1]),
        simd.andnot(later3, take[2]),
        take[3],
    ];
    (m, chosen)
}

/// Gradient of [`pool_forward`] with respect to x.
pub fn pool_backward(
    isa: Isa,
    x: &[f32],
    grad: &[f32],
    planes: usize,
    h: usize,
    w: usize,
) -> Vec<f32> {
    assert!(isa.supported(), "pool backward: {isa} unsupported");
    let (ho, wo, l) = (h / 2, w / 2, isa.lanes());
    assert_eq!(x.len(), planes * h * w * l, "pool backward: input length");
    assert_eq!(
        grad.len(),
        planes * ho * wo * l,
        "pool backward: grad length"
    );
    let mut dx = vec![0.0f32; x.len()];
    if dx.is_empty() || ho * wo == 0 {
        return dx;
    }
    dx.par_chunks_mut(h * w * l)
        .enumerate()
        .for_each(|(p, dx)| {
            let plane = &x[p * h * w * l..(p + 1) * h * w * l];
            let g = &grad[p * ho * wo * l..(p + 1) * ho * wo * l];
            dispatch!(isa, backward_plane(plane, g, h, w, dx));
        });
    dx
}

#[inline(always)]
fn backward_plane<S: Simd>(simd: S, plane: &[f32], g: &[f32], h: usize, w: usize, dx: &mut [f32]) {
    let (ho, wo, l) = (h / 2, w / 2, S::LANES);
    assert!(plane.len() >= h * w * l && dx.len() >= h * w * l && g.len() >= ho * wo * l);
    let zero = simd.zero();
    for i in 0..ho {
        for j in 0..wo {
            // SAFETY: i < h / 2 and j < w / 2: the window is inside the h x w plane.
            let (m, chosen) = unsafe { window(simd, plane.as_ptr(), w, i, j) };
            // SAFETY: (i * wo + j + 1) L <= ho wo L <= g.len() (asserted above).
            let gi = unsafe { simd.load(g.as_ptr().add((i * wo + j) * l)) };
            let gi = simd.select(simd.gt(m, zero), gi, zero);
            let a = ((2 * i) * w + 2 * j) * l;
            for (k, o) in [a, a + l, a + w * l, a + (w + 1) * l]
                .into_iter()
                .enumerate()
            {
                // SAFETY: the window's pixels are inside the h x w plane, and dx.len() >= h w L.
                unsafe { simd.store(dx.as_mut_ptr().add(o), simd.select(chosen[k], gi, zero)) };
            }
        }
    }
}
