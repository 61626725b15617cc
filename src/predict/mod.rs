//! Classifying people's own pictures of digits: decode ([`decode()`]), prepare like MNIST
//! ([`preprocess()`]), and run a trained network ([`Predictor`]), keeping what the spatial
//! transformer did (its parameters, its output image, its sampling grid) for showing.
//!
//! ```text
//! bytes ─decode─> image ─preprocess─> Digit (28x28, 0..1) ─Predictor─> Prediction
//! ```
//!
//! `stn predict` and `stn serve` are thin layers over this module.

pub mod decode;
pub mod files;
pub mod preprocess;

use std::path::Path;

use burn::tensor::{Device, Tensor, TensorData};
use serde::Serialize;
use serde::ser::{SerializeSeq, Serializer};

pub use decode::{DecodeError, decode};
pub use files::{FileResult, classify_files};
pub use preprocess::{Digit, PreprocessError, preprocess};

use stn::data::mnist::{MEAN, STD};
use stn::load::LoadError;
use stn::model::{Mode, Net};
use stn::transformer::TransformKind;

/// Why a picture could not be classified.
#[derive(Debug, thiserror::Error)]
pub enum ImageError {
    /// The bytes are not a readable image.
    #[error(transparent)]
    Decode(#[from] DecodeError),
    /// The image holds no digit.
    #[error(transparent)]
    Preprocess(#[from] PreprocessError),
}

/// Decodes and prepares one picture (the whole path from bytes to network input).
pub fn digit_from_bytes(bytes: &[u8]) -> Result<Digit, ImageError> {
    Ok(preprocess(&decode(bytes)?)?)
}

/// A network that cannot classify preprocessed 28x28 digits.
#[derive(Debug, thiserror::Error)]
pub enum PredictorError {
    /// The network takes inputs smaller than MNIST's digits.
    #[error("the model takes {h}x{w} images, smaller than the 28x28 digits it would be shown")]
    InputTooSmall {
        /// Input height.
        h: usize,
        /// Input width.
        w: usize,
    },
    /// The network takes images of several channels (the MNIST addition pairs): a picture of
    /// one digit is no input for it.
    #[error(
        "the model takes {channels}-channel images (one digit per channel, as the MNIST \
         addition pairs), not pictures of one digit: evaluate it with `stn eval`"
    )]
    Channels {
        /// Input channels.
        channels: usize,
    },
    /// The network has two transformers side by side (a 2xST network), which the
    /// predictions' single transform and grid cannot show.
    #[error("the model has {0} spatial transformers side by side; stn predict and serve show one")]
    Transformers(usize),
    /// The model could not be loaded.
    #[error(transparent)]
    Load(#[from] LoadError),
}

/// The transformer's parameters for one image.
#[derive(Clone, Debug, PartialEq)]
pub enum Theta {
    /// An affine transformer's matrix [[a, b, c], [d, e, f]]: the output pixel at normalized
    /// (x, y) samples the input at (a x + b y + c, d x + e y + f).
    Affine([[f32; 3]; 2]),
    /// The raw parameters of the other families: attention (s, tx, ty), projective (8), thin
    /// plate spline (2 g^2 control point coordinates).
    Params(Vec<f32>),
}

impl Serialize for Theta {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            Self::Affine(m) => m.serialize(s),
            Self::Params(p) => {
                let mut seq = s.serialize_seq(Some(p.len()))?;
                for v in p {
                    seq.serialize_element(v)?;
                }
                seq.end()
            }
        }
    }
}

/// A single-channel image with values in 0..1 (0 black).
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Gray {
    /// Width in pixels.
    pub width: usize,
    /// Height in pixels.
    pub height: usize,
    /// Row-major values.
    pub pixels: Vec<f32>,
}

/// Where the transformer reads its input: one point per output pixel, row-major, in input
/// pixel units with (0, 0) the input's top-left corner and (width, height) its bottom-right
/// corner (so the centre of input pixel (i, j) is at (j + 0.5, i + 0.5)).
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct SamplingGrid {
    /// Output width (points per row).
    pub width: usize,
    /// Output height (rows of points).
    pub height: usize,
    /// (x, y) per output pixel.
    pub points: Vec<[f32; 2]>,
}

/// What the network made of one digit.
#[derive(Clone, Debug)]
pub struct Prediction {
    /// The most probable class.
    pub class: usize,
    /// Probability of each class (they sum to 1).
    pub probabilities: Vec<f32>,
    /// The transformer's parameters (`None` for the plain CNN).
    pub theta: Option<Theta>,
    /// The network's input, de-normalized (0..1).
    pub input: Gray,
    /// The transformer's output, de-normalized (0..1); the input for the plain CNN.
    pub transformed: Gray,
    /// The transformer's sampling grid (`None` for the plain CNN).
    pub grid: Option<SamplingGrid>,
}

impl Prediction {
    /// Classes by decreasing probability, with their probabilities.
    pub fn ranked(&self) -> Vec<(usize, f32)> {
        let mut r: Vec<(usize, f32)> = self.probabilities.iter().copied().enumerate().collect();
        r.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
        r
    }
}

/// A trained network in evaluation mode, ready to classify preprocessed digits.
///
/// It holds no mutable state, so one predictor can serve many threads at once (it is `Sync`;
/// burn's tensors are reference-counted and copy on write).
#[derive(Debug, Clone)]
pub struct Predictor {
    net: Net,
    device: Device,
}

impl Predictor {
    /// Wraps a loaded network. Its input must be single-channel and at least 28x28: larger
    /// inputs (the paper's 42x42 and 60x60 datasets) get the digit in their centre.
    pub fn new(net: Net) -> Result<Self, PredictorError> {
        let [h, w] = net.config.input_size;
        if h < preprocess::SIDE || w < preprocess::SIDE {
            return Err(PredictorError::InputTooSmall { h, w });
        }
        if net.config.channels != 1 {
            return Err(PredictorError::Channels {
                channels: net.config.channels,
            });
        }
        if net.transformer2.is_some() {
            return Err(PredictorError::Transformers(net.config.transformers));
        }
        let device = net.device();
        Ok(Self { net, device })
    }

    /// Loads an stn checkpoint, a run folder, or the tutorial's PyTorch `.pt` (see
    /// [`stn::load::load`]).
    pub fn load(path: &Path, device: &Device) -> Result<Self, PredictorError> {
        let (net, _) = stn::load::load(path, device)?;
        Self::new(net)
    }

    /// The network.
    pub fn net(&self) -> &Net {
        &self.net
    }

    /// A short description: "st-affine", "cnn", ...
    pub fn name(&self) -> String {
        self.net.config.name()
    }

    /// The transformer's family (`None` for the plain CNN).
    pub fn transform(&self) -> Option<TransformKind> {
        self.net.config.transform
    }

    /// Classifies `digits` in one batch.
    pub fn predict(&self, digits: &[Digit]) -> Vec<Prediction> {
        if digits.is_empty() {
            return Vec::new();
        }
        let n = digits.len();
        let [h, w] = self.net.config.input_size;
        let input = self.inputs(digits);
        let x = Tensor::<4>::from_data(TensorData::new(input.clone(), [n, 1, h, w]), &self.device);
        let (out, params, grid) = match &self.net.transformer {
            Some(stn) => {
                let (out, params) = stn.forward_with_params(x);
                let grid = stn.grid(params.clone(), [h, w]);
                (out, Some(values(params)), Some(values(grid)))
            }
            None => (x, None, None),
        };
        let [_, _, oh, ow] = out.dims();
        let transformed = values(out.clone());
        let log_probs = values(self.net.classify(out, &mut Mode::Eval));
        let classes = self.net.config.classes;
        let denorm = |v: &[f32]| v.iter().map(|p| (p * STD + MEAN).clamp(0.0, 1.0)).collect();
        (0..n)
            .map(|i| {
                let probabilities: Vec<f32> = log_probs[i * classes..(i + 1) * classes]
                    .iter()
                    .map(|l| l.exp())
                    .collect();
                let class = probabilities
                    .iter()
                    .enumerate()
                    .max_by(|a, b| a.1.total_cmp(b.1).then(b.0.cmp(&a.0)))
                    .map_or(0, |(c, _)| c);
                let theta = params.as_ref().map(|p| {
                    let k = p.len() / n;
                    let p = &p[i * k..(i + 1) * k];
                    match self.net.config.transform {
                        Some(TransformKind::Affine) => {
                            Theta::Affine([[p[0], p[1], p[2]], [p[3], p[4], p[5]]])
                        }
                        _ => Theta::Params(p.to_vec()),
                    }
                });
                let grid = grid.as_ref().map(|g| {
                    let k = oh * ow * 2;
                    let points = g[i * k..(i + 1) * k]
                        .chunks_exact(2)
                        // Normalized [-1, 1] to input pixels (align_corners = false: -1 and 1
                        // are the outer edges of the border pixels).
                        .map(|xy| {
                            [
                                (xy[0] + 1.0) / 2.0 * w as f32,
                                (xy[1] + 1.0) / 2.0 * h as f32,
                            ]
                        })
                        .collect();
                    SamplingGrid {
                        width: ow,
                        height: oh,
                        points,
                    }
                });
                Prediction {
                    class,
                    probabilities,
                    theta,
                    input: Gray {
                        width: w,
                        height: h,
                        pixels: denorm(&input[i * h * w..(i + 1) * h * w]),
                    },
                    transformed: Gray {
                        width: ow,
                        height: oh,
                        pixels: denorm(&transformed[i * oh * ow..(i + 1) * oh * ow]),
                    },
                    grid,
                }
            })
            .collect()
    }

    /// Normalized network inputs [n, 1, h, w]: each digit centred in the model's input (the
    /// background elsewhere).
    fn inputs(&self, digits: &[Digit]) -> Vec<f32> {
        let [h, w] = self.net.config.input_size;
        let side = preprocess::SIDE;
        let (oy, ox) = ((h - side) / 2, (w - side) / 2);
        let background = (0.0 - MEAN) / STD;
        let mut out = vec![background; digits.len() * h * w];
        for (i, d) in digits.iter().enumerate() {
            let img = &mut out[i * h * w..(i + 1) * h * w];
            for (y, row) in d.normalized().chunks_exact(side).enumerate() {
                img[(oy + y) * w + ox..(oy + y) * w + ox + side].copy_from_slice(row);
            }
        }
        out
    }
}

/// A tensor's values as f32.
fn values<const D: usize>(t: Tensor<D>) -> Vec<f32> {
    t.into_data()
        .convert::<f32>()
        .try_into_vec::<f32>()
        .expect("converted to f32")
}

#[cfg(test)]
mod tests {
    use super::*;
    use stn::model::ModelConfig;

    fn assert_sync<T: Send + Sync>() {}

    #[test]
    fn predictor_can_be_shared_between_threads() {
        assert_sync::<Predictor>();
    }

    #[test]
    fn fresh_affine_net_predicts_with_identity_grid() {
        let device = Device::flex();
        let net = Net::new(&ModelConfig::tutorial(), 1, &device);
        let p = Predictor::new(net).unwrap();
        let mut d = Digit {
            pixels: [0.0; preprocess::PIXELS],
        };
        for y in 4..24 {
            d.pixels[y * 28 + 14] = 1.0;
        }
        let out = p.predict(&[d.clone(), d]);
        assert_eq!(out.len(), 2);
        let pr = &out[0];
        let sum: f32 = pr.probabilities.iter().sum();
        assert!((sum - 1.0).abs() < 1e-4);
        assert_eq!(pr.ranked()[0].0, pr.class);
        // A fresh transformer is the identity: theta = [[1,0,0],[0,1,0]], the grid passes
        // through the pixel centres, and the output is the input.
        assert_eq!(
            pr.theta,
            Some(Theta::Affine([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]]))
        );
        let g = pr.grid.as_ref().unwrap();
        assert_eq!((g.width, g.height, g.points.len()), (28, 28, 784));
        assert!((g.points[0][0] - 0.5).abs() < 1e-5 && (g.points[0][1] - 0.5).abs() < 1e-5);
        assert!((g.points[783][0] - 27.5).abs() < 1e-4);
        let diff = pr
            .input
            .pixels
            .iter()
            .zip(&pr.transformed.pixels)
            .map(|(a, b)| (a - b).abs())
            .fold(0.0, f32::max);
        assert!(diff < 1e-4, "{diff}");
        assert!((pr.input.pixels[4 * 28 + 14] - 1.0).abs() < 1e-5);
    }

    #[test]
    fn plain_cnn_and_larger_inputs() {
        let device = Device::flex();
        let cnn = Net::new(&ModelConfig::new([28, 28], None, None, false), 1, &device);
        let out = Predictor::new(cnn)
            .unwrap()
            .predict(&[Digit { pixels: [0.5; 784] }]);
        assert!(out[0].theta.is_none() && out[0].grid.is_none());
        let tps = ModelConfig::new(
            [42, 42],
            Some(TransformKind::Tps { grid: 4 }),
            Some(21),
            false,
        );
        let out = Predictor::new(Net::new(&tps, 1, &device))
            .unwrap()
            .predict(&[Digit { pixels: [1.0; 784] }]);
        let pr = &out[0];
        assert!(matches!(&pr.theta, Some(Theta::Params(p)) if p.len() == 32));
        assert_eq!((pr.input.width, pr.transformed.width), (42, 21));
        // The digit sits in the middle of the larger field, background around it.
        assert_eq!(pr.input.pixels[0], 0.0);
        assert!((pr.input.pixels[21 * 42 + 21] - 1.0).abs() < 1e-5);
        let small = ModelConfig::new([20, 20], None, None, false);
        assert!(Predictor::new(Net::new(&small, 1, &device)).is_err());
    }
}
