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
        Self {
            fc1: Linear::new(features, 32, rng, device),
            fc2: Linear::with_bias(32, identity, device),
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
