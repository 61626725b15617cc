//! The layers of the networks, with PyTorch's parameter layout and initialization, so a PyTorch
//! state_dict maps onto them one to one (burn's own `Linear` stores its weight transposed).

use burn::module::{Module, Param};
use burn::nn::Initializer;
use burn::tensor::{Device, Tensor, TensorData};

use crate::ops::FeatureMaps;
use crate::rng::Rng;

/// Uniform(-bound, bound) values, PyTorch's default initialization for conv and linear layers
/// (kaiming_uniform with a = sqrt(5) for weights, 1/sqrt(fan_in) for biases).
fn uniform(rng: &mut Rng, len: usize, bound: f32) -> Vec<f32> {
    (0..len)
        .map(|_| (rng.uniform_f32() * 2.0 - 1.0) * bound)
        .collect()
}

/// The same distribution as [`uniform`], drawn by burn from the device's generator (seeded
/// with `Device::seed`): what library users get from `init`.
fn burn_uniform<const D: usize>(
    shape: [usize; D],
    bound: f32,
    device: &Device,
) -> Param<Tensor<D>> {
    let bound = bound as f64;
    Initializer::Uniform {
        min: -bound,
        max: bound,
    }
    .init(shape, device)
}

fn param<const D: usize>(values: Vec<f32>, shape: [usize; D], device: &Device) -> Param<Tensor<D>> {
    Param::from_tensor(Tensor::from_data(TensorData::new(values, shape), device))
}

/// The block every convolution of these networks sits in: a valid, stride-1 convolution
/// (PyTorch's `nn.Conv2d(in, out, k)`, weight [out, in, k, k]), then 2x2 max pooling and ReLU,
/// run as one fused op where the backend has one.
#[derive(Module, Debug)]
pub struct ConvPoolRelu {
    /// Kernel, [out_channels, in_channels, k, k].
    pub weight: Param<Tensor<4>>,
    /// Bias, `[out_channels]`.
    pub bias: Param<Tensor<1>>,
}

impl ConvPoolRelu {
    /// A block whose convolution is initialized as PyTorch's `nn.Conv2d(in, out, k)`.
    pub fn new(in_ch: usize, out_ch: usize, k: usize, rng: &mut Rng, device: &Device) -> Self {
        let bound = 1.0 / ((in_ch * k * k) as f32).sqrt();
        Self {
            weight: param(
                uniform(rng, out_ch * in_ch * k * k, bound),
                [out_ch, in_ch, k, k],
                device,
            ),
            bias: param(uniform(rng, out_ch, bound), [out_ch], device),
        }
    }

    /// The same block initialized from burn's generator (see [`Linear::init`]).
    pub fn init(in_ch: usize, out_ch: usize, k: usize, device: &Device) -> Self {
        let bound = 1.0 / ((in_ch * k * k) as f32).sqrt();
        Self {
            weight: burn_uniform([out_ch, in_ch, k, k], bound, device),
            bias: burn_uniform([out_ch], bound, device),
        }
    }

    /// Output channels.
    pub fn out_channels(&self) -> usize {
        self.weight.dims()[0]
    }

    /// Kernel size.
    pub fn kernel(&self) -> usize {
        self.weight.dims()[2]
    }

    /// relu(max_pool2d(conv2d(x), 2)): [N, in, H, W] -> [N, out, (H - k + 1) / 2, (W - k + 1) / 2].
    pub fn forward(&self, x: FeatureMaps) -> FeatureMaps {
        x.conv_pool_relu(self.weight.val(), self.bias.val())
    }
}

/// A fully connected layer, weight [out, in] as PyTorch's `nn.Linear`.
#[derive(Module, Debug)]
pub struct Linear {
    /// Weight, [out_features, in_features].
    pub weight: Param<Tensor<2>>,
    /// Bias, `[out_features]`.
    pub bias: Param<Tensor<1>>,
}

impl Linear {
    /// A layer initialized as PyTorch's `nn.Linear(in, out)`.
    pub fn new(d_in: usize, d_out: usize, rng: &mut Rng, device: &Device) -> Self {
        let bound = 1.0 / (d_in as f32).sqrt();
        Self {
            weight: param(uniform(rng, d_out * d_in, bound), [d_out, d_in], device),
            bias: param(uniform(rng, d_out, bound), [d_out], device),
        }
    }

    /// A layer with PyTorch's distribution drawn from burn's generator (seeded with burn's
    /// `Device::seed`), as burn's own modules are initialized; [`Linear::new`] draws from
    /// stn's [`Rng`] instead, so that `stn train` repeats PyTorch's tutorial exactly.
    pub fn init(d_in: usize, d_out: usize, device: &Device) -> Self {
        let bound = 1.0 / (d_in as f32).sqrt();
        Self {
            weight: burn_uniform([d_out, d_in], bound, device),
            bias: burn_uniform([d_out], bound, device),
        }
    }

    /// A layer with zero weight and the given bias: the identity initialization of the last
    /// layer of a localization network.
    pub fn with_bias(d_in: usize, bias: &[f32], device: &Device) -> Self {
        Self {
            weight: param(vec![0.0; bias.len() * d_in], [bias.len(), d_in], device),
            bias: param(bias.to_vec(), [bias.len()], device),
        }
    }

    /// [N, in] -> [N, out].
    pub fn forward(&self, x: Tensor<2>) -> Tensor<2> {
        x.matmul(self.weight.val().transpose()) + self.bias.val().unsqueeze::<2>()
    }
}

/// Spatial size after a valid k x k convolution and a 2x2 pool (floor), as PyTorch computes it.
pub fn conv_pool_size(size: usize, k: usize) -> usize {
    (size + 1).saturating_sub(k) / 2
}
