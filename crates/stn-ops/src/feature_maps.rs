//! Images inside a stack of convolutions, in whatever layout the backend's kernels prefer.

use burn::tensor::Tensor;

use super::{conv2d_pool_relu_blocked, from_blocked, to_blocked};

/// A batch of multi-channel images on its way through convolutions and pooling.
///
/// The CPU kernels vectorize over the batch (4 to 16 images side by side, see
/// [`super::to_blocked`]); converting at every layer would cost more than some layers do. This
/// type keeps the layout between layers and out of the networks' code: images go in with
/// [`FeatureMaps::from_images`] and come out, `[N, C, H, W]`, with
/// [`FeatureMaps::into_images`]. Differentiable throughout.
#[derive(Clone, Debug)]
pub struct FeatureMaps {
    data: Tensor<5>,
    images: usize,
}

impl FeatureMaps {
    /// Images `[N, C, H, W]`.
    pub fn from_images(x: Tensor<4>) -> Self {
        let images = x.dims()[0];
        Self {
            data: to_blocked(x),
            images,
        }
    }

    /// Back to images `[N, C, H, W]`.
    pub fn into_images(self) -> Tensor<4> {
        from_blocked(self.data, self.images)
    }

    /// The images zero-padded by `pad` pixels on every side (a "same" convolution's input).
    pub fn pad(self, pad: usize) -> Self {
        if pad == 0 {
            return self;
        }
        // [blocks, C, H, W, lanes]: pad H and W, not the lanes. Zeros with the maps assigned
        // inside, as `Tensor::pad` does, but from a zeroed allocation: its constant fill
        // (`PadMode::Constant`) wrote the zeros value by value (~3% of the paper CNN's training
        // step on the CPU). The gradient is the same slice.
        let [nb, c, h, w, lanes] = self.data.dims();
        let padded = [nb, c, h + 2 * pad, w + 2 * pad, lanes];
        let zeros = Tensor::zeros(padded, (&self.data.device(), self.data.dtype()));
        let data = zeros.slice_assign(
            [0..nb, 0..c, pad..pad + h, pad..pad + w, 0..lanes],
            self.data,
        );
        Self {
            data,
            images: self.images,
        }
    }

    /// `relu(max_pool2d(conv2d(x, weight, bias), 2))`, in one fused pass where the backend
    /// has one: valid stride-1 convolution with weight `[O, C, K, K]` and bias `[O]`, then 2x2
    /// max pooling (floor) and ReLU.
    pub fn conv_pool_relu(self, weight: Tensor<4>, bias: Tensor<1>) -> Self {
        Self {
            data: conv2d_pool_relu_blocked(self.data, weight, bias),
            images: self.images,
        }
    }
}
