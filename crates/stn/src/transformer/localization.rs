//! The localization network: regresses the transformation parameters from the input image.
//!
//! Two parts: a network that turns images [N, C, H, W] into features [N, F] (any module
//! implementing [`Localize`]; the tutorial's [`Localization`] by default), and the
//! [`RegressionHead`] F -> hidden -> ReLU -> P, whose last layer starts at zero weight with the
//! identity transform as bias, so a new transformer starts as the identity.
//!
//! The tutorial's: conv 1->8 (7x7), max-pool 2, ReLU, conv 8->10 (5x5), max-pool 2, ReLU, then
//! the regression head ("fc_loc") 90 -> 32 -> ReLU -> P.

use burn::module::Module;
use burn::tensor::activation::relu;
use burn::tensor::{Device, Tensor};

use crate::layers::{ConvPoolRelu, Linear, conv_pool_size};
use crate::ops::FeatureMaps;
use crate::rng::Rng;

/// The feature part of a localization network: images [N, C, H, W] to features [N, F], from
/// which the [`RegressionHead`] regresses the transformation's parameters.
///
/// Implement it for your own module to use it in a
/// [`SpatialTransformer`](super::SpatialTransformer) (see
/// [`SpatialTransformerConfig::init_with`](super::SpatialTransformerConfig::init_with)).
pub trait Localize {
    /// [N, C, H, W] -> [N, F].
    fn localize(&self, x: Tensor<4>) -> Tensor<2>;
}

/// Convolutional features of the localization network (PyTorch's `localization` Sequential).
#[derive(Module, Debug)]
pub struct Localization {
    /// conv 1 -> 8, 7x7 (PyTorch `localization.0`).
    pub conv1: ConvPoolRelu,
    /// conv 8 -> 10, 5x5 (PyTorch `localization.3`).
    pub conv2: ConvPoolRelu,
}

impl Localization {
    /// The tutorial's localization convolutions for `channels` input channels.
    pub fn new(channels: usize, rng: &mut Rng, device: &Device) -> Self {
        Self {
            conv1: ConvPoolRelu::new(channels, 8, 7, rng, device),
            conv2: ConvPoolRelu::new(8, 10, 5, rng, device),
        }
    }

    /// The same network initialized from burn's generator (seeded with burn's `Device::seed`),
    /// as burn's own modules are.
    pub fn init(channels: usize, device: &Device) -> Self {
        Self {
            conv1: ConvPoolRelu::init(channels, 8, 7, device),
            conv2: ConvPoolRelu::init(8, 10, 5, device),
        }
    }

    /// Number of features the convolutions produce for an input of `size`.
    pub fn features(size: [usize; 2]) -> usize {
        let side = |s| conv_pool_size(conv_pool_size(s, 7), 5);
        10 * side(size[0]) * side(size[1])
    }

    /// Two valid convolution blocks of `blocks` = [(filters, kernel side); 2] for `channels`
    /// input channels, each followed by 2x2 max pooling and ReLU, drawn from stn's generator
    /// in PyTorch's order (the paper's ST-CNN uses [(20, 5), (20, 5)]).
    pub fn with_blocks(
        channels: usize,
        blocks: [(usize, usize); 2],
        rng: &mut Rng,
        device: &Device,
    ) -> Self {
        let [(f1, k1), (f2, k2)] = blocks;
        Self {
            conv1: ConvPoolRelu::new(channels, f1, k1, rng, device),
            conv2: ConvPoolRelu::new(f1, f2, k2, rng, device),
        }
    }

    /// Number of features [`Self::with_blocks`] produces for an input of `size`.
    pub fn block_features(blocks: [(usize, usize); 2], size: [usize; 2]) -> usize {
        let [(_, k1), (f2, k2)] = blocks;
        let side = |s| conv_pool_size(conv_pool_size(s, k1), k2);
        f2 * side(size[0]) * side(size[1])
    }

    /// [N, C, H, W] -> [N, features].
    pub fn forward(&self, x: Tensor<4>) -> Tensor<2> {
        let x = FeatureMaps::from_images(x);
        let x = self.conv1.forward(x);
        let x = self.conv2.forward(x);
        x.into_images().flatten(1, 3)
    }
}

impl Localize for Localization {
    fn localize(&self, x: Tensor<4>) -> Tensor<2> {
        self.forward(x)
    }
}

/// The regression head (PyTorch's `fc_loc` Sequential): features -> 32 -> ReLU -> parameters.
#[derive(Module, Debug)]
pub struct RegressionHead {
    /// features -> 32 (PyTorch `fc_loc.0`).
    pub fc1: Linear,
    /// 32 -> parameters, identity-initialized (PyTorch `fc_loc.2`).
    pub fc2: Linear,
}

impl RegressionHead {
    /// A head whose output starts at `identity` for every input.
    pub fn new(features: usize, identity: &[f32], rng: &mut Rng, device: &Device) -> Self {
        Self::with_hidden(features, 32, identity, rng, device)
    }

    /// A head `features` -> `hidden` -> ReLU -> `identity.len()` whose output starts at
    /// `identity` for every input, drawn from stn's generator.
    pub fn with_hidden(
        features: usize,
        hidden: usize,
        identity: &[f32],
        rng: &mut Rng,
        device: &Device,
    ) -> Self {
        Self {
            fc1: Linear::new(features, hidden, rng, device),
            fc2: Linear::with_bias(hidden, identity, device),
        }
    }

    /// A head `features` -> `hidden` -> ReLU -> `identity.len()` whose output starts at
    /// `identity` for every input, its first layer drawn from burn's generator.
    pub fn init(features: usize, hidden: usize, identity: &[f32], device: &Device) -> Self {
        Self {
            fc1: Linear::init(features, hidden, device),
            fc2: Linear::with_bias(hidden, identity, device),
        }
    }

    /// [N, features] -> [N, parameters].
    pub fn forward(&self, x: Tensor<2>) -> Tensor<2> {
        self.fc2.forward(relu(self.fc1.forward(x)))
    }
}

/// A fully connected localization network: the image flattened, then two linear layers with
/// ReLU (the paper's ST-FCN, whose regression head adds the third hidden layer).
#[derive(Module, Debug)]
pub struct MlpLocalization {
    /// pixels -> hidden.
    pub fc1: Linear,
    /// hidden -> hidden.
    pub fc2: Linear,
}

impl MlpLocalization {
    /// `inputs` (channels x height x width) -> `hidden` -> `hidden`, drawn from stn's generator.
    pub fn new(inputs: usize, hidden: usize, rng: &mut Rng, device: &Device) -> Self {
        Self {
            fc1: Linear::new(inputs, hidden, rng, device),
            fc2: Linear::new(hidden, hidden, rng, device),
        }
    }

    /// Number of features it produces.
    pub fn features(&self) -> usize {
        self.fc2.weight.dims()[0]
    }
}

impl Localize for MlpLocalization {
    fn localize(&self, x: Tensor<4>) -> Tensor<2> {
        let x = relu(self.fc1.forward(x.flatten(1, 3)));
        relu(self.fc2.forward(x))
    }
}

/// The localization networks of stn's own models: convolutional (the tutorial's, the paper's
/// ST-CNN) or fully connected (the paper's ST-FCN).
#[derive(Module, Debug)]
pub enum LocalizationNet {
    /// Two convolution blocks.
    Conv(Localization),
    /// Two linear layers.
    Mlp(MlpLocalization),
}

impl Localize for LocalizationNet {
    fn localize(&self, x: Tensor<4>) -> Tensor<2> {
        match self {
            Self::Conv(l) => l.forward(x),
            Self::Mlp(l) => l.localize(x),
        }
    }
}
