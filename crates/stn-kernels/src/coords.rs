//! Coordinate arithmetic shared by every sampling kernel, written to reproduce PyTorch's CPU
//! grid_sample operation for operation, including its handling of out-of-range, infinite and
//! NaN coordinates.
//!
//! The kernel followed is the vectorized one, `aten/src/ATen/native/cpu/GridSamplerKernel.cpp`
//! (`ComputeLocation`, `ApplyGridSample`), which is what `F.grid_sample` runs on the CPU for
//! 4-d inputs, not the scalar rules of `GridSampler.h` (which PyTorch's other grid samplers
//! follow: 3-d, CUDA, the CPU fallback for inputs too large for 32-bit offsets). The two agree
//! on ordinary coordinates but not on special ones, and several of the rules below exist only
//! to give NaN, infinite and huge coordinates PyTorch's results:
//!
//! * the forward pass clips with x86's `maxps`/`minps` (a NaN coordinate becomes 0); the
//!   backward pass clips with `at::vec::maximum/minimum` (a NaN stays NaN and its neighbours
//!   are out of range);
//! * reflection is computed with `trunc` rather than `fmod` (an infinite coordinate reflects
//!   to NaN);
//! * corner weights are computed from the coordinate itself, so a NaN or infinite coordinate
//!   gives NaN weights and a NaN output even where every neighbour is out of range;
//! * the float-to-integer conversion sends NaN and out-of-range values to the most negative
//!   integer (x86's `cvtt*`), i.e. out of range.
//!
//! Where PyTorch's own backward reads outside the input (a NaN coordinate with border or
//! reflection padding: its masks say "always inside" there), ours reads nothing: every read
//! and write is range-checked, and the masks are PyTorch's wherever its are defined.

use super::Real;
use crate::Padding;

/// Maps a normalized coordinate in [-1, 1] to a pixel coordinate, and returns its derivative.
///
/// As PyTorch's CPU kernel computes it (`GridSamplerKernel.cpp`, not the scalar reference in
/// `GridSampler.h`): `(x + 1) * (size - 1) / 2` with aligned corners, else
/// `(x + 1) * size / 2 - 0.5` with the multiply-add fused (as its AVX2/AVX-512 builds compile
/// it). The two formulas agree mathematically but not in the last bit, and at whole pixel
/// positions the last bit decides which neighbours bilinear sampling's gradient uses.
#[inline(always)]
pub fn unnormalize<T: Real>(coord: T, size: usize, align_corners: bool) -> (T, T) {
    let one = T::one();
    let half = T::constant(0.5);
    if align_corners {
        let scale = (T::of_usize(size) - one) * half;
        ((coord + one) * scale, scale)
    } else {
        let scale = T::of_usize(size) * half;
        ((coord + one).mul_add(scale, -half), scale)
    }
}

/// x86's `maxps(a, b)`: `a` where `a > b`, else `b`, so a NaN `a` gives `b`. PyTorch's forward
/// clip is `clamp_max(max, clamp_min(0, x))`, `clamp_min`'s operands inverted on purpose ("to
/// clamp Nans to zero"): `maxps(x, 0)`, which sends a NaN coordinate to 0.
#[inline(always)]
fn max_ps<T: Real>(a: T, b: T) -> T {
    if a > b { a } else { b }
}

/// x86's `minps(a, b)`: `a` where `a < b`, else `b`.
#[inline(always)]
fn min_ps<T: Real>(a: T, b: T) -> T {
    if a < b { a } else { b }
}

/// `at::vec::maximum`: `maxps` with NaN propagated (the backward clip keeps a NaN coordinate
/// NaN, so that its gradient is NaN and nothing in range is read).
#[inline(always)]
fn maximum<T: Real>(a: T, b: T) -> T {
    if a.is_nan() || b.is_nan() {
        T::nan()
    } else {
        max_ps(a, b)
    }
}

/// `at::vec::minimum`: `minps` with NaN propagated.
#[inline(always)]
fn minimum<T: Real>(a: T, b: T) -> T {
    if a.is_nan() || b.is_nan() {
        T::nan()
    } else {
        min_ps(a, b)
    }
}

/// The forward clip (`ComputeLocation::clip_coordinates`): into [0, size - 1], NaN to 0.
#[inline(always)]
fn clip<T: Real>(x: T, size: usize) -> T {
    min_ps(max_ps(x, T::zero()), T::of_usize(size) - T::one())
}

/// The backward clip (`clip_coordinates_get_grad`): the clipped coordinate, and whether the
/// gradient passes. PyTorch takes `maximum(x, 0)` and `minimum(.., size - 1)` (NaN stays NaN)
/// and passes the gradient where neither result has the bits of its bound, so the borders
/// themselves count as outside and a NaN passes. (`maximum` never returns -0 here: `maxps`
/// returns its second operand, +0, for equal operands; so a float comparison decides as the
/// bit comparison does.)
#[inline(always)]
fn clip_grad<T: Real>(x: T, size: usize) -> (T, bool) {
    let max = T::of_usize(size) - T::one();
    let lo = maximum(x, T::zero());
    let res = minimum(lo, max);
    // NaN compares unequal to everything: inside.
    (res, lo != T::zero() && res != max)
}

/// `ComputeLocation`'s reflection interval as (low, twice_span): [-0.5, size - 0.5] without
/// aligned corners, [0, size - 1] with (`None`, an empty span: everything reflects to 0).
#[inline(always)]
fn reflection_span<T: Real>(size: usize, align_corners: bool) -> Option<(T, T)> {
    if align_corners {
        (size > 1).then(|| (T::zero(), T::of_usize(2 * (size - 1))))
    } else {
        Some((T::constant(-0.5), T::of_usize(2 * size)))
    }
}

/// `extra` of PyTorch's vectorized `reflect_coordinates`: `a` modulo `twice` computed as
/// `a - trunc(a / twice) * twice` (not fused, not `fmod`): an infinite `a` gives NaN, and a
/// huge one whatever the rounding leaves (even a value outside [0, twice), which the clip that
/// follows then handles).
#[inline(always)]
fn reflect_extra<T: Real>(a: T, twice: T) -> T {
    a - (a / twice).trunc() * twice
}

/// The forward reflection (`reflect_coordinates`): `minimum(extra, twice - extra) + low`.
#[inline(always)]
fn reflect<T: Real>(x: T, size: usize, align_corners: bool) -> T {
    let Some((low, twice)) = reflection_span::<T>(size, align_corners) else {
        return T::zero();
    };
    let extra = reflect_extra((x - low).abs(), twice);
    minimum(extra, twice - extra) + low
}

/// The backward reflection (`reflect_coordinates_get_grad`): the reflected coordinate and the
/// sign of its derivative, chosen by `extra > twice - extra` (false for NaN) xor `x < low`.
#[inline(always)]
fn reflect_grad<T: Real>(x: T, size: usize, align_corners: bool) -> (T, T) {
    let Some((low, twice)) = reflection_span::<T>(size, align_corners) else {
        return (T::zero(), T::zero());
    };
    let shifted = x - low;
    let negative = shifted < T::zero();
    let extra = reflect_extra(shifted.abs(), twice);
    let reflected = twice - extra;
    let one_more_flip = extra > reflected;
    let x = if one_more_flip { reflected } else { extra };
    let sign = if one_more_flip ^ negative {
        -T::one()
    } else {
        T::one()
    };
    (x + low, sign)
}

/// Applies the padding mode to a pixel coordinate (`ComputeLocation::compute_coordinates`:
/// the forward clip, so a NaN lands on pixel 0 under border and reflection padding). Used by
/// the forward pass of bilinear and nearest sampling and by every bicubic tap.
#[inline(always)]
pub fn pad_coordinate<T: Real>(x: T, size: usize, padding: Padding, align_corners: bool) -> T {
    match padding {
        Padding::Zeros => x,
        Padding::Border => clip(x, size),
        Padding::Reflection => clip(reflect(x, size, align_corners), size),
    }
}

/// Normalized grid coordinate -> padded pixel coordinate, plus d(pixel)/d(grid): PyTorch's
/// `ComputeLocation::apply_get_grad`, the backward pass's (NaN-keeping) padding.
#[inline(always)]
pub fn source_index<T: Real>(
    coord: T,
    size: usize,
    padding: Padding,
    align_corners: bool,
) -> (T, T) {
    let (x, scale) = unnormalize(coord, size, align_corners);
    match padding {
        Padding::Zeros => (x, scale),
        Padding::Border => {
            let (x, inside) = clip_grad(x, size);
            (x, if inside { scale } else { T::zero() })
        }
        Padding::Reflection => {
            let (x, sign) = reflect_grad(x, size, align_corners);
            let (x, inside) = clip_grad(x, size);
            (x, if inside { sign * scale } else { T::zero() })
        }
    }
}

/// Forward-only variant of [`source_index`] (`ComputeLocation::apply`): the forward clip sends
/// a NaN coordinate to pixel 0 under border and reflection padding, where the backward pass
/// (above) keeps it NaN. Both are kept as PyTorch has them; nearest sampling uses this one in
/// its backward pass too, as PyTorch does.
#[inline(always)]
pub fn source_index_forward<T: Real>(
    coord: T,
    size: usize,
    padding: Padding,
    align_corners: bool,
) -> T {
    let (x, _) = unnormalize(coord, size, align_corners);
    pad_coordinate(x, size, padding, align_corners)
}

/// A whole-valued coordinate (already floored or rounded) as an index: x86's truncating
/// conversion (`cvttss2si` / `cvttsd2si`, what PyTorch's `convert_to_int_of_same_size` does),
/// which gives the most negative integer for NaN and for values outside the integer's range.
/// Such an index is out of range, as are its neighbours (+1), without overflow.
#[inline(always)]
pub fn to_index<T: Real>(x: T) -> i64 {
    // 2^62: every value PyTorch's int32 (f32) or int64 (f64) conversion keeps in range is
    // either kept here or far outside any input; NaN fails the comparison.
    if x.abs() < T::constant(4_611_686_018_427_387_904.0) {
        x.trunc_i64()
    } else {
        i64::MIN
    }
}

/// Keys cubic convolution weights (A = -0.75) for the four taps at offsets -1, 0, 1, 2, with
/// the operations of PyTorch's vectorized `get_cubic_coefficients`.
#[inline(always)]
pub fn cubic_coefficients<T: Real>(t: T) -> [T; 4] {
    let a = T::constant(-0.75);
    let one = T::one();
    let two = T::constant(2.0);
    let three = T::constant(3.0);
    let conv1 = |x: T| ((a + two) * x - (a + three)) * x * x + one;
    let conv2 = |x: T| {
        ((a * x - T::constant(5.0) * a) * x + T::constant(8.0) * a) * x - T::constant(4.0) * a
    };
    [conv2(t + one), conv1(t), conv1(one - t), conv2(two - t)]
}

/// Negated derivatives of [`cubic_coefficients`] with respect to `t`, as PyTorch defines them
/// (`get_cubic_coefficients_grad`).
#[inline(always)]
pub fn cubic_coefficients_grad<T: Real>(t: T) -> [T; 4] {
    let a = T::constant(-0.75);
    let two = T::constant(2.0);
    let three = T::constant(3.0);
    let eight = T::constant(8.0);
    let ten = T::constant(10.0);
    let one = T::one();
    let x0 = -one - t;
    let x1 = T::zero() - t;
    let x2 = one - t;
    let x3 = two - t;
    [
        (-three * a * x0 - ten * a) * x0 - eight * a,
        (-three * (a + two) * x1 - two * (a + three)) * x1,
        (three * (a + two) * x2 - two * (a + three)) * x2,
        (three * a * x3 - ten * a) * x3 + eight * a,
    ]
}

/// Whether (y, x) is a pixel of an h x w plane.
#[inline(always)]
pub fn in_bounds(y: i64, x: i64, h: usize, w: usize) -> bool {
    y >= 0 && y < h as i64 && x >= 0 && x < w as i64
}
