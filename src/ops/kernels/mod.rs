//! Plain-slice CPU kernels behind the fused ops. They know nothing of burn: tensors arrive as
//! contiguous row-major slices, so the same code serves the Flex backend, the host fallback of
//! other backends, and direct tests.

// Register tiles are small fixed-size arrays indexed by several loop counters at once;
// index loops say that more plainly than iterator chains.
#![allow(clippy::needless_range_loop)]

pub mod affine_grid;
#[cfg(target_arch = "x86_64")]
pub mod conv_b8;
pub mod coords;
pub mod grid_sample;
pub mod pool;
#[cfg(target_arch = "x86_64")]
pub mod sample_avx2;
pub mod sample_scalar;

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
