//! What a network is: the architecture every checkpoint records.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::layers::conv_pool_size;
use crate::transformer::{SamplerConfig, TransformKind};

/// Everything that determines a network's architecture; stored in every checkpoint.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ModelConfig {
    /// Input [height, width].
    pub input_size: [usize; 2],
    /// Input channels (1 but for the MNIST addition pairs' 2). Left out of the JSON when 1, so
    /// single-channel checkpoints read and write as before it existed.
    #[serde(default = "one", skip_serializing_if = "is_one")]
    pub channels: usize,
    /// Spatial transformers side by side in front of the classifier (with a transform): 1, or 2
    /// for the paper's 2xST networks, whose transformers each see every input channel and
    /// whose outputs are concatenated along the channels. Left out of the JSON when 1.
    #[serde(default = "one", skip_serializing_if = "is_one")]
    pub transformers: usize,
    /// The transformer's family, or `None` for the plain CNN.
    pub transform: Option<TransformKind>,
    /// The transformer's sampler.
    pub sampler: SamplerConfig,
    /// Number of classes.
    pub classes: usize,
    /// The network family (checkpoints written before it existed hold the tutorial's).
    #[serde(default)]
    pub arch: Arch,
}

fn one() -> usize {
    1
}

fn is_one(n: &usize) -> bool {
    *n == 1
}

/// The network family around the transformer.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Arch {
    /// The PyTorch tutorial's: conv 5x5 (10) -> conv 5x5 (20) -> fc 50 -> classes, with dropout;
    /// localization conv 7x7 (8) -> conv 5x5 (10) -> fc 32 -> parameters.
    #[default]
    Tutorial,
    /// The paper's CNN (Jaderberg et al. 2015, appendix A): conv 9x9 -> conv 7x7 -> classes,
    /// each convolution zero-padded to keep its input size, then 2x2 max-pooled and ReLU; no
    /// dropout. Its ST-CNN localization: conv 5x5 (20) -> conv 5x5 (20) -> fc 20 -> parameters.
    Cnn {
        /// Filters of the two convolutions.
        filters: [usize; 2],
    },
    /// The paper's FCN: fc -> fc -> classes with ReLU, no dropout. Its ST-FCN localization:
    /// fc 32 -> fc 32 -> fc 32 -> parameters.
    Fcn {
        /// Units of the two hidden layers.
        hidden: usize,
    },
}

/// One convolution block: a convolution of `filters` kernels of side `kernel` over the input
/// zero-padded by `pad` on every side, then 2x2 max pooling and ReLU.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ConvBlock {
    /// Output channels.
    pub filters: usize,
    /// Kernel side.
    pub kernel: usize,
    /// Zero padding on each side.
    pub pad: usize,
}

impl ConvBlock {
    const fn new(filters: usize, kernel: usize, pad: usize) -> Self {
        Self {
            filters,
            kernel,
            pad,
        }
    }

    /// Output side for an input side `s`.
    pub fn side(&self, s: usize) -> usize {
        conv_pool_size(s + 2 * self.pad, self.kernel)
    }
}

/// The localization network of an [`Arch`]: convolution blocks or hidden linear layers, then
/// the regression head's hidden layer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LocalizationLayout {
    /// Convolution blocks (valid convolutions).
    pub convs: Vec<ConvBlock>,
    /// Hidden linear layers before the head (fully connected localization).
    pub linear: Vec<usize>,
    /// The regression head's hidden units.
    pub head: usize,
}

impl Arch {
    /// The classifier's convolution blocks.
    pub fn convs(self) -> Vec<ConvBlock> {
        match self {
            Arch::Tutorial => vec![ConvBlock::new(10, 5, 0), ConvBlock::new(20, 5, 0)],
            Arch::Cnn { filters: [a, b] } => vec![ConvBlock::new(a, 9, 4), ConvBlock::new(b, 7, 3)],
            Arch::Fcn { .. } => Vec::new(),
        }
    }

    /// The classifier's hidden linear layers (after the convolutions).
    pub fn hidden(self) -> Vec<usize> {
        match self {
            Arch::Tutorial => vec![50],
            Arch::Cnn { .. } => Vec::new(),
            Arch::Fcn { hidden } => vec![hidden, hidden],
        }
    }

    /// Whether the classifier uses the tutorial's dropout.
    pub fn dropout(self) -> bool {
        self == Arch::Tutorial
    }

    /// The localization network a transformer in front of this classifier gets.
    pub fn localization(self) -> LocalizationLayout {
        match self {
            Arch::Tutorial => LocalizationLayout {
                convs: vec![ConvBlock::new(8, 7, 0), ConvBlock::new(10, 5, 0)],
                linear: Vec::new(),
                head: 32,
            },
            Arch::Cnn { .. } => LocalizationLayout {
                convs: vec![ConvBlock::new(20, 5, 0), ConvBlock::new(20, 5, 0)],
                linear: Vec::new(),
                head: 20,
            },
            Arch::Fcn { .. } => LocalizationLayout {
                convs: Vec::new(),
                linear: vec![32, 32],
                head: 32,
            },
        }
    }

    /// "cnn" or "fcn" for the paper's families, "tutorial" otherwise.
    pub fn family(self) -> &'static str {
        match self {
            Arch::Tutorial => "tutorial",
            Arch::Cnn { .. } => "cnn",
            Arch::Fcn { .. } => "fcn",
        }
    }
}

impl LocalizationLayout {
    /// Features entering the regression head for `channels` x `size` inputs.
    pub fn features(&self, channels: usize, size: [usize; 2]) -> usize {
        if let Some(&last) = self.linear.last() {
            return last;
        }
        let mut s = size;
        let mut c = channels;
        for b in &self.convs {
            s = s.map(|v| b.side(v));
            c = b.filters;
        }
        c * s[0] * s[1]
    }
}

impl ModelConfig {
    /// The PyTorch tutorial's network: affine STN on 28x28 MNIST, bilinear, zero padding,
    /// align_corners = false.
    pub fn tutorial() -> Self {
        Self {
            input_size: [28, 28],
            channels: 1,
            transformers: 1,
            transform: Some(TransformKind::Affine),
            sampler: SamplerConfig::default(),
            classes: 10,
            arch: Arch::Tutorial,
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
            channels: 1,
            transformers: 1,
            transform,
            sampler,
            classes: 10,
            arch: Arch::Tutorial,
        }
    }

    /// The same network with the classifier (and localization network) of `arch`.
    pub fn with_arch(self, arch: Arch) -> Self {
        Self { arch, ..self }
    }

    /// The same network for images of `channels` channels.
    pub fn with_channels(self, channels: usize) -> Self {
        Self { channels, ..self }
    }

    /// The same network with `transformers` spatial transformers side by side (2: the
    /// paper's 2xST networks).
    pub fn with_transformers(self, transformers: usize) -> Self {
        Self {
            transformers,
            ..self
        }
    }

    /// The same network with `classes` classes.
    pub fn with_classes(self, classes: usize) -> Self {
        Self { classes, ..self }
    }

    /// A short name: "cnn", "st-affine", "st-tps16", ... for the tutorial's family;
    /// "paper-cnn", "paper-st-cnn-affine", "paper-st-fcn-tps16", ... for the paper's, and
    /// "paper-2xst-fcn-affine", ... with two transformers.
    pub fn name(&self) -> String {
        let kind = |k: TransformKind| match k {
            TransformKind::Tps { grid } => format!("tps{}", grid * grid),
            k => k.name().to_string(),
        };
        let st = match self.transformers {
            1 => "st".to_string(),
            n => format!("{n}xst"),
        };
        match (self.arch, self.transform) {
            (Arch::Tutorial, None) => "cnn".into(),
            (Arch::Tutorial, Some(k)) => format!("{st}-{}", kind(k)),
            (a, None) => format!("paper-{}", a.family()),
            (a, Some(k)) => format!("paper-{st}-{}-{}", a.family(), kind(k)),
        }
    }

    /// Channels the classifier sees: the input's, times the number of transformers when
    /// there are transformers (their outputs are concatenated).
    pub fn classifier_channels(&self) -> usize {
        match self.transform {
            Some(_) => self.channels * self.transformers,
            None => self.channels,
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
        let mut s = self.classifier_input();
        let mut c = self.classifier_channels();
        for b in self.arch.convs() {
            s = s.map(|v| b.side(v));
            c = b.filters;
        }
        c * s[0] * s[1]
    }

    /// Features entering the transformer's regression head.
    pub fn localization_features(&self) -> usize {
        self.arch
            .localization()
            .features(self.channels, self.input_size)
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
        let mut c = self.classifier_channels();
        for (i, b) in self.arch.convs().iter().enumerate() {
            layer(
                &format!("conv{}", i + 1),
                vec![b.filters, c, b.kernel, b.kernel],
            );
            c = b.filters;
        }
        let mut d = self.classifier_features();
        for (i, &h) in self.arch.hidden().iter().enumerate() {
            layer(&format!("fc{}", i + 1), vec![h, d]);
            d = h;
        }
        layer(
            &format!("fc{}", self.arch.hidden().len() + 1),
            vec![self.classes, d],
        );
        if let Some(kind) = self.transform {
            let loc = self.arch.localization();
            let [h, w] = self.input_size;
            for t in 0..self.transformers {
                let p = super::state::transformer_prefix(t);
                // PyTorch names of the tutorial's Sequential (conv, pool, relu, conv, ...).
                let mut c = self.channels;
                for (i, b) in loc.convs.iter().enumerate() {
                    layer(
                        &format!("{p}localization.{}", 3 * i),
                        vec![b.filters, c, b.kernel, b.kernel],
                    );
                    c = b.filters;
                }
                let mut d = self.channels * h * w;
                for (i, &u) in loc.linear.iter().enumerate() {
                    layer(&format!("{p}localization.fc{}", i + 1), vec![u, d]);
                    d = u;
                }
                layer(
                    &format!("{p}fc_loc.0"),
                    vec![loc.head, self.localization_features()],
                );
                layer(&format!("{p}fc_loc.2"), vec![kind.num_params(), loc.head]);
            }
        }
        shapes
    }

    /// Number of trainable parameters.
    pub fn parameter_count(&self) -> usize {
        self.parameter_shapes()
            .values()
            .map(|s| s.iter().product::<usize>())
            .sum()
    }

    /// Checks that single-channel images of `size` [height, width] fit the network.
    pub fn check_input(&self, size: [usize; 2]) -> Result<(), InputSizeError> {
        self.check_images(1, size)
    }

    /// Checks that images of `channels` channels of `size` [height, width] fit the network.
    pub fn check_images(&self, channels: usize, size: [usize; 2]) -> Result<(), InputSizeError> {
        if size == self.input_size && channels == self.channels {
            Ok(())
        } else {
            Err(InputSizeError {
                model: self.input_size,
                data: size,
                model_channels: self.channels,
                data_channels: channels,
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
        if !(1..=MAX_CHANNELS).contains(&self.channels) {
            return Err(format!(
                "{} input channels: between 1 and {MAX_CHANNELS} are supported",
                self.channels
            ));
        }
        if !(1..=MAX_TRANSFORMERS).contains(&self.transformers) {
            return Err(format!(
                "{} spatial transformers: between 1 and {MAX_TRANSFORMERS} are supported",
                self.transformers
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
        let too_many = |n: usize| n == 0 || n > MAX_WIDTH;
        let widths = match self.arch {
            Arch::Tutorial => Vec::new(),
            Arch::Cnn { filters } => filters.to_vec(),
            Arch::Fcn { hidden } => vec![hidden],
        };
        if widths.into_iter().any(too_many) {
            return Err(format!(
                "{:?}: layers need between 1 and {MAX_WIDTH} filters or units",
                self.arch
            ));
        }
        if self.transform.is_some() && self.localization_features() == 0 {
            return Err(format!(
                "input {h}x{w} is too small for the localization network (the tutorial's needs at least 26x26)"
            ));
        }
        if self.classifier_features() == 0 {
            let [h, w] = self.classifier_input();
            return Err(format!(
                "classifier input {h}x{w} is too small for its convolutions (the tutorial's needs at least 16x16)"
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

/// Most filters or units a layer of the paper's families may have.
pub const MAX_WIDTH: usize = 4096;
/// Largest image side (input or sampler output) a network may have.
pub const MAX_SIDE: usize = 4096;
/// Largest number of classes.
pub const MAX_CLASSES: usize = 1000;
/// Most input channels a network may take.
pub const MAX_CHANNELS: usize = 16;
/// Most spatial transformers side by side.
pub const MAX_TRANSFORMERS: usize = 2;
/// Largest thin-plate spline control grid side.
pub const MAX_TPS_GRID: usize = 32;

/// Images of another size (or number of channels) than a network takes.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("the model takes {} images but the data has {}", shape(*model_channels, *model), shape(*data_channels, *data))]
pub struct InputSizeError {
    /// The network's input [height, width].
    pub model: [usize; 2],
    /// The data's image [height, width].
    pub data: [usize; 2],
    /// The network's input channels.
    pub model_channels: usize,
    /// The data's channels.
    pub data_channels: usize,
}

/// "28x28" for one channel, "2x42x42" for several.
fn shape(channels: usize, [h, w]: [usize; 2]) -> String {
    if channels == 1 {
        format!("{h}x{w}")
    } else {
        format!("{channels}x{h}x{w}")
    }
}

/// The normalized value of a black MNIST pixel, (0 - mean) / std: what a sampler should read
/// outside the image for the padding to look like background.
pub const BACKGROUND: f32 = (0.0 - crate::data::mnist::MEAN) / crate::data::mnist::STD;
