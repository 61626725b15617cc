//! Loading a network from disk: an stn checkpoint (or a run folder holding one), or the
//! tutorial's PyTorch state_dict saved with torch.save.

use std::path::{Path, PathBuf};

use burn::tensor::Device;

use crate::checkpoint::{Checkpoint, CheckpointError, is_checkpoint};
use crate::model::state::{StateError, load_state_dict};
use crate::model::{ModelConfig, Net};
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
    /// The parameters do not fit the architecture.
    #[error("{}: {source}", path.display())]
    State {
        /// The file.
        path: PathBuf,
        /// What does not fit.
        source: StateError,
    },
    /// The file cannot be opened.
    #[error("{}: {source}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// The error.
        source: std::io::Error,
    },
    /// The architecture recorded in the checkpoint is not buildable.
    #[error("{}: invalid architecture: {detail}", path.display())]
    Architecture {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        detail: String,
    },
}

fn is_torch_name(path: &Path) -> bool {
    matches!(
        path.extension().and_then(|e| e.to_str()),
        Some("pt" | "pth" | "bin")
    )
}

/// Loads a network from an stn checkpoint, a run folder, or a PyTorch state_dict of the
/// tutorial's network (`.pt` / `.pth`).
pub fn load_net(path: &Path, device: &Device) -> Result<Net, LoadError> {
    Ok(load(path, device)?.0)
}

/// Like [`load_net`], also returning the data the run trained on, when the file records it.
pub fn load(path: &Path, device: &Device) -> Result<(Net, Option<DataSpec>), LoadError> {
    let path = checkpoint_path(path);
    let head = read_head(&path)?;
    if is_checkpoint(&head) || !is_torch_name(&path) {
        let ckpt = Checkpoint::load(&path)?;
        ckpt.model
            .validate()
            .map_err(|detail| LoadError::Architecture {
                path: path.clone(),
                detail,
            })?;
        let net = Net::new(&ckpt.model, 0, device);
        let net = load_state_dict(net, &ckpt.params)
            .map_err(|source| LoadError::State { path, source })?;
        return Ok((net, ckpt.progress.map(|p| p.data)));
    }
    let state = read_state_dict(&path)?;
    let net = Net::new(&ModelConfig::tutorial(), 0, device);
    let net = load_state_dict(net, &state).map_err(|source| LoadError::State { path, source })?;
    Ok((net, None))
}

fn read_head(path: &Path) -> Result<Vec<u8>, LoadError> {
    use std::io::Read;
    let mut f = std::fs::File::open(path).map_err(|source| match source.kind() {
        std::io::ErrorKind::NotFound => {
            LoadError::Checkpoint(CheckpointError::Missing(path.to_path_buf()))
        }
        _ => LoadError::Io {
            path: path.to_path_buf(),
            source,
        },
    })?;
    let mut head = vec![0u8; 16];
    let n = f.read(&mut head).map_err(|source| LoadError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    head.truncate(n);
    Ok(head)
}
