//! Coordinate arithmetic shared by every sampling kernel, written to reproduce PyTorch's
//! reference implementation (`aten/src/ATen/native/GridSampler.h`) operation for operation,
//! including its handling of out-of-range, infinite and NaN coordinates.

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

/// C++'s `std::max(a, b)`: `a` unless `a < b`, so a NaN `a` survives.
#[inline(always)]
fn cpp_max<T: Real>(a: T, b: T) -> T {
    if a < b { b } else { a }
}

/// C++'s `std::min(a, b)`: `a` unless `b < a`.
#[inline(always)]
fn cpp_min<T: Real>(a: T, b: T) -> T {
    if b < a { b } else { a }
}

#[inline(always)]
fn clip<T: Real>(x: T, size: usize) -> T {
    cpp_min(T::of_usize(size) - T::one(), cpp_max(x, T::zero()))
}

/// Clip with its derivative; the borders themselves count as out of range (zero gradient).
#[inline(always)]
fn clip_grad<T: Real>(x: T, size: usize) -> (T, T) {
    if x <= T::zero() {
        return (T::zero(), T::zero());
    }
    let max = T::of_usize(size) - T::one();
    if x >= max {
        (max, T::zero())
    } else {
        (x, T::one())
    }
}

/// Reflects `x` into [twice_low / 2, twice_high / 2], with the derivative's sign.
#[inline(always)]
fn reflect_grad<T: Real>(x: T, twice_low: i64, twice_high: i64) -> (T, T) {
    if twice_low == twice_high {
        return (T::zero(), T::zero());
    }
    let two = T::constant(2.0);
    let min = T::constant(twice_low as f64) / two;
    let span = T::constant((twice_high - twice_low) as f64) / two;
    let mut x = x - min;
    let mult = if x < T::zero() {
        x = -x;
        -T::one()
    } else {
        T::one()
    };
    let extra = x % span;
    // Saturating cast: NaN becomes 0 (even), as the C++ cast does on x86 in practice.
    let flips = (x / span).floor().trunc_i64();
    if flips % 2 == 0 {
        (extra + min, mult)
    } else {
        (span - extra + min, -mult)
    }
}

/// Keeps coordinates that cannot be indexed (NaN, infinite, beyond i32) out of bounds.
/// PyTorch maps values outside [INT_MIN, INT_MAX - 1] to -100; this bound is symmetric, which
/// reads the same pixels: everything it maps differently is far out of bounds either way.
#[inline(always)]
fn safe_downgrade<T: Real>(x: T) -> T {
    // Written so that NaN fails the comparison.
    if x.abs() <= T::constant((i32::MAX - 1) as f64) {
        x
    } else {
        T::constant(-100.0)
    }
}

/// Applies the padding mode to a pixel coordinate (`compute_coordinates` in PyTorch).
#[inline(always)]
pub fn pad_coordinate<T: Real>(x: T, size: usize, padding: Padding, align_corners: bool) -> T {
    let x = match padding {
        Padding::Zeros => x,
        Padding::Border => clip(x, size),
        Padding::Reflection => {
            let r = if align_corners {
                reflect_grad(x, 0, 2 * (size as i64 - 1)).0
            } else {
                reflect_grad(x, -1, 2 * size as i64 - 1).0
            };
            clip(r, size)
        }
    };
    safe_downgrade(x)
}

/// Normalized grid coordinate -> padded pixel coordinate, plus d(pixel)/d(grid).
#[inline(always)]
pub fn source_index<T: Real>(
    coord: T,
    size: usize,
    padding: Padding,
    align_corners: bool,
) -> (T, T) {
    let (x, mut grad) = unnormalize(coord, size, align_corners);
    let x = match padding {
        Padding::Zeros => x,
        Padding::Border => {
            let (x, g) = clip_grad(x, size);
            grad = grad * g;
            x
        }
        Padding::Reflection => {
            let (x, gr) = if align_corners {
                reflect_grad(x, 0, 2 * (size as i64 - 1))
            } else {
                reflect_grad(x, -1, 2 * size as i64 - 1)
            };
            let (x, gc) = clip_grad(x, size);
            grad = grad * gr * gc;
            x
        }
    };
    (safe_downgrade(x), grad)
}

/// Forward-only variant of [`source_index`]. PyTorch's forward clips with `std::min/max`, which
/// sends a NaN coordinate to the last pixel under border/reflection padding; the backward pass
/// (above) sends it out of bounds instead. Both are kept as PyTorch has them.
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

/// Keys cubic convolution weights (A = -0.75) for the four taps at offsets -1, 0, 1, 2.
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
    let x2 = one - t;
    [conv2(t + one), conv1(t), conv1(x2), conv2(x2 + one)]
}

/// Negated derivatives of [`cubic_coefficients`] with respect to `t`, as PyTorch defines them.
#[inline(always)]
pub fn cubic_coefficients_grad<T: Real>(t: T) -> [T; 4] {
    let a = T::constant(-0.75);
    let two = T::constant(2.0);
    let three = T::constant(3.0);
    let eight = T::constant(8.0);
    let ten = T::constant(10.0);
    let one = T::one();
    let x0 = -one - t;
    let x1 = -t;
    let x2 = one - t;
    let x3 = two - t;
    [
        (-three * a * x0 - ten * a) * x0 - eight * a,
        (-three * (a + two) * x1 - two * (a + three)) * x1,
        (three * (a + two) * x2 - two * (a + three)) * x2,
        (three * a * x3 - ten * a) * x3 + eight * a,
    ]
}

#[inline(always)]
pub fn in_bounds(y: i64, x: i64, h: usize, w: usize) -> bool {
    y >= 0 && y < h as i64 && x >= 0 && x < w as i64
}
