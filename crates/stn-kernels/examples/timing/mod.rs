//! What the kernel timing examples share: their command line (`[REPS [PATH]]`, `THREADS=n`)
//! and best-of-7 timing.

use std::time::Instant;

use stn_kernels::{Isa, isa};

/// Repetitions per timed run and the kernel path, from the command line; the thread pool sized
/// from `THREADS` (default 1). An unknown or unsupported path exits with status 2.
pub fn setup(default_reps: usize) -> (usize, Isa, usize) {
    let args: Vec<String> = std::env::args().collect();
    let reps = args
        .get(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(default_reps);
    let path = match args.get(2) {
        Some(p) => Isa::parse(p).filter(|i| i.supported()).unwrap_or_else(|| {
            eprintln!("unknown or unsupported kernel path {p}");
            std::process::exit(2)
        }),
        None => isa(),
    };
    let threads: usize = std::env::var("THREADS")
        .ok()
        .and_then(|t| t.parse().ok())
        .unwrap_or(1);
    rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .build_global()
        .ok();
    (reps, path, threads)
}

/// Seconds per call of `f`: the best of 7 runs of `reps` calls, after one untimed call.
pub fn best(reps: usize, mut f: impl FnMut()) -> f64 {
    f();
    (0..7)
        .map(|_| {
            let t = Instant::now();
            for _ in 0..reps {
                f();
            }
            t.elapsed().as_secs_f64() / reps as f64
        })
        .fold(f64::INFINITY, f64::min)
}
