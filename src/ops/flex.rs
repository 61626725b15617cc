//! The Flex (CPU) implementation: the kernels run in place on Flex's buffers, no copies beyond
//! making inputs contiguous.

use burn::backend::TensorMetadata;
use burn::backend::flex::{Flex, FlexTensor};
use burn::tensor::{DType, TensorData};

use super::generic;
use super::kernels::grid_sample::SampleShape;
use super::kernels::{self, Real};
use super::{SampleOptions, StnBackend};

fn contiguous(t: FlexTensor) -> FlexTensor {
    if t.is_contiguous() {
        t
    } else {
        t.to_contiguous()
    }
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
        let (input, grid) = (contiguous(input), contiguous(grid));
        let s = sample_shape(&input, &grid);
        assert_eq!(
            input.dtype(),
            grid.dtype(),
            "grid_sample: input and grid dtypes differ"
        );
        with_float!(input.dtype(), T, {
            let mut out = vec![T::default(); s.n * s.c * s.h_out * s.w_out];
            kernels::grid_sample::forward::<T>(
                input.storage(),
                grid.storage(),
                &mut out,
                s,
                options,
            );
            tensor(out, vec![s.n, s.c, s.h_out, s.w_out])
        })
    }

    fn stn_grid_sample_backward(
        input: FlexTensor,
        grid: FlexTensor,
        grad_output: FlexTensor,
        options: SampleOptions,
        want_input: bool,
        want_grid: bool,
    ) -> (FlexTensor, FlexTensor) {
        let (input, grid, grad_output) =
            (contiguous(input), contiguous(grid), contiguous(grad_output));
        let s = sample_shape(&input, &grid);
        let dtype = input.dtype();
        with_float!(dtype, T, {
            let mut gin = want_input.then(|| vec![T::default(); s.n * s.c * s.h_in * s.w_in]);
            let mut ggrid = want_grid.then(|| vec![T::default(); s.n * s.h_out * s.w_out * 2]);
            kernels::grid_sample::backward::<T>(
                input.storage(),
                grid.storage(),
                grad_output.storage(),
                gin.as_deref_mut(),
                ggrid.as_deref_mut(),
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
    }

    fn stn_affine_grid(
        theta: FlexTensor,
        height: usize,
        width: usize,
        align_corners: bool,
    ) -> FlexTensor {
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
    }

    fn stn_affine_sample(input: FlexTensor, theta: FlexTensor, height: usize, width: usize, options: SampleOptions) -> FlexTensor {
        let (input, theta) = (contiguous(input), contiguous(theta));
        let [n, c, h_in, w_in] = dims(&input, "affine_sample input");
        let _: [usize; 3] = dims(&theta, "affine_sample theta");
        let s = SampleShape { n, c, h_in, w_in, h_out: height, w_out: width };
        with_float!(input.dtype(), T, {
            let mut out = vec![T::default(); n * c * height * width];
            kernels::grid_sample::affine_forward::<T>(input.storage(), theta.storage(), &mut out, s, options);
            tensor(out, vec![n, c, height, width])
        })
    }

    fn stn_affine_sample_backward(
        input: FlexTensor,
        theta: FlexTensor,
        grad_output: FlexTensor,
        options: SampleOptions,
        want_input: bool,
        want_theta: bool,
    ) -> (FlexTensor, FlexTensor) {
        let (input, theta, grad) = (contiguous(input), contiguous(theta), contiguous(grad_output));
        let [n, c, h_in, w_in] = dims(&input, "affine_sample input");
        let [_, _, h_out, w_out] = dims(&grad, "affine_sample grad");
        let s = SampleShape { n, c, h_in, w_in, h_out, w_out };
        let dtype = input.dtype();
        with_float!(dtype, T, {
            let mut gin = want_input.then(|| vec![T::default(); n * c * h_in * w_in]);
            let mut gtheta = vec![T::default(); n * 6];
            kernels::grid_sample::affine_backward::<T>(
                input.storage(),
                theta.storage(),
                grad.storage(),
                gin.as_deref_mut(),
                &mut gtheta,
                s,
                options,
            );
            (
                gin.map_or_else(|| empty(dtype), |g| tensor(g, vec![n, c, h_in, w_in])),
                if want_theta { tensor(gtheta, vec![n, 2, 3]) } else { empty(dtype) },
            )
        })
    }

    fn stn_conv2d(x: FlexTensor, weight: FlexTensor, bias: FlexTensor) -> FlexTensor {
        #[cfg(target_arch = "x86_64")]
        if let Some(s) = fast_conv(&x, &weight) {
            let (x, weight, bias) = (contiguous(x), contiguous(weight), contiguous(bias));
            let mut y = vec![0.0f32; s.n * s.o * s.ho() * s.wo()];
            // SAFETY: fast_conv checked the CPU features.
            unsafe {
                kernels::conv_avx2::forward(x.storage(), weight.storage(), Some(bias.storage()), &mut y, s);
            }
            return tensor(y, vec![s.n, s.o, s.ho(), s.wo()]);
        }
        generic::conv2d::<Flex>(x, weight, bias)
    }

    fn stn_conv2d_backward(
        x: FlexTensor,
        weight: FlexTensor,
        bias: FlexTensor,
        grad_output: FlexTensor,
        want_x: bool,
    ) -> (FlexTensor, FlexTensor, FlexTensor) {
        #[cfg(target_arch = "x86_64")]
        if let Some(s) = fast_conv(&x, &weight) {
            let (x, weight, grad) = (contiguous(x), contiguous(weight), contiguous(grad_output));
            let mut dx = want_x.then(|| vec![0.0f32; s.n * s.c * s.h * s.w]);
            let mut dw = vec![0.0f32; s.o * s.c * s.k * s.k];
            let mut db = vec![0.0f32; s.o];
            // SAFETY: fast_conv checked the CPU features.
            unsafe {
                kernels::conv_avx2::backward(x.storage(), weight.storage(), grad.storage(), dx.as_deref_mut(), &mut dw, &mut db, s);
            }
            return (
                dx.map_or_else(|| empty(DType::F32), |g| tensor(g, vec![s.n, s.c, s.h, s.w])),
                tensor(dw, vec![s.o, s.c, s.k, s.k]),
                tensor(db, vec![s.o]),
            );
        }
        generic::conv2d_backward::<Flex>(x, weight, bias, grad_output, want_x)
    }

    fn stn_pool_relu(x: FlexTensor) -> FlexTensor {
        let x = contiguous(x);
        let [n, c, h, w] = dims(&x, "pool input");
        with_float!(x.dtype(), T, {
            tensor(kernels::pool::forward::<T>(x.storage(), n * c, h, w), vec![n, c, h / 2, w / 2])
        })
    }

    fn stn_pool_relu_backward(x: FlexTensor, grad_output: FlexTensor) -> FlexTensor {
        let (x, grad) = (contiguous(x), contiguous(grad_output));
        let [n, c, h, w] = dims(&x, "pool input");
        with_float!(x.dtype(), T, {
            tensor(kernels::pool::backward::<T>(x.storage(), grad.storage(), n * c, h, w), vec![n, c, h, w])
        })
    }

    fn stn_affine_grid_backward(grad_grid: FlexTensor, align_corners: bool) -> FlexTensor {
        let grad_grid = contiguous(grad_grid);
        let [n, h, w, _] = dims(&grad_grid, "affine_grid grad");
        with_float!(grad_grid.dtype(), T, {
            let g =
                kernels::affine_grid::backward::<T>(grad_grid.storage(), n, h, w, align_corners);
            tensor(g, vec![n, 2, 3])
        })
    }
}

/// The geometry of a convolution the AVX2 kernels handle (f32, kernel side <= 7, CPU support).
#[cfg(target_arch = "x86_64")]
fn fast_conv(x: &FlexTensor, weight: &FlexTensor) -> Option<kernels::conv_avx2::ConvShape> {
    if x.dtype() != DType::F32 || weight.dtype() != DType::F32 || !kernels::has_avx2() {
        return None;
    }
    let [n, c, h, w] = dims(x, "conv2d input");
    let [o, wc, k, k2] = dims(weight, "conv2d weight");
    let s = kernels::conv_avx2::ConvShape { n, c, h, w, o, k };
    (wc == c && k == k2 && s.supported() && n > 0).then_some(s)
}
