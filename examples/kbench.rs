use std::time::Instant;
use stn::ops::SampleOptions;
use stn::ops::kernels::{
    affine_grid,
    grid_sample::{self, SampleShape},
};
fn main() {
    let (n, c, h, w) = (64, 1, 28, 28);
    let s = SampleShape {
        n,
        c,
        h_in: h,
        w_in: w,
        h_out: h,
        w_out: w,
    };
    let input: Vec<f32> = (0..n * c * h * w).map(|i| (i % 97) as f32 * 0.01).collect();
    let theta: Vec<f32> = (0..n)
        .flat_map(|_| [0.9f32, 0.1, 0.05, -0.1, 1.1, -0.05])
        .collect();
    let grid = affine_grid::forward(&theta, n, h, w, false);
    let mut out = vec![0f32; n * c * h * w];
    let o = SampleOptions::default();
    for _ in 0..10 {
        grid_sample::forward(&input, &grid, &mut out, s, o);
    }
    let t = Instant::now();
    for _ in 0..200 {
        grid_sample::forward(&input, &grid, &mut out, s, o);
    }
    println!("forward {:.1} us", t.elapsed().as_secs_f64() / 200.0 * 1e6);
    let mut gi = vec![0f32; input.len()];
    let mut gg = vec![0f32; grid.len()];
    let t = Instant::now();
    for _ in 0..200 {
        grid_sample::backward(&input, &grid, &out, Some(&mut gi), Some(&mut gg), s, o);
    }
    println!(
        "backward both {:.1} us",
        t.elapsed().as_secs_f64() / 200.0 * 1e6
    );
    let t = Instant::now();
    for _ in 0..200 {
        grid_sample::backward(&input, &grid, &out, None, Some(&mut gg), s, o);
    }
    println!(
        "backward grid {:.1} us",
        t.elapsed().as_secs_f64() / 200.0 * 1e6
    );
    let t = Instant::now();
    for _ in 0..200 {
        let g = affine_grid::forward(&theta, n, h, w, false);
        std::hint::black_box(g);
    }
    println!(
        "affine fwd {:.1} us",
        t.elapsed().as_secs_f64() / 200.0 * 1e6
    );
    let t = Instant::now();
    for _ in 0..200 {
        let g = affine_grid::backward(&grid, n, h, w, false);
        std::hint::black_box(g);
    }
    println!(
        "affine bwd {:.1} us",
        t.elapsed().as_secs_f64() / 200.0 * 1e6
    );
}
