//! The networks: the tutorial's STN + CNN classifier, and its variants for the paper's
//! experiments (other transformers, other input sizes, the plain CNN baseline).

mod config;
pub mod dropout;
pub mod state;

use burn::module::Module;
use burn::tensor::activation::{log_softmax, relu};
use burn::tensor::{Device, Int, Tensor};

use crate::layers::{ConvPoolRelu, Linear};
pub use config::{BACKGROUND, InputSizeError, MAX_CLASSES, MAX_SIDE, MAX_TPS_GRID, ModelConfig};
pub use dropout::{GivenMasks, Mode};
use dropout::{dropout, dropout2d};

use crate::ops::FeatureMaps;
use crate::rng::Rng;
use crate::transformer::SpatialTransformer;
use state::{StateDict, StateError, check_shapes, load_state_dict};

/// Why a network cannot be built from a saved architecture and parameters.
#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    /// The architecture is out of bounds or not buildable.
    #[error("invalid architecture: {0}")]
    Architecture(String),
    /// The parameters do not fit the architecture.
    #[error(transparent)]
    State(#[from] StateError),
}

/// Dropout probability of the tutorial (both `Dropout2d` and `F.dropout`).
pub const DROPOUT: f32 = 0.5;

/// The tutorial's network: an optional spatial transformer in front of a small CNN.
///
/// Parameter names follow PyTorch's (see [`state`]), so a PyTorch state_dict loads one to one.
#[derive(Module, Debug)]
pub struct Net {
    /// The spatial transformer; `None` for the plain CNN baseline.
    pub transformer: Option<SpatialTransformer>,
    /// conv 1 -> 10, 5x5, then max-pool 2 and ReLU.
    pub conv1: ConvPoolRelu,
    /// conv 10 -> 20, 5x5, then channel dropout, max-pool 2 and ReLU.
    pub conv2: ConvPoolRelu,
    /// features -> 50.
    pub fc1: Linear,
    /// 50 -> classes.
    pub fc2: Linear,
    /// The architecture.
    #[module(skip)]
    pub config: ModelConfig,
}

impl Net {
    /// A freshly initialized network (PyTorch's initialization, drawn from `seed`).
    pub fn new(config: &ModelConfig, seed: u64, device: &Device) -> Self {
        let mut rng = Rng::derive(seed, "init");
        // PyTorch creates the classifier's layers first, then the transformer's.
        let conv1 = ConvPoolRelu::new(1, 10, 5, &mut rng, device);
        let conv2 = ConvPoolRelu::new(10, 20, 5, &mut rng, device);
        let fc1 = Linear::new(config.classifier_features(), 50, &mut rng, device);
        let fc2 = Linear::new(50, config.classes, &mut rng, device);
        let transformer = config.transform.map(|kind| {
            SpatialTransformer::new(1, config.input_size, kind, config.sampler, &mut rng, device)
        });
        Self {
            transformer,
            conv1,
            conv2,
            fc1,
            fc2,
            config: config.clone(),
        }
    }

    /// The network `config` describes with the parameters `params` (a checkpoint's, or a
    /// PyTorch state_dict's). The architecture and every parameter's shape are checked before
    /// anything is allocated.
    pub fn from_state(
        config: &ModelConfig,
        params: &StateDict,
        device: &Device,
    ) -> Result<Self, BuildError> {
        config.validate().map_err(BuildError::Architecture)?;
        check_shapes(&config.parameter_shapes(), params)?;
        Ok(load_state_dict(Self::new(config, 0, device), params)?)
    }

    /// Class log-probabilities [N, classes] for images [N, 1, H, W]: the tutorial's forward.
    pub fn forward(&self, x: Tensor<4>, mode: &mut Mode) -> Tensor<2> {
        self.forward_with_params(x, mode).0
    }

    /// Class log-probabilities and the transformer's parameters (`None` for the plain CNN).
    pub fn forward_with_params(
        &self,
        x: Tensor<4>,
        mode: &mut Mode,
    ) -> (Tensor<2>, Option<Tensor<2>>) {
        match &self.transformer {
            Some(transformer) => {
                let (x, params) = transformer.forward_with_params(x);
                (self.classify(x, mode), Some(params))
            }
            None => (self.classify(x, mode), None),
        }
    }

    /// The transformer's output for `x` (the input itself for the plain CNN).
    pub fn transform(&self, x: Tensor<4>) -> Tensor<4> {
        match &self.transformer {
            Some(transformer) => transformer.forward(x),
            None => x,
        }
    }

    /// The classifier alone, on already transformed images.
    pub fn classify(&self, x: Tensor<4>, mode: &mut Mode) -> Tensor<2> {
        let x = FeatureMaps::from_images(x);
        let x = self.conv1.forward(x);
        let x = self.conv2.forward(x).into_images();
        // The tutorial drops whole channels (Dropout2d) between conv2 and the pooling; that
        // scales each channel by 0 or 2, so it commutes with max-pooling and ReLU and may follow
        // the fused block.
        let x = dropout2d(x, DROPOUT, mode);
        let x = relu(self.fc1.forward(x.flatten(1, 3)));
        let x = dropout(x, DROPOUT, mode);
        log_softmax(self.fc2.forward(x), 1)
    }
}

/// Mean negative log-likelihood of `targets` under `log_probs` [N, classes] (PyTorch's
/// `F.nll_loss`).
pub fn nll_loss(log_probs: Tensor<2>, targets: Tensor<1, Int>) -> Tensor<1> {
    let [n, _] = log_probs.dims();
    log_probs.gather(1, targets.reshape([n, 1])).mean().neg()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::transformer::TransformKind;

    /// The shapes a checkpoint is checked against are the shapes the network really has.
    #[test]
    fn parameter_shapes_are_the_networks() {
        let device = Device::flex();
        let kinds = [
            None,
            Some(TransformKind::Affine),
            Some(TransformKind::Attention),
            Some(TransformKind::Projective),
            Some(TransformKind::Tps { grid: 3 }),
        ];
        for kind in kinds {
            for (size, st) in [([28, 28], None), ([42, 42], Some(21)), ([60, 60], Some(30))] {
                let config = ModelConfig::new(size, kind, st, false);
                let net = Net::new(&config, 1, &device);
                let shapes: std::collections::BTreeMap<_, _> = state::state_dict(&net)
                    .into_iter()
                    .map(|(name, t)| (name, t.shape))
                    .collect();
                assert_eq!(shapes, config.parameter_shapes(), "{config:?}");
            }
        }
    }
}
