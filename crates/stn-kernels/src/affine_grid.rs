//! Affine sampling grids: `grid[n, i, j] = theta[n] · (x_j, y_i, 1)`, with PyTorch's base
//! coordinates for either align_corners convention.

use rayon::prelude::*;

use super::{Real, is_f32};
use crate::buffers::NewBuffer;
use crate::simd::{MAX_LANES, Simd, dispatch, isa};

/// PyTorch's `linspace_from_neg_one`: `steps` coordinates spanning [-1, 1] (align_corners)
/// or the pixel centres of [-1, 1] (not align_corners), value for value.
///
/// `torch.linspace` computes in the tensor's own precision, fills the two halves from opposite
/// ends, and (x86-64 builds with AVX2 or AVX-512 kernels, aarch64) fuses each multiply-add:
/// `start + step * i` for the first half, `end - step * (steps - 1 - i)` for the second. The
/// last bit matters: the identity transform maps these coordinates to whole pixel positions,
/// where bilinear sampling's gradient with respect to the coordinate jumps, so a coordinate a
/// rounding error below a pixel takes the other side's difference. (Checked against PyTorch
/// 2.15 for f32 and f64 and sizes 5-100.)
pub fn base_coordinates<T: Real>(steps: usize, align_corners: bool) -> Vec<T> {
    if steps <= 1 {
        return vec![T::zero(); steps];
    }
    let (start, end) = (-T::one(), T::one());
    let step = (end - start) / T::of_usize(steps - 1);
    let half = steps / 2;
    (0..steps)
        .map(|i| {
            let v = if i < half {
                step.mul_add(T::of_usize(i), start)
            } else {
                (-step).mul_add(T::of_usize(steps - i - 1), end)
            };
            if align_corners {
                v
            } else {
                v * T::of_usize(steps - 1) / T::of_usize(steps)
            }
        })
        .collect()
}

/// Per-pixel base coordinates (x, y) of an h x w grid, row-major.
pub(crate) fn base_planes<T: Real>(h: usize, w: usize, align: bool) -> (Vec<T>, Vec<T>) {
    let xs = base_coordinates::<T>(w, align);
    let ys = base_coordinates::<T>(h, align);
    let bx = (0..h).flat_map(|_| xs.iter().copied()).collect();
    let by = ys.iter().flat_map(|&y| std::iter::repeat_n(y, w)).collect();
    (bx, by)
}

/// theta [n, 2, 3] -> grid [n, h, w, 2].
pub fn forward<T: Real>(theta: &[T], n: usize, h: usize, w: usize, align: bool) -> Vec<T> {
    assert_eq!(theta.len(), n * 6, "affine_grid: theta must be [n, 2, 3]");
    let xs = base_coordinates::<T>(w, align);
    let ys = base_coordinates::<T>(h, align);
    let mut grid = NewBuffer::new(n * h * w * 2);
    if h * w > 0 {
        // Each item written once, in parallel, into the new buffer (no zero-fill pass first).
        grid.uninit()
            .par_chunks_exact_mut(h * w * 2)
            .zip(theta.par_chunks_exact(6))
            .for_each(|(out, t)| {
                // theta0 x + (theta1 y + theta2): each row's own terms computed once.
                for (row, &y) in out.chunks_exact_mut(w * 2).zip(&ys) {
                    let b = [t[1] * y + t[2], t[4] * y + t[5]];
                    for (o, &x) in row.chunks_exact_mut(2).zip(&xs) {
                        o[0].write(t[0] * x + b[0]);
                        o[1].write(t[3] * x + b[1]);
                    }
                }
            });
    }
    // SAFETY: every element of every item was written above (none when h * w == 0).
    unsafe { grid.finish() }
}

/// grad_grid [n, h, w, 2] -> grad_theta [n, 2, 3].
pub fn backward<T: Real>(grad_grid: &[T], n: usize, h: usize, w: usize, align: bool) -> Vec<T> {
    assert_eq!(
        grad_grid.len(),
        n * h * w * 2,
        "affine_grid backward: grad shape"
    );
    let xs = base_coordinates::<T>(w, align);
    let ys = base_coordinates::<T>(h, align);
    let mut out = vec![T::zero(); n * 6];
    if h * w == 0 {
        return out;
    }
    let isa = isa();
    // Items in parallel; each item's sums in the same order as ever.
    grad_grid
        .par_chunks_exact(h * w * 2)
        .zip(out.par_chunks_exact_mut(6))
        .for_each(|(g, t)| {
            // Sums over each row first (fewer multiplications by y): per row, [g0, g1, g0 x,
            // g1 x] in pixel order; then the rows' terms in row order.
            let mut acc = [T::zero(); 6];
            let mut add_row = |sums: [T; 4], y: T| {
                let [s0, s1, sx0, sx1] = sums;
                acc[0] = acc[0] + sx0;
                acc[1] = acc[1] + s0 * y;
                acc[2] = acc[2] + s0;
                acc[3] = acc[3] + sx1;
                acc[4] = acc[4] + s1 * y;
                acc[5] = acc[5] + s1;
            };
            let row_len = w * 2;
            let mut done = 0;
            if is_f32::<T>() && row_len * MAX_LANES <= i32::MAX as usize {
                // A vector of rows at a time, one row per lane, each in its own pixel order.
                let (g32, xs32) = (bytemuck::cast_slice(g), bytemuck::cast_slice(&xs));
                let mut sums = [[0.0f32; 4]; MAX_LANES];
                let lanes = isa.lanes();
                while done + lanes <= h {
                    let rows = &g32[done * row_len..(done + lanes) * row_len];
                    dispatch!(isa, row_sums_vector(rows, xs32, &mut sums));
                    for (r, s) in sums[..lanes].iter().enumerate() {
                        add_row(
                            s.map(|v| T::from_f32(v).unwrap_or_else(T::nan)),
                            ys[done + r],
                        );
                    }
                    done += lanes;
                }
            }
            // The rest ROWS rows at a time: their sums are independent chains that the CPU
            // runs side by side, each in the same order as one row alone.
            const ROWS: usize = 4;
            let rest = &g[done * row_len..];
            let groups = rest
                .chunks_exact(ROWS * row_len)
                .zip(ys[done..].chunks_exact(ROWS));
            for (group, ys) in groups {
                let rows = core::array::from_fn(|r| &group[r * row_len..(r + 1) * row_len]);
                for (sums, &y) in row_sums::<T, ROWS>(rows, &xs).into_iter().zip(ys) {
                    add_row(sums, y);
                }
            }
            done += (h - done) / ROWS * ROWS;
            for (row, &y) in g[done * row_len..].chunks_exact(row_len).zip(&ys[done..]) {
                let [sums] = row_sums::<T, 1>([row], &xs);
                add_row(sums, y);
            }
            t.copy_from_slice(&acc);
        });
    out
}

/// [sum g0, sum g1, sum g0 x, sum g1 x] of LANES rows of interleaved (g0, g1) (`rows`, one
/// after another), one row per lane, each in pixel order: what [`row_sums`] computes.
#[inline(always)]
fn row_sums_vector<S: Simd>(simd: S, rows: &[f32], xs: &[f32], sums: &mut [[f32; 4]; MAX_LANES]) {
    let row_len = 2 * xs.len();
    assert_eq!(rows.len(), S::LANES * row_len);
    assert!(
        rows.len() <= i32::MAX as usize,
        "row offsets must fit in i32"
    );
    let mut idx = [0i32; MAX_LANES];
    for (r, i) in idx.iter_mut().enumerate().take(S::LANES) {
        *i = (r * row_len) as i32;
    }
    let (mut s0, mut s1, mut sx0, mut sx1) = (simd.zero(), simd.zero(), simd.zero(), simd.zero());
    for (j, &x) in xs.iter().enumerate() {
        // SAFETY: pixel j < xs.len() of row r < LANES, floats r row_len + 2 j and the next,
        // is inside `rows` (its length asserted above); the offsets fit in i32 (asserted).
        let (g0, g1) = unsafe { simd.gather_pairs(rows.as_ptr().add(2 * j), &idx) };
        let x = simd.splat(x);
        s0 = simd.add(s0, g0);
        s1 = simd.add(s1, g1);
        sx0 = simd.add(sx0, simd.mul(g0, x));
        sx1 = simd.add(sx1, simd.mul(g1, x));
    }
    for (k, v) in [s0, s1, sx0, sx1].into_iter().enumerate() {
        let a = simd.to_array(v);
        for r in 0..S::LANES {
            sums[r][k] = a[r];
        }
    }
}

/// [sum g0, sum g1, sum g0 x, sum g1 x] of each of R rows of interleaved (g0, g1), in pixel
/// order.
#[inline(always)]
fn row_sums<T: Real, const R: usize>(rows: [&[T]; R], xs: &[T]) -> [[T; 4]; R] {
    let rows = rows.map(|r| &r[..2 * xs.len()]);
    let mut s = [[T::zero(); 4]; R];
    for (j, &x) in xs.iter().enumerate() {
        for r in 0..R {
            let (g0, g1) = (rows[r][2 * j], rows[r][2 * j + 1]);
            s[r][0] = s[r][0] + g0;
            s[r][1] = s[r][1] + g1;
            s[r][2] = s[r][2] + g0 * x;
            s[r][3] = s[r][3] + g1 * x;
        }
    }
    s
}

#[cfg(test)]
mod tests {
    use super::{backward, base_coordinates, forward};

    /// The vector and blocked loops compute exactly what one pixel at a time in row order
    /// computes, on every kernel path of this CPU (rows fewer than, as many as and more than a
    /// vector's lanes; planes with and without a partial last vector).
    #[test]
    fn forward_and_backward_equal_the_plain_loops_bit_for_bit() {
        // Under Miri (slow, portable path only: 4 lanes), smaller planes.
        let shapes: &[(usize, usize, usize)] = if cfg!(miri) {
            &[(3, 7, 13), (2, 4, 5), (1, 3, 6)]
        } else {
            &[(3, 7, 13), (2, 16, 16), (3, 37, 29), (2, 28, 28)]
        };
        crate::simd::for_each_isa(|isa| {
            for &(n, h, w) in shapes {
                eprintln!("path {isa}, {n}x{h}x{w}");
                plain_loops_check(n, h, w);
            }
        });
    }

    fn plain_loops_check(n: usize, h: usize, w: usize) {
        let val = |i: usize| ((i * 2654435761) % 1000) as f32 / 250.0 - 2.0;
        let theta: Vec<f32> = (0..n * 6).map(val).collect();
        let gg: Vec<f32> = (0..n * h * w * 2).map(|i| val(i + 77)).collect();
        for align in [false, true] {
            let (xs, ys) = (
                base_coordinates::<f32>(w, align),
                base_coordinates::<f32>(h, align),
            );
            let mut grid = Vec::new();
            let mut gt = Vec::new();
            for (t, g) in theta.chunks(6).zip(gg.chunks(h * w * 2)) {
                let mut acc = [0.0f32; 6];
                for (i, &y) in ys.iter().enumerate() {
                    let (by0, by1) = (t[1] * y + t[2], t[4] * y + t[5]);
                    let (mut s0, mut s1, mut sx0, mut sx1) = (0.0f32, 0.0f32, 0.0f32, 0.0f32);
                    for (j, &x) in xs.iter().enumerate() {
                        grid.extend([t[0] * x + by0, t[3] * x + by1]);
                        let (g0, g1) = (g[(i * w + j) * 2], g[(i * w + j) * 2 + 1]);
                        (s0, s1) = (s0 + g0, s1 + g1);
                        (sx0, sx1) = (sx0 + g0 * x, sx1 + g1 * x);
                    }
                    let terms = [sx0, s0 * y, s0, sx1, s1 * y, s1];
                    for (a, v) in acc.iter_mut().zip(terms) {
                        *a += v;
                    }
                }
                gt.extend(acc);
            }
            let bits = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
            assert_eq!(bits(&forward(&theta, n, h, w, align)), bits(&grid));
            assert_eq!(bits(&backward(&gg, n, h, w, align)), bits(&gt));
        }
    }

    /// `F.affine_grid` of the identity in PyTorch 2.15 (x86-64, AVX-512 kernels), bit for bit:
    /// a 28-wide f32 grid without aligned corners, a 21-wide f64 grid with.
    #[test]
    fn base_coordinates_are_pytorchs_bit_for_bit() {
        let f32s: Vec<u32> = base_coordinates::<f32>(28, false)
            .iter()
            .map(|v| v.to_bits())
            .collect();
        #[rustfmt::skip]
        let want32: [u32; 28] = [0xbf76db6e, 0xbf649249, 0xbf524925, 0xbf400000, 0xbf2db6db, 0xbf1b6db7, 0xbf092493, 0xbeedb6db, 0xbec92492, 0xbea49248, 0xbe800000, 0xbe36db6e, 0xbddb6db6, 0xbd124923, 0x3d124923, 0x3ddb6db6, 0x3e36db6e, 0x3e800000, 0x3ea49248, 0x3ec92492, 0x3eedb6db, 0x3f092493, 0x3f1b6db7, 0x3f2db6db, 0x3f400000, 0x3f524925, 0x3f649249, 0x3f76db6e];
        assert_eq!(f32s, want32);
        let f64s: Vec<u64> = base_coordinates::<f64>(21, true)
            .iter()
            .map(|v| v.to_bits())
            .collect();
        #[rustfmt::skip]
        let want64: [u64; 21] = [0xbff0000000000000, 0xbfeccccccccccccd, 0xbfe999999999999a, 0xbfe6666666666666, 0xbfe3333333333333, 0xbfe0000000000000, 0xbfd9999999999999, 0xbfd3333333333332, 0xbfc9999999999998, 0xbfb9999999999996, 0xbc90000000000000, 0x3fb9999999999996, 0x3fc9999999999998, 0x3fd3333333333332, 0x3fd9999999999999, 0x3fe0000000000000, 0x3fe3333333333333, 0x3fe6666666666666, 0x3fe999999999999a, 0x3feccccccccccccd, 0x3ff0000000000000];
        assert_eq!(f64s, want64);
    }
}
