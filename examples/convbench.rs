use std::time::Instant;
use stn::ops::kernels::conv_avx2::{ConvShape, backward, forward};
fn main() {
    let shapes = [
        (
            "loc1",
            ConvShape {
                n: 64,
                c: 1,
                h: 28,
                w: 28,
                o: 8,
                k: 7,
            },
            false,
        ),
        (
            "loc2",
            ConvShape {
                n: 64,
                c: 8,
                h: 11,
                w: 11,
                o: 10,
                k: 5,
            },
            true,
        ),
        (
            "conv1",
            ConvShape {
                n: 64,
                c: 1,
                h: 28,
                w: 28,
                o: 10,
                k: 5,
            },
            true,
        ),
        (
            "conv2",
            ConvShape {
                n: 64,
                c: 10,
                h: 12,
                w: 12,
                o: 20,
                k: 5,
            },
            true,
        ),
    ];
    for (name, s, want_dx) in shapes {
        let x: Vec<f32> = (0..s.n * s.c * s.h * s.w)
            .map(|i| ((i * 7919) % 101) as f32 * 0.01)
            .collect();
        let w: Vec<f32> = (0..s.o * s.c * s.k * s.k)
            .map(|i| ((i * 31) % 17) as f32 * 0.1 - 0.8)
            .collect();
        let b = vec![0.1f32; s.o];
        let mut y = vec![0f32; s.n * s.o * s.ho() * s.wo()];
        let flops = 2.0 * (s.n * s.o * s.ho() * s.wo() * s.c * s.k * s.k) as f64;
        let it = 50;
        unsafe {
            for _ in 0..5 {
                forward(&x, &w, Some(&b), &mut y, s);
            }
            let t = Instant::now();
            for _ in 0..it {
                forward(&x, &w, Some(&b), &mut y, s);
            }
            let f = t.elapsed().as_secs_f64() / it as f64;
            let mut dx = vec![0f32; x.len()];
            let mut dw = vec![0f32; w.len()];
            let mut db = vec![0f32; s.o];
            let t = Instant::now();
            for _ in 0..it {
                backward(
                    &x,
                    &w,
                    &y,
                    want_dx.then_some(&mut dx[..]),
                    &mut dw,
                    &mut db,
                    s,
                );
            }
            let bk = t.elapsed().as_secs_f64() / it as f64;
            let t = Instant::now();
            for _ in 0..it {
                backward(&x, &w, &y, None, &mut dw, &mut db, s);
            }
            let bw = t.elapsed().as_secs_f64() / it as f64;
            println!(
                "{name:6} fwd {:7.1} us ({:5.1} GF/s)  bwd {:7.1} us  (dw only {:7.1} us = {:5.1} GF/s; dx {:7.1} us = {:5.1} GF/s)",
                f * 1e6,
                flops / f / 1e9,
                bk * 1e6,
                bw * 1e6,
                flops / bw / 1e9,
                (bk - bw) * 1e6,
                flops / (bk - bw) / 1e9
            );
        }
    }
}
