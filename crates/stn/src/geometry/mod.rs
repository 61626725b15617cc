//! Plane geometry shared by the data generators ([`crate::data::distort`]) and the grid
//! generators ([`crate::transformer::grid`]): one linear solver, homographies, thin-plate
//! splines, and warps of u8 images.

pub mod homography;
pub mod warp;

pub use crate::ops::geometry::{linear, tps};
