//! Plain-slice CPU kernels behind the fused ops. They know nothing of burn: tensors arrive as
//! contiguous row-major slices, so the same code serves the Flex backend, the host fallback of
//! other backends, and direct tests.

pub mod affine_grid;
pub mod coords;
pub mod grid_sample;

use num_traits::{Float, FromPrimitive, ToPrimitive};

/// Floating-point element types the kernels are written for (f32 and f64).
pub trait Real:
    Float
    + FromPrimitive
    + ToPrimitive
    + Send
    + Sync
    + Default
    + bytemuck::Pod
    + core::fmt::Debug
    + 'static
{
    /// Converts from f64; every value the kernels use as a constant is representable.
    #[inline(always)]
    fn of(v: f64) -> Self {
        <Self as FromPrimitive>::from_f64(v).unwrap_or_else(Self::nan)
    }
    /// Converts from usize.
    #[inline(always)]
    fn of_usize(v: usize) -> Self {
        <Self as FromPrimitive>::from_usize(v).unwrap_or_else(Self::nan)
    }
    /// Converts to f64.
    #[inline(always)]
    fn f64(self) -> f64 {
        <Self as ToPrimitive>::to_f64(&self).unwrap_or(f64::NAN)
    }
}

impl Real for f32 {}
impl Real for f64 {}
