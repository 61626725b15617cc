//! Data: IDX files, MNIST-format image sets, the paper's distorted variants and its MNIST
//! addition pairs.

pub mod addition;
pub mod colocalise;
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
    /// The MNIST addition pairs made from the 28x28 set in `base` with `seed` (see
    /// [`addition`]): two-channel 42x42 images, labelled with the sum of their digits.
    Addition {
        /// Folder of the source digits.
        base: PathBuf,
        /// Generator seed.
        seed: u64,
    },
}

impl Source {
    /// Loads (or generates) the dataset.
    pub fn load(&self) -> Result<Dataset, DataError> {
        self.load_limited((None, None))
    }

    /// Loads (or generates) the dataset with at most `limits` = (train, test) images in each
    /// split: the first ones of the whole set (the addition pairs are generated only up to the
    /// limits; the other sets are loaded or generated whole, then cut).
    pub fn load_limited(
        &self,
        (limit_train, limit_test): (Option<usize>, Option<usize>),
    ) -> Result<Dataset, DataError> {
        let mut data = match self {
            Self::Folder(dir) => mnist::load_dir(dir)?,
            Self::Distorted { base, kind, seed } => {
                let data = load_source_digits(base)?;
                distort::distort_dataset(*kind, &data, *seed)
            }
            Self::Addition { base, seed } => {
                let data = load_source_digits(base)?;
                return Ok(addition::addition_dataset(
                    &data,
                    *seed,
                    (limit_train, limit_test),
                ));
            }
        };
        if let Some(n) = limit_train {
            data.train.truncate(n);
        }
        if let Some(n) = limit_test {
            data.test.truncate(n);
        }
        Ok(data)
    }

    /// The folder the data is read from (or generated from), to change it.
    pub fn folder_mut(&mut self) -> &mut PathBuf {
        match self {
            Self::Folder(dir)
            | Self::Distorted { base: dir, .. }
            | Self::Addition { base: dir, .. } => dir,
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
            Self::Addition { base, seed } => {
                format!(
                    "MNIST addition ({}, seed {seed}) from {}",
                    addition::DESCRIPTION,
                    base.display()
                )
            }
        }
    }
}

/// The 28x28 digits in `base` that the generated datasets are made from.
fn load_source_digits(base: &Path) -> Result<Dataset, DataError> {
    let data = mnist::load_dir(base)?;
    for set in [&data.train, &data.test] {
        if (set.rows, set.cols) != (distort::SOURCE_SIZE, distort::SOURCE_SIZE) {
            return Err(DataError::Size {
                dir: base.to_path_buf(),
                rows: set.rows,
                cols: set.cols,
            });
        }
    }
    Ok(data)
}
