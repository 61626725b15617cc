//! Data: IDX files, MNIST-format image sets, and the paper's distorted variants.

pub mod distort;
pub mod mnist;

pub use stn_idx as idx;

pub use distort::Distortion;
pub use mnist::{DataError, Dataset, ImageSet};

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

/// The vendored MNIST: `./data/mnist` when run from the repository root, else the source
/// tree's copy (the repository's `data/mnist`, two folders above this crate).
pub fn vendored_mnist_dir() -> PathBuf {
    let local = PathBuf::from("data/mnist");
    if local.is_dir() {
        local
    } else {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../../data/mnist")
    }
}

/// Where a dataset comes from.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum Source {
    /// A folder of MNIST-format files (MNIST, Fashion-MNIST, ...).
    Folder(PathBuf),
    /// A distorted variant of the 28x28 set in `base`, generated with `seed` (see [`distort`]).
    Distorted {
        /// Folder of the source digits.
        base: PathBuf,
        /// The distortion.
        kind: Distortion,
        /// Generator seed.
        seed: u64,
    },
}

impl Source {
    /// Loads (or generates) the dataset.
    pub fn load(&self) -> Result<Dataset, DataError> {
        match self {
            Self::Folder(dir) => mnist::load_dir(dir),
            Self::Distorted { base, kind, seed } => {
                let data = mnist::load_dir(base)?;
                for set in [&data.train, &data.test] {
                    if (set.rows, set.cols) != (distort::SOURCE_SIZE, distort::SOURCE_SIZE) {
                        return Err(DataError::Size {
                            dir: base.clone(),
                            rows: set.rows,
                            cols: set.cols,
                        });
                    }
                }
                Ok(distort::distort_dataset(*kind, &data, *seed))
            }
        }
    }

    /// A short description for logs.
    pub fn describe(&self) -> String {
        match self {
            Self::Folder(dir) => dir.display().to_string(),
            Self::Distorted { base, kind, seed } => {
                format!(
                    "{} ({}, seed {seed}) from {}",
                    kind.name().to_uppercase(),
                    kind.describe(),
                    base.display()
                )
            }
        }
    }
}
