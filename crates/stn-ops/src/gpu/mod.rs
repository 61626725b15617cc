//! The sampling ops as CubeCL kernels: [`StnBackend`] for burn's `CubeBackend`, the one backend
//! type behind every CubeCL runtime (wgpu/Vulkan/Metal/DX12, CUDA, ROCm, the CubeCL CPU
//! runtime): a tensor's device says which runtime compiles and runs the kernels.
//!
//! - [`coords`]: PyTorch's coordinate rules (unnormalize, clip/reflect padding, NaN and huge
//!   values), ported from the CPU kernels (`stn-kernels`, `coords.rs`) operation for operation.
//! - [`sample`]: grid_sample / affine_sample forward, one invocation per output point.
//! - [`sample_backward`]: the gradients, deterministic (no float atomics): input gradient by
//!   per-chunk partial planes summed in a fixed order, grid gradient per point, theta
//!   gradient by a fixed-shape tree reduction.
//! - [`affine_grid`]: affine_grid forward (its backward is the theta reduction).
//!
//! Tensors stay on the device: inputs are made contiguous on the device, outputs are
//! allocated there, and the only host-to-device traffic is the upload of the output's base
//! coordinates (W + H numbers) for the affine ops; nothing is ever read back. Under burn's
//! fusion (the GPU features enable it) these functions run as opaque custom operations of
//! the fusion stream, registered by the `#[fusion(meta = ...)]` attributes in `ops/mod.rs`.
//!
//! f32 always; f64 where the device supports it (checked per call, with a clear panic
//! otherwise: wgpu offers f64 only on adapters with `SHADER_F64`, e.g. Vulkan devices with
//! `shaderFloat64`, never on Metal or WebGPU). Convolution and pooling use burn's own kernels
//! (the trait's default bodies, `ops/composite.rs`).

pub mod affine_grid;
pub mod coords;
pub mod fusion_meta;
mod launch;
pub mod sample;
pub mod sample_backward;

use std::sync::atomic::{AtomicU64, Ordering};

use burn_cubecl::CubeBackend;
use burn_cubecl::tensor::CubeTensor;

use super::{SampleOptions, StnBackend};
pub use launch::partial_chunks;
use launch::{
    affine_grid, affine_grid_backward, affine_sample, affine_sample_backward, grid_sample,
    grid_sample_backward,
};

static LAUNCHES: AtomicU64 = AtomicU64::new(0);

/// Sampling kernels (of this module) launched so far in this process, on any device: lets
/// tests see that an op ran on the device. With burn's fusion a launch happens when the
/// fusion stream executes the op, not when the op is called (sync the device first).
pub fn kernel_launches() -> u64 {
    LAUNCHES.load(Ordering::Relaxed)
}

fn count_launch() {
    LAUNCHES.fetch_add(1, Ordering::Relaxed);
}

impl StnBackend for CubeBackend {
    fn stn_grid_sample(input: CubeTensor, grid: CubeTensor, options: SampleOptions) -> CubeTensor {
        grid_sample(input, grid, options)
    }

    fn stn_grid_sample_backward(
        input: CubeTensor,
        grid: CubeTensor,
        grad_output: CubeTensor,
        options: SampleOptions,
        want_input: bool,
        want_grid: bool,
    ) -> (CubeTensor, CubeTensor) {
        grid_sample_backward(input, grid, grad_output, options, want_input, want_grid)
    }

    fn stn_affine_grid(
        theta: CubeTensor,
        height: usize,
        width: usize,
        align_corners: bool,
    ) -> CubeTensor {
        affine_grid(theta, height, width, align_corners)
    }

    fn stn_affine_grid_backward(grad_grid: CubeTensor, align_corners: bool) -> CubeTensor {
        affine_grid_backward(grad_grid, align_corners)
    }

    fn stn_affine_sample(
        input: CubeTensor,
        theta: CubeTensor,
        height: usize,
        width: usize,
        options: SampleOptions,
    ) -> CubeTensor {
        affine_sample(input, theta, height, width, options)
    }

    fn stn_affine_sample_backward(
        input: CubeTensor,
        theta: CubeTensor,
        grad_output: CubeTensor,
        options: SampleOptions,
        want_input: bool,
        want_theta: bool,
    ) -> (CubeTensor, CubeTensor) {
        affine_sample_backward(input, theta, grad_output, options, want_input, want_theta)
    }
}
