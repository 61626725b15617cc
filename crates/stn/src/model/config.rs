//! What a network is: the architecture every checkpoint records.

use std::collections::BTreeMap;

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

    /// Every parameter's shape by PyTorch name: what a state dict for this architecture must
    /// hold, known without building the network (checked against [`super::Net::new`] by a
    /// test).
    pub fn parameter_shapes(&self) -> BTreeMap<String, Vec<usize>> {
        let mut shapes = BTreeMap::new();
        let mut layer = |name: &str, weight: Vec<usize>| {
            shapes.insert(format!("{name}.bias"), vec![weight[0]]);
            shapes.insert(format!("{name}.weight"), weight);
        };
        layer("conv1", vec![10, 1, 5, 5]);
        layer("conv2", vec![20, 10, 5, 5]);
        layer("fc1", vec![50, self.classifier_features()]);
        layer("fc2", vec![self.classes, 50]);
        if let Some(kind) = self.transform {
            layer("localization.0", vec![8, 1, 7, 7]);
            layer("localization.3", vec![10, 8, 5, 5]);
            layer(
                "fc_loc.0",
                vec![32, Localization::features(self.input_size)],
            );
            layer("fc_loc.2", vec![kind.num_params(), 32]);
        }
        shapes
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

    /// Checks that the sizes are within bounds and leave at least one feature after every
    /// convolution and pool. Checkpoints are validated before any network is built, so that a
    /// file claiming absurd sizes is an error, not an allocation.
    pub fn validate(&self) -> Result<(), String> {
        let [h, w] = self.input_size;
        let sides = [h, w]
            .into_iter()
            .chain(self.sampler.output_size.into_iter().flatten());
        if sides.into_iter().any(|s| s > MAX_SIDE) {
            return Err(format!(
                "image sides above {MAX_SIDE} pixels are not supported (input {h}x{w}, sampler output {:?})",
                self.sampler.output_size
            ));
        }
        if !(1..=MAX_CLASSES).contains(&self.classes) {
            return Err(format!(
                "{} classes: between 1 and {MAX_CLASSES} are supported",
                self.classes
            ));
        }
        if let Some(TransformKind::Tps { grid }) = self.transform
            && grid > MAX_TPS_GRID
        {
            return Err(format!(
                "a thin-plate spline of {grid}x{grid} control points: at most {MAX_TPS_GRID}x{MAX_TPS_GRID} are supported"
            ));
        }
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

/// Largest image side (input or sampler output) a network may have.
pub const MAX_SIDE: usize = 4096;
/// Largest number of classes.
pub const MAX_CLASSES: usize = 1000;
/// Largest thin-plate spline control grid side.
pub const MAX_TPS_GRID: usize = 32;

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
