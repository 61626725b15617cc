//! The spatial transformer (Jaderberg et al. 2015), in the paper's three parts, one file each:
//!
//! ```text
//! input ──> localization ──θ──> grid generator ──grid──> sampler ──> output
//!   └─────────────────────────────────────────────────────┘
//! ```

pub mod grid;
pub mod localization;
pub mod sampler;

use burn::module::Module;
use burn::tensor::{Device, Tensor};

pub use grid::TransformKind;
pub use localization::{Localization, RegressionHead};
pub use sampler::SamplerConfig;

use crate::rng::Rng;

/// A spatial transformer: localization network, grid generator and sampler.
#[derive(Module, Debug)]
pub struct SpatialTransformer {
    /// Localization convolutions (PyTorch `localization`).
    pub localization: Localization,
    /// Regression head (PyTorch `fc_loc`).
    pub fc_loc: RegressionHead,
    /// The transformation family.
    #[module(skip)]
    pub kind: TransformKind,
    /// How the input is sampled.
    #[module(skip)]
    pub sampler: SamplerConfig,
}

impl SpatialTransformer {
    /// A transformer for `channels` x `size` inputs, starting at the identity transformation.
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

    /// The transformation parameters the localization network predicts for `x`: [N, P].
    pub fn params(&self, x: Tensor<4>) -> Tensor<2> {
        self.fc_loc.forward(self.localization.forward(x))
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
