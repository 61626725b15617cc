//! Compute device selection: the Flex CPU backend by default, GPU backends when compiled in.

use burn::backend::DispatchDevice;
use burn::tensor::Device;
use serde::{Deserialize, Serialize};

/// A compute device the user can ask for.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DeviceKind {
    /// Flex, burn's pure-Rust CPU backend.
    #[default]
    Cpu,
    /// NVIDIA GPU through CUDA (cargo feature `cuda`).
    Cuda,
    /// Any GPU through wgpu: Vulkan, Metal, DX12 (cargo feature `wgpu`).
    Wgpu,
}

impl DeviceKind {
    /// The burn device, or why it is not available in this build.
    pub fn device(self) -> Result<Device, String> {
        match self {
            Self::Cpu => Ok(Device::flex()),
            #[cfg(feature = "cuda")]
            Self::Cuda => Ok(Device::cuda(0)),
            #[cfg(not(feature = "cuda"))]
            Self::Cuda => Err(
                "device cuda is not compiled into this build; rebuild with `cargo build --release --features cuda`"
                    .into(),
            ),
            #[cfg(feature = "wgpu")]
            Self::Wgpu => Ok(Device::wgpu(burn::tensor::DeviceKind::DefaultDevice)),
            #[cfg(not(feature = "wgpu"))]
            Self::Wgpu => Err(
                "device wgpu is not compiled into this build; rebuild with `cargo build --release --features wgpu`"
                    .into(),
            ),
        }
    }

    /// Every kind, whether compiled in or not.
    pub const ALL: [DeviceKind; 3] = [Self::Cpu, Self::Cuda, Self::Wgpu];

    /// The kind named `s` ("cpu", "cuda" or "wgpu", case-insensitive).
    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL
            .into_iter()
            .find(|k| k.name().eq_ignore_ascii_case(s.trim()))
    }

    /// The name used on the command line.
    pub fn name(self) -> &'static str {
        match self {
            Self::Cpu => "cpu",
            Self::Cuda => "cuda",
            Self::Wgpu => "wgpu",
        }
    }
}

/// Whether `device` (with or without autodiff) is the Flex CPU backend, whose kernels run on
/// this process's threads; false for the GPU backends.
pub fn is_cpu(device: &Device) -> bool {
    matches!(
        device.clone().without_autodiff().as_dispatch(),
        DispatchDevice::Flex(_)
    )
}
