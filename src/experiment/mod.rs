//! Experiments: runs of the library made to measure something, with their reports.
//!
//! - [`table1`]: the paper's Table 1, test errors of CNN and ST-CNNs on distorted MNIST;
//!   [`grid`]: its cells spread over machines (Slurm job arrays, Kubernetes indexed Jobs), in
//!   [`shard`]s, and the tables collected from their run folders;
//! - [`addition`]: the paper's MNIST addition experiment, as a grid of the same kind;
//! - [`colocalisation`]: the paper's co-localisation, an attention transformer trained by a
//!   triplet loss to find the digit class 100 canvases share;
//! - [`throughput`]: images per second of training, evaluation and the ops (`stn bench`).

pub mod addition;
pub mod colocalisation;
pub mod grid;
pub mod shard;
pub mod table1;
pub mod throughput;
