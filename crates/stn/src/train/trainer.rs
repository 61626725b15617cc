//! A training run in progress: the epoch loop and checkpoints, and how a run reports and
//! fails.

use std::borrow::Cow;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

use burn::module::Module;
use burn::tensor::Device;

use super::evaluate::evaluate;
use super::step::{Dropout, data_parallel_step};
use crate::atomic_file::write_atomic;
use crate::checkpoint::{Checkpoint, CheckpointError};
use crate::data::mnist::{MEAN, STD, normalization_lut};
use crate::data::{Dataset, ImageSet};
use crate::model::state::state_dict;
use crate::model::{BuildError, InputSizeError, ModelConfig, Net};
use crate::optim::Sgd;
use crate::rng::Rng;
use crate::run::{CHECKPOINT_FILE, DataSpec, EpochMetrics, METRICS_FILE, Progress, TrainConfig};

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
    /// A checkpoint to resume holds a bare model.
    #[error("{}: holds no training progress to resume (a bare model)", path.display())]
    NoProgress {
        /// The checkpoint.
        path: PathBuf,
    },
    /// A resumed checkpoint does not make a network.
    #[error("{}: {source}", path.display())]
    Build {
        /// The checkpoint.
        path: PathBuf,
        /// What is wrong.
        source: BuildError,
    },
    /// The data's images are not the size the network takes.
    #[error("{which} set: {source}")]
    DataSize {
        /// "training" or "test".
        which: &'static str,
        /// The sizes.
        source: InputSizeError,
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
    /// After [`Observer::epoch_end`]: the network as it is now (eval mode), the test set and
    /// every epoch's metrics so far, for pictures of the run (the CLI draws them here). Called
    /// after the checkpoint is written, so nothing it does can lose a completed epoch.
    fn epoch_network(&mut self, _net: &Net, _test: &ImageSet, _history: &[EpochMetrics]) {}
    /// Something went wrong that does not stop training (a picture of the run could not be
    /// written).
    fn warning(&mut self, _message: &str) {}
}

/// An observer that shows nothing.
pub struct Silent;
impl Observer for Silent {}

/// A training run in progress.
pub struct Trainer {
    /// The network (on an autodiff device).
    pub net: Net,
    sgd: Sgd,
    pub(super) progress: Progress,
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
        let build_error = |source| TrainError::Build {
            path: path.to_path_buf(),
            source,
        };
        let progress = checkpoint.progress.ok_or_else(|| TrainError::NoProgress {
            path: path.to_path_buf(),
        })?;
        let net =
            Net::from_state(&checkpoint.model, &checkpoint.params, &device).map_err(build_error)?;
        // Momentum buffers (kept flat) must match the parameters they belong to, or a step
        // would fail.
        for (name, buffer) in &checkpoint.momentum {
            let fits = checkpoint
                .params
                .get(name)
                .is_some_and(|p| p.data.len() == buffer.data.len());
            if !fits {
                let detail = format!(
                    "momentum buffer {name} {:?} matches no parameter",
                    buffer.shape
                );
                return Err(build_error(BuildError::Architecture(detail)));
            }
        }
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
        self.run_with(&|_| Cow::Borrowed(&data.train), &data.test, observer, stop)
    }

    /// [`Self::run`] with the training images of epoch `e` (from 1) given by `train(e)`:
    /// for data drawn afresh every epoch, such as distortions redrawn from a seed per epoch
    /// (which keeps an interrupted run resumable). Every epoch's images must be the size of
    /// the first's.
    pub fn run_with<'a>(
        &mut self,
        train: &dyn Fn(usize) -> Cow<'a, ImageSet>,
        test: &ImageSet,
        observer: &mut dyn Observer,
        stop: &AtomicBool,
    ) -> Result<Outcome, TrainError> {
        let first = train(self.progress.epochs_done + 1);
        for (which, set) in [("training", first.as_ref()), ("test", test)] {
            self.net
                .config
                .check_images(set.channels, [set.rows, set.cols])
                .map_err(|source| TrainError::DataSize { which, source })?;
        }
        while self.progress.epochs_done < self.progress.config.epochs {
            let epoch = self.progress.epochs_done + 1;
            // Work on copies of the generators: an interrupted epoch leaves the checkpointed
            // state untouched.
            let mut shuffle_rng = self.progress.shuffle_rng.clone();
            let mut dropout_rng = self.progress.dropout_rng.clone();
            let set = train(epoch);
            if (set.channels, set.rows, set.cols) != (first.channels, first.rows, first.cols) {
                let source = InputSizeError {
                    model: [first.rows, first.cols],
                    data: [set.rows, set.cols],
                    model_channels: first.channels,
                    data_channels: set.channels,
                };
                return Err(TrainError::DataSize {
                    which: "training",
                    source,
                });
            }
            let order = shuffle_rng.permutation(set.len());
            let batches = order.len().div_ceil(self.progress.config.batch_size);
            observer.epoch_start(epoch, batches);
            let started = Instant::now();
            let Some(loss_sum) =
                self.train_steps(&set, &order, &mut dropout_rng, observer, stop)?
            else {
                return Ok(Outcome::Interrupted {
                    epochs_done: self.progress.epochs_done,
                });
            };
            let train_seconds = started.elapsed().as_secs_f64();

            drop(set);
            let (test_loss, correct) = evaluate(
                &self.net.valid(),
                test,
                self.progress.config.eval_batch_size,
            );
            let metrics = EpochMetrics {
                epoch,
                train_loss: loss_sum / batches as f64,
                test_loss,
                test_accuracy: correct as f64 / test.len() as f64,
                train_seconds,
                images_per_second: order.len() as f64 / train_seconds,
            };
            self.progress.epochs_done = epoch;
            self.progress.shuffle_rng = shuffle_rng;
            self.progress.dropout_rng = dropout_rng;
            self.progress.metrics.push(metrics.clone());
            self.save()?;
            observer.epoch_end(&metrics, test.len());
            observer.epoch_network(&self.net.valid(), test, &self.progress.metrics);
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
            let step = data_parallel_step(
                &net,
                set,
                idx,
                &lut,
                Dropout::Drawn(dropout_rng),
                &self.device,
            );
            let diverged = |what, value| TrainError::Diverged {
                epoch,
                batch: b,
                what,
                value,
                epochs_done: self.progress.epochs_done,
            };
            if !step.loss.is_finite() {
                return Err(diverged("the loss", step.loss as f32));
            }
            if !step.theta_max.is_finite() {
                return Err(diverged("theta", step.theta_max));
            }
            net = sgd.step(&sgd_config, net, &step.grads);
            loss_sum += step.loss;
            let done = (b * batch_size + idx.len()).min(order.len());
            observer.batch(epoch, b, done, order.len(), step.loss as f32);
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
