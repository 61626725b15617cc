//! Conv tile comparison: old intrinsics vs our `Simd` trait vs macerator (see Cargo.toml).

mod mac;
mod old;
use std::time::Instant;
use stn_kernels::Isa;
use stn_kernels::conv_blocked::{ConvShape, forward};

fn main() {
    // conv2 of the tutorial on a half batch of 32: 10 -> 20 channels, 5x5, 12x12 -> 8x8.
    let (c, h, w, o, k, images) = (10, 12, 12, 20, 5, 32);
    let which = std::env::args().nth(1).unwrap_or("all".into());
    let iters: usize = std::env::args().nth(2).map_or(2000, |s| s.parse().unwrap());
    let wgt: Vec<f32> = (0..o * c * k * k)
        .map(|i| ((i * 7919) % 101) as f32 / 101.0 - 0.5)
        .collect();
    let bias: Vec<f32> = (0..o).map(|i| i as f32 * 0.01).collect();
    let x: Vec<f32> = (0..images * c * h * w)
        .map(|i| ((i * 104729) % 211) as f32 / 211.0 - 0.5)
        .collect();
    let (ho, wo) = (h - k + 1, w - k + 1);
    let run = |name: &str, lanes: usize, f: &mut dyn FnMut(&[f32], &mut [f32])| {
        if which != "all" && which != name {
            return;
        }
        let nb = images / lanes;
        let mut y = vec![0.0f32; nb * o * ho * wo * lanes];
        f(&x[..nb * c * h * w * lanes], &mut y);
        let t = Instant::now();
        for _ in 0..iters {
            f(&x[..nb * c * h * w * lanes], &mut y);
        }
        let dt = t.elapsed().as_secs_f64() / iters as f64;
        let cs: f64 = y.iter().map(|&v| v as f64).sum();
        println!(
            "{name:14} {:8.1} us/call  ({:.2} GFLOP/s) checksum {cs:.4}",
            dt * 1e6,
            2.0 * (images * o * c * k * k * ho * wo) as f64 / dt / 1e9
        );
    };
    let g = mac::Geo {
        c,
        ih: h,
        iw: w,
        o,
        k,
        ho,
        wo,
    };
    let img_in = |l: usize| c * h * w * l;
    let img_out = |l: usize| o * ho * wo * l;
    run("old-avx2", 8, &mut |x, y| {
        for n in 0..x.len() / img_in(8) {
            unsafe {
                old::correlate_block(
                    &x[n * img_in(8)..][..img_in(8)],
                    c,
                    h,
                    w,
                    0,
                    &wgt,
                    Some(&bias),
                    o,
                    k,
                    ho,
                    wo,
                    &mut y[n * img_out(8)..][..img_out(8)],
                )
            }
        }
    });
    for (name, isa) in [
        ("trait-avx2", Isa::Avx2),
        ("trait-avx512", Isa::Avx512),
        ("trait-portable", Isa::Portable),
    ] {
        if !isa.supported() {
            continue;
        }
        let l = isa.lanes();
        run(name, l, &mut |x, y| {
            forward(
                x,
                &wgt,
                Some(&bias),
                y,
                ConvShape {
                    isa,
                    nb: x.len() / img_in(l),
                    c,
                    h,
                    w,
                    o,
                    k,
                },
            )
        });
    }
    for (name, arch, l) in [
        ("mac-v3", macerator::Arch::V3, 8),
        ("mac-v4", macerator::Arch::V4, 16),
    ] {
        run(name, l, &mut |x, y| {
            for n in 0..x.len() / img_in(l) {
                unsafe {
                    mac::correlate(
                        arch,
                        &x[n * img_in(l)..][..img_in(l)],
                        &g,
                        &wgt,
                        &bias,
                        &mut y[n * img_out(l)..][..img_out(l)],
                    )
                }
            }
        });
    }
}
