//! Loading a network from disk: an stn checkpoint (or a run folder holding one), or the
//! tutorial's PyTorch state_dict saved with torch.save.

use std::path::{Path, PathBuf};

use burn::tensor::Device;

use crate::checkpoint::{Checkpoint, CheckpointError, is_checkpoint};
use crate::model::{BuildError, ModelConfig, Net};
use crate::read_limited::{self, ReadError};
use crate::run::{DataSpec, checkpoint_path};
use crate::torch_import::{TorchImportError, read_state_dict};

/// Why a model could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    /// The checkpoint is unreadable.
    #[error(transparent)]
    Checkpoint(#[from] CheckpointError),
    /// The PyTorch file is unreadable.
    #[error(transparent)]
    Torch(#[from] TorchImportError),
    /// The file's architecture or parameters do not make a network.
    #[error("{}: {source}", path.display())]
    Build {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        source: BuildError,
    },
    /// The file cannot be opened.
    #[error("{}: {source}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// The error.
        source: std::io::Error,
    },
}

fn is_torch_name(path: &Path) -> bool {
    matches!(
        path.extension().and_then(|e| e.to_str()),
        Some("pt" | "pth" | "bin")
    )
}

/// Loads a network from an stn checkpoint, a run folder, or a PyTorch state_dict of the
/// tutorial's network (`.pt` / `.pth`). The file must be a regular file within the
/// [`read_limited::MODEL`] limit.
pub fn load_net(path: &Path, device: &Device) -> Result<Net, LoadError> {
    Ok(load(path, device)?.0)
}

/// Like [`load_net`], also returning the data the run trained on, when the file records it.
pub fn load(path: &Path, device: &Device) -> Result<(Net, Option<DataSpec>), LoadError> {
    let path = checkpoint_path(path);
    let head = read_head(&path)?;
    let build = |config: &ModelConfig, params| {
        Net::from_state(config, params, device).map_err(|source| LoadError::Build {
            path: path.clone(),
            source,
        })
    };
    if is_checkpoint(&head) || !is_torch_name(&path) {
        let ckpt = Checkpoint::load(&path)?;
        let net = build(&ckpt.model, &ckpt.params)?;
        return Ok((net, ckpt.progress.map(|p| p.data)));
    }
    let state = read_state_dict(&path)?;
    Ok((build(&ModelConfig::tutorial(), &state)?, None))
}

/// The first bytes of the file, once it is known to be a regular file within the
/// [`read_limited::MODEL`] limit (so that a FIFO or device is refused at once).
fn read_head(path: &Path) -> Result<Vec<u8>, LoadError> {
    read_limited::read_head(path, read_limited::MODEL, 16).map_err(|e| match e {
        ReadError::Missing(path) => LoadError::Checkpoint(CheckpointError::Missing(path)),
        other => LoadError::Checkpoint(CheckpointError::File(other)),
    })
}
