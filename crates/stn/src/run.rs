//! Plain data about a training run — its settings, where it stands, its metrics, the names of
//! the files in its folder — that the training loop, checkpoints, model loading and the command
//! line all share. Nothing here runs anything.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::data::{DataError, Dataset, Source};
use crate::optim::SgdConfig;
use crate::rng::Rng;

/// Name of the checkpoint file in a run folder.
pub const CHECKPOINT_FILE: &str = "checkpoint.stn";
/// Name of the metrics file in a run folder.
pub const METRICS_FILE: &str = "metrics.jsonl";

/// Name of the picture of test digits beside their transformed versions in a run folder.
pub const PICTURE_FILE: &str = "stn.png";
/// Name of the learning curves (train and test loss, test accuracy per epoch) in a run folder.
pub const CURVES_FILE: &str = "curves.png";
/// Name of the picture of the same test digits after the transformer, one row per epoch.
pub const EPOCHS_FILE: &str = "stn-epochs.png";
/// Name of the rows of [`EPOCHS_FILE`] so far, kept so that a resumed run continues it.
pub const EPOCH_ROWS_FILE: &str = "stn-epochs.rows";

/// The checkpoint file of a run folder, or `path` itself if it is not a folder.
pub fn checkpoint_path(path: &Path) -> PathBuf {
    if path.is_dir() {
        path.join(CHECKPOINT_FILE)
    } else {
        path.to_path_buf()
    }
}

/// A folder name that sorts by start time: `runs/train-YYYYMMDD-HHMMSS` (UTC).
pub fn default_run_dir() -> PathBuf {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let (days, rem) = (secs / 86_400, secs % 86_400);
    let (y, m, d) = civil_date(days as i64);
    PathBuf::from(format!(
        "runs/train-{y:04}{m:02}{d:02}-{:02}{:02}{:02}",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    ))
}

/// (year, month, day) of the day `days` after 1970-01-01 (Howard Hinnant's algorithm).
fn civil_date(days: i64) -> (i64, i64, i64) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    (yoe + era * 400 + i64::from(m <= 2), m, d)
}

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
    pub source: Source,
    /// Use only the first N training images.
    pub limit_train: Option<usize>,
    /// Use only the first N test images.
    pub limit_test: Option<usize>,
}

impl DataSpec {
    /// All of the data in `source`.
    pub fn new(source: Source) -> Self {
        Self {
            source,
            limit_train: None,
            limit_test: None,
        }
    }

    /// Checks the values a user can set.
    pub fn validate(&self) -> Result<(), String> {
        for (flag, limit) in [
            ("--limit-train", self.limit_train),
            ("--limit-test", self.limit_test),
        ] {
            if limit == Some(0) {
                return Err(format!("{flag} must be at least 1"));
            }
        }
        Ok(())
    }

    /// Loads (or generates) the data and keeps the first images as the limits say.
    pub fn load(&self) -> Result<Dataset, DataError> {
        self.source
            .load_limited((self.limit_train, self.limit_test))
    }
}

#[cfg(test)]
mod tests {
    use super::civil_date;

    #[test]
    fn civil_dates() {
        assert_eq!(civil_date(0), (1970, 1, 1));
        assert_eq!(civil_date(11_016), (2000, 2, 29));
        assert_eq!(civil_date(20_785), (2026, 11, 28));
        assert_eq!(civil_date(-1), (1969, 12, 31));
    }
}
