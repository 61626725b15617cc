//! x86-64: the AVX2 + FMA handle (8 lanes, 16 registers), the detection of both x86 paths and
//! the entry points that compile a kernel for them (the AVX-512 vector type is in
//! `x86_512.rs`).

use std::arch::x86_64::*;
use std::sync::atomic::{AtomicU8, Ordering};

use super::{Isa, MAX_LANES, Simd};

pub use super::x86_512::Avx512;

/// Declares `$run`, which runs a closure compiled for the features (everything inlined into
/// it), `$all`, whether the CPU has every one of them, and `$missing`, those it lacks: one
/// list, so detection checks exactly what the entry point enables.
macro_rules! features {
    ($run:ident, $all:ident, $missing:ident: $($f:tt),+) => {
        /// Runs `f` compiled for the features (everything inlined into it).
        ///
        /// # Safety
        /// The CPU must have all the features (a handle proves it: see `detect`).
        $(#[target_feature(enable = $f)])+
        pub(super) unsafe fn $run<R>(f: impl FnOnce() -> R) -> R {
            f()
        }

        /// Whether this CPU has every feature `$run` enables (never under Miri, which runs
        /// no vector instructions). Detected once; then one relaxed load.
        #[inline]
        pub(super) fn $all() -> bool {
            // 0: not detected yet, 1: present, 2: absent.
            static HAS: AtomicU8 = AtomicU8::new(0);
            match HAS.load(Ordering::Relaxed) {
                1 => true,
                2 => false,
                _ => {
                    let has = !cfg!(miri) $(&& is_x86_feature_detected!($f))+;
                    HAS.store(if has { 1 } else { 2 }, Ordering::Relaxed);
                    has
                }
            }
        }

        /// The features `$run` enables that this CPU lacks.
        pub(super) fn $missing() -> Vec<&'static str> {
            let mut lacks = Vec::new();
            $(if cfg!(miri) || !is_x86_feature_detected!($f) {
                lacks.push($f);
            })+
            lacks
        }
    };
}

features!(run_avx2, has_avx2, lacks_avx2: "avx2", "fma", "bmi1", "bmi2", "lzcnt", "popcnt");
features!(
    run_avx512, has_avx512, lacks_avx512:
    "avx512f", "avx512bw", "avx512dq", "avx512vl", "avx2", "fma", "bmi1", "bmi2", "lzcnt", "popcnt"
);

/// AVX2 + FMA: 8 f32 lanes; masks are all-ones lanes of a float vector.
///
/// A handle: a value exists only on a CPU with AVX2, FMA, BMI1/2, LZCNT and POPCNT
/// ([`Avx2::detect`] is the one constructor), which every operation takes as proof.
#[derive(Clone, Copy, Debug)]
pub struct Avx2 {
    _detected: (),
}

impl Avx2 {
    /// The handle, if this CPU has the features (`None` under Miri).
    #[inline]
    pub fn detect() -> Option<Avx2> {
        has_avx2().then_some(Avx2 { _detected: () })
    }

    /// The features this CPU lacks for the path (empty when [`Avx2::detect`] succeeds).
    pub fn missing() -> Vec<&'static str> {
        lacks_avx2()
    }
}

impl Simd for Avx2 {
    const ISA: Isa = Isa::Avx2;
    const LANES: usize = 8;
    const REGISTERS: usize = 16;
    type F = __m256;
    type I = __m256i;
    type M = __m256;

    #[inline(always)]
    fn vectorize<R>(self, f: impl FnOnce() -> R) -> R {
        // SAFETY: `self` is an Avx2 handle, which exists only after `has_avx2` found every
        // feature `run_avx2` enables.
        unsafe { run_avx2(f) }
    }
    #[inline(always)]
    fn splat(self, x: f32) -> __m256 {
        // SAFETY: AVX is present (`self` is an Avx2 handle); no memory is accessed.
        unsafe { _mm256_set1_ps(x) }
    }
    #[inline(always)]
    unsafe fn load(self, p: *const f32) -> __m256 {
        // SAFETY: AVX is present (`self`); the caller guarantees 8 readable floats at `p`, and
        // the load is unaligned.
        unsafe { _mm256_loadu_ps(p) }
    }
    #[inline(always)]
    unsafe fn store(self, p: *mut f32, v: __m256) {
        // SAFETY: AVX is present (`self`); the caller guarantees 8 writable floats at `p`, and
        // the store is unaligned.
        unsafe { _mm256_storeu_ps(p, v) }
    }
    #[inline(always)]
    fn add(self, a: __m256, b: __m256) -> __m256 {
        // SAFETY: AVX is present (`self` is an Avx2 handle); no memory is accessed.
        unsafe { _mm256_add_ps(a, b) }
    }
    #[inline(always)]
    fn sub(self, a: __m256, b: __m256) -> __m256 {
        // SAFETY: AVX is present (`self` is an Avx2 handle); no memory is accessed.
        unsafe { _mm256_sub_ps(a, b) }
    }
    #[inline(always)]
    fn mul(self, a: __m256, b: __m256) -> __m256 {
        // SAFETY: AVX is present (`self` is an Avx2 handle); no memory is accessed.
        unsafe { _mm256_mul_ps(a, b) }
    }
    #[inline(always)]
    fn mul_add(self, a: __m256, b: __m256, c: __m256) -> __m256 {
        // SAFETY: FMA is present (`self` is an Avx2 handle); no memory is accessed.
        unsafe { _mm256_fmadd_ps(a, b, c) }
    }
    #[inline(always)]
    fn fused_mul_add(self, a: __m256, b: __m256, c: __m256) -> __m256 {
        self.mul_add(a, b, c)
    }
    #[inline(always)]
    fn min(self, a: __m256, b: __m256) -> __m256 {
        // SAFETY: AVX is present (`self` is an Avx2 handle); no memory is accessed.
        unsafe { _mm256_min_ps(a, b) }
    }
    #[inline(always)]
    fn max(self, a: __m256, b: __m256) -> __m256 {
        // SAFETY: AVX is present (`self` is an Avx2 handle); no memory is accessed.
        unsafe { _mm256_max_ps(a, b) }
    }
    #[inline(always)]
    fn abs(self, a: __m256) -> __m256 {
        // Clears the sign bits.
        self.andnot(self.splat(-0.0), a)
    }
    #[inline(always)]
    fn floor(self, a: __m256) -> __m256 {
        // SAFETY: AVX is present (`self` is an Avx2 handle); no memory is accessed.
        unsafe { _mm256_floor_ps(a) }
    }
    #[inline(always)]
    fn eq(self, a: __m256, b: __m256) -> __m256 {
        // SAFETY: AVX is present (`self` is an Avx2 handle); no memory is accessed.
        unsafe { _mm256_cmp_ps::<_CMP_EQ_OQ>(a, b) }
    }
    #[inline(always)]
    fn gt(self, a: __m256, b: __m256) -> __m256 {
        // SAFETY: AVX is present (`self` is an Avx2 handle); no memory is accessed.
        unsafe { _mm256_cmp_ps::<_CMP_GT_OQ>(a, b) }
    }
    #[inline(always)]
    fn ge(self, a: __m256, b: __m256) -> __m256 {
        // SAFETY: AVX is present (`self` is an Avx2 handle); no memory is accessed.
        unsafe { _mm256_cmp_ps::<_CMP_GE_OQ>(a, b) }
    }
    #[inline(always)]
    fn le(self, a: __m256, b: __m256) -> __m256 {
        // SAFETY: AVX is present (`self` is an Avx2 handle); no memory is accessed.
        unsafe { _mm256_cmp_ps::<_CMP_LE_OQ>(a, b) }
    }
    #[inline(always)]
    fn is_nan(self, a: __m256) -> __m256 {
        // SAFETY: AVX is present (`self` is an Avx2 handle); no memory is accessed.
        unsafe { _mm256_cmp_ps::<_CMP_UNORD_Q>(a, a) }
    }
    #[inline(always)]
    fn select(self, m: __m256, t: __m256, f: __m256) -> __m256 {
        // SAFETY: AVX is present (`self` is an Avx2 handle); no memory is accessed.
        unsafe { _mm256_blendv_ps(f, t, m) }
    }
    #[inline(always)]
    fn or(self, a: __m256, b: __m256) -> __m256 {
        // SAFETY: AVX is present (`self` is an Avx2 handle); no memory is accessed.
        unsafe { _mm256_or_ps(a, b) }
    }
    #[inline(always)]
    fn and(self, a: __m256, b: __m256) -> __m256 {
        // SAFETY: AVX is present (`self` is an Avx2 handle); no memory is accessed.
        unsafe { _mm256_and_ps(a, b) }
    }
    #[inline(always)]
    fn andnot(self, a: __m256, b: __m256) -> __m256 {
        // SAFETY: AVX is present (`self` is an Avx2 handle); no memory is accessed.
        unsafe { _mm256_andnot_ps(a, b) }
    }
    #[inline(always)]
    fn all_set(self) -> __m256 {
        // SAFETY: AVX is present (`self` is an Avx2 handle); no memory is accessed.
        unsafe { _mm256_castsi256_ps(_mm256_set1_epi32(-1)) }
    }
    #[inline(always)]
    fn bits(self, m: __m256) -> u32 {
        // SAFETY: AVX is present (`self` is an Avx2 handle); no memory is accessed.
        unsafe { _mm256_movemask_ps(m) as u32 }
    }
    #[inline(always)]
    fn hsum(self, v: __m256) -> f32 {
        // SAFETY: AVX (and so SSE) is present (`self` is an Avx2 handle); no memory is
        // accessed.
        unsafe {
            let s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps::<1>(v));
            let s = _mm_add_ps(s, _mm_movehl_ps(s, s));
            let s = _mm_add_ss(s, _mm_shuffle_ps::<0b01>(s, s));
            _mm_cvtss_f32(s)
        }
    }
    #[inline(always)]
    fn to_i32(self, a: __m256) -> __m256i {
        // SAFETY: AVX is present (`self` is an Avx2 handle); no memory is accessed.
        unsafe { _mm256_cvttps_epi32(a) }
    }
    #[inline(always)]
    fn splat_i(self, x: i32) -> __m256i {
        // SAFETY: AVX is present (`self` is an Avx2 handle); no memory is accessed.
        unsafe { _mm256_set1_epi32(x) }
    }
    #[inline(always)]
    fn add_i(self, a: __m256i, b: __m256i) -> __m256i {
        // SAFETY: AVX2 is present (`self` is an Avx2 handle); no memory is accessed.
        unsafe { _mm256_add_epi32(a, b) }
    }
    #[inline(always)]
    fn mul_i(self, a: __m256i, b: __m256i) -> __m256i {
        // SAFETY: AVX2 is present (`self` is an Avx2 handle); no memory is accessed.
        unsafe { _mm256_mullo_epi32(a, b) }
    }
    #[inline(always)]
    fn gt_i(self, a: __m256i, b: __m256i) -> __m256 {
        // SAFETY: AVX2 is present (`self` is an Avx2 handle); no memory is accessed.
        unsafe { _mm256_castsi256_ps(_mm256_cmpgt_epi32(a, b)) }
    }
    #[inline(always)]
    unsafe fn store_i(self, p: *mut i32, v: __m256i) {
        // SAFETY: AVX is present (`self`); the caller guarantees 8 writable i32 at `p`, and the
        // store is unaligned.
        unsafe { _mm256_storeu_si256(p.cast(), v) }
    }
    #[inline(always)]
    unsafe fn gather(self, base: *const f32, idx: __m256i, mask: __m256) -> __m256 {
        // SAFETY: AVX2 is present (`self`); the gather reads base[idx[l]] only in the lanes
        // `mask` sets, which the caller guarantees readable.
        unsafe { _mm256_mask_i32gather_ps::<4>(_mm256_setzero_ps(), base, idx, mask) }
    }
    #[inline(always)]
    fn next_lane(self, a: __m256) -> __m256 {
        // SAFETY: AVX2 is present (`self` is an Avx2 handle); no memory is accessed.
        unsafe {
            let p = _mm256_permutevar8x32_ps(a, _mm256_setr_epi32(1, 2, 3, 4, 5, 6, 7, 7));
            _mm256_blend_ps::<0x80>(p, _mm256_set1_ps(-0.0))
        }
    }
    #[inline(always)]
    unsafe fn load_pairs(self, p: *const f32) -> (__m256, __m256) {
        // SAFETY: AVX2 is present (`self`); the caller guarantees 16 readable floats at `p`
        // (two unaligned loads of 8).
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
    unsafe fn store_pairs(self, p: *mut f32, a: __m256, b: __m256) {
        // SAFETY: AVX is present (`self`); the caller guarantees 16 writable floats at `p`
        // (two unaligned stores of 8).
        unsafe {
            let lo = _mm256_unpacklo_ps(a, b); // a0 b0 a1 b1 | a4 b4 a5 b5
            let hi = _mm256_unpackhi_ps(a, b); // a2 b2 a3 b3 | a6 b6 a7 b7
            _mm256_storeu_ps(p, _mm256_permute2f128_ps::<0x20>(lo, hi));
            _mm256_storeu_ps(p.add(8), _mm256_permute2f128_ps::<0x31>(lo, hi));
        }
    }
}

const _: () = assert!(Avx2::LANES <= MAX_LANES);
