//! The grid generators beyond the affine one ([`affine_grid`](crate::affine_grid)): the
//! projective (homography) and thin-plate-spline grids of the paper's other transformers.
//!
//! Both are built from burn's own tensor operations (a matrix product with a constant), so
//! they are differentiable on every backend with burn's autodiff and need no kernels of
//! their own. Both use `affine_grid`'s base coordinates, so their identity parameters give
//! the identity grid under either `align_corners` convention.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock};

use burn::tensor::{Tensor, TensorData};

use crate::geometry::tps;
use crate::kernels::affine_grid::base_coordinates;

/// A constant with the dtype and device of `like` (f64 parameters get f64 grids).
fn constant<const D: usize, const L: usize>(
    values: Vec<f64>,
    shape: [usize; D],
    like: &Tensor<L>,
) -> Tensor<D> {
    Tensor::from_data(
        TensorData::new(values, shape),
        (&like.device(), like.dtype()),
    )
}

/// Base coordinates (x_j, y_i, 1) of every output pixel, row-major: [h * w, 3].
fn base_points(size: [usize; 2], align_corners: bool) -> Vec<[f64; 3]> {
    let xs = base_coordinates::<f64>(size[1], align_corners);
    let ys = base_coordinates::<f64>(size[0], align_corners);
    ys.iter()
        .flat_map(|&y| xs.iter().map(move |&x| [x, y, 1.0]))
        .collect()
}

/// The sampling grid [N, height, width, 2] of the homographies `params` [N, 8]: the 3x3
/// matrices in row-major order with their last entry fixed to 1, mapping each output pixel's
/// normalized (x, y, 1) to its source point. Differentiable with respect to `params`.
///
/// The identity is `[1, 0, 0, 0, 1, 0, 0, 0]`:
///
/// ```
/// use burn::tensor::{Device, Tensor, TensorData};
/// use stn_ops::{affine_grid, projective_grid};
///
/// let device = Device::flex();
/// let identity = [1.0f32, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0];
/// let h = Tensor::<2>::from_data(TensorData::new(identity.to_vec(), [1, 8]), &device);
/// let grid = projective_grid(h, 5, 7, false);
/// let theta = Tensor::<3>::from_data(
///     TensorData::new(vec![1.0f32, 0.0, 0.0, 0.0, 1.0, 0.0], [1, 2, 3]),
///     &device,
/// );
/// let affine = affine_grid(theta, 5, 7, false);
/// assert_eq!(grid.dims(), [1, 5, 7, 2]);
/// grid.into_data().assert_approx_eq::<f32>(&affine.into_data(), Default::default());
/// ```
///
/// # Panics
/// If `params` is not [N, 8].
pub fn projective_grid(
    params: Tensor<2>,
    height: usize,
    width: usize,
    align_corners: bool,
) -> Tensor<4> {
    let [n, p] = params.dims();
    assert_eq!(
        p, 8,
        "projective_grid: params must be [N, 8], got [{n}, {p}]"
    );
    let device = params.device();
    let hw = height * width;
    let base: Vec<f64> = base_points([height, width], align_corners)
        .into_iter()
        .flatten()
        .collect();
    let base = constant(base, [1, hw, 3], &params);
    let ones = Tensor::<2>::ones([n, 1], (&device, params.dtype()));
    let h = Tensor::cat(vec![params, ones], 1).reshape([n, 3, 3]);
    // [1, hw, 3] x [n, 3, 3]^T -> [n, hw, 3] homogeneous source points.
    let out = base.matmul(h.swap_dims(1, 2));
    let uv = out.clone().slice([0..n, 0..hw, 0..2]);
    let w = out.slice([0..n, 0..hw, 2..3]);
    (uv / w).reshape([n, height, width, 2])
}

/// The `g` x `g` control points of [`tps_grid`], row-major, spanning [-1, 1] on both axes:
/// flattened, the identity parameters of a thin-plate-spline transformer.
pub fn tps_control_points(g: usize) -> Vec<(f64, f64)> {
    let c = base_coordinates::<f64>(g, true);
    c.iter()
        .flat_map(|&y| c.iter().map(move |&x| (x, y)))
        .collect()
}

/// The matrix M [h * w, K] with grid = M · P for control point targets P [K, 2]: the TPS
/// interpolant through (control point -> target) evaluated at every output pixel. It depends
/// only on the sizes, so it is computed once (in f64) and cached.
///
/// # Panics
/// If `g` < 2 (fewer points do not determine a spline).
pub fn tps_matrix(g: usize, size: [usize; 2], align_corners: bool) -> Arc<Vec<f64>> {
    type Key = (usize, [usize; 2], bool);
    static CACHE: OnceLock<Mutex<HashMap<Key, Arc<Vec<f64>>>>> = OnceLock::new();
    assert!(
        g >= 2,
        "tps_grid: a thin-plate spline needs at least 2x2 control points, got {g}x{g}"
    );
    let cache = CACHE.get_or_init(Default::default);
    let key = (g, size, align_corners);
    if let Some(m) = cache.lock().unwrap_or_else(|e| e.into_inner()).get(&key) {
        return m.clone();
    }
    let points: Vec<[f64; 2]> = tps_control_points(g)
        .into_iter()
        .map(|(x, y)| [x, y])
        .collect();
    let queries: Vec<[f64; 2]> = base_points(size, align_corners)
        .into_iter()
        .map(|[x, y, _]| [x, y])
        .collect();
    // A lattice of at least 2x2 points is never degenerate.
    let m = tps::interpolation_matrix(&points, &queries)
        .expect("a lattice of control points determines a thin-plate spline");
    let m = Arc::new(m);
    cache
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .insert(key, m.clone());
    m
}

/// The sampling grid [N, height, width, 2] of the thin-plate splines that move the `g` x `g`
/// control points of [`tps_control_points`] to `points` [N, 2 g²] ((x, y) per point, in
/// the same order). Differentiable with respect to `points`.
///
/// ```
/// use burn::tensor::{Device, Tensor, TensorData};
/// use stn_ops::{tps_control_points, tps_grid};
///
/// let device = Device::flex();
/// // Control points left where they are: the identity grid, whose corners are the
/// // corners of [-1, 1]^2 with align_corners = true.
/// let identity: Vec<f32> = tps_control_points(4)
///     .into_iter()
///     .flat_map(|(x, y)| [x as f32, y as f32])
///     .collect();
/// let points = Tensor::<2>::from_data(TensorData::new(identity, [1, 32]), &device);
/// let grid = tps_grid(points, 4, 9, 9, true).into_data().try_into_vec::<f32>().unwrap();
/// assert!((grid[0] + 1.0).abs() < 1e-5 && (grid[1] + 1.0).abs() < 1e-5);
/// ```
///
/// # Panics
/// If `g` < 2 or `points` is not [N, 2 g²].
pub fn tps_grid(
    points: Tensor<2>,
    g: usize,
    height: usize,
    width: usize,
    align_corners: bool,
) -> Tensor<4> {
    let [n, p] = points.dims();
    let k = g * g;
    assert_eq!(
        p,
        2 * k,
        "tps_grid: points must be [N, {}] for a {g}x{g} grid, got [{n}, {p}]",
        2 * k
    );
    let hw = height * width;
    let m = tps_matrix(g, [height, width], align_corners);
    let m = constant(m.as_ref().clone(), [1, hw, k], &points);
    // [1, hw, K] x [n, K, 2] -> [n, hw, 2]
    m.expand([n, hw, k])
        .matmul(points.reshape([n, k, 2]))
        .reshape([n, height, width, 2])
}
