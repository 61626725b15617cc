//! Opening a run folder: the one policy, for `stn train` and the experiments alike, on what a
//! folder may already hold. A run that is there is continued or refused, never replaced; a
//! checkpoint that cannot be loaded is an error.

use std::path::{Path, PathBuf};

use burn::tensor::Device;

use super::trainer::{TrainError, Trainer};
use crate::checkpoint::{Checkpoint, CheckpointError};
use crate::model::ModelConfig;
use crate::run::{CHECKPOINT_FILE, DataSpec, TrainConfig};

/// What a new run is: the network, the recipe and the data.
#[derive(Clone, Debug, PartialEq)]
pub struct NewRun {
    /// The architecture.
    pub model: ModelConfig,
    /// The recipe.
    pub config: TrainConfig,
    /// The data.
    pub data: DataSpec,
}

/// How to open a run folder.
#[derive(Clone, Debug)]
pub enum Open {
    /// Start a new run; the folder must not hold a run already.
    New(NewRun),
    /// Continue the run the folder holds.
    Resume {
        /// A new total number of epochs (to extend the run); `None` keeps the run's own.
        epochs: Option<usize>,
        /// Where the run's data folder is now, if it moved (the files must be the same).
        data_dir: Option<PathBuf>,
    },
    /// Continue the run the folder holds if it is this very run (same model, recipe and
    /// data), start it if the folder holds none: running an experiment again continues it.
    ResumeOrNew(NewRun),
}

/// Whether [`open`] started or continued the run.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Opened {
    /// A new run, checkpointed before its first epoch.
    Started,
    /// An existing run.
    Resumed {
        /// Epochs it had completed.
        epochs_done: usize,
    },
}

/// Why a run folder could not be opened.
#[derive(Debug, thiserror::Error)]
pub enum OpenError {
    /// A new run was asked for where one exists.
    #[error(
        "{} already holds a run; continue it (stn train --resume {}) or choose another folder",
        .0.display(),
        .0.display()
    )]
    Exists(PathBuf),
    /// The folder holds a different run than the one asked for.
    #[error(
        "{} holds a run of another {what}; it is kept: choose another folder, or remove it to start over",
        dir.display()
    )]
    Different {
        /// The run folder.
        dir: PathBuf,
        /// What differs: "architecture", "recipe" or "data".
        what: &'static str,
    },
    /// The checkpoint cannot be read.
    #[error(transparent)]
    Checkpoint(#[from] CheckpointError),
    /// The run cannot be rebuilt from its checkpoint, or its first checkpoint not written.
    #[error(transparent)]
    Train(#[from] TrainError),
    /// The folder cannot be created.
    #[error("cannot create run folder {}: {source}", path.display())]
    Io {
        /// The folder.
        path: PathBuf,
        /// The error.
        source: std::io::Error,
    },
}

/// Opens the run folder `dir` as `how` says, on `device` (autodiff is added).
pub fn open(dir: &Path, how: Open, device: &Device) -> Result<(Trainer, Opened), OpenError> {
    let path = dir.join(CHECKPOINT_FILE);
    match how {
        Open::New(run) => {
            if path.exists() {
                return Err(OpenError::Exists(dir.to_path_buf()));
            }
            start(dir, run, device)
        }
        Open::Resume { epochs, data_dir } => {
            let mut trainer = resume(&path, dir, device)?;
            if let Some(data_dir) = data_dir {
                *trainer.progress.data.source.folder_mut() = data_dir;
            }
            if let Some(epochs) = epochs {
                trainer.set_epochs(epochs);
            }
            let epochs_done = trainer.progress.epochs_done;
            Ok((trainer, Opened::Resumed { epochs_done }))
        }
        Open::ResumeOrNew(run) => {
            if !path.exists() {
                return start(dir, run, device);
            }
            let trainer = resume(&path, dir, device)?;
            let p = &trainer.progress;
            let what = if trainer.net.config != run.model {
                Some("architecture")
            } else if p.config != run.config {
                Some("recipe")
            } else if p.data != run.data {
                Some("data")
            } else {
                None
            };
            if let Some(what) = what {
                return Err(OpenError::Different {
                    dir: dir.to_path_buf(),
                    what,
                });
            }
            let epochs_done = p.epochs_done;
            Ok((trainer, Opened::Resumed { epochs_done }))
        }
    }
}

/// A new run in `dir`, checkpointed at once so that a run killed in its first epoch resumes.
fn start(dir: &Path, run: NewRun, device: &Device) -> Result<(Trainer, Opened), OpenError> {
    std::fs::create_dir_all(dir).map_err(|source| OpenError::Io {
        path: dir.to_path_buf(),
        source,
    })?;
    let trainer = Trainer::new(&run.model, run.config, run.data, device, dir);
    trainer.save()?;
    Ok((trainer, Opened::Started))
}

fn resume(path: &Path, dir: &Path, device: &Device) -> Result<Trainer, OpenError> {
    let checkpoint = Checkpoint::load(path)?;
    Ok(Trainer::resume(checkpoint, path, device, dir)?)
}
