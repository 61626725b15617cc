//! Plane geometry the grid generators are made of: one linear solver and thin-plate splines
//! (in f64, on plain slices).

pub mod linear;
pub mod tps;
