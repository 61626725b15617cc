//! Default implementations of the convolution, pooling and fused-sampler primitives in terms of
//! burn's own backend operations: what GPU backends (and Flex, for shapes or dtypes the fused
//! CPU kernels do not cover) run.

use burn::backend::tensor::FloatTensor;
use burn::backend::{Backend, TensorMetadata};
use burn::tensor::ops::ConvOptions;
use burn::tensor::{IntDType, Shape, Slice};

use super::{SampleOptions, StnBackend};

fn options() -> ConvOptions<2> {
    ConvOptions::new([1, 1], [0, 0], [1, 1], 1)
}

/// NCHW -> batch-blocked [ceil(N / b), C, H, W, b] with burn's reshape and permute.
pub fn to_blocked<B: Backend>(x: FloatTensor<B>, block: usize) -> FloatTensor<B> {
    let s = x.shape();
    let (n, c, h, w) = (s[0], s[1], s[2], s[3]);
    if block == 1 {
        return B::float_reshape(x, Shape::from(vec![n, c, h, w, 1]));
    }
    let nb = n.div_ceil(block);
    let x = if nb * block > n {
        let pad = B::float_zeros(
            Shape::from(vec![nb * block - n, c, h, w]),
            &x.device(),
            x.dtype().into(),
        );
        B::float_cat(vec![x, pad], 0)
    } else {
        x
    };
    let x = B::float_reshape(x, Shape::from(vec![nb, block, c, h, w]));
    B::float_permute(x, &[0, 2, 3, 4, 1])
}

/// Batch-blocked -> NCHW, first `n` images.
pub fn from_blocked<B: Backend>(x: FloatTensor<B>, n: usize) -> FloatTensor<B> {
    let s = x.shape();
    let (nb, c, h, w, b) = (s[0], s[1], s[2], s[3], s[4]);
    let x = if b == 1 {
        B::float_reshape(x, Shape::from(vec![nb, c, h, w]))
    } else {
        let x = B::float_permute(x, &[0, 4, 1, 2, 3]);
        B::float_reshape(x, Shape::from(vec![nb * b, c, h, w]))
    };
    if n == nb * b {
        x
    } else {
        B::float_slice(x, &[Slice::from(0..n)])
    }
}

/// Runs an NCHW operation on a tensor of either layout; blocked inputs are converted there
/// and back.
fn in_nchw<B: Backend>(
    x: FloatTensor<B>,
    f: impl FnOnce(FloatTensor<B>) -> FloatTensor<B>,
) -> FloatTensor<B> {
    let s = x.shape();
    if s.num_dims() == 4 {
        return f(x);
    }
    let (nb, b) = (s[0], s[4]);
    to_blocked::<B>(f(from_blocked::<B>(x, nb * b)), b)
}

/// Valid, stride-1 convolution with bias.
pub fn conv2d<B: Backend>(
    x: FloatTensor<B>,
    weight: FloatTensor<B>,
    bias: FloatTensor<B>,
) -> FloatTensor<B> {
    in_nchw::<B>(x, |x| B::conv2d(x, weight, Some(bias), options()))
}

/// Gradients of [`conv2d`]: (x, weight, bias); x's is an empty `[0]` tensor unless wanted.
pub fn conv2d_backward<B: Backend>(
    x: FloatTensor<B>,
    weight: FloatTensor<B>,
    bias: FloatTensor<B>,
    grad: FloatTensor<B>,
    want_x: bool,
) -> (FloatTensor<B>, FloatTensor<B>, FloatTensor<B>) {
    let s = x.shape();
    let block = (s.num_dims() == 5).then(|| s[4]);
    let nchw = |t: FloatTensor<B>| match block {
        Some(b) => from_blocked::<B>(t, s[0] * b),
        None => t,
    };
    let (x4, grad) = (nchw(x.clone()), nchw(grad));
    let gx = if want_x {
        let gx = B::conv2d_x_backward(x4.clone(), weight.clone(), grad.clone(), options());
        match block {
            Some(b) => to_blocked::<B>(gx, b),
            None => gx,
        }
    } else {
        empty::<B>(&x)
    };
    let gw = B::conv2d_weight_backward(x4.clone(), weight, grad.clone(), options());
    let gb = B::conv2d_bias_backward(x4, bias, grad);
    (gx, gw, gb)
}

/// An empty tensor on `like`'s device with its dtype.
pub fn empty<B: Backend>(like: &FloatTensor<B>) -> FloatTensor<B> {
    B::float_zeros([0].into(), &like.device(), like.dtype().into())
}

fn pool<B: Backend>(x: FloatTensor<B>) -> burn::backend::ops::MaxPool2dWithIndices<B> {
    B::max_pool2d_with_indices(x, [2, 2], [2, 2], [0, 0], [1, 1], false, IntDType::I32)
}

/// relu(max_pool2d(x, 2)).
pub fn pool_relu<B: Backend>(x: FloatTensor<B>) -> FloatTensor<B> {
    in_nchw::<B>(x, |x| B::relu(pool::<B>(x).output))
}

/// Gradient of [`pool_relu`] with respect to x.
pub fn pool_relu_backward<B: Backend>(x: FloatTensor<B>, grad: FloatTensor<B>) -> FloatTensor<B> {
    let s = x.shape();
    if s.num_dims() == 5 {
        let (n, b) = (s[0] * s[4], s[4]);
        let gx = pool_relu_backward::<B>(from_blocked::<B>(x, n), from_blocked::<B>(grad, n));
        return to_blocked::<B>(gx, b);
    }
    let p = pool::<B>(x.clone());
    let grad = B::relu_backward(B::relu(p.output), grad);
    B::max_pool2d_with_indices_backward(x, [2, 2], [2, 2], [0, 0], [1, 1], false, grad, p.indices)
        .x_grad
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
