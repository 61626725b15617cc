//! `stn-kernels`: the plain-slice CPU kernels behind `stn`'s fused spatial-transformer ops.
//!
//! They know nothing of burn: tensors arrive as contiguous row-major slices, so the same code
//! serves burn's Flex backend (through `stn::ops`), direct tests, and anything else that holds
//! its data in slices.

// Register tiles are small fixed-size arrays indexed by several loop counters at once;
// index loops say that more plainly than iterator chains.
#![allow(clippy::needless_range_loop)]
// Every `unsafe` block says why it is sound, and every `unsafe fn` what its caller promises.
#![deny(clippy::undocumented_unsafe_blocks, clippy::missing_safety_doc)]
#![deny(unsafe_op_in_unsafe_fn)]
#![warn(missing_docs)]

pub mod affine_grid;
mod buffers;
pub mod conv_blocked;
pub mod conv_fft;
pub mod conv_pool_blocked;
pub mod coords;
pub mod grid_sample;
pub mod pool;
pub mod pool_blocked;
pub mod sample_scalar;
mod sample_shape;
pub mod sample_simd;
pub mod simd;

pub use simd::{Isa, for_each_isa, isa, set_isa, with_isa};

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

/// Runs `f` compiled for AVX2 + FMA when `isa` is an x86 vector path and this CPU has AVX2
/// (detected at run time), else as is.
///
/// For the scalar kernels (other sampling modes, f64, the last pixels of a row): inlined into
/// this function they are vectorized and use the hardware's rounding instructions without
/// the binary requiring those features. Their results do not depend on it (they use no fused
/// multiply-adds). Pass an `#[inline(always)]` closure: only code inlined here is compiled for
/// the features.
#[inline(always)]
pub fn with_simd<R>(isa: Isa, f: impl FnOnce() -> R) -> R {
    #[cfg(target_arch = "x86_64")]
    if matches!(isa, Isa::Avx2 | Isa::Avx512)
        && let Some(avx2) = simd::x86::Avx2::detect()
    {
        use simd::Simd;
        return avx2.vectorize(f);
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = isa;
    f()
}

/// Whether `T` is f32, the one element type the vector kernels handle.
pub fn is_f32<T: 'static>() -> bool {
    std::any::TypeId::of::<T>() == std::any::TypeId::of::<f32>()
}

/// Runs `f` on a worker thread of rayon's global pool, the calling thread waiting, and returns
/// its result.
///
/// Every parallel loop of the kernels then starts on a worker that the pool's other threads
/// join, instead of being handed to the pool from outside while the caller sleeps: one thread
/// fewer competing for the cores, and no hand-off and wake-up of the caller per loop. A
/// command made of many short loops (a training step, `stn bench ops`) gains most: 10-30% on
/// 2 vCPUs (BENCHMARKS.md). Size the pool before the first call (the first use of the pool
/// creates it). Do not call it from code that then waits, off the pool, for other work on the
/// pool (a server's request threads): that work would find one worker fewer, or none.
pub fn run_on_pool<R: Send>(f: impl FnOnce() -> R + Send) -> R {
    let mut out = None;
    // A scope's body runs on a worker (injected into the pool when called from outside it).
    rayon::scope(|_| out = Some(f()));
    out.expect("the scope ran its body")
}
