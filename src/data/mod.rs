//! Data: IDX files, MNIST-format image sets, and the paper's distorted variants.

pub mod idx;
pub mod mnist;

pub use mnist::{DataError, Dataset, ImageSet};
