//! `stn-kernels`: the plain-slice CPU kernels behind `stn`'s fused spatial-transformer ops.
//!
//! They know nothing of burn: tensors arrive as contiguous row-major slices, so the same code
//! serves burn's Flex backend (through `stn::ops`), direct tests, and anything else that holds
//! its data in slices.

// Register tiles are small fixed-size arrays indexed by several loop counters at once;
// index loops say that more plainly than iterator chains.
#![allow(clippy::needless_range_loop)]

pub mod affine_grid;
#[cfg(target_arch = "x86_64")]
pub mod conv_blocked;
#[cfg(target_arch = "x86_64")]
pub mod conv_pool_blocked;
pub mod coords;
pub mod grid_sample;
pub mod pool;
#[cfg(target_arch = "x86_64")]
pub mod pool_blocked;
#[cfg(target_arch = "x86_64")]
pub mod sample_avx2;
pub mod sample_scalar;

use num_traits::{Float, FromPrimitive, ToPrimitive};
use serde::{Deserialize, Serialize};

/// How a sample between pixels is computed.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Interpolation {
    /// Weighted mean of the 4 nearest pixels.
    #[default]
    Bilinear,
    /// The nearest pixel (ties to even, as PyTorch). Has no gradient with respect to the grid.
    Nearest,
    /// Keys cubic convolution (A = -0.75) over the 4x4 neighbourhood.
    Bicubic,
}

/// What a sample outside the input reads.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Padding {
    /// Zero outside the input.
    #[default]
    Zeros,
    /// The nearest border pixel.
    Border,
    /// The input mirrored at its borders.
    Reflection,
}

/// Options of grid sampling, PyTorch's `F.grid_sample(mode, padding_mode, align_corners)`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct SampleOptions {
    /// Interpolation mode.
    pub mode: Interpolation,
    /// Padding mode.
    pub padding: Padding,
    /// If true, -1 and 1 are the centres of the corner pixels; if false (PyTorch's default),
    /// they are the outer edges of the corner pixels.
    pub align_corners: bool,
}

impl SampleOptions {
    /// Options with the given mode, padding and corner convention.
    pub fn new(mode: Interpolation, padding: Padding, align_corners: bool) -> Self {
        Self {
            mode,
            padding,
            align_corners,
        }
    }
}

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
    fn constant(v: f64) -> Self {
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
    /// Truncating conversion to i64 (saturating; NaN gives 0), as Rust's `as`.
    fn trunc_i64(self) -> i64;
    /// Rounds half-way cases to even (C's `nearbyint` in the default rounding mode).
    fn round_even(self) -> Self;
}

macro_rules! real {
    ($t:ty) => {
        impl Real for $t {
            #[inline(always)]
            fn trunc_i64(self) -> i64 {
                self as i64
            }
            #[inline(always)]
            fn round_even(self) -> Self {
                self.round_ties_even()
            }
        }
    };
}
real!(f32);
real!(f64);

/// Whether the CPU has AVX2 and FMA (and `STN_NO_SIMD` is not set); detected once.
#[cfg(target_arch = "x86_64")]
pub fn has_avx2() -> bool {
    use std::sync::OnceLock;
    static AVX2: OnceLock<bool> = OnceLock::new();
    *AVX2.get_or_init(|| {
        std::env::var_os("STN_NO_SIMD").is_none()
            && is_x86_feature_detected!("avx2")
            && is_x86_feature_detected!("fma")
    })
}

/// Runs `f` compiled for AVX2 + FMA when the CPU has them (detected once), else as is.
///
/// The kernels are written as plain Rust; inlined into this function they are vectorized and
/// use the hardware's rounding instructions without the binary requiring those features (the
/// same binary runs on any x86-64 CPU). Pass an `#[inline(always)]` closure: only code inlined
/// here is compiled for the features. Set `STN_NO_SIMD=1` to force the portable path.
#[inline(always)]
pub fn with_simd<R>(f: impl FnOnce() -> R) -> R {
    #[cfg(target_arch = "x86_64")]
    {
        #[target_feature(enable = "avx2,fma")]
        fn avx2<R>(f: impl FnOnce() -> R) -> R {
            f()
        }
        if has_avx2() {
            // SAFETY: the CPU supports the features the function is compiled for.
            return unsafe { avx2(f) };
        }
    }
    f()
}
