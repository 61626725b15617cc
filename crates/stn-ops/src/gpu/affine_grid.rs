//! Affine grid generation on the GPU: grid[n, i, j] = theta[n] · (x_j, y_i, 1). The base
//! coordinates come from the host (PyTorch's `linspace` rule, computed once per call by the
//! CPU code in f64 and rounded as there) so that they are bit-identical on every device.
//! The backward pass (a reduction over the points per batch item) is
//! [`super::sample_backward::theta_grad_kernel`].

use cubecl::prelude::*;

/// grid [N, H W, 2] from theta [N, 2, 3] and `base` = [x_0 .. x_{w-1}, y_0 .. y_{h-1}]: one
/// invocation per point (`total` = N H W). The association is the CPU kernel's:
/// theta0 x + (theta1 y + theta2).
#[cube(launch)]
pub fn affine_grid_kernel<F: Float>(
    theta: &Tensor<F>,
    base: &Tensor<F>,
    grid: &mut Tensor<F>,
    width: u32,
    plane: u32,
    total: u32,
    #[define(F)] _dtype: ElemType,
) {
    let pos = ABSOLUTE_POS;
    if pos >= total as usize {
        terminate!();
    }
    let plane = plane as usize;
    let width = width as usize;
    let n = pos / plane;
    let p = pos % plane;
    let x = base[p % width];
    let y = base[width + p / width];
    let t = n * 6;
    grid[pos * 2] = theta[t] * x + (theta[t + 1] * y + theta[t + 2]);
    grid[pos * 2 + 1] = theta[t + 3] * x + (theta[t + 4] * y + theta[t + 5]);
}
