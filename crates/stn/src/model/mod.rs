//! The networks: the tutorial's STN + CNN classifier, and its variants for the paper's
//! experiments (other transformers, other input sizes, the plain CNN baseline).

mod config;
pub mod dropout;
pub mod state;

use burn::module::Module;
use burn::tensor::activation::{log_softmax, relu};
use burn::tensor::{Device, Int, Tensor};

use crate::layers::{ConvPoolRelu, Linear};
pub use config::{
    Arch, BACKGROUND, ConvBlock, InputSizeError, LocalizationLayout, MAX_CLASSES, MAX_SIDE,
    MAX_TPS_GRID, MAX_WIDTH, ModelConfig,
};
pub use dropout::{GivenMasks, Mode};
use dropout::{dropout, dropout2d};

use crate::ops::FeatureMaps;
use crate::rng::Rng;
use crate::transformer::{
    Localization, LocalizationNet, MlpLocalization, RegressionHead, SpatialTransformer,
    TransformKind,
};
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

/// The tutorial's network, or one of the paper's (see [`Arch`]): an optional spatial
/// transformer in front of a classifier.
///
/// Parameter names follow PyTorch's (see [`state`]), so a PyTorch state_dict loads one to one.
#[derive(Module, Debug)]
pub struct Net {
    /// The spatial transformer; `None` for the plain CNN baseline.
    pub transformer: Option<SpatialTransformer<LocalizationNet>>,
    /// The second spatial transformer of a 2xST network (its parameters are named `st2.*`),
    /// beside the first: each sees the whole input and their outputs are concatenated along
    /// the channels. `None` for every other network.
    pub transformer2: Option<SpatialTransformer<LocalizationNet>>,
    /// First convolution block (conv, max-pool 2, ReLU); `None` for the fully connected
    /// families.
    pub conv1: Option<ConvPoolRelu>,
    /// Second convolution block (the tutorial's drops channels after it).
    pub conv2: Option<ConvPoolRelu>,
    /// First linear layer: the tutorial's features -> 50, the paper CNN's output layer.
    pub fc1: Linear,
    /// Second linear layer (the tutorial's output layer).
    pub fc2: Option<Linear>,
    /// Third linear layer (the paper FCN's output layer).
    pub fc3: Option<Linear>,
    /// The architecture.
    #[module(skip)]
    pub config: ModelConfig,
}

impl Net {
    /// A freshly initialized network (PyTorch's initialization, drawn from `seed`).
    pub fn new(config: &ModelConfig, seed: u64, device: &Device) -> Self {
        let mut rng = Rng::derive(seed, "init");
        let arch = config.arch;
        // PyTorch creates the classifier's layers first, then the transformer's.
        let mut convs = arch
            .convs()
            .into_iter()
            .scan(config.classifier_channels(), |c, b| {
                let block = ConvPoolRelu::new(*c, b.filters, b.kernel, &mut rng, device);
                *c = b.filters;
                Some(block)
            });
        let (conv1, conv2) = (convs.next(), convs.next());
        drop(convs);
        let mut d = config.classifier_features();
        let mut widths = arch.hidden();
        widths.push(config.classes);
        let mut fcs = widths.into_iter().map(|u| {
            let fc = Linear::new(d, u, &mut rng, device);
            d = u;
            fc
        });
        let fc1 = fcs.next().expect("an output layer");
        let (fc2, fc3) = (fcs.next(), fcs.next());
        drop(fcs);
        let transformer = config
            .transform
            .map(|kind| new_transformer(config, kind, &mut rng, device));
        let transformer2 = config
            .transform
            .filter(|_| config.transformers > 1)
            .map(|kind| new_transformer(config, kind, &mut rng, device));
        Self {
            transformer,
            transformer2,
            conv1,
            conv2,
            fc1,
            fc2,
            fc3,
            config: config.clone(),
        }
    }

    /// The device the parameters live on.
    pub fn device(&self) -> Device {
        self.fc1.weight.val().device()
    }

    /// The parameters' float type.
    pub fn dtype(&self) -> burn::tensor::DType {
        self.fc1.weight.val().dtype()
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

    /// Class log-probabilities [N, classes] for images [N, C, H, W] (C = 1: the tutorial's
    /// forward).
    pub fn forward(&self, x: Tensor<4>, mode: &mut Mode) -> Tensor<2> {
        self.forward_with_params(x, mode).0
    }

    /// Class log-probabilities and the transformer's parameters (`None` for the plain CNN;
    /// both transformers' side by side, [N, 2P], for a 2xST network).
    pub fn forward_with_params(
        &self,
        x: Tensor<4>,
        mode: &mut Mode,
    ) -> (Tensor<2>, Option<Tensor<2>>) {
        match self.transform_with_params(x) {
            (x, Some(params)) => (self.classify(x, mode), Some(params)),
            (x, None) => (self.classify(x, mode), None),
        }
    }

    /// The transformer's output for `x` (the input itself for the plain CNN; both
    /// transformers' outputs concatenated along the channels for a 2xST network).
    pub fn transform(&self, x: Tensor<4>) -> Tensor<4> {
        self.transform_with_params(x).0
    }

    /// [`Self::transform`] and the transformers' parameters.
    fn transform_with_params(&self, x: Tensor<4>) -> (Tensor<4>, Option<Tensor<2>>) {
        match (&self.transformer, &self.transformer2) {
            (Some(first), Some(second)) => {
                let (a, pa) = first.forward_with_params(x.clone());
                let (b, pb) = second.forward_with_params(x);
                (
                    Tensor::cat(vec![a, b], 1),
                    Some(Tensor::cat(vec![pa, pb], 1)),
                )
            }
            (Some(transformer), None) => {
                let (x, params) = transformer.forward_with_params(x);
                (x, Some(params))
            }
            _ => (x, None),
        }
    }

    /// The classifier alone, on already transformed images.
    pub fn classify(&self, x: Tensor<4>, mode: &mut Mode) -> Tensor<2> {
        if self.config.arch == Arch::Tutorial {
            return self.classify_tutorial(x, mode);
        }
        log_softmax(self.layers(x, None), 1)
    }

    /// The classifier's activations on already transformed images, layer by layer, each
    /// flattened to [N, F]: every convolution block's output (after pooling and ReLU), every
    /// hidden layer's (after ReLU) and the output layer's (the logits, before the softmax).
    /// Concatenated, an embedding of the images (the paper's co-localisation encoder). Without
    /// dropout, whatever the family.
    pub fn layer_outputs(&self, x: Tensor<4>) -> Vec<Tensor<2>> {
        let mut out = Vec::new();
        self.layers(x, Some(&mut out));
        out
    }

    /// The logits, and every layer's output into `keep` if given.
    fn layers(&self, x: Tensor<4>, mut keep: Option<&mut Vec<Tensor<2>>>) -> Tensor<2> {
        let blocks = self.config.arch.convs();
        let convs = [&self.conv1, &self.conv2];
        let x = if blocks.is_empty() {
            x
        } else {
            let mut maps = FeatureMaps::from_images(x);
            for (conv, block) in convs.into_iter().flatten().zip(&blocks) {
                maps = conv.forward(maps.pad(block.pad));
                if let Some(keep) = keep.as_mut() {
                    keep.push(maps.clone().into_images().flatten(1, 3));
                }
            }
            maps.into_images()
        };
        let mut x = x.flatten(1, 3);
        let layers = [Some(&self.fc1), self.fc2.as_ref(), self.fc3.as_ref()];
        let mut layers = layers.into_iter().flatten().peekable();
        while let Some(fc) = layers.next() {
            x = fc.forward(x);
            if layers.peek().is_some() {
                x = relu(x);
            }
            if let Some(keep) = keep.as_mut() {
                keep.push(x.clone());
            }
        }
        x
    }

    /// The tutorial's classifier, op for op as PyTorch runs it.
    fn classify_tutorial(&self, x: Tensor<4>, mode: &mut Mode) -> Tensor<2> {
        let (Some(conv1), Some(conv2), Some(fc2)) = (&self.conv1, &self.conv2, &self.fc2) else {
            unreachable!("the tutorial's network has both convolutions and two linear layers");
        };
        let x = FeatureMaps::from_images(x);
        let x = conv1.forward(x);
        let x = conv2.forward(x).into_images();
        // The tutorial drops whole channels (Dropout2d) between conv2 and the pooling; that
        // scales each channel by 0 or 2, so it commutes with max-pooling and ReLU and may follow
        // the fused block.
        let x = dropout2d(x, DROPOUT, mode);
        let x = relu(self.fc1.forward(x.flatten(1, 3)));
        let x = dropout(x, DROPOUT, mode);
        log_softmax(fc2.forward(x), 1)
    }
}

/// A transformer `config` puts in front of its classifier: its family's localization
/// network (seeing every input channel), a regression head starting at the identity, and the
/// configured sampler.
fn new_transformer(
    config: &ModelConfig,
    kind: TransformKind,
    rng: &mut Rng,
    device: &Device,
) -> SpatialTransformer<LocalizationNet> {
    let layout = config.arch.localization();
    let [h, w] = config.input_size;
    let localization = match (layout.convs.as_slice(), layout.linear.as_slice()) {
        ([a, b], []) => LocalizationNet::Conv(Localization::with_blocks(
            config.channels,
            [(a.filters, a.kernel), (b.filters, b.kernel)],
            rng,
            device,
        )),
        ([], [u, v]) if u == v => LocalizationNet::Mlp(MlpLocalization::new(
            config.channels * h * w,
            *u,
            rng,
            device,
        )),
        _ => unreachable!("every family's localization network is two blocks or two layers"),
    };
    let fc_loc = RegressionHead::with_hidden(
        config.localization_features(),
        layout.head,
        &kind.identity(),
        rng,
        device,
    );
    SpatialTransformer {
        localization,
        fc_loc,
        kind,
        sampler: config.sampler,
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
        let archs = [
            Arch::Tutorial,
            Arch::Cnn { filters: [6, 12] },
            Arch::Fcn { hidden: 16 },
        ];
        for (kind, arch) in kinds.into_iter().flat_map(|k| archs.map(|a| (k, a))) {
            for (size, st) in [([28, 28], None), ([42, 42], Some(21)), ([60, 60], Some(30))] {
                let config = ModelConfig::new(size, kind, st, false).with_arch(arch);
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
