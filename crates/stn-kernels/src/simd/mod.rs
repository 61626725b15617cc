//! One kernel source for every CPU: the hot kernels are written once, generic over [`Simd`],
//! and [`dispatch!`] runs them compiled for the instruction set chosen at run time.
//!
//! | [`Isa`] | vector | f32 lanes (= images per block of the batch-blocked layout) | registers |
//! |---|---|---|---|
//! | `Portable` | `[f32; 4]`, plain Rust | 4 | 16 |
//! | `Avx2` | `__m256` (AVX2 + FMA) | 8 | 16 |
//! | `Avx512` | `__m512` (AVX-512 F/BW/DQ/VL) | 16 | 32 |
//! | `Neon` | `float32x4_t` (aarch64) | 4 | 32 |
//!
//! The choice is made per call, on the calling thread: a scoped override ([`with_isa`], for
//! tests), else the process-wide one ([`set_isa`], for `--isa` / `STN_ISA`), else the best the
//! CPU has. A kernel reads it once at its entry and hands it to its worker threads, so one
//! call never mixes paths. Each path is deterministic on its own (fixed summation orders, no
//! dependence on the thread count); paths differ from one another in the last bits where they
//! sum in lane order (weight gradients, theta's gradient) or fuse multiply-adds.
//!
//! Why our own thin trait over `std::arch` rather than `macerator` or `pulp` (both already in
//! the dependency tree): see BENCHMARKS.md, "SIMD: how the kernels are written and why".

use std::cell::Cell;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU8, Ordering};

#[cfg(target_arch = "aarch64")]
pub mod neon;
pub mod portable;
#[cfg(target_arch = "x86_64")]
pub mod x86;
#[cfg(target_arch = "x86_64")]
mod x86_512;

/// An instruction-set path of the kernels.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Isa {
    /// Plain Rust on 4-lane arrays: any CPU (what CI checks on every machine).
    Portable,
    /// x86-64 with AVX2 and FMA: 8 lanes.
    Avx2,
    /// x86-64 with AVX-512 (F, BW, DQ, VL): 16 lanes.
    Avx512,
    /// aarch64 NEON (Advanced SIMD): 4 lanes.
    Neon,
}

impl Isa {
    /// Every path, the portable one first.
    pub const ALL: [Isa; 4] = [Isa::Portable, Isa::Avx2, Isa::Avx512, Isa::Neon];

    /// The name used by `STN_ISA`, `--isa` and `stn bench --json`'s "kernel_path".
    pub fn name(self) -> &'static str {
        match self {
            Isa::Portable => "portable",
            Isa::Avx2 => "avx2",
            Isa::Avx512 => "avx512",
            Isa::Neon => "neon",
        }
    }

    /// The path of a name (see [`Isa::name`]).
    pub fn parse(name: &str) -> Option<Isa> {
        Isa::ALL.into_iter().find(|i| i.name() == name)
    }

    /// f32 lanes of one vector: the block width of the batch-blocked layout on this path.
    pub fn lanes(self) -> usize {
        match self {
            Isa::Portable => portable::Portable::LANES,
            Isa::Avx2 => 8,
            Isa::Avx512 => 16,
            Isa::Neon => 4,
        }
    }

    /// Whether this CPU can run the path; `Err` says what it lacks.
    pub fn check(self) -> Result<(), String> {
        let (ok, lacks) = match self {
            Isa::Portable => (true, ""),
            #[cfg(target_arch = "x86_64")]
            Isa::Avx2 => (x86::avx2_available(), "avx2/fma"),
            #[cfg(target_arch = "x86_64")]
            Isa::Avx512 => (x86::avx512_available(), "avx512f/bw/dq/vl"),
            #[cfg(target_arch = "aarch64")]
            Isa::Neon => (true, ""),
            _ => return Err(format!("not for {} CPUs", std::env::consts::ARCH)),
        };
        if ok {
            Ok(())
        } else {
            Err(format!("CPU lacks {lacks}"))
        }
    }

    /// Whether this CPU can run the path.
    pub fn supported(self) -> bool {
        self.check().is_ok()
    }
}

impl std::fmt::Display for Isa {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// The best path this CPU supports.
pub fn detected() -> Isa {
    static BEST: OnceLock<Isa> = OnceLock::new();
    *BEST.get_or_init(|| {
        [Isa::Avx512, Isa::Avx2, Isa::Neon]
            .into_iter()
            .find(|i| i.supported())
            .unwrap_or(Isa::Portable)
    })
}

/// 0: unset; else 1 + the index in [`Isa::ALL`].
static GLOBAL: AtomicU8 = AtomicU8::new(0);

thread_local! {
    static SCOPED: Cell<Option<Isa>> = const { Cell::new(None) };
}

/// The path chosen by the environment: `STN_ISA=portable|avx2|avx512|neon`, or `STN_NO_SIMD`
/// (set: portable); read once. An unknown or unsupported name is ignored with a warning.
fn from_env() -> Option<Isa> {
    static ENV: OnceLock<Option<Isa>> = OnceLock::new();
    *ENV.get_or_init(|| {
        if let Some(v) = std::env::var_os("STN_ISA") {
            let v = v.to_string_lossy();
            match Isa::parse(&v).map(|i| (i, i.check())) {
                Some((i, Ok(()))) => return Some(i),
                Some((i, Err(why))) => eprintln!("STN_ISA={i} ignored: {why}"),
                None => eprintln!("STN_ISA={v} ignored: expected portable|avx2|avx512|neon"),
            }
        }
        std::env::var_os("STN_NO_SIMD").map(|_| Isa::Portable)
    })
}

/// The path a kernel called now on this thread runs: the scoped override ([`with_isa`]), else
/// the process-wide one ([`set_isa`]), else `STN_ISA`, else [`detected`].
pub fn isa() -> Isa {
    if let Some(i) = SCOPED.with(Cell::get) {
        return i;
    }
    match GLOBAL.load(Ordering::Relaxed) {
        0 => from_env().unwrap_or_else(detected),
        g => Isa::ALL[g as usize - 1],
    }
}

/// Chooses the path for the whole process (all threads), e.g. from `--isa`. Fails, changing
/// nothing, when the CPU cannot run it.
pub fn set_isa(isa: Isa) -> Result<(), String> {
    isa.check()?;
    let index = Isa::ALL.iter().position(|&i| i == isa).unwrap_or(0);
    GLOBAL.store(index as u8 + 1, Ordering::Relaxed);
    Ok(())
}

/// Runs `f` with kernels called from this thread on `isa` (nested calls restore the outer
/// choice). Kernels pass the choice to their own worker threads; work that `f` hands to
/// other threads itself keeps the process-wide choice.
///
/// # Panics
/// If the CPU cannot run `isa`.
pub fn with_isa<R>(isa: Isa, f: impl FnOnce() -> R) -> R {
    if let Err(why) = isa.check() {
        panic!("with_isa({isa}): {why}");
    }
    struct Restore(Option<Isa>);
    impl Drop for Restore {
        fn drop(&mut self) {
            SCOPED.with(|s| s.set(self.0));
        }
    }
    let _restore = Restore(SCOPED.with(|s| s.replace(Some(isa))));
    f()
}

/// Runs `f` once under each path this CPU supports (see [`with_isa`]), the portable one
/// first, and says on stderr which paths it skips and why (once per process, written past
/// the test harness's output capture so that `cargo test` shows it): how tests cover every
/// path that dispatch can choose on the machine that runs them.
pub fn for_each_isa(mut f: impl FnMut(Isa)) {
    static SAID: AtomicU8 = AtomicU8::new(0);
    for (i, isa) in Isa::ALL.into_iter().enumerate() {
        match isa.check() {
            Ok(()) => with_isa(isa, || f(isa)),
            Err(why) if SAID.fetch_or(1 << i, Ordering::Relaxed) & (1 << i) == 0 => {
                use std::io::Write;
                let _ = writeln!(std::io::stderr(), "skipping {isa}: {why}");
            }
            Err(_) => {}
        }
    }
}

/// A vector instruction set as the kernels use it: f32 vectors of `LANES` lanes, masks, and
/// the few i32 operations the samplers' index arithmetic needs.
///
/// Every method is `#[inline(always)]` in every implementation: a kernel is compiled for an
/// instruction set only where all of it is inlined into [`dispatch!`]'s entry function, which
/// carries the `#[target_feature]`s.
pub trait Simd: Copy + Send + Sync + 'static {
    /// Which path this is.
    const ISA: Isa;
    /// f32 lanes per vector (at most [`MAX_LANES`]).
    const LANES: usize;
    /// Vector registers: register tiles are sized to fit them.
    const REGISTERS: usize;
    /// `LANES` f32.
    type F: Copy;
    /// `LANES` i32.
    type I: Copy;
    /// A lane mask.
    type M: Copy;

    /// All lanes zero.
    fn zero() -> Self::F;
    /// All lanes `x`.
    fn splat(x: f32) -> Self::F;
    /// `LANES` floats from `p` (any alignment).
    ///
    /// # Safety
    /// `p` must be valid for reading `LANES` floats.
    unsafe fn load(p: *const f32) -> Self::F;
    /// Writes `LANES` floats to `p` (any alignment).
    ///
    /// # Safety
    /// `p` must be valid for writing `LANES` floats.
    unsafe fn store(p: *mut f32, v: Self::F);
    /// a + b.
    fn add(a: Self::F, b: Self::F) -> Self::F;
    /// a - b.
    fn sub(a: Self::F, b: Self::F) -> Self::F;
    /// a * b.
    fn mul(a: Self::F, b: Self::F) -> Self::F;
    /// a * b + c, rounded once where the instruction set has FMA (all but `Portable`, which
    /// rounds twice, like the scalar code).
    fn mul_add(a: Self::F, b: Self::F, c: Self::F) -> Self::F;
    /// a * b + c rounded once on every path (the portable one calls `f32::mul_add`): for the
    /// formulas whose rounding PyTorch's results depend on, such as unnormalizing coordinates.
    fn fused_mul_add(a: Self::F, b: Self::F, c: Self::F) -> Self::F;
    /// `a` where `a < b`, else `b` (x86's `minps`, on every path: a NaN `a` gives `b`).
    fn min(a: Self::F, b: Self::F) -> Self::F;
    /// `a` where `a > b`, else `b` (x86's `maxps`, on every path: a NaN `a` gives `b`, which
    /// the sampler's forward clip relies on, as PyTorch's does).
    fn max(a: Self::F, b: Self::F) -> Self::F;
    /// |a|.
    fn abs(a: Self::F) -> Self::F;
    /// Rounds toward negative infinity.
    fn floor(a: Self::F) -> Self::F;
    /// a == b (false for NaN).
    fn eq(a: Self::F, b: Self::F) -> Self::M;
    /// a > b (false for NaN).
    fn gt(a: Self::F, b: Self::F) -> Self::M;
    /// a >= b (false for NaN).
    fn ge(a: Self::F, b: Self::F) -> Self::M;
    /// a <= b (false for NaN).
    fn le(a: Self::F, b: Self::F) -> Self::M;
    /// Lanes that are NaN.
    fn is_nan(a: Self::F) -> Self::M;
    /// `t` where `m`, else `f`.
    fn select(m: Self::M, t: Self::F, f: Self::F) -> Self::F;
    /// a | b.
    fn or(a: Self::M, b: Self::M) -> Self::M;
    /// a & b.
    fn and(a: Self::M, b: Self::M) -> Self::M;
    /// !a & b.
    fn andnot(a: Self::M, b: Self::M) -> Self::M;
    /// Every lane set.
    fn all_set() -> Self::M;
    /// Bit `l` set when lane `l` is.
    fn bits(m: Self::M) -> u32;
    /// Sum of the lanes, in a fixed order.
    fn hsum(a: Self::F) -> f32;
    /// Truncation toward zero; NaN and lanes outside i32's range give `i32::MIN` (x86's
    /// `cvttps2dq`, on every path: the sampler relies on it to keep such coordinates out of
    /// range, as PyTorch's kernel does).
    fn to_i32(a: Self::F) -> Self::I;
    /// All lanes `x`.
    fn splat_i(x: i32) -> Self::I;
    /// a + b (wrapping).
    fn add_i(a: Self::I, b: Self::I) -> Self::I;
    /// a * b (low 32 bits).
    fn mul_i(a: Self::I, b: Self::I) -> Self::I;
    /// a > b.
    fn gt_i(a: Self::I, b: Self::I) -> Self::M;
    /// Writes `LANES` i32 to `p`.
    ///
    /// # Safety
    /// `p` must be valid for writing `LANES` i32.
    unsafe fn store_i(p: *mut i32, v: Self::I);
    /// 2 x `LANES` interleaved floats [a0 b0 a1 b1 ..] -> ([a0 a1 ..], [b0 b1 ..]).
    ///
    /// # Safety
    /// `p` must be valid for reading 2 x `LANES` floats.
    unsafe fn load_pairs(p: *const f32) -> (Self::F, Self::F);
    /// The inverse of [`Simd::load_pairs`].
    ///
    /// # Safety
    /// `p` must be valid for writing 2 x `LANES` floats.
    unsafe fn store_pairs(p: *mut f32, a: Self::F, b: Self::F);

    /// Lane `l + 1` of `a` in lane `l`, and -0.0 (the identity of addition) in the last lane.
    fn next_lane(a: Self::F) -> Self::F;

    /// Lane `l` of `a` (`l < LANES`), read without a round trip through memory where the
    /// compiler can see `l` (unrolled loops).
    #[inline(always)]
    fn lane(a: Self::F, l: usize) -> f32 {
        debug_assert!(l < Self::LANES);
        // SAFETY: every `F` is LANES consecutive f32 values; l < LANES.
        unsafe { (&a as *const Self::F).cast::<f32>().add(l).read() }
    }

    /// base[idx[l]] in the lanes `l` that `mask` sets, 0 in the others.
    ///
    /// # Safety
    /// `base[idx[l]]` must be readable for every set lane.
    #[inline(always)]
    unsafe fn gather(base: *const f32, idx: Self::I, mask: Self::M) -> Self::F {
        let mut i = [0i32; MAX_LANES];
        let mut v = [0.0f32; MAX_LANES];
        let bits = Self::bits(mask);
        // SAFETY: the arrays hold MAX_LANES >= LANES elements; set lanes are readable.
        unsafe {
            Self::store_i(i.as_mut_ptr(), idx);
            each_lane::<Self>(|l| {
                if bits >> l & 1 != 0 {
                    v[l] = *base.offset(i[l] as isize);
                }
            });
            Self::load(v.as_ptr())
        }
    }

    /// (base[i], base[i + 1]) for each lane's index `i` in `idx`.
    ///
    /// Scalar 8-byte loads of the pairs, then one de-interleave: AVX2 gathers measured ~50
    /// cycles each on the Zen 3 machines this was first tuned on.
    ///
    /// # Safety
    /// `base[i..i + 2]` must be readable for each of the first `LANES` indices.
    #[inline(always)]
    unsafe fn gather_pairs(base: *const f32, idx: &[i32; MAX_LANES]) -> (Self::F, Self::F) {
        let mut pairs = [0u64; MAX_LANES];
        for l in 0..Self::LANES {
            // SAFETY: the caller guarantees the pair is readable.
            pairs[l] = unsafe { base.offset(idx[l] as isize).cast::<u64>().read_unaligned() };
        }
        // SAFETY: `pairs` holds 2 x LANES floats.
        unsafe { Self::load_pairs(pairs.as_ptr().cast()) }
    }
}

/// Calls `f(0)`, `f(1)`, .., `f(S::LANES - 1)`, unrolled: the compiler leaves such per-lane
/// loops rolled, and their counters cost as much as the scalar loads and stores they run.
#[inline(always)]
pub fn each_lane<S: Simd>(mut f: impl FnMut(usize)) {
    macro_rules! calls {
        ($($l:literal)*) => {{ $(f($l);)* }};
    }
    match S::LANES {
        4 => calls!(0 1 2 3),
        8 => calls!(0 1 2 3 4 5 6 7),
        16 => calls!(0 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15),
        n => (0..n).for_each(f),
    }
}

/// The most lanes of any path (AVX-512's 16): the size of per-lane scratch arrays.
pub const MAX_LANES: usize = 16;

/// Calls `f::<S, ..>(args)` with `S` the [`Simd`] type of `isa`, compiled for its
/// instruction set. `f` must be `#[inline(always)]` (and so must everything it calls that
/// should be vectorized). `isa` must be one the CPU supports, as [`isa()`] always is.
#[macro_export]
macro_rules! dispatch {
    ($isa:expr, $f:ident $(::<$($g:ty),*>)? ($($arg:expr),* $(,)?)) => {{
        #[allow(unused_imports)]
        use $crate::simd::Isa;
        match $isa {
            #[cfg(target_arch = "x86_64")]
            Isa::Avx512 => {
                // SAFETY: the caller passes a supported path.
                unsafe {
                    $crate::simd::x86::run_avx512(
                        #[inline(always)]
                        || $f::<$crate::simd::x86::Avx512 $(, $($g),*)?>($($arg),*),
                    )
                }
            }
            #[cfg(target_arch = "x86_64")]
            Isa::Avx2 => {
                // SAFETY: the caller passes a supported path.
                unsafe {
                    $crate::simd::x86::run_avx2(
                        #[inline(always)]
                        || $f::<$crate::simd::x86::Avx2 $(, $($g),*)?>($($arg),*),
                    )
                }
            }
            #[cfg(target_arch = "aarch64")]
            Isa::Neon => {
                // SAFETY: NEON is part of the aarch64 baseline.
                unsafe {
                    $crate::simd::neon::run_neon(
                        #[inline(always)]
                        || $f::<$crate::simd::neon::Neon $(, $($g),*)?>($($arg),*),
                    )
                }
            }
            _ => $f::<$crate::simd::portable::Portable $(, $($g),*)?>($($arg),*),
        }
    }};
}
