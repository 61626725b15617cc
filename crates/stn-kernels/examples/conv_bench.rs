//! Timing of the fused convolution + 2x2 max-pool + ReLU kernel alone, on the tutorial
//! network's four layers with a batch of 1000 images (what `stn eval` runs), for kernel work:
//! `cargo run --release -p stn-kernels --example conv_bench [REPS [PATH]]`; `THREADS=n` for n
//! threads (default 1). Prints the best of 7 runs per layer (the inference variant, without
//! the window codes), in ms per call and GFLOP/s of the convolution outputs the pooling reads.

mod timing;

use stn_kernels::conv_blocked::ConvShape;
use stn_kernels::conv_pool_blocked::conv_pool_forward_output;
use stn_kernels::pool::{from_blocked, to_blocked};

fn main() {
    let (reps, path, threads) = timing::setup(5);
    println!("kernel path {path:?}, {threads} thread(s), 1000 images");
    // (input channels, side, output channels, kernel side): localization conv1, conv2;
    // classifier conv1, conv2.
    for (c, side, o, k) in [
        (1, 28, 8, 7),
        (8, 11, 10, 5),
        (1, 28, 10, 5),
        (10, 12, 20, 5),
    ] {
        let l = path.lanes();
        let s = ConvShape {
            isa: path,
            nb: 1000usize.div_ceil(l),
            c,
            h: side,
            w: side,
            o,
            k,
        };
        let x: Vec<f32> = (0..s.nb * c * side * side * l)
            .map(|i| ((i * 2654435761) % 1000) as f32 / 500.0 - 1.0)
            .collect();
        let w: Vec<f32> = (0..o * c * k * k)
            .map(|i| ((i * 40503) % 100) as f32 / 500.0 - 0.1)
            .collect();
        let b = vec![0.01f32; o];
        // The pooling reads the even-sized top-left part of the convolution's output.
        let (ph, pw) = (s.ho() / 2 * 2, s.wo() / 2 * 2);
        let flop = 2.0 * (s.nb * l * o * ph * pw * c * k * k) as f64;
        let secs = timing::best(reps, || {
            std::hint::black_box(conv_pool_forward_output(&x, &w, &b, s));
        });
        println!(
            "c{c} {side}x{side} -> o{o} k{k}: {:>6.3} ms {:>5.0} GFLOP/s",
            secs * 1e3,
            flop / secs / 1e9
        );
    }
    // The layout conversions at the network's edges: the input images into the blocked
    // layout (once per network: localization and classifier), the last layers' outputs back.
    let l = path.lanes();
    let images: Vec<f32> = (0..1000 * 784).map(|i| (i % 255) as f32).collect();
    let secs = timing::best(reps, || {
        std::hint::black_box(to_blocked(&images, 1000, 784, l));
    });
    println!("to_blocked 1000x1x28x28:   {:>6.3} ms", secs * 1e3);
    let blocked = to_blocked(&images, 1000, 784, l);
    let secs = timing::best(reps, || {
        std::hint::black_box(from_blocked(&blocked, 1000, 784, l));
    });
    println!("from_blocked 1000x1x28x28: {:>6.3} ms", secs * 1e3);
}
