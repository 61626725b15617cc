//! `stn`: spatial transformer networks on burn.

pub mod alloc;
pub mod bench;
pub mod checkpoint;
pub mod data;
pub mod device;
pub mod experiment;
pub mod model;
pub mod ops;
pub mod optim;
pub mod progress;
pub mod report;
pub mod rng;
pub mod torch_import;
pub mod train;
pub mod transformer;
