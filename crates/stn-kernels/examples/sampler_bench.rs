//! Timing of the sampling kernels alone (no burn, no autodiff), for kernel work:
//! `cargo run --release -p stn-kernels --example sampler_bench [REPS [PATH]]`, PATH one of
//! portable, avx2, avx512, neon (default: the CPU's best); `THREADS=n` for n threads (default 1).
//! Prints the best of 7 runs per kernel, in ms per call and ns per output pixel and channel.

mod timing;

use stn_kernels::affine_grid;
use stn_kernels::grid_sample::{self, SampleShape};
use stn_kernels::{SampleOptions, isa, with_isa};

fn main() {
    let (reps, path, _) = timing::setup(50);
    with_isa(path, || run(reps));
}

fn run(reps: usize) {
    println!("kernel path {:?}", isa());
    for [n, c, h, w] in [[64, 1, 28, 28], [32, 3, 64, 64]] {
        let s = SampleShape {
            n,
            c,
            h_in: h,
            w_in: w,
            h_out: h,
            w_out: w,
        };
        // A fixed pseudo-random input; theta as the ops benchmark's.
        let input: Vec<f32> = (0..n * c * h * w)
            .map(|i| ((i * 2654435761) % 1000) as f32 / 500.0 - 1.0)
            .collect();
        let theta: Vec<f32> = (0..n)
            .flat_map(|_| [0.9, 0.1, 0.05, -0.1, 1.1, -0.05])
            .collect();
        let grid = affine_grid::forward(&theta, n, h, w, false);
        let o = SampleOptions::default();
        let mut out = vec![0.0f32; input.len()];
        let mut gin = vec![0.0f32; input.len()];
        let mut ggrid = vec![0.0f32; grid.len()];
        let mut gtheta = vec![0.0f32; theta.len()];
        let per = (n * c * h * w) as f64;
        let row = |name: &str, secs: f64| {
            println!(
                "{n}x{c}x{h}x{w} {name:<22} {:>7.3} ms {:>6.2} ns/px",
                secs * 1e3,
                secs * 1e9 / per
            )
        };
        row(
            "grid_sample fwd",
            timing::best(reps, || grid_sample::forward(&input, &grid, &mut out, s, o)),
        );
        row(
            "grid_sample bwd",
            timing::best(reps, || {
                grid_sample::backward(&input, &grid, &out, Some(&mut gin), Some(&mut ggrid), s, o)
            }),
        );
        row(
            "grid_sample bwd input",
            timing::best(reps, || {
                grid_sample::backward(&input, &grid, &out, Some(&mut gin), None, s, o)
            }),
        );
        row(
            "grid_sample bwd grid",
            timing::best(reps, || {
                grid_sample::backward(&input, &grid, &out, None, Some(&mut ggrid), s, o)
            }),
        );
        row(
            "affine_sample fwd",
            timing::best(reps, || {
                grid_sample::affine_forward(&input, &theta, &mut out, s, o)
            }),
        );
        row(
            "affine_sample bwd",
            timing::best(reps, || {
                grid_sample::affine_backward(
                    &input,
                    &theta,
                    &out,
                    Some(&mut gin),
                    &mut gtheta,
                    s,
                    o,
                )
            }),
        );
        row(
            "affine_grid fwd",
            timing::best(reps, || {
                std::hint::black_box(affine_grid::forward(&theta, n, h, w, false));
            }),
        );
        row(
            "affine_grid bwd",
            timing::best(reps, || {
                std::hint::black_box(affine_grid::backward(&grid, n, h, w, false));
            }),
        );
    }
}
