//! x86-64: AVX2 + FMA (8 lanes, 16 registers) and the entry points that compile a kernel for
//! AVX2 or AVX-512 (the AVX-512 vector type is in `x86_512.rs`).

use std::arch::x86_64::*;

use super::{Isa, MAX_LANES, Simd};

pub use super::x86_512::Avx512;

/// Whether the CPU has AVX2 and FMA.
pub fn avx2_available() -> bool {
    is_x86_feature_detected!("avx2") && is_x86_feature_detected!("fma")
}

/// Whether the CPU has the AVX-512 subsets the kernels are compiled for (and AVX2 + FMA).
pub fn avx512_available() -> bool {
    avx2_available()
        && is_x86_feature_detected!("avx512f")
        && is_x86_feature_detected!("avx512bw")
        && is_x86_feature_detected!("avx512dq")
        && is_x86_feature_detected!("avx512vl")
}

/// Runs `f` compiled for AVX2 + FMA (everything inlined into it).
///
/// # Safety
/// The CPU must have AVX2 and FMA.
#[target_feature(enable = "avx2,fma,bmi1,bmi2,lzcnt,popcnt")]
pub unsafe fn run_avx2<R>(f: impl FnOnce() -> R) -> R {
    f()
}

/// Runs `f` compiled for AVX-512 (everything inlined into it).
///
/// # Safety
/// The CPU must have AVX-512 F, BW, DQ and VL, AVX2 and FMA.
#[target_feature(enable = "avx512f,avx512bw,avx512dq,avx512vl,avx2,fma,bmi1,bmi2,lzcnt,popcnt")]
pub unsafe fn run_avx512<R>(f: impl FnOnce() -> R) -> R {
    f()
}

/// AVX2 + FMA: 8 f32 lanes; masks are all-ones lanes of a float vector.
#[derive(Clone, Copy, Debug)]
pub struct Avx2;

// SAFETY (every `unsafe` block below): these functions only run inside `run_avx2` or
// `run_avx512`, i.e. on a CPU with AVX2 and FMA, into which they are always inlined; pointer
// arguments are the callers' responsibility as documented on the trait.
impl Simd for Avx2 {
    const ISA: Isa = Isa::Avx2;
    const LANES: usize = 8;
    const REGISTERS: usize = 16;
    type F = __m256;
    type I = __m256i;
    type M = __m256;

    #[inline(always)]
    fn zero() -> __m256 {
        unsafe { _mm256_setzero_ps() }
    }
    #[inline(always)]
    fn splat(x: f32) -> __m256 {
        unsafe { _mm256_set1_ps(x) }
    }
    #[inline(always)]
    unsafe fn load(p: *const f32) -> __m256 {
        unsafe { _mm256_loadu_ps(p) }
    }
    #[inline(always)]
    unsafe fn store(p: *mut f32, v: __m256) {
        unsafe { _mm256_storeu_ps(p, v) }
    }
    #[inline(always)]
    fn add(a: __m256, b: __m256) -> __m256 {
        unsafe { _mm256_add_ps(a, b) }
    }
    #[inline(always)]
    fn sub(a: __m256, b: __m256) -> __m256 {
        unsafe { _mm256_sub_ps(a, b) }
    }
    #[inline(always)]
    fn mul(a: __m256, b: __m256) -> __m256 {
        unsafe { _mm256_mul_ps(a, b) }
    }
    #[inline(always)]
    fn mul_add(a: __m256, b: __m256, c: __m256) -> __m256 {
        unsafe { _mm256_fmadd_ps(a, b, c) }
    }
    #[inline(always)]
    fn fused_mul_add(a: __m256, b: __m256, c: __m256) -> __m256 {
        Self::mul_add(a, b, c)
    }
    #[inline(always)]
    fn min(a: __m256, b: __m256) -> __m256 {
        unsafe { _mm256_min_ps(a, b) }
    }
    #[inline(always)]
    fn max(a: __m256, b: __m256) -> __m256 {
        unsafe { _mm256_max_ps(a, b) }
    }
    #[inline(always)]
    fn abs(a: __m256) -> __m256 {
        unsafe { _mm256_andnot_ps(_mm256_set1_ps(-0.0), a) }
    }
    #[inline(always)]
    fn floor(a: __m256) -> __m256 {
        unsafe { _mm256_floor_ps(a) }
    }
    #[inline(always)]
    fn eq(a: __m256, b: __m256) -> __m256 {
        unsafe { _mm256_cmp_ps::<_CMP_EQ_OQ>(a, b) }
    }
    #[inline(always)]
    fn gt(a: __m256, b: __m256) -> __m256 {
        unsafe { _mm256_cmp_ps::<_CMP_GT_OQ>(a, b) }
    }
    #[inline(always)]
    fn ge(a: __m256, b: __m256) -> __m256 {
        unsafe { _mm256_cmp_ps::<_CMP_GE_OQ>(a, b) }
    }
    #[inline(always)]
    fn le(a: __m256, b: __m256) -> __m256 {
        unsafe { _mm256_cmp_ps::<_CMP_LE_OQ>(a, b) }
    }
    #[inline(always)]
    fn is_nan(a: __m256) -> __m256 {
        unsafe { _mm256_cmp_ps::<_CMP_UNORD_Q>(a, a) }
    }
    #[inline(always)]
    fn select(m: __m256, t: __m256, f: __m256) -> __m256 {
        unsafe { _mm256_blendv_ps(f, t, m) }
    }
    #[inline(always)]
    fn or(a: __m256, b: __m256) -> __m256 {
        unsafe { _mm256_or_ps(a, b) }
    }
    #[inline(always)]
    fn and(a: __m256, b: __m256) -> __m256 {
        unsafe { _mm256_and_ps(a, b) }
    }
    #[inline(always)]
    fn andnot(a: __m256, b: __m256) -> __m256 {
        unsafe { _mm256_andnot_ps(a, b) }
    }
    #[inline(always)]
    fn all_set() -> __m256 {
        unsafe { _mm256_castsi256_ps(_mm256_set1_epi32(-1)) }
    }
    #[inline(always)]
    fn bits(m: __m256) -> u32 {
        unsafe { _mm256_movemask_ps(m) as u32 }
    }
    #[inline(always)]
    fn hsum(v: __m256) -> f32 {
        unsafe {
            let s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps::<1>(v));
            let s = _mm_add_ps(s, _mm_movehl_ps(s, s));
            let s = _mm_add_ss(s, _mm_shuffle_ps::<0b01>(s, s));
            _mm_cvtss_f32(s)
        }
    }
    #[inline(always)]
    fn to_i32(a: __m256) -> __m256i {
        unsafe { _mm256_cvttps_epi32(a) }
    }
    #[inline(always)]
    fn splat_i(x: i32) -> __m256i {
        unsafe { _mm256_set1_epi32(x) }
    }
    #[inline(always)]
    fn add_i(a: __m256i, b: __m256i) -> __m256i {
        unsafe { _mm256_add_epi32(a, b) }
    }
    #[inline(always)]
    fn mul_i(a: __m256i, b: __m256i) -> __m256i {
        unsafe { _mm256_mullo_epi32(a, b) }
    }
    #[inline(always)]
    fn gt_i(a: __m256i, b: __m256i) -> __m256 {
        unsafe { _mm256_castsi256_ps(_mm256_cmpgt_epi32(a, b)) }
    }
    #[inline(always)]
    unsafe fn store_i(p: *mut i32, v: __m256i) {
        unsafe { _mm256_storeu_si256(p.cast(), v) }
    }
    #[inline(always)]
    unsafe fn gather(base: *const f32, idx: __m256i, mask: __m256) -> __m256 {
        unsafe { _mm256_mask_i32gather_ps::<4>(_mm256_setzero_ps(), base, idx, mask) }
    }
    #[inline(always)]
    fn next_lane(a: __m256) -> __m256 {
        unsafe {
            let p = _mm256_permutevar8x32_ps(a, _mm256_setr_epi32(1, 2, 3, 4, 5, 6, 7, 7));
            _mm256_blend_ps::<0x80>(p, _mm256_set1_ps(-0.0))
        }
    }
    #[inline(always)]
    unsafe fn load_pairs(p: *const f32) -> (__m256, __m256) {
        unsafe {
            let a = _mm256_loadu_ps(p);
            let b = _mm256_loadu_ps(p.add(8));
            // In-lane shuffles give [a0 a1 b0 b1 | a2 a3 b2 b3] orders; one cross-lane
            // permutation of 64-bit halves fixes each.
            let xs = _mm256_shuffle_ps::<0b10_00_10_00>(a, b);
            let ys = _mm256_shuffle_ps::<0b11_01_11_01>(a, b);
            let fix = |v: __m256| {
                _mm256_castpd_ps(_mm256_permute4x64_pd::<0b11_01_10_00>(_mm256_castps_pd(v)))
            };
            (fix(xs), fix(ys))
        }
    }
    #[inline(always)]
    unsafe fn store_pairs(p: *mut f32, a: __m256, b: __m256) {
        unsafe {
            let lo = _mm256_unpacklo_ps(a, b); // a0 b0 a1 b1 | a4 b4 a5 b5
            let hi = _mm256_unpackhi_ps(a, b); // a2 b2 a3 b3 | a6 b6 a7 b7
            _mm256_storeu_ps(p, _mm256_permute2f128_ps::<0x20>(lo, hi));
            _mm256_storeu_ps(p.add(8), _mm256_permute2f128_ps::<0x31>(lo, hi));
        }
    }
}

const _: () = assert!(Avx2::LANES <= MAX_LANES);
