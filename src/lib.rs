//! `stn-cli`: the `stn` command line's library: what the commands do beyond the network crate
//! [`stn`].
//!
//! - [`experiment`]: the paper's Table 1 and the throughput benchmarks;
//!   [`serve`]: `stn serve`, the web page and its JSON API;
//! - [`predict`]: classifying people's own pictures of digits;
//! - [`pictures`]: a training run's pictures, redrawn after every epoch;
//! - [`plots`]: learning curves, the transformer epoch by epoch, Table 1 as a figure;
//!   [`report`]: pictures of digits;
//!
//! The web, plotting and image-decoding dependencies live in this crate only.

pub mod experiment;
pub mod pictures;
pub mod plots;
pub mod predict;
pub mod report;
pub mod serve;
