//! AVX-512 (F, BW, DQ, VL): 16 f32 lanes, 32 registers, masks in mask registers.

use std::arch::x86_64::*;

use super::x86::{has_avx512, lacks_avx512, run_avx512};
use super::{Isa, MAX_LANES, Simd};

/// AVX-512: 16 f32 lanes; masks are `__mmask16`.
///
/// A handle: a value exists only on a CPU with AVX-512 F/BW/DQ/VL and everything
/// [`Avx2`](super::x86::Avx2) needs ([`Avx512::detect`] is the one constructor), which every
/// operation takes as proof.
#[derive(Clone, Copy, Debug)]
pub struct Avx512 {
    _detected: (),
}

impl Avx512 {
    /// The handle, if this CPU has the features (`None` under Miri).
    #[inline]
    pub fn detect() -> Option<Avx512> {
        has_avx512().then_some(Avx512 { _detected: () })
    }

    /// The features this CPU lacks for the path (empty when [`Avx512::detect`] succeeds).
    pub fn missing() -> Vec<&'static str> {
        lacks_avx512()
    }
}

impl Simd for Avx512 {
    const ISA: Isa = Isa::Avx512;
    const LANES: usize = 16;
    const REGISTERS: usize = 32;
    type F = __m512;
    type I = __m512i;
    type M = __mmask16;

    #[inline(always)]
    fn vectorize<R>(self, f: impl FnOnce() -> R) -> R {
        // SAFETY: `self` is an Avx512 handle, which exists only after `has_avx512` found every
        // feature `run_avx512` enables.
        unsafe { run_avx512(f) }
    }
    #[inline(always)]
    fn splat(self, x: f32) -> __m512 {
        // SAFETY: AVX-512 is present (`self` is an Avx512 handle); no memory is accessed.
        unsafe { _mm512_set1_ps(x) }
    }
    #[inline(always)]
    unsafe fn load(self, p: *const f32) -> __m512 {
        // SAFETY: AVX-512 F is present (`self`); the caller guarantees 16 readable floats at
        // `p`, and the load is unaligned.
        unsafe { _mm512_loadu_ps(p) }
    }
    #[inline(always)]
    unsafe fn store(self, p: *mut f32, v: __m512) {
        // SAFETY: AVX-512 F is present (`self`); the caller guarantees 16 writable floats at
        // `p`, and the store is unaligned.
        unsafe { _mm512_storeu_ps(p, v) }
    }
    #[inline(always)]
    fn add(self, a: __m512, b: __m512) -> __m512 {
        // SAFETY: AVX-512 is present (`self` is an Avx512 handle); no memory is accessed.
        unsafe { _mm512_add_ps(a, b) }
    }
    #[inline(always)]
    fn sub(self, a: __m512, b: __m512) -> __m512 {
        // SAFETY: AVX-512 is present (`self` is an Avx512 handle); no memory is accessed.
        unsafe { _mm512_sub_ps(a, b) }
    }
    #[inline(always)]
    fn mul(self, a: __m512, b: __m512) -> __m512 {
        // SAFETY: AVX-512 is present (`self` is an Avx512 handle); no memory is accessed.
        unsafe { _mm512_mul_ps(a, b) }
    }
    #[inline(always)]
    fn mul_add(self, a: __m512, b: __m512, c: __m512) -> __m512 {
        // SAFETY: AVX-512 F (with its FMA) is present (`self` is an Avx512 handle); no memory is accessed.
        unsafe { _mm512_fmadd_ps(a, b, c) }
    }
    #[inline(always)]
    fn fused_mul_add(self, a: __m512, b: __m512, c: __m512) -> __m512 {
        self.mul_add(a, b, c)
    }
    #[inline(always)]
    fn min(self, a: __m512, b: __m512) -> __m512 {
        // SAFETY: AVX-512 is present (`self` is an Avx512 handle); no memory is accessed.
        unsafe { _mm512_min_ps(a, b) }
    }
    #[inline(always)]
    fn max(self, a: __m512, b: __m512) -> __m512 {
        // SAFETY: AVX-512 is present (`self` is an Avx512 handle); no memory is accessed.
        unsafe { _mm512_max_ps(a, b) }
    }
    #[inline(always)]
    fn abs(self, a: __m512) -> __m512 {
        // SAFETY: AVX-512 is present (`self` is an Avx512 handle); no memory is accessed.
        unsafe { _mm512_abs_ps(a) }
    }
    #[inline(always)]
    fn floor(self, a: __m512) -> __m512 {
        // SAFETY: AVX-512 is present (`self` is an Avx512 handle); no memory is accessed.
        unsafe { _mm512_roundscale_ps::<{ _MM_FROUND_TO_NEG_INF | _MM_FROUND_NO_EXC }>(a) }
    }
    #[inline(always)]
    fn eq(self, a: __m512, b: __m512) -> __mmask16 {
        // SAFETY: AVX-512 is present (`self` is an Avx512 handle); no memory is accessed.
        unsafe { _mm512_cmp_ps_mask::<_CMP_EQ_OQ>(a, b) }
    }
    #[inline(always)]
    fn gt(self, a: __m512, b: __m512) -> __mmask16 {
        // SAFETY: AVX-512 is present (`self` is an Avx512 handle); no memory is accessed.
        unsafe { _mm512_cmp_ps_mask::<_CMP_GT_OQ>(a, b) }
    }
    #[inline(always)]
    fn ge(self, a: __m512, b: __m512) -> __mmask16 {
        // SAFETY: AVX-512 is present (`self` is an Avx512 handle); no memory is accessed.
        unsafe { _mm512_cmp_ps_mask::<_CMP_GE_OQ>(a, b) }
    }
    #[inline(always)]
    fn le(self, a: __m512, b: __m512) -> __mmask16 {
        // SAFETY: AVX-512 is present (`self` is an Avx512 handle); no memory is accessed.
        unsafe { _mm512_cmp_ps_mask::<_CMP_LE_OQ>(a, b) }
    }
    #[inline(always)]
    fn is_nan(self, a: __m512) -> __mmask16 {
        // SAFETY: AVX-512 is present (`self` is an Avx512 handle); no memory is accessed.
        unsafe { _mm512_cmp_ps_mask::<_CMP_UNORD_Q>(a, a) }
    }
    #[inline(always)]
    fn select(self, m: __mmask16, t: __m512, f: __m512) -> __m512 {
        // SAFETY: AVX-512 is present (`self` is an Avx512 handle); no memory is accessed.
        unsafe { _mm512_mask_blend_ps(m, f, t) }
    }
    #[inline(always)]
    fn or(self, a: __mmask16, b: __mmask16) -> __mmask16 {
        a | b
    }
    #[inline(always)]
    fn and(self, a: __mmask16, b: __mmask16) -> __mmask16 {
        a & b
    }
    #[inline(always)]
    fn andnot(self, a: __mmask16, b: __mmask16) -> __mmask16 {
        !a & b
    }
    #[inline(always)]
    fn all_set(self) -> __mmask16 {
        0xffff
    }
    #[inline(always)]
    fn bits(self, m: __mmask16) -> u32 {
        m as u32
    }
    #[inline(always)]
    fn hsum(self, v: __m512) -> f32 {
        // SAFETY: AVX-512 (and so AVX and SSE) is present (`self` is an Avx512 handle); no
        // memory is accessed.
        unsafe {
            let h = _mm256_add_ps(
                _mm512_castps512_ps256(v),
                _mm256_castpd_ps(_mm512_extractf64x4_pd::<1>(_mm512_castps_pd(v))),
            );
            let s = _mm_add_ps(_mm256_castps256_ps128(h), _mm256_extractf128_ps::<1>(h));
            let s = _mm_add_ps(s, _mm_movehl_ps(s, s));
            let s = _mm_add_ss(s, _mm_shuffle_ps::<0b01>(s, s));
            _mm_cvtss_f32(s)
        }
    }
    #[inline(always)]
    fn to_i32(self, a: __m512) -> __m512i {
        // SAFETY: AVX-512 is present (`self` is an Avx512 handle); no memory is accessed.
        unsafe { _mm512_cvttps_epi32(a) }
    }
    #[inline(always)]
    fn splat_i(self, x: i32) -> __m512i {
        // SAFETY: AVX-512 is present (`self` is an Avx512 handle); no memory is accessed.
        unsafe { _mm512_set1_epi32(x) }
    }
    #[inline(always)]
    fn add_i(self, a: __m512i, b: __m512i) -> __m512i {
        // SAFETY: AVX-512 is present (`self` is an Avx512 handle); no memory is accessed.
        unsafe { _mm512_add_epi32(a, b) }
    }
    #[inline(always)]
    fn mul_i(self, a: __m512i, b: __m512i) -> __m512i {
        // SAFETY: AVX-512 is present (`self` is an Avx512 handle); no memory is accessed.
        unsafe { _mm512_mullo_epi32(a, b) }
    }
    #[inline(always)]
    fn gt_i(self, a: __m512i, b: __m512i) -> __mmask16 {
        // SAFETY: AVX-512 is present (`self` is an Avx512 handle); no memory is accessed.
        unsafe { _mm512_cmpgt_epi32_mask(a, b) }
    }
    #[inline(always)]
    unsafe fn store_i(self, p: *mut i32, v: __m512i) {
        // SAFETY: AVX-512 F is present (`self`); the caller guarantees 16 writable i32 at `p`,
        // and the store is unaligned.
        unsafe { _mm512_storeu_si512(p.cast(), v) }
    }
    #[inline(always)]
    unsafe fn gather(self, base: *const f32, idx: __m512i, mask: __mmask16) -> __m512 {
        // SAFETY: AVX-512 F is present (`self`); the gather reads base[idx[l]] only in the lanes
        // `mask` sets, which the caller guarantees readable.
        unsafe { _mm512_mask_i32gather_ps::<4>(_mm512_setzero_ps(), mask, idx, base) }
    }
    #[inline(always)]
    fn next_lane(self, a: __m512) -> __m512 {
        // SAFETY: AVX-512 is present (`self` is an Avx512 handle); no memory is accessed.
        unsafe {
            let fill = _mm512_castps_si512(_mm512_set1_ps(-0.0));
            _mm512_castsi512_ps(_mm512_alignr_epi32::<1>(fill, _mm512_castps_si512(a)))
        }
    }
    #[inline(always)]
    unsafe fn load_pairs(self, p: *const f32) -> (__m512, __m512) {
        // SAFETY: AVX-512 F is present (`self`); the caller guarantees 32 readable floats at
        // `p` (two unaligned loads of 16).
        unsafe {
            let a = _mm512_loadu_ps(p);
            let b = _mm512_loadu_ps(p.add(16));
            let even = _mm512_setr_epi32(0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30);
            let odd = _mm512_setr_epi32(1, 3, 5, 7, 9, 11, 13, 15, 17, 19, 21, 23, 25, 27, 29, 31);
            (
                _mm512_permutex2var_ps(a, even, b),
                _mm512_permutex2var_ps(a, odd, b),
            )
        }
    }
    #[inline(always)]
    unsafe fn store_pairs(self, p: *mut f32, a: __m512, b: __m512) {
        // SAFETY: AVX-512 F is present (`self`); the caller guarantees 32 writable floats at
        // `p` (two unaligned stores of 16).
        unsafe {
            let lo = _mm512_setr_epi32(0, 16, 1, 17, 2, 18, 3, 19, 4, 20, 5, 21, 6, 22, 7, 23);
            let hi =
                _mm512_setr_epi32(8, 24, 9, 25, 10, 26, 11, 27, 12, 28, 13, 29, 14, 30, 15, 31);
            _mm512_storeu_ps(p, _mm512_permutex2var_ps(a, lo, b));
            _mm512_storeu_ps(p.add(16), _mm512_permutex2var_ps(a, hi, b));
        }
    }
}

const _: () = assert!(Avx512::LANES <= MAX_LANES);
