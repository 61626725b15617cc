//! A stable, deterministic stand-in for the upload fuzz target (`fuzz/fuzz_targets/upload.rs`,
//! which needs nightly and cargo-fuzz): the same checks (`upload_check.rs`, included) on a few
//! thousand mutants of valid PNG and JPEG uploads — bytes flipped, cut, inserted, header sizes
//! and colour types patched. Nothing may panic; errors are one plain line.

mod ui_common;

use image::{DynamicImage, GrayImage, ImageBuffer, Rgba};
use stn_cli::predict::{decode, preprocess};
use ui_common::*;

include!("../fuzz/fuzz_targets/upload_check.rs");

/// xorshift64*: reproducible without a dependency.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
}

fn seeds() -> Vec<Vec<u8>> {
    let test = mnist_test();
    let digit = DynamicImage::ImageLuma8(digit_image(&test, 0));
    let rgba = DynamicImage::ImageRgba8(ImageBuffer::from_fn(40, 30, |x, y| {
        Rgba([
            (x * 6) as u8,
            (y * 8) as u8,
            200,
            if x > 20 { 255 } else { 0 },
        ])
    }));
    vec![
        png(&digit),
        png(&rgba),
        png(&DynamicImage::ImageRgba16(rgba.to_rgba16())),
        png(&DynamicImage::ImageLuma8(GrayImage::new(3, 1))),
        jpeg(&digit, 80),
        jpeg(&DynamicImage::ImageRgb8(rgba.to_rgb8()), 50),
    ]
}

fn mutate(seed: &[u8], rng: &mut Rng) -> Vec<u8> {
    let mut b = seed.to_vec();
    match rng.below(6) {
        // A few random bytes changed.
        0 | 1 => {
            for _ in 0..1 + rng.below(8) {
                let i = rng.below(b.len());
                b[i] = rng.next() as u8;
            }
        }
        // Cut short.
        2 => b.truncate(rng.below(b.len())),
        // Bytes inserted.
        3 => {
            let at = rng.below(b.len());
            let n = 1 + rng.below(64);
            let junk: Vec<u8> = (0..n).map(|_| rng.next() as u8).collect();
            b.splice(at..at, junk);
        }
        // Within the first 64 bytes (PNG IHDR, JPEG markers): sizes, depths, colour types.
        4 => {
            for _ in 0..1 + rng.below(4) {
                let i = rng.below(b.len().min(64));
                b[i] = [0, 1, 2, 3, 4, 6, 8, 16, 0x7f, 0xff][rng.below(10)];
            }
        }
        // A chunk of the data repeated.
        _ => {
            let from = rng.below(b.len());
            let to = (from + rng.below(256)).min(b.len());
            let copy = b[from..to].to_vec();
            b.splice(from..from, copy);
        }
    }
    b
}

#[test]
fn mutated_uploads_never_panic_and_fail_plainly() {
    let mut rng = Rng(0x5eed_1234_abcd_0042);
    // `STN_UPLOAD_CORPUS=fuzz/corpus/upload` also writes the seeds there, for cargo-fuzz.
    if let Some(dir) = std::env::var_os("STN_UPLOAD_CORPUS") {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join(dir);
        std::fs::create_dir_all(&dir).unwrap();
        for (i, seed) in seeds().iter().enumerate() {
            std::fs::write(dir.join(format!("seed_{i}")), seed).unwrap();
        }
    }
    for seed in seeds() {
        check_upload(&seed);
        for _ in 0..600 {
            check_upload(&mutate(&seed, &mut rng));
        }
    }
    for junk in [
        &b""[..],
        b"\x89PNG\r\n\x1a\n",
        b"\xff\xd8",
        b"GIF89a",
        b"hello",
    ] {
        check_upload(junk);
    }
}
