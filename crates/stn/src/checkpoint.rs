//! Checkpoint files: the architecture, the parameters, and (for training runs) everything needed
//! to resume exactly: optimizer buffers, random generator states, metrics so far.
//!
//! Layout (little endian):
//!
//! ```text
//! "STN-CKPT"  u32 format version  u64 meta length  meta (JSON)  f32 tensor data  u32 CRC-32
//! ```
//!
//! The CRC covers every byte before it, so truncation and corruption are detected on load.
//! Files are written atomically: to a temporary file in the same folder, fsynced, then renamed
//! over the old one, so a crash at any moment leaves either the old or the new checkpoint.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::atomic_file::write_atomic;
use crate::model::ModelConfig;
use crate::model::state::{StateDict, StateTensor};
use crate::read_limited::{self, ReadError};
use crate::run::Progress;

const MAGIC: &[u8; 8] = b"STN-CKPT";
const VERSION: u32 = 1;

/// Everything a checkpoint holds.
#[derive(Clone, Debug, PartialEq)]
pub struct Checkpoint {
    /// The architecture.
    pub model: ModelConfig,
    /// Parameters by PyTorch name.
    pub params: StateDict,
    /// Optimizer momentum buffers by parameter name.
    pub momentum: StateDict,
    /// Training progress, for `--resume`; `None` for a bare model.
    pub progress: Option<Progress>,
}

#[derive(Serialize, Deserialize)]
struct Meta {
    stn_version: String,
    model: ModelConfig,
    progress: Option<Progress>,
    tensors: Vec<Entry>,
}

#[derive(Serialize, Deserialize)]
struct Entry {
    group: Group,
    name: String,
    shape: Vec<usize>,
}

#[derive(Serialize, Deserialize, Clone, Copy, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
enum Group {
    Param,
    Momentum,
}

/// Why a checkpoint could not be read or written.
#[derive(Debug, thiserror::Error)]
pub enum CheckpointError {
    /// No such file.
    #[error("{}: file not found", .0.display())]
    Missing(PathBuf),
    /// Not a regular file, or over the [`read_limited::MODEL`] size limit.
    #[error(transparent)]
    File(ReadError),
    /// The file system refused.
    #[error("{}: {source}", path.display())]
    Io {
        /// The path.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// Not a checkpoint of ours.
    #[error("{}: not an stn checkpoint (it does not start with the stn magic bytes){hint}", path.display())]
    NotCheckpoint {
        /// The path.
        path: PathBuf,
        /// A hint about what the file might be.
        hint: String,
    },
    /// The file ends early or its bytes changed.
    #[error("{}: the checkpoint is truncated or corrupt ({detail}); use an intact copy", path.display())]
    Corrupt {
        /// The path.
        path: PathBuf,
        /// What check failed.
        detail: String,
    },
    /// Written by an incompatible version.
    #[error("{}: checkpoint format {found} is not supported (this stn reads format {VERSION})", path.display())]
    Version {
        /// The path.
        path: PathBuf,
        /// Its format version.
        found: u32,
    },
}

impl Checkpoint {
    /// Encodes the checkpoint.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut tensors = Vec::new();
        let mut payload: Vec<u8> = Vec::new();
        for (group, dict) in [
            (Group::Param, &self.params),
            (Group::Momentum, &self.momentum),
        ] {
            for (name, t) in dict {
                tensors.push(Entry {
                    group,
                    name: name.clone(),
                    shape: t.shape.clone(),
                });
                for v in &t.data {
                    payload.extend_from_slice(&v.to_le_bytes());
                }
            }
        }
        let meta = Meta {
            stn_version: env!("CARGO_PKG_VERSION").to_string(),
            model: self.model.clone(),
            progress: self.progress.clone(),
            tensors,
        };
        let meta = serde_json::to_vec(&meta).expect("checkpoint metadata serializes");
        let mut out = Vec::with_capacity(24 + meta.len() + payload.len());
        out.extend_from_slice(MAGIC);
        out.extend_from_slice(&VERSION.to_le_bytes());
        out.extend_from_slice(&(meta.len() as u64).to_le_bytes());
        out.extend_from_slice(&meta);
        out.extend_from_slice(&payload);
        let crc = crc32fast::hash(&out);
        out.extend_from_slice(&crc.to_le_bytes());
        out
    }

    /// Decodes a checkpoint; `path` is only used in error messages.
    pub fn from_bytes(bytes: &[u8], path: &Path) -> Result<Self, CheckpointError> {
        let corrupt = |detail: &str| CheckpointError::Corrupt {
            path: path.to_path_buf(),
            detail: detail.to_string(),
        };
        if bytes.len() < MAGIC.len() || &bytes[..MAGIC.len()] != MAGIC {
            return Err(CheckpointError::NotCheckpoint {
                path: path.to_path_buf(),
                hint: file_hint(bytes),
            });
        }
        if bytes.len() < 24 {
            return Err(corrupt("shorter than the header"));
        }
        // The checksum first: a damaged file is corrupt, whatever its version field says.
        let (body, crc) = bytes.split_at(bytes.len() - 4);
        if crc32fast::hash(body) != u32::from_le_bytes(crc.try_into().expect("4 bytes")) {
            return Err(corrupt("checksum mismatch"));
        }
        let version = u32::from_le_bytes(bytes[8..12].try_into().expect("4 bytes"));
        if version != VERSION {
            return Err(CheckpointError::Version {
                path: path.to_path_buf(),
                found: version,
            });
        }
        let meta_len = u64::from_le_bytes(body[12..20].try_into().expect("8 bytes"));
        let meta_end = 20usize
            .checked_add(usize::try_from(meta_len).map_err(|_| corrupt("bad metadata length"))?)
            .filter(|&e| e <= body.len())
            .ok_or_else(|| corrupt("bad metadata length"))?;
        let meta: Meta = serde_json::from_slice(&body[20..meta_end])
            .map_err(|e| corrupt(&format!("unreadable metadata: {e}")))?;
        let mut payload = &body[meta_end..];
        let mut params = StateDict::new();
        let mut momentum = StateDict::new();
        for e in meta.tensors {
            let n = e
                .shape
                .iter()
                .try_fold(1usize, |a, &d| a.checked_mul(d))
                .and_then(|n| n.checked_mul(4))
                .filter(|&b| b <= payload.len())
                .ok_or_else(|| corrupt(&format!("tensor {} exceeds the file", e.name)))?;
            let (data, rest) = payload.split_at(n);
            payload = rest;
            let data = data
                .chunks_exact(4)
                .map(|b| f32::from_le_bytes(b.try_into().expect("4 bytes")))
                .collect();
            let t = StateTensor {
                shape: e.shape,
                data,
            };
            match e.group {
                Group::Param => params.insert(e.name, t),
                Group::Momentum => momentum.insert(e.name, t),
            };
        }
        if !payload.is_empty() {
            return Err(corrupt("data beyond the listed tensors"));
        }
        Ok(Self {
            model: meta.model,
            params,
            momentum,
            progress: meta.progress,
        })
    }

    /// Reads and verifies a checkpoint file: a regular file within the
    /// [`read_limited::MODEL`] limit (a FIFO or device is refused without blocking).
    pub fn load(path: &Path) -> Result<Self, CheckpointError> {
        let bytes = read_limited::read(path, read_limited::MODEL)?;
        Self::from_bytes(&bytes, path)
    }

    /// Writes the checkpoint atomically (temporary file, fsync, rename, fsync of the folder).
    pub fn save(&self, path: &Path) -> Result<(), CheckpointError> {
        write_atomic(path, &self.to_bytes()).map_err(|source| CheckpointError::Io {
            path: path.to_path_buf(),
            source,
        })
    }
}

impl From<ReadError> for CheckpointError {
    fn from(e: ReadError) -> Self {
        match e {
            ReadError::Missing(path) => Self::Missing(path),
            other => Self::File(other),
        }
    }
}

/// Whether the bytes start like an stn checkpoint.
pub fn is_checkpoint(bytes: &[u8]) -> bool {
    bytes.starts_with(MAGIC)
}

fn file_hint(bytes: &[u8]) -> String {
    if bytes.starts_with(b"PK\x03\x04") || bytes.first() == Some(&0x80) {
        "; it looks like a PyTorch file: give it a .pt or .pth name".into()
    } else if bytes.is_empty() {
        "; the file is empty".into()
    } else {
        String::new()
    }
}
