//! `stn`: spatial transformer networks on burn.
//!
//! Modules from the top of the dependency order to the bottom (each uses only those below it):
//!
//! - [`experiment`]: the paper's Table 1 and the throughput benchmarks;
//!   [`serve`]: `stn serve`, the web page and its JSON API;
//! - [`train`]: the training loop, evaluation, the policy for run folders and their pictures;
//!   [`predict`]: classifying people's own pictures of digits;
//! - [`plots`]: learning curves, the transformer epoch by epoch, Table 1 as a figure;
//! - [`load`], [`checkpoint`], [`torch_import`]: networks and runs on disk;
//! - [`run`]: plain data about a run (settings, progress, metrics, file names);
//! - [`model`]: the tutorial's network and its variants; [`optim`]: SGD;
//!   [`report`]: pictures;
//! - [`transformer`]: the paper's three parts (localization, grid generator, sampler);
//!   [`layers`]: convolution and linear layers with PyTorch's layout and initialization;
//! - [`data`]: MNIST-format sets and the paper's distorted variants;
//! - [`geometry`]: linear solve, homographies, thin-plate splines, image warps;
//! - [`ops`]: the spatial-transformer ops as a burn backend extension (kernels in the
//!   `stn-kernels` crate);
//! - [`rng`], [`device`], [`alloc`], [`atomic_file`]: small utilities.

pub mod alloc;
pub mod atomic_file;
pub mod checkpoint;
pub mod data;
pub mod device;
pub mod experiment;
pub mod geometry;
pub mod layers;
pub mod load;
pub mod model;
pub mod ops;
pub mod optim;
pub mod plots;
pub mod predict;
pub mod report;
pub mod rng;
pub mod run;
pub mod serve;
pub mod torch_import;
pub mod train;
pub mod transformer;
