//! Helpers of the wgpu tests (`tests/wgpu_*.rs`): the CPU tests' helpers (`tests/common`:
//! PyTorch fixtures, comparisons that see NaN and infinity), the device and bit views.
#![allow(dead_code)]

#[path = "../common/mod.rs"]
mod common;

use burn::tensor::{Device, Tensor};
#[allow(unused_imports)]
pub use common::*;

/// The wgpu device (a software Vulkan device such as llvmpipe is fine).
pub fn wgpu() -> Device {
    stn::device::DeviceKind::Wgpu
        .device()
        .expect("built with --features wgpu")
}

/// The bits of a tensor's f32 values: for bit-exact comparisons.
pub fn bits<const D: usize>(t: Tensor<D>) -> Vec<u32> {
    t.into_data()
        .try_to_vec::<f32>()
        .unwrap()
        .into_iter()
        .map(f32::to_bits)
        .collect()
}
