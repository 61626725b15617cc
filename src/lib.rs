//! `stn`: spatial transformer networks on burn.

pub mod data;
pub mod model;
pub mod ops;
pub mod rng;
pub mod torch_import;
pub mod transformer;
