//! Default implementations of the convolution, pooling and fused-sampler primitives in terms of
//! burn's own backend operations: what GPU backends (and Flex, for shapes or dtypes the fused
//! CPU kernels do not cover) run.

use burn::backend::tensor::FloatTensor;
use burn::backend::{Backend, TensorMetadata};
use burn::tensor::IntDType;
use burn::tensor::ops::ConvOptions;

use super::{SampleOptions, StnBackend};

fn options() -> ConvOptions<2> {
    ConvOptions::new([1, 1], [0, 0], [1, 1], 1)
}

/// Valid, stride-1 convolution with bias.
pub fn conv2d<B: Backend>(x: FloatTensor<B>, weight: FloatTensor<B>, bias: FloatTensor<B>) -> FloatTensor<B> {
    B::conv2d(x, weight, Some(bias), options())
}

/// Gradients of [`conv2d`]: (x, weight, bias); x's is an empty [0] tensor unless wanted.
pub fn conv2d_backward<B: Backend>(
    x: FloatTensor<B>,
    weight: FloatTensor<B>,
    bias: FloatTensor<B>,
    grad: FloatTensor<B>,
    want_x: bool,
) -> (FloatTensor<B>, FloatTensor<B>, FloatTensor<B>) {
    let gx = if want_x {
        B::conv2d_x_backward(x.clone(), weight.clone(), grad.clone(), options())
    } else {
        empty::<B>(&x)
    };
    let gw = B::conv2d_weight_backward(x.clone(), weight, grad.clone(), options());
    let gb = B::conv2d_bias_backward(x, bias, grad);
    (gx, gw, gb)
}

/// An empty tensor on `like`'s device with its dtype.
pub fn empty<B: Backend>(like: &FloatTensor<B>) -> FloatTensor<B> {
    B::float_zeros([0].into(), &like.device(), like.dtype().into())
}

fn pool<B: Backend>(x: FloatTensor<B>) -> burn::backend::ops::MaxPool2dWithIndices<B> {
    B::max_pool2d_with_indices(x, [2, 2], [2, 2], [0, 0], [1, 1], false, IntDType::I64)
}

/// relu(max_pool2d(x, 2)).
pub fn pool_relu<B: Backend>(x: FloatTensor<B>) -> FloatTensor<B> {
    B::relu(pool::<B>(x).output)
}

/// Gradient of [`pool_relu`] with respect to x.
pub fn pool_relu_backward<B: Backend>(x: FloatTensor<B>, grad: FloatTensor<B>) -> FloatTensor<B> {
    let p = pool::<B>(x.clone());
    let grad = B::relu_backward(B::relu(p.output), grad);
    B::max_pool2d_with_indices_backward(x, [2, 2], [2, 2], [0, 0], [1, 1], false, grad, p.indices).x_grad
}

/// Gradients of the fused affine sampler by way of the separate primitives.
pub fn affine_sample_backward<B: StnBackend>(
    input: FloatTensor<B>,
    theta: FloatTensor<B>,
    grad: FloatTensor<B>,
    options: SampleOptions,
    want_input: bool,
    want_theta: bool,
) -> (FloatTensor<B>, FloatTensor<B>) {
    let shape = grad.shape();
    let grid = B::stn_affine_grid(theta.clone(), shape[2], shape[3], options.align_corners);
    let (gi, gg) = B::stn_grid_sample_backward(input, grid, grad, options, want_input, want_theta);
    let gt = if want_theta {
        B::stn_affine_grid_backward(gg, options.align_corners)
    } else {
        empty::<B>(&theta)
    };
    (gi, gt)
}
