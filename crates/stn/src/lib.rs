//! `stn`: spatial transformer networks (Jaderberg et al. 2015) on burn.
//!
//! Modules from the top of the dependency order to the bottom (each uses only those below it):
//!
//! - [`train`]: the training loop (exact resume), evaluation, run folders;
//! - [`load`], [`checkpoint`], [`torch_import`]: networks and runs on disk;
//! - [`run`]: plain data about a run (settings, progress, metrics, file names);
//! - [`model`]: the tutorial's network and its variants; [`optim`]: SGD;
//! - [`transformer`]: the paper's three parts (localization, grid generator, sampler);
//!   [`layers`]: convolution and linear layers with PyTorch's layout and initialization;
//! - [`data`]: MNIST-format sets and the paper's distorted variants;
//! - [`geometry`]: linear solve, homographies, thin-plate splines, image warps;
//! - [`ops`]: the spatial-transformer ops as a burn backend extension (the `stn-ops` crate);
//! - [`rng`], [`device`], [`atomic_file`]: small utilities; [`alloc`]: process-wide allocator
//!   tuning that training and sampling gain from (call it first thing in `main`).
//!
//! The `stn` command line (crate `stn-cli`) adds prediction, the web server, plots and the
//! paper's experiments on top.

#![warn(missing_docs)]

pub mod alloc;
pub mod atomic_file;
pub mod checkpoint;
pub mod data;
pub mod device;
pub mod geometry;
pub mod layers;
pub mod load;
pub mod model;
pub mod optim;
pub mod read_limited;
pub mod rng;
pub mod run;
pub mod torch_import;
pub mod train;
pub mod transformer;

pub use stn_ops as ops;

// The README's Rust code, compiled and run as doctests.
#[doc = include_str!("../../../README.md")]
#[cfg(doctest)]
pub struct ReadmeDoctests;
