//! The sampler: reads the input at the grid's coordinates (the fused `grid_sample` op).

use burn::tensor::Tensor;
use serde::{Deserialize, Serialize};

use crate::ops::{self, SampleOptions};

/// How the transformer samples its input.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct SamplerConfig {
    /// Interpolation, padding and corner convention (PyTorch's defaults: bilinear, zeros,
    /// align_corners = false).
    pub options: SampleOptions,
    /// Output [height, width]; `None` keeps the input size. The paper halves the resolution
    /// after the transformer for its 42x42 and 60x60 datasets.
    pub output_size: Option<[usize; 2]>,
    /// Value read outside the input under zero padding. Normalized MNIST's background is
    /// -0.4242, not 0, so zero padding draws a frame; padding with the background value
    /// avoids it. `None` is PyTorch's behaviour (0).
    pub pad_value: Option<f32>,
}

impl SamplerConfig {
    /// Output size for an input of `input`.
    pub fn output_size(&self, input: [usize; 2]) -> [usize; 2] {
        self.output_size.unwrap_or(input)
    }

    /// Samples `x` [N, C, H, W] at `grid` [N, Ho, Wo, 2] -> [N, C, Ho, Wo].
    pub fn sample(&self, x: Tensor<4>, grid: Tensor<4>) -> Tensor<4> {
        self.padded(x, |x| ops::grid_sample(x, grid, self.options))
    }

    /// Samples `x` through the affine maps `theta` [N, 2, 3] in one fused pass (no grid
    /// tensor): the same result as [`Self::sample`] with an affine grid.
    pub fn sample_affine(&self, x: Tensor<4>, theta: Tensor<3>, size: [usize; 2]) -> Tensor<4> {
        self.padded(x, |x| ops::affine_sample(x, theta, size, self.options))
    }

    fn padded(&self, x: Tensor<4>, sample: impl FnOnce(Tensor<4>) -> Tensor<4>) -> Tensor<4> {
        match self.pad_value {
            // Sampling (x - v) with zero padding and adding v back pads with v exactly: the
            // interpolation weights of every mode sum to one.
            Some(v) if v != 0.0 => sample(x.sub_scalar(v)).add_scalar(v),
            _ => sample(x),
        }
    }
}
