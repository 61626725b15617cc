//! Output shapes of the sampling primitives for burn's fusion, which registers them as custom
//! operations before they run (see [`crate::StnBackend`]). Each mirrors what the
//! backends return.

use burn::backend::fusion::custom::TensorSpec;
use burn::tensor::Shape;

use crate::SampleOptions;

fn spec(like: &TensorSpec, dims: Vec<usize>) -> TensorSpec {
    TensorSpec::new(Shape::from(dims), like.dtype)
}

/// A gradient that was not asked for: empty, shape [0].
fn maybe(wanted: bool, like: &TensorSpec, dims: Vec<usize>) -> TensorSpec {
    spec(like, if wanted { dims } else { vec![0] })
}

/// [`crate::StnBackend::stn_grid_sample`]: [N, C, Ho, Wo].
pub fn grid_sample(input: &TensorSpec, grid: &TensorSpec, _: &SampleOptions) -> TensorSpec {
    let (i, g) = (&input.shape, &grid.shape);
    spec(input, vec![i[0], i[1], g[1], g[2]])
}

/// [`crate::StnBackend::stn_grid_sample_backward`]: the input's and the grid's shapes.
pub fn grid_sample_backward(
    input: &TensorSpec,
    grid: &TensorSpec,
    _grad_output: &TensorSpec,
    _: &SampleOptions,
    want_input: &bool,
    want_grid: &bool,
) -> (TensorSpec, TensorSpec) {
    (
        maybe(*want_input, input, input.shape.to_vec()),
        maybe(*want_grid, input, grid.shape.to_vec()),
    )
}

/// [`crate::StnBackend::stn_affine_grid`]: [N, height, width, 2].
pub fn affine_grid(
    theta: &TensorSpec,
    height: &usize,
    width: &usize,
    _align_corners: &bool,
) -> TensorSpec {
    spec(theta, vec![theta.shape[0], *height, *width, 2])
}

/// [`crate::StnBackend::stn_affine_grid_backward`]: [N, 2, 3].
pub fn affine_grid_backward(grad_grid: &TensorSpec, _align_corners: &bool) -> TensorSpec {
    spec(grad_grid, vec![grad_grid.shape[0], 2, 3])
}

/// [`crate::StnBackend::stn_affine_sample`]: [N, C, height, width].
pub fn affine_sample(
    input: &TensorSpec,
    _theta: &TensorSpec,
    height: &usize,
    width: &usize,
    _: &SampleOptions,
) -> TensorSpec {
    let i = &input.shape;
    spec(input, vec![i[0], i[1], *height, *width])
}

/// [`crate::StnBackend::stn_affine_sample_backward`]: the input's and theta's shapes.
pub fn affine_sample_backward(
    input: &TensorSpec,
    theta: &TensorSpec,
    _grad_output: &TensorSpec,
    _: &SampleOptions,
    want_input: &bool,
    want_theta: &bool,
) -> (TensorSpec, TensorSpec) {
    (
        maybe(*want_input, input, input.shape.to_vec()),
        maybe(*want_theta, input, theta.shape.to_vec()),
    )
}
