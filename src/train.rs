//! Training and evaluation: the tutorial's loop (SGD on shuffled mini-batches, test loss and
//! accuracy after every epoch), with a checkpoint at the end of every epoch and exact resume.
//!
//! A plain loop rather than burn-train's `Learner`: every random draw (shuffling, dropout)
//! comes from our own generators whose state is checkpointed, so an interrupted run resumes to
//! the same weights bit for bit, and nothing runs between steps that the step does not need.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

use burn::module::Module;
use burn::tensor::{Device, Int, Tensor, TensorData};
use serde::{Deserialize, Serialize};

use crate::checkpoint::{Checkpoint, CheckpointError, write_atomic};
use crate::data::mnist::{MEAN, STD, normalization_lut};
use crate::data::{Dataset, ImageSet};
use crate::model::state::{StateError, fresh_leaves, load_state_dict, named_gradients, state_dict};
use crate::model::{Mode, ModelConfig, Net, nll_loss};
use crate::optim::{Sgd, SgdConfig};
use crate::rng::Rng;

/// Hyper-parameters and data selection of a training run (the tutorial's by default).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TrainConfig {
    /// Epochs to train in total.
    pub epochs: usize,
    /// Training mini-batch size.
    pub batch_size: usize,
    /// Evaluation batch size (does not change results).
    pub eval_batch_size: usize,
    /// Optimizer settings.
    pub sgd: SgdConfig,
    /// Seed of initialization, shuffling and dropout.
    pub seed: u64,
    /// Log a line every this many batches (the tutorial: 500).
    pub log_interval: usize,
    /// Divide the learning rate by 10 every this many epochs (`None`: constant, the
    /// tutorial's).
    #[serde(default)]
    pub lr_step: Option<usize>,
}

impl Default for TrainConfig {
    fn default() -> Self {
        Self {
            epochs: 20,
            batch_size: 64,
            eval_batch_size: 1000,
            sgd: SgdConfig::plain(0.01),
            seed: 1,
            log_interval: 500,
            lr_step: None,
        }
    }
}

impl TrainConfig {
    /// Checks the values a user can set.
    pub fn validate(&self) -> Result<(), String> {
        if self.epochs == 0 {
            return Err("--epochs must be at least 1".into());
        }
        if self.batch_size == 0 {
            return Err("--batch-size must be at least 1".into());
        }
        if self.eval_batch_size == 0 {
            return Err("--eval-batch-size must be at least 1".into());
        }
        let s = &self.sgd;
        if !(s.lr.is_finite() && s.lr > 0.0) {
            return Err(format!("--lr must be a positive number, got {}", s.lr));
        }
        if !(s.momentum.is_finite() && (0.0..1.0).contains(&s.momentum)) {
            return Err(format!("--momentum must be in [0, 1), got {}", s.momentum));
        }
        if !(s.weight_decay.is_finite() && s.weight_decay >= 0.0) {
            return Err(format!(
                "--weight-decay must be >= 0, got {}",
                s.weight_decay
            ));
        }
        if !(s.loc_lr_scale.is_finite() && s.loc_lr_scale >= 0.0) {
            return Err(format!(
                "--loc-lr-scale must be >= 0, got {}",
                s.loc_lr_scale
            ));
        }
        if self.lr_step == Some(0) {
            return Err("--lr-step must be at least 1".into());
        }
        Ok(())
    }

    /// The optimizer settings for `epoch` (from 1), with the learning-rate schedule applied.
    pub fn sgd_at(&self, epoch: usize) -> SgdConfig {
        let steps = self.lr_step.map_or(0, |k| (epoch.max(1) - 1) / k);
        SgdConfig {
            lr: self.sgd.lr * 0.1f64.powi(steps as i32),
            ..self.sgd
        }
    }
}

/// Metrics of one epoch, one line of `metrics.jsonl`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct EpochMetrics {
    /// Epoch number, from 1.
    pub epoch: usize,
    /// Mean training loss over the epoch's batches.
    pub train_loss: f64,
    /// Mean test loss per image.
    pub test_loss: f64,
    /// Fraction of test images classified correctly.
    pub test_accuracy: f64,
    /// Seconds spent in training steps (evaluation excluded).
    pub train_seconds: f64,
    /// Training images per second.
    pub images_per_second: f64,
}

/// Where a run stands: everything besides the weights that resuming needs.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Progress {
    /// The run's settings.
    pub config: TrainConfig,
    /// The data the run trains on.
    pub data: DataSpec,
    /// Completed epochs.
    pub epochs_done: usize,
    /// Shuffling generator, as after the last completed epoch.
    pub shuffle_rng: Rng,
    /// Dropout generator, as after the last completed epoch.
    pub dropout_rng: Rng,
    /// Metrics of the completed epochs.
    pub metrics: Vec<EpochMetrics>,
}

/// Where a run's data comes from, recorded so that `--resume` finds it again.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct DataSpec {
    /// A folder of MNIST-format files, or a generated dataset (see `stn data`).
    pub source: crate::data::Source,
    /// Use only the first N training images.
    pub limit_train: Option<usize>,
    /// Use only the first N test images.
    pub limit_test: Option<usize>,
}

/// Why training stopped early.
#[derive(Debug, thiserror::Error)]
pub enum TrainError {
    /// The loss or the transformation became NaN or infinite.
    #[error(
        "training diverged at epoch {epoch}, batch {batch}: {what} is {value}; the checkpoint of the last good epoch ({epochs_done}) is kept — try a smaller --lr"
    )]
    Diverged {
        /// Epoch of the bad batch.
        epoch: usize,
        /// Index of the bad batch in the epoch.
        batch: usize,
        /// "the loss" or "theta".
        what: &'static str,
        /// The bad value.
        value: f32,
        /// Epochs completed and checkpointed.
        epochs_done: usize,
    },
    /// Writing the run folder failed.
    #[error(transparent)]
    Checkpoint(#[from] CheckpointError),
    /// Writing another file failed.
    #[error("{}: {source}", path.display())]
    Io {
        /// The path.
        path: PathBuf,
        /// The error.
        source: std::io::Error,
    },
    /// A resumed checkpoint does not fit.
    #[error("{}: {source}", path.display())]
    State {
        /// The checkpoint.
        path: PathBuf,
        /// What does not fit.
        source: StateError,
    },
}

/// How a run ended.
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    /// All epochs done.
    Completed,
    /// Stopped on request (Ctrl-C) after this many checkpointed epochs.
    Interrupted {
        /// Completed epochs.
        epochs_done: usize,
    },
}

/// Receives what a run does, to show it (the CLI prints progress bars and the tutorial's log).
pub trait Observer {
    /// An epoch of `batches` batches begins.
    fn epoch_start(&mut self, _epoch: usize, _batches: usize) {}
    /// A training batch finished.
    fn batch(
        &mut self,
        _epoch: usize,
        _batch: usize,
        _images_done: usize,
        _images: usize,
        _loss: f32,
    ) {
    }
    /// An epoch ended and was checkpointed.
    fn epoch_end(&mut self, _metrics: &EpochMetrics, _test_images: usize) {}
}

/// An observer that shows nothing.
pub struct Silent;
impl Observer for Silent {}

/// Name of the checkpoint file in a run folder.
pub const CHECKPOINT_FILE: &str = "checkpoint.stn";
/// Name of the metrics file in a run folder.
pub const METRICS_FILE: &str = "metrics.jsonl";

/// A training run in progress.
pub struct Trainer {
    /// The network (on an autodiff device).
    pub net: Net,
    sgd: Sgd,
    progress: Progress,
    device: Device,
    out: PathBuf,
}

impl Trainer {
    /// A new run writing into `out`, with a freshly initialized network.
    pub fn new(
        model: &ModelConfig,
        config: TrainConfig,
        data: DataSpec,
        device: &Device,
        out: &Path,
    ) -> Self {
        let device = device.clone().autodiff();
        let net = Net::new(model, config.seed, &device);
        let progress = Progress {
            shuffle_rng: Rng::derive(config.seed, "shuffle"),
            dropout_rng: Rng::derive(config.seed, "dropout"),
            config,
            data,
            epochs_done: 0,
            metrics: Vec::new(),
        };
        Self {
            net,
            sgd: Sgd::new(),
            progress,
            device,
            out: out.to_path_buf(),
        }
    }

    /// Resumes the run whose checkpoint is `checkpoint`, writing into `out`.
    pub fn resume(
        checkpoint: Checkpoint,
        path: &Path,
        device: &Device,
        out: &Path,
    ) -> Result<Self, TrainError> {
        let device = device.clone().autodiff();
        let progress = checkpoint.progress.ok_or_else(|| TrainError::State {
            path: path.to_path_buf(),
            source: StateError::Missing(
                "training progress (this checkpoint holds a bare model)".into(),
            ),
        })?;
        let net = Net::new(&checkpoint.model, progress.config.seed, &device);
        let net = load_state_dict(net, &checkpoint.params).map_err(|source| TrainError::State {
            path: path.to_path_buf(),
            source,
        })?;
        Ok(Self {
            net,
            sgd: Sgd::from_state(&checkpoint.momentum, &device),
            progress,
            device,
            out: out.to_path_buf(),
        })
    }

    /// The run's progress so far.
    pub fn progress(&self) -> &Progress {
        &self.progress
    }

    /// Changes the total number of epochs (to extend a resumed run).
    pub fn set_epochs(&mut self, epochs: usize) {
        self.progress.config.epochs = epochs;
    }

    /// The checkpoint of the current state.
    pub fn checkpoint(&self) -> Checkpoint {
        Checkpoint {
            model: self.net.config.clone(),
            params: state_dict(&self.net),
            momentum: self.sgd.state(),
            progress: Some(self.progress.clone()),
        }
    }

    /// Trains the remaining epochs. Stops after the current batch when `stop` becomes true,
    /// keeping the checkpoint of the last completed epoch.
    pub fn run(
        &mut self,
        data: &Dataset,
        observer: &mut dyn Observer,
        stop: &AtomicBool,
    ) -> Result<Outcome, TrainError> {
        while self.progress.epochs_done < self.progress.config.epochs {
            let epoch = self.progress.epochs_done + 1;
            // Work on copies of the generators: an interrupted epoch leaves the checkpointed
            // state untouched.
            let mut shuffle_rng = self.progress.shuffle_rng.clone();
            let mut dropout_rng = self.progress.dropout_rng.clone();
            let order = shuffle_rng.permutation(data.train.len());
            let batches = order.len().div_ceil(self.progress.config.batch_size);
            observer.epoch_start(epoch, batches);
            let started = Instant::now();
            let Some(loss_sum) =
                self.train_steps(&data.train, &order, &mut dropout_rng, observer, stop)?
            else {
                return Ok(Outcome::Interrupted {
                    epochs_done: self.progress.epochs_done,
                });
            };
            let train_seconds = started.elapsed().as_secs_f64();

            let (test_loss, correct) = evaluate(
                &self.net.valid(),
                &data.test,
                self.progress.config.eval_batch_size,
            );
            let metrics = EpochMetrics {
                epoch,
                train_loss: loss_sum / batches as f64,
                test_loss,
                test_accuracy: correct as f64 / data.test.len() as f64,
                train_seconds,
                images_per_second: order.len() as f64 / train_seconds,
            };
            self.progress.epochs_done = epoch;
            self.progress.shuffle_rng = shuffle_rng;
            self.progress.dropout_rng = dropout_rng;
            self.progress.metrics.push(metrics.clone());
            self.save()?;
            observer.epoch_end(&metrics, data.test.len());
        }
        Ok(Outcome::Completed)
    }

    /// One SGD step per mini-batch of `order` (indices into `set`), the real training path
    /// that `run` and `stn bench train` share. Returns the summed batch losses, or `None` if
    /// `stop` was raised, in which case the network and optimizer are left as they were.
    pub fn train_steps(
        &mut self,
        set: &ImageSet,
        order: &[usize],
        dropout_rng: &mut Rng,
        observer: &mut dyn Observer,
        stop: &AtomicBool,
    ) -> Result<Option<f64>, TrainError> {
        let lut = normalization_lut(MEAN, STD);
        let epoch = self.progress.epochs_done + 1;
        let batch_size = self.progress.config.batch_size;
        let sgd_config = self.progress.config.sgd_at(epoch);
        let mut net = self.net.clone();
        let mut sgd = self.sgd.clone();
        let mut loss_sum = 0.0f64;
        for (b, idx) in order.chunks(batch_size).enumerate() {
            if stop.load(Ordering::Relaxed) {
                return Ok(None);
            }
            let step = data_parallel_step(&net, set, idx, &lut, dropout_rng, &self.device);
            let diverged = |what, value| TrainError::Diverged {
                epoch,
                batch: b,
                what,
                value,
                epochs_done: self.progress.epochs_done,
            };
            if !step.loss.is_finite() {
                return Err(diverged("the loss", step.loss));
            }
            if !step.theta_max.is_finite() {
                return Err(diverged("theta", step.theta_max));
            }
            net = sgd.step(&sgd_config, net, &step.grads);
            loss_sum += step.loss as f64;
            let done = (b * batch_size + idx.len()).min(order.len());
            observer.batch(epoch, b, done, order.len(), step.loss);
        }
        self.net = net;
        self.sgd = sgd;
        Ok(Some(loss_sum))
    }

    /// Writes the checkpoint and the metrics file (both atomically).
    pub fn save(&self) -> Result<(), TrainError> {
        self.checkpoint().save(&self.out.join(CHECKPOINT_FILE))?;
        let mut lines = String::new();
        for m in &self.progress.metrics {
            lines.push_str(&serde_json::to_string(m).expect("metrics serialize"));
            lines.push('\n');
        }
        let path = self.out.join(METRICS_FILE);
        write_atomic(&path, lines.as_bytes()).map_err(|source| TrainError::Io { path, source })
    }
}

/// The loss, the largest |theta| and the gradients of one mini-batch.
struct Step {
    loss: f32,
    theta_max: f32,
    grads: BTreeMap<String, Tensor<1>>,
}

/// Forward and backward of the images at `idx` (mean NLL loss), on this thread.
fn half_step(
    net: &Net,
    set: &ImageSet,
    idx: &[usize],
    lut: &[f32; 256],
    rng: &mut Rng,
    device: &Device,
) -> Step {
    let (mut images, mut labels) = (Vec::new(), Vec::new());
    set.gather(idx, lut, &mut images, &mut labels);
    let (x, y) = batch_tensors(set, &images, &labels, device);
    let (log_probs, theta) = net.forward_with_params(x, &mut Mode::Train(rng));
    let loss = nll_loss(log_probs, y);
    let theta_max = theta.map_or(0.0, |t| t.abs().max().into_scalar());
    let value: f32 = loss.clone().into_scalar();
    let grads = loss.backward();
    Step {
        loss: value,
        theta_max,
        grads: named_gradients(net, &grads),
    }
}

/// One mini-batch, split in two halves that run forward and backward on the two cores at once
/// (each on its own autodiff graph), their gradients then averaged with the halves' weights:
/// the gradient of the whole batch's mean loss. Threads hand work back and forth far less this
/// way than when every kernel splits itself. Deterministic: the split, the halves' dropout
/// generators and the order of the sums are fixed.
fn data_parallel_step(
    net: &Net,
    set: &ImageSet,
    idx: &[usize],
    lut: &[f32; 256],
    rng: &mut Rng,
    device: &Device,
) -> Step {
    // Halves of whole blocks of 8 images (the convolution kernels' vector width).
    let half = idx.len().div_ceil(16) * 8;
    // Split whatever the thread count (one thread runs the halves in turn), so results do not
    // depend on it.
    if idx.len() < 16 {
        return half_step(net, set, idx, lut, rng, device);
    }
    let (ia, ib) = idx.split_at(half);
    let mut rng_b = Rng::new(rng.next_u64());
    let (net_a, net_b) = (net.clone(), fresh_leaves(net.clone()));
    let (a, b) = rayon::join(
        move || half_step(&net_a, set, ia, lut, rng, device),
        move || half_step(&net_b, set, ib, lut, &mut rng_b, device),
    );
    let (wa, wb) = (
        ia.len() as f64 / idx.len() as f64,
        ib.len() as f64 / idx.len() as f64,
    );
    let mut grads_b = b.grads;
    let grads = a
        .grads
        .into_iter()
        .map(|(name, ga)| {
            // Taken, not cloned: a sole owner lets the backend reuse the buffer.
            let g = match grads_b.remove(&name) {
                Some(gb) => ga * wa + gb * wb,
                None => ga * wa,
            };
            (name, g)
        })
        .collect();
    Step {
        loss: (wa * a.loss as f64 + wb * b.loss as f64) as f32,
        theta_max: a.theta_max.max(b.theta_max),
        grads,
    }
}

/// Uploads a gathered batch: images [n, 1, rows, cols] and labels [n].
pub fn batch_tensors(
    set: &ImageSet,
    images: &[f32],
    labels: &[i64],
    device: &Device,
) -> (Tensor<4>, Tensor<1, Int>) {
    let n = labels.len();
    let x = Tensor::from_data(
        TensorData::new(images.to_vec(), [n, 1, set.rows, set.cols]),
        device,
    );
    let y = Tensor::from_data(TensorData::new(labels.to_vec(), [n]), device);
    (x, y)
}

/// Mean test loss per image and number of correct predictions of `net` (eval mode) on `set`.
pub fn evaluate(net: &Net, set: &ImageSet, batch_size: usize) -> (f64, usize) {
    let lut = normalization_lut(MEAN, STD);
    let device = net.conv1.weight.val().device();
    let (mut images, mut labels) = (Vec::new(), Vec::new());
    let (mut loss_sum, mut correct) = (0.0f64, 0usize);
    let indices: Vec<usize> = (0..set.len()).collect();
    for idx in indices.chunks(batch_size.max(1)) {
        set.gather(idx, &lut, &mut images, &mut labels);
        let (x, y) = batch_tensors(set, &images, &labels, &device);
        let log_probs = net.forward(x, &mut Mode::Eval);
        let n = idx.len();
        let loss: f32 = nll_loss(log_probs.clone(), y.clone()).into_scalar();
        loss_sum += loss as f64 * n as f64;
        let hits: i64 = log_probs
            .argmax(1)
            .reshape([n])
            .equal(y)
            .int()
            .sum()
            .into_scalar();
        correct += hits as usize;
    }
    (loss_sum / set.len() as f64, correct)
}
