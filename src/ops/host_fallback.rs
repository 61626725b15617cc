//! The portable path: copy to the host, run the CPU kernels, copy back. Every backend without a
//! native implementation (the GPU backends) uses it, so results are identical everywhere.

use burn::backend::tensor::FloatTensor;
use burn::backend::{Backend, TensorMetadata};
use burn::tensor::{DType, TensorData, read_sync};

use super::SampleOptions;
use super::kernels::grid_sample::SampleShape;
use super::kernels::{self, Real};

fn to_host<B: Backend, T: Real + burn::tensor::Element>(t: FloatTensor<B>) -> (Vec<T>, Vec<usize>) {
    let data = read_sync(B::float_into_data(t))
        .expect("stn: reading a tensor back from the device failed");
    let shape = data.shape().to_vec();
    let values = data
        .convert::<T>()
        .try_into_vec::<T>()
        .expect("stn: tensor data conversion failed");
    (values, shape)
}

fn to_device<B: Backend, T: Real + burn::tensor::Element>(
    values: Vec<T>,
    shape: Vec<usize>,
    device: &burn::backend::tensor::Device<B>,
) -> FloatTensor<B> {
    B::float_from_data(TensorData::new(values, shape), device)
}

macro_rules! with_float {
    ($dtype:expr, $t:ident, $body:block) => {
        match $dtype {
            DType::F64 => {
                type $t = f64;
                $body
            }
            _ => {
                type $t = f32;
                $body
            }
        }
    };
}

/// Host implementation of [`super::StnBackend::stn_grid_sample`].
pub fn grid_sample<B: Backend>(
    input: FloatTensor<B>,
    grid: FloatTensor<B>,
    options: SampleOptions,
) -> FloatTensor<B> {
    let device = input.device();
    with_float!(input.dtype(), T, {
        let (x, xs) = to_host::<B, T>(input);
        let (g, gs) = to_host::<B, T>(grid);
        let s = SampleShape {
            n: xs[0],
            c: xs[1],
            h_in: xs[2],
            w_in: xs[3],
            h_out: gs[1],
            w_out: gs[2],
        };
        let mut out = vec![T::default(); s.n * s.c * s.h_out * s.w_out];
        kernels::grid_sample::forward(&x, &g, &mut out, s, options);
        to_device::<B, T>(out, vec![s.n, s.c, s.h_out, s.w_out], &device)
    })
}

/// Host implementation of [`super::StnBackend::stn_grid_sample_backward`].
pub fn grid_sample_backward<B: Backend>(
    input: FloatTensor<B>,
    grid: FloatTensor<B>,
    grad_output: FloatTensor<B>,
    options: SampleOptions,
    want_input: bool,
    want_grid: bool,
) -> (FloatTensor<B>, FloatTensor<B>) {
    let device = input.device();
    with_float!(input.dtype(), T, {
        let (x, xs) = to_host::<B, T>(input);
        let (g, gs) = to_host::<B, T>(grid);
        let (go, _) = to_host::<B, T>(grad_output);
        let s = SampleShape {
            n: xs[0],
            c: xs[1],
            h_in: xs[2],
            w_in: xs[3],
            h_out: gs[1],
            w_out: gs[2],
        };
        let mut gin = want_input.then(|| vec![T::default(); x.len()]);
        let mut ggrid = want_grid.then(|| vec![T::default(); g.len()]);
        kernels::grid_sample::backward(
            &x,
            &g,
            &go,
            gin.as_deref_mut(),
            ggrid.as_deref_mut(),
            s,
            options,
        );
        let wrap = |v: Option<Vec<T>>, shape: Vec<usize>| match v {
            Some(v) => to_device::<B, T>(v, shape, &device),
            None => to_device::<B, T>(Vec::new(), vec![0], &device),
        };
        (wrap(gin, xs), wrap(ggrid, gs))
    })
}

/// Host implementation of [`super::StnBackend::stn_affine_grid`].
pub fn affine_grid<B: Backend>(
    theta: FloatTensor<B>,
    height: usize,
    width: usize,
    align_corners: bool,
) -> FloatTensor<B> {
    let device = theta.device();
    with_float!(theta.dtype(), T, {
        let (t, ts) = to_host::<B, T>(theta);
        let grid = kernels::affine_grid::forward(&t, ts[0], height, width, align_corners);
        to_device::<B, T>(grid, vec![ts[0], height, width, 2], &device)
    })
}

/// Host implementation of [`super::StnBackend::stn_affine_grid_backward`].
pub fn affine_grid_backward<B: Backend>(
    grad_grid: FloatTensor<B>,
    align_corners: bool,
) -> FloatTensor<B> {
    let device = grad_grid.device();
    with_float!(grad_grid.dtype(), T, {
        let (g, gs) = to_host::<B, T>(grad_grid);
        let theta = kernels::affine_grid::backward(&g, gs[0], gs[1], gs[2], align_corners);
        to_device::<B, T>(theta, vec![gs[0], 2, 3], &device)
    })
}
