//! The spatial transformer (Jaderberg et al. 2015), in the paper's three parts, one file each:
//!
//! ```text
//! input ──> localization ──θ──> grid generator ──grid──> sampler ──> output
//!   └─────────────────────────────────────────────────────┘
//! ```
//!
//! [`SpatialTransformerConfig`] builds the layer as burn's modules are built
//! (`Config` + `init(&device)`); see its documentation for an example.

pub mod grid;
pub mod localization;
pub mod sampler;

use burn::config::Config;
use burn::module::Module;
use burn::tensor::{Device, Tensor};

pub use grid::TransformKind;
pub use localization::{Localization, LocalizationNet, Localize, MlpLocalization, RegressionHead};
pub use sampler::SamplerConfig;

use crate::ops::SampleOptions;
use crate::rng::Rng;

/// A spatial transformer: localization network, grid generator and sampler.
///
/// `L` is the network that turns images into features for the regression head: the
/// tutorial's [`Localization`] unless you bring your own ([`SpatialTransformerConfig::init_with`]).
#[derive(Module, Debug)]
pub struct SpatialTransformer<L: Module = Localization> {
    /// Localization network's features (PyTorch `localization`).
    pub localization: L,
    /// Regression head (PyTorch `fc_loc`).
    pub fc_loc: RegressionHead,
    /// The transformation family.
    #[module(skip)]
    pub kind: TransformKind,
    /// How the input is sampled.
    #[module(skip)]
    pub sampler: SamplerConfig,
}

/// How to build a [`SpatialTransformer`], in the style of burn's module configs.
///
/// ```
/// use burn::tensor::{Device, Tensor, Distribution};
/// use stn::transformer::{SpatialTransformerConfig, TransformKind};
///
/// let device = Device::flex();
/// // An affine transformer for 1 x 28 x 28 images (the tutorial's), output 14 x 14.
/// let stn = SpatialTransformerConfig::new(1, [28, 28])
///     .with_transform(TransformKind::Affine)
///     .with_output_size(Some([14, 14]))
///     .init(&device);
/// let x = Tensor::<4>::random([8, 1, 28, 28], Distribution::Default, &device);
/// assert_eq!(stn.forward(x).dims(), [8, 1, 14, 14]);
/// ```
#[derive(Config, Debug)]
pub struct SpatialTransformerConfig {
    /// Input channels.
    pub channels: usize,
    /// Input [height, width]; the tutorial's localization network is sized for it.
    pub input_size: [usize; 2],
    /// The transformation family (affine, attention, projective, thin-plate spline with its
    /// control grid).
    #[config(default = "TransformKind::Affine")]
    pub transform: TransformKind,
    /// Output [height, width]; `None` keeps the input size.
    #[config(default = "None")]
    pub output_size: Option<[usize; 2]>,
    /// Interpolation, padding and corner convention (PyTorch's `grid_sample` defaults:
    /// bilinear, zeros, align_corners = false).
    #[config(default = "SampleOptions::default()")]
    pub sampling: SampleOptions,
    /// Value read outside the input under zero padding; `None` reads 0, as PyTorch.
    #[config(default = "None")]
    pub pad_value: Option<f32>,
    /// Width of the regression head's hidden layer (the tutorial's 32).
    #[config(default = 32)]
    pub hidden: usize,
}

impl SpatialTransformerConfig {
    /// The transformer with the tutorial's localization network (two 5x5/7x7 convolutions
    /// with max-pooling), drawn from burn's generator (seed it with `Device::seed`), its
    /// regression head starting at the identity transformation.
    ///
    /// # Panics
    /// If the configuration cannot make a network (see [`Self::check`]).
    pub fn init(&self, device: &Device) -> SpatialTransformer {
        let features = Localization::features(self.input_size);
        if let Err(e) = self.check(features) {
            panic!("{e}");
        }
        self.init_with(Localization::init(self.channels, device), features, device)
    }

    /// The transformer with your own localization network: `localization` turns images
    /// [N, C, H, W] into `features` features per image; a regression head
    /// `features` -> [`hidden`](Self::hidden) -> ReLU -> parameters, starting at the identity
    /// transformation, follows it.
    ///
    /// # Panics
    /// If the configuration cannot make a network (see [`Self::check`]).
    pub fn init_with<L: Module + Localize>(
        &self,
        localization: L,
        features: usize,
        device: &Device,
    ) -> SpatialTransformer<L> {
        if let Err(e) = self.check(features) {
            panic!("{e}");
        }
        SpatialTransformer {
            localization,
            fc_loc: RegressionHead::init(features, self.hidden, &self.transform.identity(), device),
            kind: self.transform,
            sampler: self.sampler(),
        }
    }

    /// The sampler's settings.
    pub fn sampler(&self) -> SamplerConfig {
        SamplerConfig {
            options: self.sampling,
            output_size: self.output_size,
            pad_value: self.pad_value,
        }
    }

    /// Why a transformer with a localization network of `features` features cannot be built
    /// from this configuration, if it cannot: no channels, no features (an input too small
    /// for the tutorial's localization network), an empty hidden layer or output, or a
    /// thin-plate-spline grid under 2 x 2.
    pub fn check(&self, features: usize) -> Result<(), String> {
        let [h, w] = self.input_size;
        if self.channels == 0 {
            return Err("a spatial transformer needs at least one input channel".into());
        }
        if features == 0 {
            return Err(format!(
                "the localization network makes no features from {h}x{w} inputs (the tutorial's needs at least 20x20)"
            ));
        }
        if self.hidden == 0 {
            return Err("the regression head's hidden layer needs at least one unit".into());
        }
        if let Some([oh, ow]) = self.output_size
            && (oh == 0 || ow == 0)
        {
            return Err(format!("output size {oh}x{ow} is empty"));
        }
        if let TransformKind::Tps { grid } = self.transform
            && grid < 2
        {
            return Err(format!(
                "a thin-plate spline needs a grid of at least 2x2 control points, got {grid}x{grid}"
            ));
        }
        Ok(())
    }
}

impl SpatialTransformer {
    /// The tutorial's transformer for `channels` x `size` inputs, starting at the identity
    /// transformation, drawn from stn's own generator in PyTorch's order (what `stn train`
    /// uses, for exact parity and resume; library users want [`SpatialTransformerConfig`]).
    pub fn new(
        channels: usize,
        size: [usize; 2],
        kind: TransformKind,
        sampler: SamplerConfig,
        rng: &mut Rng,
        device: &Device,
    ) -> Self {
        let localization = Localization::new(channels, rng, device);
        let fc_loc =
            RegressionHead::new(Localization::features(size), &kind.identity(), rng, device);
        Self {
            localization,
            fc_loc,
            kind,
            sampler,
        }
    }
}

impl<L: Module + Localize> SpatialTransformer<L> {
    /// The transformation parameters the localization network predicts for `x`: [N, P].
    pub fn params(&self, x: Tensor<4>) -> Tensor<2> {
        self.fc_loc.forward(self.localization.localize(x))
    }

    /// The sampling grid for `params`, for an input of `size`.
    pub fn grid(&self, params: Tensor<2>, size: [usize; 2]) -> Tensor<4> {
        let out = self.sampler.output_size(size);
        grid::generate(self.kind, params, out, self.sampler.options.align_corners)
    }

    /// Transforms `x` [N, C, H, W].
    pub fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        self.forward_with_params(x).0
    }

    /// Transforms `x` and also returns the predicted parameters.
    pub fn forward_with_params(&self, x: Tensor<4>) -> (Tensor<4>, Tensor<2>) {
        let [_, _, h, w] = x.dims();
        let params = self.params(x.clone());
        let out = match grid::affine_theta(self.kind, params.clone()) {
            // Affine families take the fused sampler: no grid tensor, gradient straight to theta.
            Some(theta) => self
                .sampler
                .sample_affine(x, theta, self.sampler.output_size([h, w])),
            None => {
                let grid = self.grid(params.clone(), [h, w]);
                self.sampler.sample(x, grid)
            }
        };
        (out, params)
    }
}
