//! PyTorch's coordinate rules as CubeCL functions: the GPU twin of `coords.rs` in the `stn-kernels` crate,
//! operation for operation, so that out-of-range, infinite and NaN coordinates land where they
//! land on the CPU (and in PyTorch).
//!
//! Three things cannot be written as on the CPU:
//! - NaN through comparisons: shader compilers may assume there is no NaN (WGSL allows it)
//!   and, for instance, turn a compare-and-select into `min`/`max`, whose NaN handling is
//!   unspecified (Mesa's lavapipe does). Where the CPU's result depends on how a comparison
//!   treats NaN, the NaN case is tested from the bits ([`is_nan`]) and its outcome stated;
//!   no NaN is ever manufactured (WGSL has no NaN literal, and `x - x` may be folded to 0).
//! - `fmod` is exact in C and Rust, but WGSL's float `%` is `x - y * trunc(x / y)`, which is
//!   not: [`fmod_exact`] divides by binary long division instead.
//! - a float-to-int cast of NaN, infinity or a value beyond i32 is undefined (or saturates
//!   differently) on GPUs: coordinates are brought into a range where the cast is exact before
//!   it happens ([`safe_downgrade`], [`floor_parity_odd`]).

use cubecl::prelude::*;

/// Interpolation and padding modes as kernel compile-time codes.
pub const BILINEAR: u32 = 0;
/// See [`BILINEAR`].
pub const NEAREST: u32 = 1;
/// See [`BILINEAR`].
pub const BICUBIC: u32 = 2;
/// See [`BILINEAR`].
pub const ZEROS: u32 = 0;
/// See [`BILINEAR`].
pub const BORDER: u32 = 1;
/// See [`BILINEAR`].
pub const REFLECTION: u32 = 2;

/// Largest magnitude a pixel coordinate keeps before [`safe_downgrade`] sends it to -100.
///
/// The CPU (and PyTorch) bound is `i32::MAX - 1`. A coordinate between 2^30 and that bound is
/// out of bounds either way for any image the ops accept (the host checks sizes < 2^24), and
/// reads exactly the same pixels (none) whether it is kept or replaced; this bound leaves room
/// for the +2 of the farthest bicubic tap in an i32, and is exact in f32.
const DOWNGRADE_BOUND: f32 = 1_073_741_824.0;

/// 2^63: from here on the CPU's saturating `as i64` (which decides the reflection parity)
/// returns `i64::MAX`, an odd number.
const I64_SATURATION: f32 = 9_223_372_036_854_775_808.0;

/// Normalized coordinate -> pixel coordinate, and its derivative.
#[cube]
pub fn unnormalize<F: Float>(coord: F, size: u32, #[comptime] align: bool) -> (F, F) {
    let one = F::new(1.0);
    let two = F::new(2.0);
    let size_f = F::cast_from(size);
    if align {
        (((coord + one) / two) * (size_f - one), (size_f - one) / two)
    } else {
        (((coord + one) * size_f - one) / two, size_f / two)
    }
}

/// Whether `x` is NaN, from its bits (robust where float comparisons with NaN are not:
/// shader compilers may assume no NaN and fold `x != x`, or turn a compare-and-select into
/// `min`/`max`, whose NaN handling is unspecified).
#[cube]
pub fn is_nan<F: Float>(x: F) -> bool {
    u32::cast_from(x.is_nan()) != 0
}

/// Whether `x` is +-infinity, from its bits.
#[cube]
pub fn is_inf<F: Float>(x: F) -> bool {
    u32::cast_from(x.is_inf()) != 0
}

/// `min(size - 1, max(x, 0))` with C++'s `std::min`/`std::max` operand order, which sends a
/// NaN `x` to `size - 1` (stated explicitly: see [`is_nan`]).
#[cube]
fn clip<F: Float>(x: F, size: u32) -> F {
    let max = F::cast_from(size) - F::new(1.0);
    let low = select(x < F::new(0.0), F::new(0.0), x);
    let clipped = select(low > max, max, low);
    select(is_nan::<F>(x), max, clipped)
}

/// Clip with its derivative; the borders themselves count as out of range (zero gradient).
/// NaN passes through with derivative 1, as the CPU code's comparisons fall through.
#[cube]
fn clip_grad<F: Float>(x: F, size: u32) -> (F, F) {
    let zero = F::new(0.0);
    let one = F::new(1.0);
    let max = F::cast_from(size) - one;
    let nan = is_nan::<F>(x);
    let low = x <= zero;
    let high = x >= max;
    let value = select(nan, x, select(low, zero, select(high, max, x)));
    let grad = select(nan, one, select(low || high, zero, one));
    (value, grad)
}

/// `x mod span` for a finite `x >= 0` and an integral `span >= 1`, exactly, as C's `fmod`.
///
/// Long division in base 256: with `t = span * 256^k` (exact: a power-of-two scaling),
/// subtract the digit multiple `m t`, `m = floor(r / t)` in 0..=256 corrected by one either
/// way if the (possibly approximate) division missed. `m t` is exact (at most 9 + 15 bits,
/// hence `span < 2^15`; wider images fall back to base 2) and so is `r - m t` (Sterbenz:
/// `m t <= r < 2 m t`). Nothing here can be reassociated or contracted into something
/// inexact. Ordinary coordinates take no step or one; 1e30 takes ~26 (llvmpipe stops any
/// invocation after 65535 loop iterations in all, so the count matters).
#[cube]
pub fn fmod_exact<F: Float>(x: F, span: F) -> F {
    let mut r = x;
    if r >= span {
        let step = select(span < F::new(32768.0), F::new(256.0), F::new(2.0));
        let mut t = span;
        // The largest span * step^k <= r; overflow to inf stops it.
        while t * step <= r {
            t *= step;
        }
        while r >= span {
            let mut m = (r / t).floor();
            if m * t > r {
                m -= F::new(1.0);
            }
            if (m + F::new(1.0)) * t <= r {
                m += F::new(1.0);
            }
            r -= m * t;
            t /= step;
        }
    }
    r
}

/// Whether the CPU's `floor(q).trunc_i64()` is odd, for `q` = a floored non-negative
/// quotient: 2^63 and beyond (infinity included) saturate to `i64::MAX` (odd), anything else
/// is an integer whose parity `q - 2 floor(q / 2)` gives exactly. (A NaN `q` casts to 0,
/// even; callers handle non-finite coordinates before they get here.)
#[cube]
pub fn floor_parity_odd<F: Float>(q: F) -> bool {
    let two = F::new(2.0);
    let rem = q - (q / two).floor() * two;
    q >= F::new(I64_SATURATION) || rem == F::new(1.0)
}

/// Reflects `x` into PyTorch's range for the corner convention (`reflect_coordinates`), and
/// the derivative's sign, and whether the result is a number: (value, sign, finite). For a
/// non-finite `x` the CPU's value is NaN (fmod of infinity), which its callers then clip or
/// send out of bounds; here the flag says so instead of a NaN, which GPU compilers may not
/// carry faithfully. The sign is the CPU's for every `x`. Degenerate (twice_low ==
/// twice_high): (0, 0), as on the CPU.
#[cube]
fn reflect_grad<F: Float>(x: F, size: u32, #[comptime] align: bool) -> (F, F, bool) {
    let zero = F::new(0.0);
    let one = F::new(1.0);
    // twice_low, twice_high = (0, 2 (size - 1)) or (-1, 2 size - 1).
    let (min, span) = if align {
        (zero, F::cast_from(size) - one)
    } else {
        (F::new(-0.5), F::cast_from(size))
    };
    // A single pixel (align_corners) or none.
    let degenerate = if align { size == 1 } else { size == 0 };
    // A zero span would never leave fmod_exact's loop; its result is discarded anyway.
    let span = select(degenerate, one, span);
    let finite = !(is_nan::<F>(x) || is_inf::<F>(x));
    let shifted = select(finite, x - min, zero);
    let negative = shifted < zero;
    let xa = select(negative, -shifted, shifted);
    let mult = select(negative, -one, one);
    let extra = fmod_exact::<F>(xa, span);
    let odd = floor_parity_odd::<F>((xa / span).floor());
    let value = select(odd, span - extra + min, extra + min);
    let grad = select(odd, -mult, mult);
    // NaN: not negative, quotient NaN (even): +1. +inf: odd: -1. -inf: negated, odd: +1.
    let grad = select(finite, grad, select(x > zero, -one, one));
    (
        select(degenerate, zero, value),
        select(degenerate, zero, grad),
        finite || degenerate,
    )
}

/// Keeps coordinates that cannot be indexed (NaN, infinite, huge) out of bounds: -100 as in
/// PyTorch.
#[cube]
pub fn safe_downgrade<F: Float>(x: F) -> F {
    let keep = !is_nan::<F>(x) && x.abs() <= F::new(DOWNGRADE_BOUND);
    select(keep, x, F::new(-100.0))
}

/// Applies the padding mode to a pixel coordinate (`compute_coordinates` in PyTorch).
#[cube]
pub fn pad_coordinate<F: Float>(
    x: F,
    size: u32,
    #[comptime] padding: u32,
    #[comptime] align: bool,
) -> F {
    let padded = if comptime!(padding == BORDER) {
        clip::<F>(x, size)
    } else if comptime!(padding == REFLECTION) {
        let (r, _, finite) = reflect_grad::<F>(x, size, align);
        // The CPU clips a NaN reflection to the last pixel.
        select(finite, clip::<F>(r, size), F::cast_from(size) - F::new(1.0))
    } else {
        x
    };
    safe_downgrade::<F>(padded)
}

/// Normalized grid coordinate -> padded pixel coordinate and d(pixel)/d(grid): the backward
/// pass's rule (`grid_sampler_compute_source_index_set_grad`).
#[cube]
pub fn source_index<F: Float>(
    coord: F,
    size: u32,
    #[comptime] padding: u32,
    #[comptime] align: bool,
) -> (F, F) {
    let (x, g) = unnormalize::<F>(coord, size, align);
    let (x, g) = if comptime!(padding == BORDER) {
        let (x, gc) = clip_grad::<F>(x, size);
        (x, g * gc)
    } else if comptime!(padding == REFLECTION) {
        let (r, gr, finite) = reflect_grad::<F>(x, size, align);
        let (x, gc) = clip_grad::<F>(r, size);
        // A NaN reflection: clip_grad passes it with derivative 1, safe_downgrade drops it.
        (
            select(finite, x, F::new(-100.0)),
            g * gr * select(finite, gc, F::new(1.0)),
        )
    } else {
        (x, g)
    };
    (safe_downgrade::<F>(x), g)
}

/// The forward pass's rule: clipping with `std::min/max`, which sends a NaN coordinate to the
/// last pixel under border/reflection padding (the backward rule sends it out of bounds).
#[cube]
pub fn source_index_forward<F: Float>(
    coord: F,
    size: u32,
    #[comptime] padding: u32,
    #[comptime] align: bool,
) -> F {
    let (x, _) = unnormalize::<F>(coord, size, align);
    pad_coordinate::<F>(x, size, padding, align)
}

/// Rounds half-way cases to even (C's `nearbyint`), without relying on the device's `round`
/// (WGSL rounds to even, CUDA's `round` away from zero). Exact for every finite float.
#[cube]
pub fn round_even<F: Float>(x: F) -> F {
    let one = F::new(1.0);
    let half = F::new(0.5);
    let f = x.floor();
    let d = x - f;
    let f_odd = floor_parity_odd::<F>(f.abs());
    select(d > half || (d == half && f_odd), f + one, f)
}

/// A pixel coordinate that [`safe_downgrade`] bounded, as an integer (exact: it is integral
/// and below 2^31 in magnitude).
#[cube]
pub fn to_index<F: Float>(x: F) -> i32 {
    i32::cast_from(x)
}

/// Whether (y, x) is a pixel of an h x w plane.
#[cube]
pub fn in_bounds(y: i32, x: i32, h: u32, w: u32) -> bool {
    y >= 0 && y < h as i32 && x >= 0 && x < w as i32
}

/// Keys cubic convolution weights (A = -0.75) for the taps at offsets -1, 0, 1, 2.
#[cube]
pub fn cubic_coefficients<F: Float>(t: F) -> (F, F, F, F) {
    let one = F::new(1.0);
    let x2 = one - t;
    (
        cubic_conv2::<F>(t + one),
        cubic_conv1::<F>(t),
        cubic_conv1::<F>(x2),
        cubic_conv2::<F>(x2 + one),
    )
}

#[cube]
fn cubic_conv1<F: Float>(x: F) -> F {
    let a = F::new(-0.75);
    ((a + F::new(2.0)) * x - (a + F::new(3.0))) * x * x + F::new(1.0)
}

#[cube]
fn cubic_conv2<F: Float>(x: F) -> F {
    let a = F::new(-0.75);
    ((a * x - F::new(5.0) * a) * x + F::new(8.0) * a) * x - F::new(4.0) * a
}

/// Negated derivatives of [`cubic_coefficients`] with respect to `t`, as PyTorch defines them.
#[cube]
pub fn cubic_coefficients_grad<F: Float>(t: F) -> (F, F, F, F) {
    let a = F::new(-0.75);
    let one = F::new(1.0);
    let two = F::new(2.0);
    let three = F::new(3.0);
    let eight = F::new(8.0);
    let ten = F::new(10.0);
    let x0 = -one - t;
    let x1 = -t;
    let x2 = one - t;
    let x3 = two - t;
    (
        (-three * a * x0 - ten * a) * x0 - eight * a,
        (-three * (a + two) * x1 - two * (a + three)) * x1,
        (three * (a + two) * x2 - two * (a + three)) * x2,
        (three * a * x3 - ten * a) * x3 + eight * a,
    )
}
