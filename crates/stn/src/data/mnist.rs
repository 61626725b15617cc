//! MNIST-format image sets (MNIST, Fashion-MNIST, our distorted variants): loading, checking,
//! normalization and batching.

use std::path::{Path, PathBuf};

use super::idx::{self, IdxArray, IdxError};
use crate::read_limited::{self, ReadError};

/// MNIST's pixel mean, after scaling to [0, 1] (the tutorial's `Normalize((0.1307,), (0.3081,))`).
pub const MEAN: f32 = 0.1307;
/// MNIST's pixel standard deviation, after scaling to [0, 1].
pub const STD: f32 = 0.3081;
/// Number of classes; labels must be below it.
pub const CLASSES: usize = 10;

/// The four standard file names (without `.gz`): train images, train labels, test images,
/// test labels.
pub const FILE_NAMES: [&str; 4] = [
    "train-images-idx3-ubyte",
    "train-labels-idx1-ubyte",
    "t10k-images-idx3-ubyte",
    "t10k-labels-idx1-ubyte",
];

/// Why a data folder could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum DataError {
    /// The folder does not exist.
    #[error("data folder {} does not exist; pass --data DIR, a folder with the four MNIST-format files ({})", .0.display(), FILE_NAMES.join(", "))]
    NoFolder(PathBuf),
    /// The path is not a folder.
    #[error("{} is not a folder; --data takes a folder with the four MNIST-format files", .0.display())]
    NotAFolder(PathBuf),
    /// A standard file is absent.
    #[error("{}: no {name}.gz or {name} in this folder (it needs the four MNIST-format files: {})", dir.display(), FILE_NAMES.join(", "))]
    MissingFile {
        /// The folder.
        dir: PathBuf,
        /// The missing base name.
        name: &'static str,
    },
    /// A file is unreadable or malformed.
    #[error(transparent)]
    Idx(#[from] IdxError),
    /// A file is not a regular file, or larger than any IDX file of MNIST-like data.
    #[error(transparent)]
    File(#[from] ReadError),
    /// Images and labels disagree in number.
    #[error("{} has {images} images but {} has {labels} labels; the files do not belong together", images_path.display(), labels_path.display())]
    CountMismatch {
        /// The image file.
        images_path: PathBuf,
        /// Its number of images.
        images: usize,
        /// The label file.
        labels_path: PathBuf,
        /// Its number of labels.
        labels: usize,
    },
    /// A label is not a class index.
    #[error("{}: label {label} at index {index} is not a digit class (0-9)", path.display())]
    BadLabel {
        /// The label file.
        path: PathBuf,
        /// Position of the first bad label.
        index: usize,
        /// The label.
        label: u8,
    },
    /// Source images of the wrong size for a generated dataset.
    #[error("{}: the distorted datasets are made from 28x28 digits, these images are {rows}x{cols}", dir.display())]
    Size {
        /// The source folder.
        dir: PathBuf,
        /// Image height found.
        rows: usize,
        /// Image width found.
        cols: usize,
    },
    /// Training and test images of different sizes.
    #[error("{}: the training images are {}x{} but the test images {}x{}; one network cannot take both", dir.display(), train[0], train[1], test[0], test[1])]
    SplitSizes {
        /// The folder.
        dir: PathBuf,
        /// Training image [rows, cols].
        train: [usize; 2],
        /// Test image [rows, cols].
        test: [usize; 2],
    },
    /// Images with a zero-sized side or no images at all.
    #[error("{}: holds no usable images (dimensions {dims:?})", path.display())]
    Empty {
        /// The image file.
        path: PathBuf,
        /// Its dimensions.
        dims: Vec<usize>,
    },
}

/// A set of u8 images with class labels: single-channel (MNIST and its distorted variants) or
/// with several channels (the two digits of the addition pairs, see
/// [`super::addition`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImageSet {
    /// Pixels, image after image; within an image, channel after channel, each row-major.
    pub images: Vec<u8>,
    /// One class per image.
    pub labels: Vec<u8>,
    /// Image height.
    pub rows: usize,
    /// Image width.
    pub cols: usize,
    /// Channels per image (1 but for the addition pairs' 2).
    pub channels: usize,
}

impl ImageSet {
    /// Number of images.
    pub fn len(&self) -> usize {
        self.labels.len()
    }

    /// Whether the set has no images.
    pub fn is_empty(&self) -> bool {
        self.labels.is_empty()
    }

    /// Values per image: channels x rows x cols (rows x cols for single-channel images).
    pub fn pixels(&self) -> usize {
        self.channels * self.rows * self.cols
    }

    /// The pixels of image `i`.
    pub fn image(&self, i: usize) -> &[u8] {
        &self.images[i * self.pixels()..(i + 1) * self.pixels()]
    }

    /// Keeps only the first `n` images.
    pub fn truncate(&mut self, n: usize) {
        if n < self.len() {
            self.labels.truncate(n);
            self.images.truncate(n * self.pixels());
        }
    }

    /// Writes normalized pixels of the images at `indices` into `out` ([len, channels, rows,
    /// cols])
    /// and their labels into `labels`.
    pub fn gather(
        &self,
        indices: &[usize],
        lut: &[f32; 256],
        out: &mut Vec<f32>,
        labels: &mut Vec<i64>,
    ) {
        out.clear();
        labels.clear();
        out.reserve(indices.len() * self.pixels());
        for &i in indices {
            out.extend(self.image(i).iter().map(|&p| lut[p as usize]));
            labels.push(self.labels[i] as i64);
        }
    }
}

/// Train and test sets.
#[derive(Debug, Clone)]
pub struct Dataset {
    /// Training images.
    pub train: ImageSet,
    /// Test images.
    pub test: ImageSet,
}

/// The normalized value of every pixel byte, computed in f32 as torchvision does:
/// `(p / 255 - mean) / std`.
pub fn normalization_lut(mean: f32, std: f32) -> [f32; 256] {
    core::array::from_fn(|p| (p as f32 / 255.0 - mean) / std)
}

fn find_file(dir: &Path, name: &'static str) -> Result<PathBuf, DataError> {
    let gz = dir.join(format!("{name}.gz"));
    if gz.exists() {
        return Ok(gz);
    }
    let raw = dir.join(name);
    if raw.exists() {
        return Ok(raw);
    }
    Err(DataError::MissingFile {
        dir: dir.to_path_buf(),
        name,
    })
}

/// Reads one IDX file (raw or gzipped) through [`read_limited`]: a regular file within the
/// [`read_limited::IDX`] limit, its decompressed values within [`idx::MAX_DATA_BYTES`].
pub fn read_idx(path: &Path, expected_dims: usize) -> Result<IdxArray, DataError> {
    let file = read_limited::open(path, read_limited::IDX)
        .map_err(|e| match e {
            ReadError::Missing(path) => DataError::Idx(IdxError::Missing { path }),
            other => DataError::File(other),
        })?
        .into_inner();
    Ok(idx::read_file(file, path, expected_dims)?)
}

/// Loads and checks one split from its image and label files.
pub fn load_split(images_path: &Path, labels_path: &Path) -> Result<ImageSet, DataError> {
    let images = read_idx(images_path, 3)?;
    let labels = read_idx(labels_path, 1)?;
    let (n, rows, cols) = (images.dims[0], images.dims[1], images.dims[2]);
    if n == 0 || rows == 0 || cols == 0 {
        return Err(DataError::Empty {
            path: images_path.to_path_buf(),
            dims: images.dims,
        });
    }
    if labels.dims[0] != n {
        return Err(DataError::CountMismatch {
            images_path: images_path.to_path_buf(),
            images: n,
            labels_path: labels_path.to_path_buf(),
            labels: labels.dims[0],
        });
    }
    if let Some((index, &label)) = labels
        .data
        .iter()
        .enumerate()
        .find(|&(_, &l)| l as usize >= CLASSES)
    {
        return Err(DataError::BadLabel {
            path: labels_path.to_path_buf(),
            index,
            label,
        });
    }
    Ok(ImageSet {
        images: images.data,
        labels: labels.data,
        rows,
        cols,
        channels: 1,
    })
}

/// Loads a folder holding the four standard files (each `.gz` or raw).
pub fn load_dir(dir: &Path) -> Result<Dataset, DataError> {
    if !dir.exists() {
        return Err(DataError::NoFolder(dir.to_path_buf()));
    }
    if !dir.is_dir() {
        return Err(DataError::NotAFolder(dir.to_path_buf()));
    }
    let paths: Vec<PathBuf> = FILE_NAMES
        .iter()
        .map(|name| find_file(dir, name))
        .collect::<Result<_, _>>()?;
    let train = load_split(&paths[0], &paths[1])?;
    let test = load_split(&paths[2], &paths[3])?;
    if (train.rows, train.cols) != (test.rows, test.cols) {
        return Err(DataError::SplitSizes {
            dir: dir.to_path_buf(),
            train: [train.rows, train.cols],
            test: [test.rows, test.cols],
        });
    }
    Ok(Dataset { train, test })
}

/// Writes a split as the two standard IDX files (uncompressed) into `dir`. Images of several
/// channels are written as a 4-D IDX array [n, channels, rows, cols] (which `stn` itself does
/// not read back: its generated sets are regenerated from their seed).
pub fn write_split(dir: &Path, set: &ImageSet, train: bool) -> std::io::Result<()> {
    let (img, lbl) = if train {
        (FILE_NAMES[0], FILE_NAMES[1])
    } else {
        (FILE_NAMES[2], FILE_NAMES[3])
    };
    let dims = if set.channels == 1 {
        vec![set.len(), set.rows, set.cols]
    } else {
        vec![set.len(), set.channels, set.rows, set.cols]
    };
    std::fs::write(dir.join(img), idx::encode(&dims, &set.images))?;
    std::fs::write(dir.join(lbl), idx::encode(&[set.len()], &set.labels))
}
