//! aarch64 NEON (Advanced SIMD): 4 f32 lanes, 32 registers; part of the aarch64 baseline, so
//! always available there.

use std::arch::aarch64::*;

use super::{Isa, MAX_LANES, Simd};

/// Runs `f` compiled for NEON (everything inlined into it).
///
/// # Safety
/// Always safe on aarch64 (NEON is part of the baseline); `unsafe` for symmetry with x86.
#[target_feature(enable = "neon")]
pub unsafe fn run_neon<R>(f: impl FnOnce() -> R) -> R {
    f()
}

/// NEON: `float32x4_t`, masks `uint32x4_t`.
#[derive(Clone, Copy, Debug)]
pub struct Neon;

// SAFETY (every `unsafe` block below): NEON is available on every aarch64 CPU; pointer
// arguments are the callers' responsibility as documented on the trait.
impl Simd for Neon {
    const ISA: Isa = Isa::Neon;
    const LANES: usize = 4;
    const REGISTERS: usize = 32;
    type F = float32x4_t;
    type I = int32x4_t;
    type M = uint32x4_t;

    #[inline(always)]
    fn zero() -> float32x4_t {
        unsafe { vdupq_n_f32(0.0) }
    }
    #[inline(always)]
    fn splat(x: f32) -> float32x4_t {
        unsafe { vdupq_n_f32(x) }
    }
    #[inline(always)]
    unsafe fn load(p: *const f32) -> float32x4_t {
        unsafe { vld1q_f32(p) }
    }
    #[inline(always)]
    unsafe fn store(p: *mut f32, v: float32x4_t) {
        unsafe { vst1q_f32(p, v) }
    }
    #[inline(always)]
    fn add(a: float32x4_t, b: float32x4_t) -> float32x4_t {
        unsafe { vaddq_f32(a, b) }
    }
    #[inline(always)]
    fn sub(a: float32x4_t, b: float32x4_t) -> float32x4_t {
        unsafe { vsubq_f32(a, b) }
    }
    #[inline(always)]
    fn mul(a: float32x4_t, b: float32x4_t) -> float32x4_t {
        unsafe { vmulq_f32(a, b) }
    }
    #[inline(always)]
    fn mul_add(a: float32x4_t, b: float32x4_t, c: float32x4_t) -> float32x4_t {
        unsafe { vfmaq_f32(c, a, b) }
    }
    #[inline(always)]
    fn fused_mul_add(a: float32x4_t, b: float32x4_t, c: float32x4_t) -> float32x4_t {
        Self::mul_add(a, b, c)
    }
    #[inline(always)]
    fn min(a: float32x4_t, b: float32x4_t) -> float32x4_t {
        // x86's semantics (b unless a < b), which NEON's vminq does not have for NaN.
        unsafe { vbslq_f32(vcltq_f32(a, b), a, b) }
    }
    #[inline(always)]
    fn max(a: float32x4_t, b: float32x4_t) -> float32x4_t {
        unsafe { vbslq_f32(vcgtq_f32(a, b), a, b) }
    }
    #[inline(always)]
    fn abs(a: float32x4_t) -> float32x4_t {
        unsafe { vabsq_f32(a) }
    }
    #[inline(always)]
    fn floor(a: float32x4_t) -> float32x4_t {
        unsafe { vrndmq_f32(a) }
    }
    #[inline(always)]
    fn eq(a: float32x4_t, b: float32x4_t) -> uint32x4_t {
        unsafe { vceqq_f32(a, b) }
    }
    #[inline(always)]
    fn gt(a: float32x4_t, b: float32x4_t) -> uint32x4_t {
        unsafe { vcgtq_f32(a, b) }
    }
    #[inline(always)]
    fn ge(a: float32x4_t, b: float32x4_t) -> uint32x4_t {
        unsafe { vcgeq_f32(a, b) }
    }
    #[inline(always)]
    fn le(a: float32x4_t, b: float32x4_t) -> uint32x4_t {
        unsafe { vcleq_f32(a, b) }
    }
    #[inline(always)]
    fn is_nan(a: float32x4_t) -> uint32x4_t {
        unsafe { vmvnq_u32(vceqq_f32(a, a)) }
    }
    #[inline(always)]
    fn select(m: uint32x4_t, t: float32x4_t, f: float32x4_t) -> float32x4_t {
        unsafe { vbslq_f32(m, t, f) }
    }
    #[inline(always)]
    fn or(a: uint32x4_t, b: uint32x4_t) -> uint32x4_t {
        unsafe { vorrq_u32(a, b) }
    }
    #[inline(always)]
    fn and(a: uint32x4_t, b: uint32x4_t) -> uint32x4_t {
        unsafe { vandq_u32(a, b) }
    }
    #[inline(always)]
    fn andnot(a: uint32x4_t, b: uint32x4_t) -> uint32x4_t {
        // vbicq(b, a) = b & !a.
        unsafe { vbicq_u32(b, a) }
    }
    #[inline(always)]
    fn all_set() -> uint32x4_t {
        unsafe { vdupq_n_u32(u32::MAX) }
    }
    #[inline(always)]
    fn bits(m: uint32x4_t) -> u32 {
        unsafe {
            let weights: [u32; 4] = [1, 2, 4, 8];
            vaddvq_u32(vandq_u32(m, vld1q_u32(weights.as_ptr())))
        }
    }
    #[inline(always)]
    fn hsum(a: float32x4_t) -> f32 {
        unsafe { vaddvq_f32(a) }
    }
    #[inline(always)]
    fn to_i32(a: float32x4_t) -> int32x4_t {
        // vcvtq saturates and sends NaN to 0; x86 gives i32::MIN for both.
        unsafe {
            let lim = vdupq_n_f32(2_147_483_648.0);
            let inside = vandq_u32(vcgeq_f32(a, vnegq_f32(lim)), vcltq_f32(a, lim));
            vbslq_s32(inside, vcvtq_s32_f32(a), vdupq_n_s32(i32::MIN))
        }
    }
    #[inline(always)]
    fn splat_i(x: i32) -> int32x4_t {
        unsafe { vdupq_n_s32(x) }
    }
    #[inline(always)]
    fn add_i(a: int32x4_t, b: int32x4_t) -> int32x4_t {
        unsafe { vaddq_s32(a, b) }
    }
    #[inline(always)]
    fn mul_i(a: int32x4_t, b: int32x4_t) -> int32x4_t {
        unsafe { vmulq_s32(a, b) }
    }
    #[inline(always)]
    fn gt_i(a: int32x4_t, b: int32x4_t) -> uint32x4_t {
        unsafe { vcgtq_s32(a, b) }
    }
    #[inline(always)]
    unsafe fn store_i(p: *mut i32, v: int32x4_t) {
        unsafe { vst1q_s32(p, v) }
    }
    #[inline(always)]
    fn next_lane(a: float32x4_t) -> float32x4_t {
        unsafe { vextq_f32::<1>(a, vdupq_n_f32(-0.0)) }
    }
    #[inline(always)]
    unsafe fn load_pairs(p: *const f32) -> (float32x4_t, float32x4_t) {
        let v = unsafe { vld2q_f32(p) };
        (v.0, v.1)
    }
    #[inline(always)]
    unsafe fn store_pairs(p: *mut f32, a: float32x4_t, b: float32x4_t) {
        unsafe { vst2q_f32(p, float32x4x2_t(a, b)) }
    }
}

const _: () = assert!(Neon::LANES <= MAX_LANES);
