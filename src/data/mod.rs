//! Data: IDX files, MNIST-format image sets, and the paper's distorted variants.

pub mod idx;
pub mod mnist;
pub mod distort;

pub use mnist::{DataError, Dataset, ImageSet};

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

/// Where a dataset comes from.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum Source {
    /// A folder of MNIST-format files (MNIST, Fashion-MNIST, ...).
    Folder(PathBuf),
}

impl Source {
    /// Loads the dataset.
    pub fn load(&self) -> Result<Dataset, DataError> {
        match self {
            Self::Folder(dir) => mnist::load_dir(dir),
        }
    }

    /// A short description for logs.
    pub fn describe(&self) -> String {
        match self {
            Self::Folder(dir) => dir.display().to_string(),
        }
    }
}
