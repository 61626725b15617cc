//! Times the f32 bilinear samplers (affine and grid, forward and backward) on one path:
//! `sampler PATH fwd|bwd|gfwd|gbwd small|big ITERATIONS`.

use std::time::Instant;
use stn_kernels::grid_sample::{SampleShape, affine_backward, affine_forward, backward, forward};
use stn_kernels::{Isa, SampleOptions, affine_grid, with_isa};

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let isa = Isa::parse(&args[1]).unwrap();
    let what = args[2].as_str(); // fwd | bwd | gfwd | gbwd
    let big = args[3] == "big";
    let iters: usize = args[4].parse().unwrap();
    let (n, c, h, w) = if big {
        (32, 3, 64, 64)
    } else {
        (64, 1, 28, 28)
    };
    let s = SampleShape {
        n,
        c,
        h_in: h,
        w_in: w,
        h_out: h,
        w_out: w,
    };
    let x: Vec<f32> = (0..n * c * h * w)
        .map(|i| ((i * 104729) % 211) as f32 / 211.0 - 0.5)
        .collect();
    let theta: Vec<f32> = (0..n)
        .flat_map(|_| [0.9f32, 0.1, 0.05, -0.1, 1.1, -0.05])
        .collect();
    let grid = affine_grid::forward(&theta, n, h, w, false);
    let up = vec![1.0f32; n * c * h * w];
    let o = SampleOptions::default();
    let mut out = vec![0.0f32; n * c * h * w];
    let mut gi = vec![0.0f32; x.len()];
    let mut gt = vec![0.0f32; n * 6];
    let mut gg = vec![0.0f32; grid.len()];
    with_isa(isa, || {
        let mut step = || match what {
            "fwd" => affine_forward(&x, &theta, &mut out, s, o),
            "bwd" => affine_backward(&x, &theta, &up, Some(&mut gi), &mut gt, s, o),
            "gfwd" => forward(&x, &grid, &mut out, s, o),
            "gbwd" => backward(&x, &grid, &up, Some(&mut gi), Some(&mut gg), s, o),
            _ => panic!(),
        };
        step();
        let t = Instant::now();
        for _ in 0..iters {
            step();
        }
        let dt = t.elapsed().as_secs_f64() / iters as f64;
        println!(
            "{isa} {what} {}: {:.1} us/call, {:.2} ns/pixel",
            args[3],
            dt * 1e6,
            dt * 1e9 / (n * h * w) as f64
        );
    });
    let cs: f64 = out.iter().chain(&gi).chain(&gt).map(|&v| v as f64).sum();
    eprintln!("checksum {cs}");
}
