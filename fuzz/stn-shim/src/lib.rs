//! The part of the `stn` crate that `src/predict/preprocess.rs` uses (`stn::data::mnist::{MEAN,
//! STD}`), so that the upload fuzz target can compile that file without building burn. The
//! values are MNIST's (as in `crates/stn/src/data/mnist.rs`); the fuzz target does not depend on
//! them.

/// Datasets.
pub mod data {
    /// MNIST.
    pub mod mnist {
        /// Mean pixel intensity of MNIST's training set.
        pub const MEAN: f32 = 0.1307;
        /// Standard deviation of MNIST's training pixel intensities.
        pub const STD: f32 = 0.3081;
    }
}
