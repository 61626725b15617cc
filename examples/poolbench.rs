use std::time::Instant;
use stn::ops::kernels::pool;
fn main() {
    let (planes, h, w, l) = (80, 24, 24, 8);
    let x: Vec<f32> = (0..planes * h * w * l)
        .map(|i| ((i * 7919) % 101) as f32 * 0.01 - 0.3)
        .collect();
    let g: Vec<f32> = (0..planes * 12 * 12 * l).map(|i| (i % 7) as f32).collect();
    for _ in 0..10 {
        std::hint::black_box(pool::backward(&x, &g, planes, h, w, l));
    }
    let t = Instant::now();
    for _ in 0..100 {
        std::hint::black_box(pool::backward(&x, &g, planes, h, w, l));
    }
    println!("bwd {:.1} us", t.elapsed().as_secs_f64() / 100.0 * 1e6);
    let t = Instant::now();
    for _ in 0..100 {
        std::hint::black_box(pool::forward(&x, planes, h, w, l));
    }
    println!("fwd {:.1} us", t.elapsed().as_secs_f64() / 100.0 * 1e6);
    let t = Instant::now();
    for _ in 0..100 {
        std::hint::black_box(vec![0f32; planes * h * w * l]);
    }
    println!(
        "alloc+zero {:.1} us",
        t.elapsed().as_secs_f64() / 100.0 * 1e6
    );
}
