//! The portable path: 4-lane arrays in plain Rust, for any CPU. The compiler maps them onto
//! whatever the target's baseline has (SSE2 on x86-64, NEON on aarch64); multiply-adds round
//! twice, as the scalar code does.

use super::{Isa, MAX_LANES, Simd};

const L: usize = 4;

/// Plain Rust on `[f32; 4]`: runs on every CPU, so anyone may construct the handle.
#[derive(Clone, Copy, Debug, Default)]
pub struct Portable;

#[inline(always)]
fn map(a: [f32; L], f: impl Fn(f32) -> f32) -> [f32; L] {
    a.map(f)
}

#[inline(always)]
fn zip(a: [f32; L], b: [f32; L], f: impl Fn(f32, f32) -> f32) -> [f32; L] {
    core::array::from_fn(|i| f(a[i], b[i]))
}

#[inline(always)]
fn cmp(a: [f32; L], b: [f32; L], f: impl Fn(f32, f32) -> bool) -> [bool; L] {
    core::array::from_fn(|i| f(a[i], b[i]))
}

impl Simd for Portable {
    const ISA: Isa = Isa::Portable;
    const LANES: usize = L;
    const REGISTERS: usize = 16;
    type F = [f32; L];
    type I = [i32; L];
    type M = [bool; L];

    #[inline(always)]
    fn vectorize<R>(self, f: impl FnOnce() -> R) -> R {
        f()
    }
    #[inline(always)]
    fn splat(self, x: f32) -> [f32; L] {
        [x; L]
    }
    #[inline(always)]
    unsafe fn load(self, p: *const f32) -> [f32; L] {
        // SAFETY: the caller guarantees L readable floats.
        unsafe { p.cast::<[f32; L]>().read_unaligned() }
    }
    #[inline(always)]
    unsafe fn store(self, p: *mut f32, v: [f32; L]) {
        // SAFETY: the caller guarantees L writable floats.
        unsafe { p.cast::<[f32; L]>().write_unaligned(v) }
    }
    #[inline(always)]
    fn add(self, a: [f32; L], b: [f32; L]) -> [f32; L] {
        zip(a, b, |x, y| x + y)
    }
    #[inline(always)]
    fn sub(self, a: [f32; L], b: [f32; L]) -> [f32; L] {
        zip(a, b, |x, y| x - y)
    }
    #[inline(always)]
    fn mul(self, a: [f32; L], b: [f32; L]) -> [f32; L] {
        zip(a, b, |x, y| x * y)
    }
    #[inline(always)]
    fn mul_add(self, a: [f32; L], b: [f32; L], c: [f32; L]) -> [f32; L] {
        core::array::from_fn(|i| a[i] * b[i] + c[i])
    }
    #[inline(always)]
    fn fused_mul_add(self, a: [f32; L], b: [f32; L], c: [f32; L]) -> [f32; L] {
        core::array::from_fn(|i| a[i].mul_add(b[i], c[i]))
    }
    #[inline(always)]
    fn min(self, a: [f32; L], b: [f32; L]) -> [f32; L] {
        zip(a, b, |x, y| if x < y { x } else { y })
    }
    #[inline(always)]
    fn max(self, a: [f32; L], b: [f32; L]) -> [f32; L] {
        zip(a, b, |x, y| if x > y { x } else { y })
    }
    #[inline(always)]
    fn abs(self, a: [f32; L]) -> [f32; L] {
        map(a, f32::abs)
    }
    #[inline(always)]
    fn floor(self, a: [f32; L]) -> [f32; L] {
        map(a, f32::floor)
    }
    #[inline(always)]
    fn eq(self, a: [f32; L], b: [f32; L]) -> [bool; L] {
        cmp(a, b, |x, y| x == y)
    }
    #[inline(always)]
    fn gt(self, a: [f32; L], b: [f32; L]) -> [bool; L] {
        cmp(a, b, |x, y| x > y)
    }
    #[inline(always)]
    fn ge(self, a: [f32; L], b: [f32; L]) -> [bool; L] {
        cmp(a, b, |x, y| x >= y)
    }
    #[inline(always)]
    fn le(self, a: [f32; L], b: [f32; L]) -> [bool; L] {
        cmp(a, b, |x, y| x <= y)
    }
    #[inline(always)]
    fn is_nan(self, a: [f32; L]) -> [bool; L] {
        a.map(f32::is_nan)
    }
    #[inline(always)]
    fn select(self, m: [bool; L], t: [f32; L], f: [f32; L]) -> [f32; L] {
        core::array::from_fn(|i| if m[i] { t[i] } else { f[i] })
    }
    #[inline(always)]
    fn or(self, a: [bool; L], b: [bool; L]) -> [bool; L] {
        core::array::from_fn(|i| a[i] | b[i])
    }
    #[inline(always)]
    fn and(self, a: [bool; L], b: [bool; L]) -> [bool; L] {
        core::array::from_fn(|i| a[i] & b[i])
    }
    #[inline(always)]
    fn andnot(self, a: [bool; L], b: [bool; L]) -> [bool; L] {
        core::array::from_fn(|i| !a[i] & b[i])
    }
    #[inline(always)]
    fn all_set(self) -> [bool; L] {
        [true; L]
    }
    #[inline(always)]
    fn bits(self, m: [bool; L]) -> u32 {
        m.iter()
            .enumerate()
            .fold(0, |acc, (i, &b)| acc | ((b as u32) << i))
    }
    #[inline(always)]
    fn hsum(self, a: [f32; L]) -> f32 {
        (a[0] + a[2]) + (a[1] + a[3])
    }
    #[inline(always)]
    fn to_i32(self, a: [f32; L]) -> [i32; L] {
        // `as` saturates and sends NaN to 0; x86 gives i32::MIN for both.
        a.map(|x| {
            if (-2_147_483_648.0..2_147_483_648.0).contains(&x) {
                x as i32
            } else {
                i32::MIN
            }
        })
    }
    #[inline(always)]
    fn splat_i(self, x: i32) -> [i32; L] {
        [x; L]
    }
    #[inline(always)]
    fn add_i(self, a: [i32; L], b: [i32; L]) -> [i32; L] {
        core::array::from_fn(|i| a[i].wrapping_add(b[i]))
    }
    #[inline(always)]
    fn mul_i(self, a: [i32; L], b: [i32; L]) -> [i32; L] {
        core::array::from_fn(|i| a[i].wrapping_mul(b[i]))
    }
    #[inline(always)]
    fn gt_i(self, a: [i32; L], b: [i32; L]) -> [bool; L] {
        core::array::from_fn(|i| a[i] > b[i])
    }
    #[inline(always)]
    unsafe fn store_i(self, p: *mut i32, v: [i32; L]) {
        // SAFETY: the caller guarantees L writable i32.
        unsafe { p.cast::<[i32; L]>().write_unaligned(v) }
    }
    #[inline(always)]
    fn next_lane(self, a: [f32; L]) -> [f32; L] {
        core::array::from_fn(|l| if l + 1 < L { a[l + 1] } else { -0.0 })
    }
    #[inline(always)]
    unsafe fn load_pairs(self, p: *const f32) -> ([f32; L], [f32; L]) {
        // SAFETY: the caller guarantees 2 L readable floats.
        let v = unsafe { p.cast::<[f32; 2 * L]>().read_unaligned() };
        (
            core::array::from_fn(|i| v[2 * i]),
            core::array::from_fn(|i| v[2 * i + 1]),
        )
    }
    #[inline(always)]
    unsafe fn store_pairs(self, p: *mut f32, a: [f32; L], b: [f32; L]) {
        let v: [f32; 2 * L] =
            core::array::from_fn(|i| if i % 2 == 0 { a[i / 2] } else { b[i / 2] });
        // SAFETY: the caller guarantees 2 L writable floats.
        unsafe { p.cast::<[f32; 2 * L]>().write_unaligned(v) }
    }
}

const _: () = assert!(Portable::LANES <= MAX_LANES);
