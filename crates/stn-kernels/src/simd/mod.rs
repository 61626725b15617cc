//! One kernel source for every CPU: the hot kernels are written once, generic over [`Simd`],
//! and the crate's `dispatch!` runs them compiled for the instruction set chosen at run time.
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
//! Soundness, in the style of `std::arch` target-feature handles (and `pulp`): each vector
//! instruction set is a zero-sized *handle* type ([`Portable`](portable::Portable), `Avx2`,
//! `Avx512`, `Neon`) that only run-time detection constructs (`Avx2::detect() ->
//! Option<Avx2>`; its field is private). Every [`Simd`] operation takes the handle by value,
//! so safe code executes an instruction only after the CPU was found to have it, and
//! [`Simd::vectorize`] compiles a closure for the handle's features. The trait is sealed: its
//! `unsafe` default methods rely on the vector layouts of exactly these four types. Under
//! Miri, detection finds nothing and only the portable path runs. The crate's `dispatch!` turns
//! an [`Isa`] into its handle the same way (and panics on a path this CPU lacks, which
//! [`isa()`] never returns).
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
        if Handle::detect(self).is_some() {
            return Ok(());
        }
        Err(match self {
            Isa::Portable => unreachable!("the portable path runs everywhere"),
            _ if cfg!(miri) => "Miri runs the portable path only".into(),
            #[cfg(target_arch = "x86_64")]
            Isa::Avx2 => format!("CPU lacks {}", x86::Avx2::missing().join("/")),
            #[cfg(target_arch = "x86_64")]
            Isa::Avx512 => format!("CPU lacks {}", x86::Avx512::missing().join("/")),
            #[cfg(target_arch = "aarch64")]
            Isa::Neon => "CPU lacks neon".into(),
            #[allow(unreachable_patterns)]
            _ => format!("not for {} CPUs", std::env::consts::ARCH),
        })
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
/// Implemented by the handle types only (sealed): a value of the type is the proof that this
/// CPU has the instruction set, so every operation takes it (`self`, zero-sized, free to pass).
/// Every method is `#[inline(always)]` in every implementation: a kernel is compiled for an
/// instruction set only where all of it is inlined into [`Simd::vectorize`]'s closure, whose
/// entry function carries the `#[target_feature]`s.
pub trait Simd: sealed::Sealed + Copy + Send + Sync + 'static {
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

    /// Runs `f` compiled for this instruction set: everything inlined into `f` (pass an
    /// `#[inline(always)]` closure) may use the instruction set's features.
    fn vectorize<R>(self, f: impl FnOnce() -> R) -> R;

    /// All lanes zero.
    #[inline(always)]
    fn zero(self) -> Self::F {
        self.splat(0.0)
    }
    /// All lanes `x`.
    fn splat(self, x: f32) -> Self::F;
    /// `LANES` floats from `p` (any alignment).
    ///
    /// # Safety
    /// `p` must be valid for reading `LANES` floats.
    unsafe fn load(self, p: *const f32) -> Self::F;
    /// Writes `LANES` floats to `p` (any alignment).
    ///
    /// # Safety
    /// `p` must be valid for writing `LANES` floats.
    unsafe fn store(self, p: *mut f32, v: Self::F);
    /// a + b.
    fn add(self, a: Self::F, b: Self::F) -> Self::F;
    /// a - b.
    fn sub(self, a: Self::F, b: Self::F) -> Self::F;
    /// a * b.
    fn mul(self, a: Self::F, b: Self::F) -> Self::F;
    /// a * b + c, rounded once where the instruction set has FMA (all but `Portable`, which
    /// rounds twice, like the scalar code).
    fn mul_add(self, a: Self::F, b: Self::F, c: Self::F) -> Self::F;
    /// a * b + c rounded once on every path (the portable one calls `f32::mul_add`): for the
    /// formulas whose rounding PyTorch's results depend on, such as unnormalizing coordinates.
    fn fused_mul_add(self, a: Self::F, b: Self::F, c: Self::F) -> Self::F;
    /// `a` where `a < b`, else `b` (x86's `minps`, on every path: a NaN `a` gives `b`).
    fn min(self, a: Self::F, b: Self::F) -> Self::F;
    /// `a` where `a > b`, else `b` (x86's `maxps`, on every path: a NaN `a` gives `b`, which
    /// the sampler's forward clip relies on, as PyTorch's does).
    fn max(self, a: Self::F, b: Self::F) -> Self::F;
    /// |a|.
    fn abs(self, a: Self::F) -> Self::F;
    /// Rounds toward negative infinity.
    fn floor(self, a: Self::F) -> Self::F;
    /// a == b (false for NaN).
    fn eq(self, a: Self::F, b: Self::F) -> Self::M;
    /// a > b (false for NaN).
    fn gt(self, a: Self::F, b: Self::F) -> Self::M;
    /// a >= b (false for NaN).
    fn ge(self, a: Self::F, b: Self::F) -> Self::M;
    /// a <= b (false for NaN).
    fn le(self, a: Self::F, b: Self::F) -> Self::M;
    /// Lanes that are NaN.
    fn is_nan(self, a: Self::F) -> Self::M;
    /// `t` where `m`, else `f`.
    fn select(self, m: Self::M, t: Self::F, f: Self::F) -> Self::F;
    /// a | b.
    fn or(self, a: Self::M, b: Self::M) -> Self::M;
    /// a & b.
    fn and(self, a: Self::M, b: Self::M) -> Self::M;
    /// !a & b.
    fn andnot(self, a: Self::M, b: Self::M) -> Self::M;
    /// Every lane set.
    fn all_set(self) -> Self::M;
    /// Bit `l` set when lane `l` is.
    fn bits(self, m: Self::M) -> u32;
    /// Sum of the lanes, in a fixed order.
    fn hsum(self, a: Self::F) -> f32;
    /// Truncation toward zero; NaN and lanes outside i32's range give `i32::MIN` (x86's
    /// `cvttps2dq`, on every path: the sampler relies on it to keep such coordinates out of
    /// range, as PyTorch's kernel does).
    fn to_i32(self, a: Self::F) -> Self::I;
    /// All lanes `x`.
    fn splat_i(self, x: i32) -> Self::I;
    /// a + b (wrapping).
    fn add_i(self, a: Self::I, b: Self::I) -> Self::I;
    /// a * b (low 32 bits).
    fn mul_i(self, a: Self::I, b: Self::I) -> Self::I;
    /// a > b.
    fn gt_i(self, a: Self::I, b: Self::I) -> Self::M;
    /// Writes `LANES` i32 to `p`.
    ///
    /// # Safety
    /// `p` must be valid for writing `LANES` i32.
    unsafe fn store_i(self, p: *mut i32, v: Self::I);
    /// 2 x `LANES` interleaved floats [a0 b0 a1 b1 ..] -> ([a0 a1 ..], [b0 b1 ..]).
    ///
    /// # Safety
    /// `p` must be valid for reading 2 x `LANES` floats.
    unsafe fn load_pairs(self, p: *const f32) -> (Self::F, Self::F);
    /// The inverse of [`Simd::load_pairs`].
    ///
    /// # Safety
    /// `p` must be valid for writing 2 x `LANES` floats.
    unsafe fn store_pairs(self, p: *mut f32, a: Self::F, b: Self::F);

    /// Lane `l + 1` of `a` in lane `l`, and -0.0 (the identity of addition) in the last lane.
    fn next_lane(self, a: Self::F) -> Self::F;

    /// The lanes of `a` in the first `LANES` elements of an array (the rest zero).
    #[inline(always)]
    fn to_array(self, a: Self::F) -> [f32; MAX_LANES] {
        let mut out = [0.0f32; MAX_LANES];
        // SAFETY: `out` holds MAX_LANES >= LANES floats (asserted for each implementation).
        unsafe { self.store(out.as_mut_ptr(), a) };
        out
    }

    /// The lanes of `a` in the first `LANES` elements of an array (the rest zero).
    #[inline(always)]
    fn to_array_i(self, a: Self::I) -> [i32; MAX_LANES] {
        let mut out = [0i32; MAX_LANES];
        // SAFETY: `out` holds MAX_LANES >= LANES i32 (asserted for each implementation).
        unsafe { self.store_i(out.as_mut_ptr(), a) };
        out
    }

    /// Lane `l` of `a` (`l < LANES`, checked), read without a round trip through memory
    /// where the compiler can see `l` (unrolled loops).
    #[inline(always)]
    fn lane(self, a: Self::F, l: usize) -> f32 {
        assert!(l < Self::LANES);
        // SAFETY: every implementation's `F` (sealed trait) is LANES consecutive f32 values
        // (`[f32; 4]`, `__m256`, `__m512`, `float32x4_t`), and l < LANES.
        unsafe { (&a as *const Self::F).cast::<f32>().add(l).read() }
    }

    /// `base[idx[l]]` in the lanes `l` that `mask` sets, 0 in the others.
    ///
    /// # Safety
    /// `base[idx[l]]` must be readable for every set lane.
    #[inline(always)]
    unsafe fn gather(self, base: *const f32, idx: Self::I, mask: Self::M) -> Self::F {
        let i = self.to_array_i(idx);
        let mut v = [0.0f32; MAX_LANES];
        let bits = self.bits(mask);
        each_lane::<Self>(|l| {
            if bits >> l & 1 != 0 {
                // SAFETY: lane l is set, so the caller guarantees base[idx[l]] is readable.
                v[l] = unsafe { *base.offset(i[l] as isize) };
            }
        });
        // SAFETY: `v` holds MAX_LANES >= LANES floats.
        unsafe { self.load(v.as_ptr()) }
    }

    /// `(base[i], base[i + 1])` for each lane's index `i` in `idx`.
    ///
    /// Scalar 8-byte loads of the pairs, then one de-interleave: AVX2 gathers measured ~50
    /// cycles each on the Zen 3 machines this was first tuned on.
    ///
    /// # Safety
    /// `base[i..i + 2]` must be readable for each of the first `LANES` indices.
    #[inline(always)]
    unsafe fn gather_pairs(self, base: *const f32, idx: &[i32; MAX_LANES]) -> (Self::F, Self::F) {
        let mut pairs = [0u64; MAX_LANES];
        for l in 0..Self::LANES {
            // SAFETY: the caller guarantees the pair is readable; the read is unaligned.
            pairs[l] = unsafe { base.offset(idx[l] as isize).cast::<u64>().read_unaligned() };
        }
        // SAFETY: `pairs` holds MAX_LANES u64, i.e. 2 x MAX_LANES >= 2 x LANES floats.
        unsafe { self.load_pairs(pairs.as_ptr().cast()) }
    }
}

mod sealed {
    /// Only the handle types of this module implement [`super::Simd`].
    pub trait Sealed {}
    impl Sealed for super::portable::Portable {}
    #[cfg(target_arch = "x86_64")]
    impl Sealed for super::x86::Avx2 {}
    #[cfg(target_arch = "x86_64")]
    impl Sealed for super::x86::Avx512 {}
    #[cfg(target_arch = "aarch64")]
    impl Sealed for super::neon::Neon {}
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

/// The handle of a path this CPU has: what [`dispatch!`] matches on.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Handle {
    Portable(portable::Portable),
    #[cfg(target_arch = "x86_64")]
    Avx2(x86::Avx2),
    #[cfg(target_arch = "x86_64")]
    Avx512(x86::Avx512),
    #[cfg(target_arch = "aarch64")]
    Neon(neon::Neon),
}

impl Handle {
    /// The handle of `isa` if this CPU has it (run-time detection).
    #[inline]
    pub(crate) fn detect(isa: Isa) -> Option<Handle> {
        match isa {
            Isa::Portable => Some(Handle::Portable(portable::Portable)),
            #[cfg(target_arch = "x86_64")]
            Isa::Avx2 => x86::Avx2::detect().map(Handle::Avx2),
            #[cfg(target_arch = "x86_64")]
            Isa::Avx512 => x86::Avx512::detect().map(Handle::Avx512),
            #[cfg(target_arch = "aarch64")]
            Isa::Neon => neon::Neon::detect().map(Handle::Neon),
            #[allow(unreachable_patterns)]
            _ => None,
        }
    }

    /// The handle of `isa`.
    ///
    /// # Panics
    /// If this CPU cannot run `isa` (which [`isa()`] never returns: [`set_isa`] and
    /// [`with_isa`] refuse such paths), saying what it lacks.
    #[inline]
    pub(crate) fn of(isa: Isa) -> Handle {
        match Handle::detect(isa) {
            Some(h) => h,
            None => unsupported(isa),
        }
    }
}

#[cold]
#[inline(never)]
fn unsupported(isa: Isa) -> ! {
    let why = isa.check().err().unwrap_or_default();
    panic!("kernel path {isa} requested on a CPU that cannot run it: {why}")
}

/// Calls `f::<S, ..>(simd, args)` with `simd` the handle of path `isa` (of [`Simd`] type
/// `S`), compiled for its instruction set ([`Simd::vectorize`]). `f` must be
/// `#[inline(always)]` (and so must everything it calls that should be vectorized).
///
/// The handle comes from run-time detection ([`Handle::of`]): a path this CPU lacks panics
/// (never one that [`isa()`] returns). Private to the crate.
macro_rules! dispatch {
    ($isa:expr, $f:ident $(::<$($g:ty),*>)? ($($arg:expr),* $(,)?)) => {{
        use $crate::simd::{Handle, Simd as _};
        match Handle::of($isa) {
            #[cfg(target_arch = "x86_64")]
            Handle::Avx512(simd) => simd.vectorize(
                #[inline(always)]
                || $f::<$crate::simd::x86::Avx512 $(, $($g),*)?>(simd, $($arg),*),
            ),
            #[cfg(target_arch = "x86_64")]
            Handle::Avx2(simd) => simd.vectorize(
                #[inline(always)]
                || $f::<$crate::simd::x86::Avx2 $(, $($g),*)?>(simd, $($arg),*),
            ),
            #[cfg(target_arch = "aarch64")]
            Handle::Neon(simd) => simd.vectorize(
                #[inline(always)]
                || $f::<$crate::simd::neon::Neon $(, $($g),*)?>(simd, $($arg),*),
            ),
            Handle::Portable(simd) => simd.vectorize(
                #[inline(always)]
                || $f::<$crate::simd::portable::Portable $(, $($g),*)?>(simd, $($arg),*),
            ),
        }
    }};
}
pub(crate) use dispatch;

#[cfg(test)]
mod tests {
    use super::{Handle, Isa, MAX_LANES, Simd, for_each_isa};

    #[test]
    fn handles_exist_exactly_for_the_paths_this_cpu_supports() {
        assert!(Handle::detect(Isa::Portable).is_some());
        for isa in Isa::ALL {
            assert_eq!(Handle::detect(isa).is_some(), isa.supported(), "{isa}");
            match isa.check() {
                Ok(()) => assert!(!cfg!(miri) || isa == Isa::Portable, "{isa} under Miri"),
                Err(why) => assert!(!why.is_empty(), "{isa}: no reason given"),
            }
        }
    }

    #[inline(always)]
    fn lanes_of<S: Simd>(_: S) -> usize {
        S::LANES
    }

    #[test]
    #[should_panic(expected = "cannot run it")]
    fn dispatch_refuses_a_path_this_cpu_lacks() {
        // Every CPU lacks one path at least (NEON on x86-64, the x86 ones elsewhere).
        let lacking = Isa::ALL.into_iter().find(|i| !i.supported()).unwrap();
        dispatch!(lacking, lanes_of());
    }

    /// Every operation of the trait against its scalar definition, lane by lane: on the
    /// portable path under Miri, which then checks the default methods' memory accesses.
    #[inline(always)]
    fn ops_check<S: Simd>(simd: S) {
        let n = S::LANES;
        let a: Vec<f32> = (0..2 * n).map(|i| i as f32 * 0.75 - 3.2).collect();
        let b: Vec<f32> = (0..2 * n).map(|i| 1.5 - i as f32 * 0.5).collect();
        // SAFETY: both vectors hold 2 n floats.
        let (va, vb) = unsafe { (simd.load(a.as_ptr()), simd.load(b.as_ptr())) };
        let arr = |v| simd.to_array(v);
        let check = |what: &str, got: [f32; MAX_LANES], f: &dyn Fn(usize) -> f32| {
            for l in 0..n {
                assert_eq!(got[l].to_bits(), f(l).to_bits(), "{what} lane {l} of {n}");
            }
            assert!(
                got[n..].iter().all(|&v| v == 0.0),
                "{what}: beyond the lanes"
            );
        };
        check("load", arr(va), &|l| a[l]);
        check("zero", arr(simd.zero()), &|_| 0.0);
        check("add", arr(simd.add(va, vb)), &|l| a[l] + b[l]);
        check("sub", arr(simd.sub(va, vb)), &|l| a[l] - b[l]);
        check("mul", arr(simd.mul(va, vb)), &|l| a[l] * b[l]);
        let fused = arr(simd.fused_mul_add(va, vb, va));
        check("fused_mul_add", fused, &|l| a[l].mul_add(b[l], a[l]));
        check("min", arr(simd.min(va, vb)), &|l| a[l].min(b[l]));
        check("max", arr(simd.max(va, vb)), &|l| a[l].max(b[l]));
        check("abs", arr(simd.abs(va)), &|l| a[l].abs());
        check("floor", arr(simd.floor(va)), &|l| a[l].floor());
        let m = simd.gt(va, vb);
        check("select", arr(simd.select(m, va, vb)), &|l| {
            if a[l] > b[l] { a[l] } else { b[l] }
        });
        let bits = |f: &dyn Fn(usize) -> bool| (0..n).fold(0u32, |acc, l| acc | (f(l) as u32) << l);
        assert_eq!(simd.bits(m), bits(&|l| a[l] > b[l]));
        assert_eq!(simd.bits(simd.ge(va, vb)), bits(&|l| a[l] >= b[l]));
        assert_eq!(simd.bits(simd.le(va, vb)), bits(&|l| a[l] <= b[l]));
        assert_eq!(simd.bits(simd.eq(va, va)), bits(&|_| true));
        assert_eq!(simd.bits(simd.all_set()), bits(&|_| true));
        let nan = simd.splat(f32::NAN);
        assert_eq!(simd.bits(simd.is_nan(nan)), bits(&|_| true));
        assert_eq!(simd.bits(simd.is_nan(va)), 0);
        // x86's min/max: a NaN first operand gives the second.
        check("max NaN", arr(simd.max(nan, va)), &|l| a[l]);
        check("min NaN", arr(simd.min(nan, va)), &|l| a[l]);
        let sum: f32 = simd.hsum(va);
        assert!((sum - a[..n].iter().sum::<f32>()).abs() < 1e-4);
        check("next_lane", arr(simd.next_lane(va)), &|l| {
            if l + 1 < n { a[l + 1] } else { -0.0 }
        });
        for l in 0..n {
            assert_eq!(simd.lane(va, l).to_bits(), a[l].to_bits());
        }
        // Truncation, NaN and out-of-range lanes to i32::MIN.
        let odd = simd.select(simd.gt(va, simd.zero()), simd.splat(3e9), va);
        let i = simd.to_array_i(simd.to_i32(odd));
        for l in 0..n {
            let want = if a[l] > 0.0 { i32::MIN } else { a[l] as i32 };
            assert_eq!(i[l], want, "to_i32 lane {l}");
        }
        assert!(
            simd.to_array_i(simd.to_i32(nan))[..n]
                .iter()
                .all(|&v| v == i32::MIN)
        );
        let idx = simd.add_i(
            simd.mul_i(simd.splat_i(2), simd.splat_i(3)),
            simd.splat_i(1),
        );
        assert!(simd.to_array_i(idx)[..n].iter().all(|&v| v == 7));
        assert_eq!(simd.bits(simd.gt_i(idx, simd.splat_i(7))), 0);
        // Pairs: de-interleave, interleave, and gathers.
        // SAFETY: `a` holds 2 n floats.
        let (x, y) = unsafe { simd.load_pairs(a.as_ptr()) };
        check("load_pairs x", arr(x), &|l| a[2 * l]);
        check("load_pairs y", arr(y), &|l| a[2 * l + 1]);
        let mut back = vec![0.0f32; 2 * n];
        // SAFETY: `back` holds 2 n floats.
        unsafe { simd.store_pairs(back.as_mut_ptr(), x, y) };
        assert_eq!(back, a);
        let mut rev = [0i32; MAX_LANES];
        for l in 0..n {
            rev[l] = (2 * (n - 1 - l)) as i32;
        }
        // SAFETY: every index is 2 (n - 1 - l) and its pair ends at 2 n - 1 < a.len().
        let (x, y) = unsafe { simd.gather_pairs(a.as_ptr(), &rev) };
        check("gather_pairs x", arr(x), &|l| a[2 * (n - 1 - l)]);
        check("gather_pairs y", arr(y), &|l| a[2 * (n - 1 - l) + 1]);
        let mut stored = [1i32; MAX_LANES];
        // SAFETY: `stored` holds MAX_LANES >= LANES i32.
        unsafe { simd.store_i(stored.as_mut_ptr(), simd.splat_i(-4)) };
        assert!(stored[..n].iter().all(|&v| v == -4) && stored[n..].iter().all(|&v| v == 1));
        // Masked gather: only the set lanes read (odd lanes' indices, 2 n + l, are past the
        // end of `a`: unread, zero).
        let gidx: [f32; MAX_LANES] =
            core::array::from_fn(|l| if l % 2 == 0 { l } else { 2 * n + l } as f32);
        // SAFETY: `gidx` holds MAX_LANES >= LANES floats.
        let gi = unsafe { simd.load(gidx.as_ptr()) };
        let even = simd.gt(simd.splat(2.0 * n as f32), gi);
        // SAFETY: the lanes `even` sets hold indices l < n <= a.len().
        let g = unsafe { simd.gather(a.as_ptr(), simd.to_i32(gi), even) };
        check("gather", arr(g), &|l| if l % 2 == 0 { a[l] } else { 0.0 });
    }

    #[test]
    fn every_path_computes_each_operation_as_defined() {
        for_each_isa(|isa| dispatch!(isa, ops_check()));
    }
}
