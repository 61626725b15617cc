//! The spatial-transformer ops: affine grid generation and grid sampling, with PyTorch's exact
//! semantics, plus the convolution and pooling primitives of the networks, registered with burn
//! as one backend extension ([`StnBackend`]).
//!
//! - [`cpu`]: burn's Flex CPU backend runs every op as one fused pass forward and one fused
//!   pass backward (the plain-slice kernels of the `stn-kernels` crate, re-exported as
//!   [`kernels`]), parallel over the batch and deterministic.
//! - [`autodiff`]: under autodiff the backward passes are our own, not burn's generic chains.
//! - `gpu` (cargo features `wgpu`, `cuda`): on burn's CubeCL backends the sampling ops are
//!   CubeCL kernels, deterministic too; tensors stay on the device.
//! - [`composite`]: the trait's default bodies for convolution and pooling, built from burn's
//!   own backend operations, for every other backend (the GPU backends run burn's kernels).
//!
//! The free functions ([`grid_sample`], [`affine_grid`], [`affine_sample`], [`conv2d`], ...)
//! are the API; they work on any device, with or without autodiff, in f32 and f64 (f64 on a
//! GPU only where the device has it).
//! [`FeatureMaps`] hides the memory layout the convolution kernels prefer from the networks.

#![warn(missing_docs)]

pub mod autodiff;
pub mod composite;
pub mod cpu;
mod feature_maps;
pub mod geometry;
#[cfg(any(feature = "cuda", feature = "wgpu"))]
// `#[cube(launch)]` generates undocumented modules and launch structs beside each documented
// kernel.
#[allow(missing_docs)]
pub mod gpu;
mod grids;
pub mod profile;

use burn::backend::tensor::FloatTensor;
use burn::backend::{Backend, Dispatch, backend_extension};
use burn::tensor::Tensor;

pub use feature_maps::FeatureMaps;
pub use grids::{projective_grid, tps_control_points, tps_grid, tps_matrix};
pub use stn_kernels as kernels;
pub use stn_kernels::{Interpolation, Padding, SampleOptions};

/// The backend extension: every backend that runs an STN implements these primitives.
///
/// The sampling primitives have no default body: Flex implements them with CPU kernels
/// ([`cpu`]), burn's CubeCL backend with GPU kernels (`gpu`), Autodiff with our backward
/// passes ([`autodiff`]). The convolution and pooling primitives default to burn's own
/// operations ([`composite`]); Flex overrides them with fused CPU kernels.
///
/// Fusion (the GPU features turn burn's operation fusion on): every sampling primitive is
/// `#[fusion(meta = ...)]`, which makes the macro register it in the fusion stream as an opaque
/// custom operation with the output shapes the meta function states (`gpu::fusion_meta`);
/// when the stream runs, the operation calls the inner backend's (CubeBackend's) kernels on the
/// device handles: no host round trip, and burn's element-wise fusion keeps working around
/// it. The other primitives are `#[fusion(default)]`: their default bodies are compositions of
/// burn operations, which fusion handles itself.
#[backend_extension(
    Autodiff,
    Flex,
    Cube: cfg(any(feature = "cuda", feature = "wgpu")),
    Fusion: cfg(any(feature = "cuda", feature = "wgpu"))
)]
pub trait StnBackend: Backend {
    /// grid_sample forward: input [N, C, Hi, Wi], grid [N, Ho, Wo, 2] -> [N, C, Ho, Wo].
    #[fusion(meta = gpu::fusion_meta::grid_sample)]
    fn stn_grid_sample(
        input: FloatTensor<Self>,
        grid: FloatTensor<Self>,
        options: SampleOptions,
    ) -> FloatTensor<Self>;

    /// grid_sample backward: (grad_input, grad_grid). A gradient that is not asked for comes back
    /// as an empty tensor of shape `[0]`; nearest mode's grid gradient is zero.
    #[fusion(meta = gpu::fusion_meta::grid_sample_backward)]
    fn stn_grid_sample_backward(
        input: FloatTensor<Self>,
        grid: FloatTensor<Self>,
        grad_output: FloatTensor<Self>,
        options: SampleOptions,
        want_input: bool,
        want_grid: bool,
    ) -> (FloatTensor<Self>, FloatTensor<Self>);

    /// affine_grid forward: theta [N, 2, 3] -> grid [N, H, W, 2].
    #[fusion(meta = gpu::fusion_meta::affine_grid)]
    fn stn_affine_grid(
        theta: FloatTensor<Self>,
        height: usize,
        width: usize,
        align_corners: bool,
    ) -> FloatTensor<Self>;

    /// affine_grid backward: grad_grid [N, H, W, 2] -> grad_theta [N, 2, 3].
    #[fusion(meta = gpu::fusion_meta::affine_grid_backward)]
    fn stn_affine_grid_backward(
        grad_grid: FloatTensor<Self>,
        align_corners: bool,
    ) -> FloatTensor<Self>;

    /// grid_sample(input, affine_grid(theta)) in one pass: input [N, C, Hi, Wi], theta
    /// [N, 2, 3] -> [N, C, height, width].
    #[fusion(meta = gpu::fusion_meta::affine_sample)]
    fn stn_affine_sample(
        input: FloatTensor<Self>,
        theta: FloatTensor<Self>,
        height: usize,
        width: usize,
        options: SampleOptions,
    ) -> FloatTensor<Self> {
        let grid = Self::stn_affine_grid(theta, height, width, options.align_corners);
        Self::stn_grid_sample(input, grid, options)
    }

    /// Backward of [`StnBackend::stn_affine_sample`]: (grad_input, grad_theta); a gradient not
    /// asked for comes back as an empty tensor of shape `[0]`.
    #[fusion(meta = gpu::fusion_meta::affine_sample_backward)]
    fn stn_affine_sample_backward(
        input: FloatTensor<Self>,
        theta: FloatTensor<Self>,
        grad_output: FloatTensor<Self>,
        options: SampleOptions,
        want_input: bool,
        want_theta: bool,
    ) -> (FloatTensor<Self>, FloatTensor<Self>) {
        composite::affine_sample_backward::<Self>(
            input,
            theta,
            grad_output,
            options,
            want_input,
            want_theta,
        )
    }

    /// NCHW [N, C, H, W] -> batch-blocked [ceil(N / b), C, H, W, b] (missing images of the
    /// last block are zeros). `block` 0 lets the backend choose the block size b its kernels
    /// prefer (Flex, f32: the lane count of the current kernel path, 16/8/4; otherwise 1, a
    /// free reshape).
    #[fusion(default)]
    fn stn_to_blocked(x: FloatTensor<Self>, block: usize) -> FloatTensor<Self> {
        composite::to_blocked::<Self>(x, block.max(1))
    }

    /// Batch-blocked [NB, C, H, W, b] -> NCHW [n, C, H, W], keeping the first `n` images.
    #[fusion(default)]
    fn stn_from_blocked(x: FloatTensor<Self>, n: usize) -> FloatTensor<Self> {
        composite::from_blocked::<Self>(x, n)
    }

    /// Valid, stride-1 convolution of x [N, C, H, W] (or blocked [NB, C, H, W, b]) with
    /// weight [O, C, K, K] and bias `[O]`; the output has x's layout.
    #[fusion(default)]
    fn stn_conv2d(
        x: FloatTensor<Self>,
        weight: FloatTensor<Self>,
        bias: FloatTensor<Self>,
    ) -> FloatTensor<Self> {
        composite::conv2d::<Self>(x, weight, bias)
    }

    /// Backward of [`StnBackend::stn_conv2d`]: (grad_x, grad_weight, grad_bias); grad_x is an
    /// empty tensor of shape `[0]` unless `want_x`.
    #[fusion(default)]
    fn stn_conv2d_backward(
        x: FloatTensor<Self>,
        weight: FloatTensor<Self>,
        bias: FloatTensor<Self>,
        grad_output: FloatTensor<Self>,
        want_x: bool,
    ) -> (FloatTensor<Self>, FloatTensor<Self>, FloatTensor<Self>) {
        composite::conv2d_backward::<Self>(x, weight, bias, grad_output, want_x)
    }

    /// relu(max_pool2d(conv2d(x, weight, bias), 2)) in one op: (output, window codes). The
    /// codes tell the backward pass which window position won; backends that do not fuse
    /// return an empty `[0]` tensor and the backward pass recomputes the convolution.
    #[fusion(default)]
    fn stn_conv_pool_relu(
        x: FloatTensor<Self>,
        weight: FloatTensor<Self>,
        bias: FloatTensor<Self>,
    ) -> (FloatTensor<Self>, FloatTensor<Self>) {
        let y = Self::stn_pool_relu(Self::stn_conv2d(x.clone(), weight, bias));
        (y, composite::empty::<Self>(&x))
    }

    /// [`StnBackend::stn_conv_pool_relu`]'s output alone. Untracked (inference), a backend
    /// that fuses need not compute the window codes; under autodiff it records the op as
    /// `stn_conv_pool_relu` does.
    #[fusion(default)]
    fn stn_conv_pool_relu_output(
        x: FloatTensor<Self>,
        weight: FloatTensor<Self>,
        bias: FloatTensor<Self>,
    ) -> FloatTensor<Self> {
        Self::stn_conv_pool_relu(x, weight, bias).0
    }

    /// Backward of [`StnBackend::stn_conv_pool_relu`]: (grad_x, grad_weight, grad_bias).
    #[fusion(default)]
    fn stn_conv_pool_relu_backward(
        x: FloatTensor<Self>,
        weight: FloatTensor<Self>,
        bias: FloatTensor<Self>,
        codes: FloatTensor<Self>,
        grad_output: FloatTensor<Self>,
        want_x: bool,
    ) -> (FloatTensor<Self>, FloatTensor<Self>, FloatTensor<Self>) {
        let _ = codes;
        let z = Self::stn_conv2d(x.clone(), weight.clone(), bias.clone());
        let dz = Self::stn_pool_relu_backward(z, grad_output);
        Self::stn_conv2d_backward(x, weight, bias, dz, want_x)
    }

    /// relu(max_pool2d(x, kernel 2, stride 2)) of x [N, C, H, W] (or blocked
    /// [NB, C, H, W, b]) -> [N, C, H / 2, W / 2] (or blocked).
    #[fusion(default)]
    fn stn_pool_relu(x: FloatTensor<Self>) -> FloatTensor<Self> {
        composite::pool_relu::<Self>(x)
    }

    /// Backward of [`StnBackend::stn_pool_relu`] with respect to x.
    #[fusion(default)]
    fn stn_pool_relu_backward(
        x: FloatTensor<Self>,
        grad_output: FloatTensor<Self>,
    ) -> FloatTensor<Self> {
        composite::pool_relu_backward::<Self>(x, grad_output)
    }
}

/// Samples `input` [N, C, Hi, Wi] at the normalized coordinates of `grid` [N, Ho, Wo, 2]
/// (x then y, in [-1, 1]), as PyTorch's `F.grid_sample`. Differentiable with respect to both
/// (to the grid except in nearest mode).
///
/// ```
/// use burn::tensor::{Device, Tensor, TensorData};
/// use stn_ops::{Interpolation, Padding, SampleOptions, grid_sample};
///
/// // PyTorch: F.grid_sample(input, grid, mode="bilinear", padding_mode="zeros",
/// //                        align_corners=False)
/// let device = Device::flex().autodiff();
/// let input = Tensor::<4>::from_data(TensorData::new(vec![1.0f32, 2.0, 3.0, 4.0], [1, 1, 2, 2]), &device)
///     .require_grad();
/// // One output pixel at the image's centre: the mean of the four pixels.
/// let grid = Tensor::<4>::from_data(TensorData::new(vec![0.0f32, 0.0], [1, 1, 1, 2]), &device);
/// let options = SampleOptions::new(Interpolation::Bilinear, Padding::Zeros, false);
/// let out = grid_sample(input.clone(), grid, options);
/// assert_eq!(out.to_data().try_into_vec::<f32>().unwrap(), vec![2.5]);
/// // Differentiable: each pixel got a quarter of the gradient.
/// let grads = out.sum().backward();
/// let g = input.grad(&grads).unwrap().into_data().try_into_vec::<f32>().unwrap();
/// assert_eq!(g, vec![0.25; 4]);
/// ```
///
/// # Panics
/// If the shapes disagree or the dtype is not f32/f64.
pub fn grid_sample(input: Tensor<4>, grid: Tensor<4>, options: SampleOptions) -> Tensor<4> {
    let [n, _, _, _] = input.dims();
    let [gn, _, _, two] = grid.dims();
    assert!(
        n == gn && two == 2,
        "grid_sample: input {:?} and grid {:?} do not match (grid must be [N, Ho, Wo, 2])",
        input.dims(),
        grid.dims()
    );
    let grid = grid.cast(input.dtype());
    Tensor::from_dispatch(Dispatch::stn_grid_sample(
        input.into_dispatch(),
        grid.into_dispatch(),
        options,
    ))
}

/// grid_sample(input, affine_grid(theta, size)) in one fused pass, differentiable with
/// respect to the input and theta: the affine spatial transformer's sampler without an
/// intermediate grid tensor.
///
/// ```
/// use burn::tensor::{Device, Distribution, Tensor, TensorData};
/// use stn_ops::{SampleOptions, affine_grid, affine_sample, grid_sample};
///
/// let device = Device::flex();
/// let input = Tensor::<4>::random([2, 3, 16, 16], Distribution::Default, &device);
/// // Zoom in 2x on the centre, for both images.
/// let theta = Tensor::<3>::from_data(
///     TensorData::new([0.5f32, 0.0, 0.0, 0.0, 0.5, 0.0].repeat(2), [2, 2, 3]),
///     &device,
/// );
/// let fused = affine_sample(input.clone(), theta.clone(), [8, 8], SampleOptions::default());
/// // The same as sampling the affine grid, without the grid tensor.
/// let grid = affine_grid(theta, 8, 8, false);
/// let two_step = grid_sample(input, grid, SampleOptions::default());
/// assert_eq!(fused.dims(), [2, 3, 8, 8]);
/// fused.into_data().assert_approx_eq::<f32>(&two_step.into_data(), Default::default());
/// ```
///
/// # Panics
/// If theta is not [N, 2, 3] for the input's N or the dtype is not f32/f64.
pub fn affine_sample(
    input: Tensor<4>,
    theta: Tensor<3>,
    size: [usize; 2],
    options: SampleOptions,
) -> Tensor<4> {
    let [n, _, _, _] = input.dims();
    assert!(
        theta.dims() == [n, 2, 3],
        "affine_sample: theta must be [{n}, 2, 3], got {:?}",
        theta.dims()
    );
    let theta = theta.cast(input.dtype());
    Tensor::from_dispatch(Dispatch::stn_affine_sample(
        input.into_dispatch(),
        theta.into_dispatch(),
        size[0],
        size[1],
        options,
    ))
}

/// Valid (unpadded), stride-1 2-D convolution with bias, as PyTorch's `F.conv2d(x, weight,
/// bias)`: x [N, C, H, W], weight [O, C, K, K], bias `[O]` -> [N, O, H - K + 1, W - K + 1].
///
/// ```
/// use burn::tensor::{Device, Tensor};
/// use stn_ops::conv2d;
///
/// // PyTorch: F.conv2d(x, weight, bias)
/// let device = Device::flex();
/// let x = Tensor::<4>::ones([2, 3, 8, 8], &device);
/// let weight = Tensor::<4>::ones([4, 3, 5, 5], &device);
/// let bias = Tensor::<1>::zeros([4], &device);
/// let y = conv2d(x, weight, bias);
/// assert_eq!(y.dims(), [2, 4, 4, 4]);
/// // Every output sums 3 x 5 x 5 ones.
/// assert_eq!(y.into_data().try_into_vec::<f32>().unwrap(), vec![75.0; 2 * 4 * 4 * 4]);
/// ```
///
/// # Panics
/// If the shapes disagree.
pub fn conv2d(x: Tensor<4>, weight: Tensor<4>, bias: Tensor<1>) -> Tensor<4> {
    let [_, c, h, w] = x.dims();
    check_conv(c, h, w, &weight, &bias);
    Tensor::from_dispatch(Dispatch::stn_conv2d(
        x.into_dispatch(),
        weight.into_dispatch(),
        bias.into_dispatch(),
    ))
}

/// [`conv2d`] on a batch-blocked tensor (see [`to_blocked`]); the output is blocked too.
///
/// ```
/// use burn::tensor::{Device, Distribution, Tensor};
/// use stn_ops::{conv2d, conv2d_blocked, from_blocked, to_blocked};
///
/// let device = Device::flex();
/// let x = Tensor::<4>::random([5, 2, 9, 9], Distribution::Default, &device);
/// let weight = Tensor::<4>::random([3, 2, 3, 3], Distribution::Default, &device);
/// let bias = Tensor::<1>::zeros([3], &device);
/// let blocked = conv2d_blocked(to_blocked(x.clone()), weight.clone(), bias.clone());
/// from_blocked(blocked, 5)
///     .into_data()
///     .assert_approx_eq::<f32>(&conv2d(x, weight, bias).into_data(), Default::default());
/// ```
///
/// # Panics
/// If the shapes disagree.
pub fn conv2d_blocked(x: Tensor<5>, weight: Tensor<4>, bias: Tensor<1>) -> Tensor<5> {
    let [_, c, h, w, _] = x.dims();
    check_conv(c, h, w, &weight, &bias);
    Tensor::from_dispatch(Dispatch::stn_conv2d(
        x.into_dispatch(),
        weight.into_dispatch(),
        bias.into_dispatch(),
    ))
}

fn check_conv(c: usize, h: usize, w: usize, weight: &Tensor<4>, bias: &Tensor<1>) {
    let [o, wc, k, k2] = weight.dims();
    assert!(
        wc == c && k == k2 && k <= h && k <= w && bias.dims() == [o],
        "conv2d: input with {c} channels of {h}x{w}, weight {:?} and bias {:?} do not fit",
        weight.dims(),
        bias.dims()
    );
}

/// relu(max_pool2d(conv2d(x, weight, bias), 2)) on a batch-blocked tensor, fused: the
/// convolution's output is never stored (on the Flex CPU backend).
///
/// ```
/// use burn::tensor::{Device, Distribution, Tensor};
/// use stn_ops::{conv2d, conv2d_pool_relu_blocked, from_blocked, max_pool2x2_relu, to_blocked};
///
/// let device = Device::flex();
/// let x = Tensor::<4>::random([3, 1, 12, 12], Distribution::Default, &device);
/// let weight = Tensor::<4>::random([4, 1, 5, 5], Distribution::Default, &device);
/// let bias = Tensor::<1>::zeros([4], &device);
/// let fused = conv2d_pool_relu_blocked(to_blocked(x.clone()), weight.clone(), bias.clone());
/// let fused = from_blocked(fused, 3);
/// assert_eq!(fused.dims(), [3, 4, 4, 4]);
/// let separate = max_pool2x2_relu(conv2d(x, weight, bias));
/// fused.into_data().assert_approx_eq::<f32>(&separate.into_data(), Default::default());
/// ```
pub fn conv2d_pool_relu_blocked(x: Tensor<5>, weight: Tensor<4>, bias: Tensor<1>) -> Tensor<5> {
    let [_, c, h, w, _] = x.dims();
    check_conv(c, h, w, &weight, &bias);
    Tensor::from_dispatch(Dispatch::stn_conv_pool_relu_output(
        x.into_dispatch(),
        weight.into_dispatch(),
        bias.into_dispatch(),
    ))
}

/// relu(max_pool2d(x, 2)) fused: [N, C, H, W] -> [N, C, H / 2, W / 2] (floor).
///
/// ```
/// use burn::tensor::{Device, Tensor, TensorData};
/// use stn_ops::max_pool2x2_relu;
///
/// // PyTorch: F.relu(F.max_pool2d(x, 2))
/// let device = Device::flex();
/// let x = Tensor::<4>::from_data(
///     TensorData::new(vec![1.0f32, -2.0, 3.0, 0.5, -1.0, -2.0, -3.0, -4.0], [1, 2, 2, 2]),
///     &device,
/// );
/// let y = max_pool2x2_relu(x);
/// assert_eq!(y.into_data().try_into_vec::<f32>().unwrap(), vec![3.0, 0.0]);
/// ```
pub fn max_pool2x2_relu(x: Tensor<4>) -> Tensor<4> {
    Tensor::from_dispatch(Dispatch::stn_pool_relu(x.into_dispatch()))
}

/// [`max_pool2x2_relu`] on a batch-blocked tensor.
///
/// ```
/// use burn::tensor::{Device, Distribution, Tensor};
/// use stn_ops::{from_blocked, max_pool2x2_relu, max_pool2x2_relu_blocked, to_blocked};
///
/// let device = Device::flex();
/// let x = Tensor::<4>::random([3, 2, 6, 6], Distribution::Default, &device);
/// let y = from_blocked(max_pool2x2_relu_blocked(to_blocked(x.clone())), 3);
/// assert_eq!(y.into_data(), max_pool2x2_relu(x).into_data());
/// ```
pub fn max_pool2x2_relu_blocked(x: Tensor<5>) -> Tensor<5> {
    Tensor::from_dispatch(Dispatch::stn_pool_relu(x.into_dispatch()))
}

/// Rearranges images [N, C, H, W] into the batch-blocked layout [ceil(N / b), C, H, W, b]
/// that the backend's convolution kernels prefer (on the Flex CPU backend for f32, b is the
/// current kernel path's lane count: 16 with AVX-512, 8 with AVX2, 4 with NEON or the portable
/// path, one image per lane; b = 1, a free reshape, elsewhere). Differentiable.
///
/// ```
/// use burn::tensor::{Device, Distribution, Tensor};
/// use stn_ops::{from_blocked, to_blocked};
///
/// let device = Device::flex();
/// let x = Tensor::<4>::random([5, 2, 3, 3], Distribution::Default, &device);
/// let blocked = to_blocked(x.clone());
/// let [nb, c, h, w, b] = blocked.dims();
/// assert_eq!([c, h, w], [2, 3, 3]);
/// assert!(nb * b >= 5);
/// // A round trip gives the images back exactly.
/// assert_eq!(from_blocked(blocked, 5).into_data(), x.into_data());
/// ```
pub fn to_blocked(x: Tensor<4>) -> Tensor<5> {
    Tensor::from_dispatch(Dispatch::stn_to_blocked(x.into_dispatch(), 0))
}

/// Back from [`to_blocked`]: the first `n` images as [n, C, H, W]. Differentiable.
pub fn from_blocked(x: Tensor<5>, n: usize) -> Tensor<4> {
    let [nb, _, _, _, b] = x.dims();
    assert!(
        n <= nb * b,
        "from_blocked: {n} images asked of a tensor holding {}",
        nb * b
    );
    Tensor::from_dispatch(Dispatch::stn_from_blocked(x.into_dispatch(), n))
}

/// The sampling grid of the affine maps `theta` [N, 2, 3] for an output of `height` x `width`,
/// as PyTorch's `F.affine_grid(theta, [N, C, height, width], align_corners)`. Differentiable
/// with respect to theta.
///
/// ```
/// use burn::tensor::{Device, Tensor, TensorData};
/// use stn_ops::affine_grid;
///
/// // PyTorch: F.affine_grid(theta, [1, C, 2, 2], align_corners=False)
/// let device = Device::flex();
/// let identity = Tensor::<3>::from_data(
///     TensorData::new(vec![1.0f32, 0.0, 0.0, 0.0, 1.0, 0.0], [1, 2, 3]),
///     &device,
/// );
/// let grid = affine_grid(identity, 2, 2, false);
/// assert_eq!(grid.dims(), [1, 2, 2, 2]);
/// // Pixel centres at -0.5 and 0.5: (x, y) for each of the four pixels, row by row.
/// assert_eq!(
///     grid.into_data().try_into_vec::<f32>().unwrap(),
///     vec![-0.5, -0.5, 0.5, -0.5, -0.5, 0.5, 0.5, 0.5]
/// );
/// ```
///
/// # Panics
/// If theta is not [N, 2, 3] or the dtype is not f32/f64.
pub fn affine_grid(
    theta: Tensor<3>,
    height: usize,
    width: usize,
    align_corners: bool,
) -> Tensor<4> {
    let [_, r, c] = theta.dims();
    assert!(
        r == 2 && c == 3,
        "affine_grid: theta must be [N, 2, 3], got {:?}",
        theta.dims()
    );
    Tensor::from_dispatch(Dispatch::stn_affine_grid(
        theta.into_dispatch(),
        height,
        width,
        align_corners,
    ))
}
