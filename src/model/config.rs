//! What a network is: the architecture every checkpoint records.

use serde::{Deserialize, Serialize};

use crate::layers::conv_pool_size;
use crate::transformer::{Localization, SamplerConfig, TransformKind};

/// Everything that determines a network's architecture; stored in every checkpoint.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ModelConfig {
    /// Input [height, width] (single channel).
    pub input_size: [usize; 2],
    /// The transformer's family, or `None` for the plain CNN.
    pub transform: Option<TransformKind>,
    /// The transformer's sampler.
    pub sampler: SamplerConfig,
    /// Number of classes.
    pub classes: usize,
}

impl ModelConfig {
    /// The PyTorch tutorial's network: affine STN on 28x28 MNIST, bilinear, zero padding,
    /// align_corners = false.
    pub fn tutorial() -> Self {
        Self {
            input_size: [28, 28],
            transform: Some(TransformKind::Affine),
            sampler: SamplerConfig::default(),
            classes: 10,
        }
    }

    /// A network for `size` inputs with the given transformer (`None`: the plain CNN), the
    /// sampler producing `st_size` x `st_size` (`None`: the input size), padding with the
    /// normalized background instead of zero when `pad_background`.
    pub fn new(
        size: [usize; 2],
        transform: Option<TransformKind>,
        st_size: Option<usize>,
        pad_background: bool,
    ) -> Self {
        let mut sampler = SamplerConfig {
            output_size: st_size.map(|s| [s, s]),
            ..SamplerConfig::default()
        };
        if pad_background {
            sampler.pad_value = Some(BACKGROUND);
        }
        Self {
            input_size: size,
            transform,
            sampler,
            classes: 10,
        }
    }

    /// A short name: "cnn", "st-affine", "st-tps16", ...
    pub fn name(&self) -> String {
        match self.transform {
            None => "cnn".into(),
            Some(TransformKind::Tps { grid }) => format!("st-tps{}", grid * grid),
            Some(k) => format!("st-{}", k.name()),
        }
    }

    /// Spatial size the classifier sees (the sampler may resize).
    pub fn classifier_input(&self) -> [usize; 2] {
        match self.transform {
            Some(_) => self.sampler.output_size(self.input_size),
            None => self.input_size,
        }
    }

    /// Features entering fc1.
    pub fn classifier_features(&self) -> usize {
        let [h, w] = self.classifier_input();
        let side = |s| conv_pool_size(conv_pool_size(s, 5), 5);
        20 * side(h) * side(w)
    }

    /// Checks that images of `size` [height, width] fit the network.
    pub fn check_input(&self, size: [usize; 2]) -> Result<(), InputSizeError> {
        if size == self.input_size {
            Ok(())
        } else {
            Err(InputSizeError {
                model: self.input_size,
                data: size,
            })
        }
    }

    /// Checks that the sizes leave at least one feature after every convolution and pool.
    pub fn validate(&self) -> Result<(), String> {
        let [h, w] = self.input_size;
        if self.transform.is_some() && Localization::features([h, w]) == 0 {
            return Err(format!(
                "input {h}x{w} is too small for the localization network (needs at least 26x26)"
            ));
        }
        if self.classifier_features() == 0 {
            let [h, w] = self.classifier_input();
            return Err(format!(
                "classifier input {h}x{w} is too small (needs at least 16x16)"
            ));
        }
        if let Some(TransformKind::Tps { grid }) = self.transform
            && grid < 2
        {
            return Err("a thin-plate spline needs at least 2x2 control points".into());
        }
        Ok(())
    }
}

/// Images of another size than a network takes.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("the model takes {}x{} images but the data has {}x{}", model[0], model[1], data[0], data[1])]
pub struct InputSizeError {
    /// The network's input [height, width].
    pub model: [usize; 2],
    /// The data's image [height, width].
    pub data: [usize; 2],
}

/// The normalized value of a black MNIST pixel, (0 - mean) / std: what a sampler should read
/// outside the image for the padding to look like background.
pub const BACKGROUND: f32 = (0.0 - crate::data::mnist::MEAN) / crate::data::mnist::STD;
