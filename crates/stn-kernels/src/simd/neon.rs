//! aarch64 NEON (Advanced SIMD): 4 f32 lanes, 32 registers; part of the aarch64 baseline, so
//! always available there.

use std::arch::aarch64::*;

use super::{Isa, MAX_LANES, Simd};

/// Runs `f` compiled for NEON (everything inlined into it).
///
/// # Safety
/// The CPU must have NEON (a handle proves it: see [`Neon::detect`]).
#[target_feature(enable = "neon")]
unsafe fn run_neon<R>(f: impl FnOnce() -> R) -> R {
    f()
}

/// NEON: `float32x4_t`, masks `uint32x4_t`.
///
/// A handle: a value exists only on a CPU with NEON ([`Neon::detect`] is the one
/// constructor), which every operation takes as proof.
#[derive(Clone, Copy, Debug)]
pub struct Neon {
    _detected: (),
}

impl Neon {
    /// The handle, if this CPU has NEON (every aarch64 CPU that runs the usual targets does;
    /// `None` under Miri).
    #[inline]
    pub fn detect() -> Option<Neon> {
        (!cfg!(miri) && std::arch::is_aarch64_feature_detected!("neon"))
            .then_some(Neon { _detected: () })
    }
}

impl Simd for Neon {
    const ISA: Isa = Isa::Neon;
    const LANES: usize = 4;
    const REGISTERS: usize = 32;
    type F = float32x4_t;
    type I = int32x4_t;
    type M = uint32x4_t;

    #[inline(always)]
    fn vectorize<R>(self, f: impl FnOnce() -> R) -> R {
        // SAFETY: `self` is a Neon handle, which exists only after NEON was detected.
        unsafe { run_neon(f) }
    }
    #[inline(always)]
    fn splat(self, x: f32) -> float32x4_t {
        // SAFETY: NEON is present (`self` is a Neon handle); no memory is accessed.
        unsafe { vdupq_n_f32(x) }
    }
    #[inline(always)]
    unsafe fn load(self, p: *const f32) -> float32x4_t {
        // SAFETY: NEON is present (`self`); the caller guarantees 4 readable floats at `p`,
        // and `vld1q_f32` needs only f32 alignment, which a valid `*const f32` has.
        unsafe { vld1q_f32(p) }
    }
    #[inline(always)]
    unsafe fn store(self, p: *mut f32, v: float32x4_t) {
        // SAFETY: NEON is present (`self`); the caller guarantees 4 writable floats at `p`,
        // and `vst1q_f32` needs only f32 alignment.
        unsafe { vst1q_f32(p, v) }
    }
    #[inline(always)]
    fn add(self, a: float32x4_t, b: float32x4_t) -> float32x4_t {
        // SAFETY: NEON is present (`self` is a Neon handle); no memory is accessed.
        unsafe { vaddq_f32(a, b) }
    }
    #[inline(always)]
    fn sub(self, a: float32x4_t, b: float32x4_t) -> float32x4_t {
        // SAFETY: NEON is present (`self` is a Neon handle); no memory is accessed.
        unsafe { vsubq_f32(a, b) }
    }
    #[inline(always)]
    fn mul(self, a: float32x4_t, b: float32x4_t) -> float32x4_t {
        // SAFETY: NEON is present (`self` is a Neon handle); no memory is accessed.
        unsafe { vmulq_f32(a, b) }
    }
    #[inline(always)]
    fn mul_add(self, a: float32x4_t, b: float32x4_t, c: float32x4_t) -> float32x4_t {
        // SAFETY: NEON is present (`self` is a Neon handle); no memory is accessed.
        unsafe { vfmaq_f32(c, a, b) }
    }
    #[inline(always)]
    fn fused_mul_add(self, a: float32x4_t, b: float32x4_t, c: float32x4_t) -> float32x4_t {
        self.mul_add(a, b, c)
    }
    #[inline(always)]
    fn min(self, a: float32x4_t, b: float32x4_t) -> float32x4_t {
        // x86's semantics (b unless a < b), which NEON's vminq does not have for NaN.
        self.select(self.gt(b, a), a, b)
    }
    #[inline(always)]
    fn max(self, a: float32x4_t, b: float32x4_t) -> float32x4_t {
        self.select(self.gt(a, b), a, b)
    }
    #[inline(always)]
    fn abs(self, a: float32x4_t) -> float32x4_t {
        // SAFETY: NEON is present (`self` is a Neon handle); no memory is accessed.
        unsafe { vabsq_f32(a) }
    }
    #[inline(always)]
    fn floor(self, a: float32x4_t) -> float32x4_t {
        // SAFETY: NEON is present (`self` is a Neon handle); no memory is accessed.
        unsafe { vrndmq_f32(a) }
    }
    #[inline(always)]
    fn eq(self, a: float32x4_t, b: float32x4_t) -> uint32x4_t {
        // SAFETY: NEON is present (`self` is a Neon handle); no memory is accessed.
        unsafe { vceqq_f32(a, b) }
    }
    #[inline(always)]
    fn gt(self, a: float32x4_t, b: float32x4_t) -> uint32x4_t {
        // SAFETY: NEON is present (`self` is a Neon handle); no memory is accessed.
        unsafe { vcgtq_f32(a, b) }
    }
    #[inline(always)]
    fn ge(self, a: float32x4_t, b: float32x4_t) -> uint32x4_t {
        // SAFETY: NEON is present (`self` is a Neon handle); no memory is accessed.
        unsafe { vcgeq_f32(a, b) }
    }
    #[inline(always)]
    fn le(self, a: float32x4_t, b: float32x4_t) -> uint32x4_t {
        // SAFETY: NEON is present (`self` is a Neon handle); no memory is accessed.
        unsafe { vcleq_f32(a, b) }
    }
    #[inline(always)]
    fn is_nan(self, a: float32x4_t) -> uint32x4_t {
        // SAFETY: NEON is present (`self` is a Neon handle); no memory is accessed.
        unsafe { vmvnq_u32(vceqq_f32(a, a)) }
    }
    #[inline(always)]
    fn select(self, m: uint32x4_t, t: float32x4_t, f: float32x4_t) -> float32x4_t {
        // SAFETY: NEON is present (`self` is a Neon handle); no memory is accessed.
        unsafe { vbslq_f32(m, t, f) }
    }
    #[inline(always)]
    fn or(self, a: uint32x4_t, b: uint32x4_t) -> uint32x4_t {
        // SAFETY: NEON is present (`self` is a Neon handle); no memory is accessed.
        unsafe { vorrq_u32(a, b) }
    }
    #[inline(always)]
    fn and(self, a: uint32x4_t, b: uint32x4_t) -> uint32x4_t {
        // SAFETY: NEON is present (`self` is a Neon handle); no memory is accessed.
        unsafe { vandq_u32(a, b) }
    }
    #[inline(always)]
    fn andnot(self, a: uint32x4_t, b: uint32x4_t) -> uint32x4_t {
        // vbicq(b, a) = b & !a.
        // SAFETY: NEON is present (`self` is a Neon handle); no memory is accessed.
        unsafe { vbicq_u32(b, a) }
    }
    #[inline(always)]
    fn all_set(self) -> uint32x4_t {
        // SAFETY: NEON is present (`self` is a Neon handle); no memory is accessed.
        unsafe { vdupq_n_u32(u32::MAX) }
    }
    #[inline(always)]
    fn bits(self, m: uint32x4_t) -> u32 {
        // SAFETY: NEON is present (`self` is a Neon handle); the one load reads the four u32
        // of `weights`.
        unsafe {
            let weights: [u32; 4] = [1, 2, 4, 8];
            vaddvq_u32(vandq_u32(m, vld1q_u32(weights.as_ptr())))
        }
    }
    #[inline(always)]
    fn hsum(self, a: float32x4_t) -> f32 {
        // SAFETY: NEON is present (`self` is a Neon handle); no memory is accessed.
        unsafe { vaddvq_f32(a) }
    }
    #[inline(always)]
    fn to_i32(self, a: float32x4_t) -> int32x4_t {
        // vcvtq saturates and sends NaN to 0; x86 gives i32::MIN for both.
        // SAFETY: NEON is present (`self` is a Neon handle); no memory is accessed.
        unsafe {
            let lim = vdupq_n_f32(2_147_483_648.0);
            let inside = vandq_u32(vcgeq_f32(a, vnegq_f32(lim)), vcltq_f32(a, lim));
            vbslq_s32(inside, vcvtq_s32_f32(a), vdupq_n_s32(i32::MIN))
        }
    }
    #[inline(always)]
    fn splat_i(self, x: i32) -> int32x4_t {
        // SAFETY: NEON is present (`self` is a Neon handle); no memory is accessed.
        unsafe { vdupq_n_s32(x) }
    }
    #[inline(always)]
    fn add_i(self, a: int32x4_t, b: int32x4_t) -> int32x4_t {
        // SAFETY: NEON is present (`self` is a Neon handle); no memory is accessed.
        unsafe { vaddq_s32(a, b) }
    }
    #[inline(always)]
    fn mul_i(self, a: int32x4_t, b: int32x4_t) -> int32x4_t {
        // SAFETY: NEON is present (`self` is a Neon handle); no memory is accessed.
        unsafe { vmulq_s32(a, b) }
    }
    #[inline(always)]
    fn gt_i(self, a: int32x4_t, b: int32x4_t) -> uint32x4_t {
        // SAFETY: NEON is present (`self` is a Neon handle); no memory is accessed.
        unsafe { vcgtq_s32(a, b) }
    }
    #[inline(always)]
    unsafe fn store_i(self, p: *mut i32, v: int32x4_t) {
        // SAFETY: NEON is present (`self`); the caller guarantees 4 writable i32 at `p`, and
        // `vst1q_s32` needs only i32 alignment.
        unsafe { vst1q_s32(p, v) }
    }
    #[inline(always)]
    fn next_lane(self, a: float32x4_t) -> float32x4_t {
        // SAFETY: NEON is present (`self` is a Neon handle); no memory is accessed.
        unsafe { vextq_f32::<1>(a, vdupq_n_f32(-0.0)) }
    }
    #[inline(always)]
    unsafe fn load_pairs(self, p: *const f32) -> (float32x4_t, float32x4_t) {
        // SAFETY: NEON is present (`self`); the caller guarantees 8 readable floats at `p`,
        // and `vld2q_f32` needs only f32 alignment.
        let v = unsafe { vld2q_f32(p) };
        (v.0, v.1)
    }
    #[inline(always)]
    unsafe fn store_pairs(self, p: *mut f32, a: float32x4_t, b: float32x4_t) {
        // SAFETY: NEON is present (`self`); the caller guarantees 8 writable floats at `p`,
        // and `vst2q_f32` needs only f32 alignment.
        unsafe { vst2q_f32(p, float32x4x2_t(a, b)) }
    }
}

const _: () = assert!(Neon::LANES <= MAX_LANES);
