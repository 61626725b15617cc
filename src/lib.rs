//! `stn`: spatial transformer networks on burn.

pub mod data;
pub mod ops;
pub mod rng;
