//! The networks: the tutorial's STN + CNN classifier, and its variants for the paper's
//! experiments (other transformers, other input sizes, the plain CNN baseline).

pub mod dropout;
pub mod io;
pub mod layers;
pub mod state;

use burn::module::Module;
use burn::tensor::activation::{log_softmax, relu};
use burn::tensor::{Device, Int, Tensor};
use serde::{Deserialize, Serialize};

pub use dropout::Mode;
use layers::{Conv2d, Linear, conv_pool_size};

use crate::rng::Rng;
use crate::transformer::{SamplerConfig, SpatialTransformer, TransformKind};

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

    /// Checks that the sizes leave at least one feature after every convolution and pool.
    pub fn validate(&self) -> Result<(), String> {
        let [h, w] = self.input_size;
        if self.transform.is_some() && crate::transformer::Localization::features([h, w]) == 0 {
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

/// The normalized value of a black MNIST pixel, (0 - mean) / std: what a sampler should read
/// outside the image for the padding to look like background.
pub const BACKGROUND: f32 = (0.0 - crate::data::mnist::MEAN) / crate::data::mnist::STD;

/// Dropout probability of the tutorial (both `Dropout2d` and `F.dropout`).
pub const DROPOUT: f32 = 0.5;

/// The tutorial's network: an optional spatial transformer in front of a small CNN.
///
/// Parameter names follow PyTorch's (see [`state`]), so a PyTorch state_dict loads one to one.
#[derive(Module, Debug)]
pub struct Net {
    /// The spatial transformer; `None` for the plain CNN baseline.
    pub stn: Option<SpatialTransformer>,
    /// conv 1 -> 10, 5x5.
    pub conv1: Conv2d,
    /// conv 10 -> 20, 5x5, followed by channel dropout.
    pub conv2: Conv2d,
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
        let conv1 = Conv2d::new(1, 10, 5, &mut rng, device);
        let conv2 = Conv2d::new(10, 20, 5, &mut rng, device);
        let fc1 = Linear::new(config.classifier_features(), 50, &mut rng, device);
        let fc2 = Linear::new(50, config.classes, &mut rng, device);
        let stn = config.transform.map(|kind| {
            SpatialTransformer::new(1, config.input_size, kind, config.sampler, &mut rng, device)
        });
        Self {
            stn,
            conv1,
            conv2,
            fc1,
            fc2,
            config: config.clone(),
        }
    }

    /// The transformer's output for `x` (the input itself for the plain CNN).
    pub fn transform(&self, x: Tensor<4>) -> Tensor<4> {
        match &self.stn {
            Some(stn) => stn.forward(x),
            None => x,
        }
    }

    /// Class log-probabilities [N, classes] for images [N, 1, H, W].
    pub fn forward(&self, x: Tensor<4>, mode: &mut Mode) -> Tensor<2> {
        self.forward_with_params(x, mode).0
    }

    /// Class log-probabilities and the transformer's parameters (`None` for the plain CNN).
    pub fn forward_with_params(
        &self,
        x: Tensor<4>,
        mode: &mut Mode,
    ) -> (Tensor<2>, Option<Tensor<2>>) {
        match &self.stn {
            Some(stn) => {
                let (x, params) = stn.forward_with_params(x);
                (self.classify(x, mode), Some(params))
            }
            None => (self.classify(x, mode), None),
        }
    }

    /// The classifier alone, on already transformed images.
    pub fn classify(&self, x: Tensor<4>, mode: &mut Mode) -> Tensor<2> {
        let n = x.dims()[0];
        let x = crate::ops::to_blocked(x);
        let x = self.conv1.forward_pool_relu(x);
        // Channel dropout commutes with max pooling and ReLU (it scales whole channels by 0 or
        // 2), so it can follow the fused block: PyTorch's conv2 -> Dropout2d -> pool -> relu.
        let x = dropout::dropout2d(self.conv2.forward_pool_relu(x), n, DROPOUT, mode);
        let x = crate::ops::from_blocked(x, n);
        let x = relu(self.fc1.forward(x.flatten(1, 3)));
        let x = dropout::dropout(x, DROPOUT, mode);
        log_softmax(self.fc2.forward(x), 1)
    }
}

/// Mean negative log-likelihood of `targets` under `log_probs` [N, classes] (PyTorch's
/// `F.nll_loss`).
pub fn nll_loss(log_probs: Tensor<2>, targets: Tensor<1, Int>) -> Tensor<1> {
    let [n, _] = log_probs.dims();
    log_probs.gather(1, targets.reshape([n, 1])).mean().neg()
}
