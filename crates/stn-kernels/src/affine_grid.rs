//! Affine sampling grids: grid[n, i, j] = theta[n] · (x_j, y_i, 1), with PyTorch's base
//! coordinates for either align_corners convention.

use super::Real;

/// PyTorch's `linspace_from_neg_one`: `steps` coordinates spanning [-1, 1] (align_corners)
/// or the pixel centres of [-1, 1] (not align_corners).
pub fn base_coordinates<T: Real>(steps: usize, align_corners: bool) -> Vec<T> {
    if steps <= 1 {
        return vec![T::zero(); steps];
    }
    // torch.linspace fills the two halves from opposite ends.
    let step = 2.0 / (steps - 1) as f64;
    let half = steps / 2;
    (0..steps)
        .map(|i| {
            let v = if i < half {
                -1.0 + step * i as f64
            } else {
                1.0 - step * (steps - i - 1) as f64
            };
            let v = T::constant(v);
            if align_corners {
                v
            } else {
                v * T::of_usize(steps - 1) / T::of_usize(steps)
            }
        })
        .collect()
}

/// theta [n, 2, 3] -> grid [n, h, w, 2].
pub fn forward<T: Real>(theta: &[T], n: usize, h: usize, w: usize, align: bool) -> Vec<T> {
    assert_eq!(theta.len(), n * 6, "affine_grid: theta must be [n, 2, 3]");
    let xs = base_coordinates::<T>(w, align);
    let ys = base_coordinates::<T>(h, align);
    let mut grid = vec![T::zero(); n * h * w * 2];
    if h * w == 0 {
        return grid;
    }
    for (t, out) in theta.chunks_exact(6).zip(grid.chunks_exact_mut(h * w * 2)) {
        for (i, &y) in ys.iter().enumerate() {
            let row = &mut out[i * w * 2..(i + 1) * w * 2];
            let by0 = t[1] * y + t[2];
            let by1 = t[4] * y + t[5];
            for (j, &x) in xs.iter().enumerate() {
                row[2 * j] = t[0] * x + by0;
                row[2 * j + 1] = t[3] * x + by1;
            }
        }
    }
    grid
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
    for (g, t) in grad_grid
        .chunks_exact(h * w * 2)
        .zip(out.chunks_exact_mut(6))
    {
        let mut acc = [T::zero(); 6];
        for (i, &y) in ys.iter().enumerate() {
            let row = &g[i * w * 2..(i + 1) * w * 2];
            // Sums over the row first: fewer multiplications by y.
            let (mut s0, mut s1, mut sx0, mut sx1) = (T::zero(), T::zero(), T::zero(), T::zero());
            for (j, &x) in xs.iter().enumerate() {
                let (g0, g1) = (row[2 * j], row[2 * j + 1]);
                s0 = s0 + g0;
                s1 = s1 + g1;
                sx0 = sx0 + g0 * x;
                sx1 = sx1 + g1 * x;
            }
            acc[0] = acc[0] + sx0;
            acc[1] = acc[1] + s0 * y;
            acc[2] = acc[2] + s0;
            acc[3] = acc[3] + sx1;
            acc[4] = acc[4] + s1 * y;
            acc[5] = acc[5] + s1;
        }
        t.copy_from_slice(&acc);
    }
    out
}
