//! The CPU implementation (burn's Flex backend): the `stn-kernels` kernels run in place on
//! Flex's buffers, no copies beyond making inputs contiguous. This file: grid sampling and
//! affine grids; `conv`: convolution, pooling and the batch-blocked layout.

use burn::backend::TensorMetadata;
use burn::backend::flex::{Flex, FlexTensor};
use burn::tensor::{DType, TensorData};

use super::kernels::grid_sample::SampleShape;
use super::kernels::{self, Real};
use super::profile::{label, time};
use super::{SampleOptions, StnBackend};

fn contiguous(t: FlexTensor) -> FlexTensor {
    if t.is_contiguous() {
        t
    } else if let Some(copy) = copy_rows(&t) {
        copy
    } else {
        t.to_contiguous()
    }
}

/// A contiguous copy of an f32 view whose innermost dimensions are contiguous runs of at
/// least 64 values (a slice of a padded blocked tensor: the backward pass of the padding), run
/// by run; `None` for other views. Flex's general copy handles these as 2-D tiles, a
/// transposition's loop, which took ~4% of the paper CNN's training step.
fn copy_rows(t: &FlexTensor) -> Option<FlexTensor> {
    if t.dtype() != DType::F32 {
        return None;
    }
    let layout = t.layout();
    let (shape, strides) = (layout.shape(), layout.strides());
    let dims = shape.num_dims();
    if dims == 0 || strides[dims - 1] != 1 || strides.iter().any(|&s| s < 0) {
        return None;
    }
    // The innermost dimensions that are one contiguous run.
    let (mut run, mut inner) = (shape[dims - 1], dims - 1);
    while inner > 0 && strides[inner - 1] == run as isize {
        inner -= 1;
        run *= shape[inner];
    }
    if run < 64 || inner == 0 {
        return None;
    }
    let (outer_shape, outer_strides) = (&shape.as_slice()[..inner], &strides[..inner]);
    let runs: usize = outer_shape.iter().product();
    let src: &[f32] = t.storage();
    let offset = layout.start_offset();
    // Sequential: memory-bound, and the training step already runs one half-batch per core.
    let mut out = Vec::with_capacity(runs * run);
    let mut index = vec![0usize; inner];
    for _ in 0..runs {
        let at = offset
            + (0..inner)
                .map(|d| index[d] * outer_strides[d] as usize)
                .sum::<usize>();
        out.extend_from_slice(&src[at..at + run]);
        for d in (0..inner).rev() {
            index[d] += 1;
            if index[d] < outer_shape[d] {
                break;
            }
            index[d] = 0;
        }
    }
    Some(tensor(out, shape.as_slice().to_vec()))
}

fn dims<const D: usize>(t: &FlexTensor, what: &str) -> [usize; D] {
    let shape = t.shape();
    assert_eq!(
        shape.num_dims(),
        D,
        "{what}: expected {D} dimensions, got {shape:?}"
    );
    core::array::from_fn(|i| shape[i])
}

fn tensor<T: Real + burn::tensor::Element>(data: Vec<T>, shape: Vec<usize>) -> FlexTensor {
    FlexTensor::from_data(TensorData::new(data, shape))
}

fn empty(dtype: DType) -> FlexTensor {
    FlexTensor::empty(vec![0].into(), dtype)
}

/// Runs `$body` with `$t` bound to the element type of `$dtype` (f32 or f64).
macro_rules! with_float {
    ($dtype:expr, $t:ident, $body:block) => {
        match $dtype {
            DType::F32 => {
                type $t = f32;
                $body
            }
            DType::F64 => {
                type $t = f64;
                $body
            }
            other => panic!("stn ops support f32 and f64 tensors, got {other:?}"),
        }
    };
}

mod conv;

fn sample_shape(input: &FlexTensor, grid: &FlexTensor) -> SampleShape {
    let [n, c, h_in, w_in] = dims(input, "grid_sample input");
    let [gn, h_out, w_out, two] = dims(grid, "grid_sample grid");
    assert!(
        gn == n && two == 2,
        "grid_sample: grid {:?} does not fit input {:?}",
        grid.shape(),
        input.shape()
    );
    SampleShape {
        n,
        c,
        h_in,
        w_in,
        h_out,
        w_out,
    }
}

impl StnBackend for Flex {
    fn stn_grid_sample(input: FlexTensor, grid: FlexTensor, options: SampleOptions) -> FlexTensor {
        time(
            label(|| format!("grid_sample fwd {:?}", input.shape().as_slice())),
            || {
                let (input, grid) = (contiguous(input), contiguous(grid));
                let s = sample_shape(&input, &grid);
                assert_eq!(
                    input.dtype(),
                    grid.dtype(),
                    "grid_sample: input and grid dtypes differ"
                );
                with_float!(input.dtype(), T, {
                    let out = kernels::grid_sample::forward_alloc::<T>(
                        input.storage(),
                        grid.storage(),
                        s,
                        options,
                    );
                    tensor(out, vec![s.n, s.c, s.h_out, s.w_out])
                })
            },
        )
    }

    fn stn_grid_sample_backward(
        input: FlexTensor,
        grid: FlexTensor,
        grad_output: FlexTensor,
        options: SampleOptions,
        want_input: bool,
        want_grid: bool,
    ) -> (FlexTensor, FlexTensor) {
        time(
            label(|| format!("grid_sample bwd {:?}", input.shape().as_slice())),
            || {
                let (input, grid, grad_output) =
                    (contiguous(input), contiguous(grid), contiguous(grad_output));
                let s = sample_shape(&input, &grid);
                let dtype = input.dtype();
                with_float!(dtype, T, {
                    let (gin, ggrid) = kernels::grid_sample::backward_alloc::<T>(
                        input.storage(),
                        grid.storage(),
                        grad_output.storage(),
                        want_input,
                        want_grid,
                        s,
                        options,
                    );
                    (
                        gin.map_or_else(
                            || empty(dtype),
                            |g| tensor(g, vec![s.n, s.c, s.h_in, s.w_in]),
                        ),
                        ggrid.map_or_else(
                            || empty(dtype),
                            |g| tensor(g, vec![s.n, s.h_out, s.w_out, 2]),
                        ),
                    )
                })
            },
        )
    }

    fn stn_affine_grid(
        theta: FlexTensor,
        height: usize,
        width: usize,
        align_corners: bool,
    ) -> FlexTensor {
        time(
            label(|| format!("affine_grid fwd [{height}, {width}]")),
            || {
                let theta = contiguous(theta);
                let [n, _, _] = dims(&theta, "affine_grid theta");
                with_float!(theta.dtype(), T, {
                    let grid = kernels::affine_grid::forward::<T>(
                        theta.storage(),
                        n,
                        height,
                        width,
                        align_corners,
                    );
                    tensor(grid, vec![n, height, width, 2])
                })
            },
        )
    }

    fn stn_affine_sample(
        input: FlexTensor,
        theta: FlexTensor,
        height: usize,
        width: usize,
        options: SampleOptions,
    ) -> FlexTensor {
        time(
            label(|| format!("affine_sample fwd {:?}", input.shape().as_slice())),
            || {
                let (input, theta) = (contiguous(input), contiguous(theta));
                let [n, c, h_in, w_in] = dims(&input, "affine_sample input");
                let _: [usize; 3] = dims(&theta, "affine_sample theta");
                let s = SampleShape {
                    n,
                    c,
                    h_in,
                    w_in,
                    h_out: height,
                    w_out: width,
                };
                with_float!(input.dtype(), T, {
                    let out = kernels::grid_sample::affine_forward_alloc::<T>(
                        input.storage(),
                        theta.storage(),
                        s,
                        options,
                    );
                    tensor(out, vec![n, c, height, width])
                })
            },
        )
    }

    fn stn_affine_sample_backward(
        input: FlexTensor,
        theta: FlexTensor,
        grad_output: FlexTensor,
        options: SampleOptions,
        want_input: bool,
        want_theta: bool,
    ) -> (FlexTensor, FlexTensor) {
        time(
            label(|| format!("affine_sample bwd {:?}", input.shape().as_slice())),
            || {
                let (input, theta, grad) = (
                    contiguous(input),
                    contiguous(theta),
                    contiguous(grad_output),
                );
                let [n, c, h_in, w_in] = dims(&input, "affine_sample input");
                let [_, _, h_out, w_out] = dims(&grad, "affine_sample grad");
                let s = SampleShape {
                    n,
                    c,
                    h_in,
                    w_in,
                    h_out,
                    w_out,
                };
                let dtype = input.dtype();
                with_float!(dtype, T, {
                    let (gin, gtheta) = kernels::grid_sample::affine_backward_alloc::<T>(
                        input.storage(),
                        theta.storage(),
                        grad.storage(),
                        want_input,
                        s,
                        options,
                    );
                    (
                        gin.map_or_else(|| empty(dtype), |g| tensor(g, vec![n, c, h_in, w_in])),
                        if want_theta {
                            tensor(gtheta, vec![n, 2, 3])
                        } else {
                            empty(dtype)
                        },
                    )
                })
            },
        )
    }

    fn stn_to_blocked(x: FlexTensor, block: usize) -> FlexTensor {
        conv::to_blocked(x, block)
    }

    fn stn_from_blocked(x: FlexTensor, n: usize) -> FlexTensor {
        conv::from_blocked(x, n)
    }

    fn stn_conv2d(x: FlexTensor, weight: FlexTensor, bias: FlexTensor) -> FlexTensor {
        conv::conv2d(x, weight, bias)
    }

    fn stn_conv2d_backward(
        x: FlexTensor,
        weight: FlexTensor,
        bias: FlexTensor,
        grad_output: FlexTensor,
        want_x: bool,
    ) -> (FlexTensor, FlexTensor, FlexTensor) {
        conv::conv2d_backward(x, weight, bias, grad_output, want_x)
    }

    fn stn_conv_pool_relu(
        x: FlexTensor,
        weight: FlexTensor,
        bias: FlexTensor,
    ) -> (FlexTensor, FlexTensor) {
        conv::conv_pool_relu(x, weight, bias)
    }

    fn stn_conv_pool_relu_output(
        x: FlexTensor,
        weight: FlexTensor,
        bias: FlexTensor,
    ) -> FlexTensor {
        conv::conv_pool_relu_output(x, weight, bias)
    }

    fn stn_conv_pool_relu_backward(
        x: FlexTensor,
        weight: FlexTensor,
        bias: FlexTensor,
        codes: FlexTensor,
        grad_output: FlexTensor,
        want_x: bool,
    ) -> (FlexTensor, FlexTensor, FlexTensor) {
        conv::conv_pool_relu_backward(x, weight, bias, codes, grad_output, want_x)
    }

    fn stn_pool_relu(x: FlexTensor) -> FlexTensor {
        conv::pool_relu(x)
    }

    fn stn_pool_relu_backward(x: FlexTensor, grad_output: FlexTensor) -> FlexTensor {
        conv::pool_relu_backward(x, grad_output)
    }

    fn stn_affine_grid_backward(grad_grid: FlexTensor, align_corners: bool) -> FlexTensor {
        time(
            label(|| format!("affine_grid bwd {:?}", grad_grid.shape().as_slice())),
            || {
                let grad_grid = contiguous(grad_grid);
                let [n, h, w, _] = dims(&grad_grid, "affine_grid grad");
                with_float!(grad_grid.dtype(), T, {
                    let g = kernels::affine_grid::backward::<T>(
                        grad_grid.storage(),
                        n,
                        h,
                        w,
                        align_corners,
                    );
                    tensor(g, vec![n, 2, 3])
                })
            },
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A slice of a padded blocked tensor (what the padding's backward pass hands on) copies
    /// run by run to the same values as Flex's own copy; views without long runs are left to
    /// Flex.
    #[test]
    fn copy_rows_equals_flexs_copy() {
        let shape = [2, 3, 10, 12, 8];
        let n: usize = shape.iter().product();
        let values: Vec<f32> = (0..n).map(|i| i as f32 * 0.5 - 7.0).collect();
        let t = tensor(values, shape.to_vec());
        let view = t.narrow(2, 2, 6).narrow(3, 1, 10);
        assert!(!view.is_contiguous());
        let ours = copy_rows(&view).expect("runs of 10 x 8 values");
        let flex = view.to_contiguous();
        assert_eq!(ours.shape(), flex.shape());
        assert_eq!(ours.storage::<f32>(), flex.storage::<f32>());
        // Runs of 8 values: too short to pay, Flex copies.
        assert!(copy_rows(&t.narrow(3, 1, 7).narrow(4, 0, 8).narrow(2, 0, 9)).is_none());
        assert!(copy_rows(&t.transpose(3, 4)).is_none());
    }
}
