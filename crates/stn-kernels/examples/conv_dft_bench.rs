//! The direct and the DFT convolution kernels side by side on the paper networks' layers, batch
//! 256 (`stn experiment table1 --budget cpu`'s size): forward, and backward with the input
//! gradient; `cargo run --release -p stn-kernels --example conv_dft_bench [REPS [PATH]]`,
//! `THREADS=n` for n threads (default 1). Prints the best of 7 runs in ms per call, and
//! whether the ops take the DFT path for the layer (`conv_fft::pays`).

mod timing;

use stn_kernels::conv_blocked::{self, ConvShape};
use stn_kernels::conv_fft;

fn main() {
    let (reps, path, threads) = timing::setup(3);
    println!("kernel path {path:?}, {threads} thread(s), 256 images");
    println!(
        "| layer | DFT pays | forward direct | forward DFT | backward direct | backward DFT |"
    );
    println!("|---|---|---|---|---|---|");
    // (name, input channels, padded side, output channels, kernel side, zero border); the
    // tutorial's layers too, where the direct kernels must stay (pays: no).
    for (name, c, side, o, k, pad) in [
        ("tutorial localization conv 5x5 (8 -> 10)", 8, 11, 10, 5, 0),
        ("tutorial classifier conv 5x5 (10 -> 20)", 10, 12, 20, 5, 0),
        ("CNN conv 9x9 (1 -> 16), 28x28", 1, 36, 16, 9, 4),
        ("CNN conv 7x7 (16 -> 32), 14x14", 16, 20, 32, 7, 3),
        ("ST-CNN classifier conv 7x7 (12 -> 23)", 12, 20, 23, 7, 3),
        (
            "ST-CNN localization conv 5x5 (20 -> 20), 12x12",
            20,
            12,
            20,
            5,
            0,
        ),
    ] {
        let l = path.lanes();
        let s = ConvShape {
            isa: path,
            nb: 256usize.div_ceil(l),
            c,
            h: side,
            w: side,
            o,
            k,
        };
        // Data inside a zero border, as the ops' "same" convolutions store their input.
        let x: Vec<f32> = (0..s.nb * c * side * side * l)
            .map(|i| {
                let (y, xx) = ((i / l / side) % side, (i / l) % side);
                let inside = (pad..side - pad).contains(&y) && (pad..side - pad).contains(&xx);
                if inside {
                    ((i * 2654435761) % 1000) as f32 / 500.0 - 1.0
                } else {
                    0.0
                }
            })
            .collect();
        let w: Vec<f32> = (0..o * c * k * k)
            .map(|i| ((i * 40503) % 100) as f32 / 500.0 - 0.1)
            .collect();
        let b = vec![0.01f32; o];
        let dy: Vec<f32> = (0..s.nb * o * s.ho() * s.wo() * l)
            .map(|i| ((i * 7919) % 100) as f32 / 100.0 - 0.5)
            .collect();
        let mut y = vec![0.0f32; dy.len()];
        let (mut dx, mut dw, mut db) = (vec![0.0f32; x.len()], vec![0.0f32; w.len()], vec![0.0; o]);
        let ms = |t: f64| t * 1e3;
        let f_direct = timing::best(reps, || conv_blocked::forward(&x, &w, Some(&b), &mut y, s));
        let f_dft = timing::best(reps, || conv_fft::forward(&x, &w, Some(&b), &mut y, s));
        let b_direct = timing::best(reps, || {
            conv_blocked::backward(&x, &w, &dy, Some(&mut dx), &mut dw, &mut db, s)
        });
        let b_dft = timing::best(reps, || {
            conv_fft::backward(&x, &w, &dy, Some(&mut dx), &mut dw, &mut db, s)
        });
        println!(
            "| {name} | {} | {:.2} | {:.2} | {:.2} | {:.2} |",
            if conv_fft::pays(&s) { "yes" } else { "no" },
            ms(f_direct),
            ms(f_dft),
            ms(b_direct),
            ms(b_dft)
        );
    }
}
