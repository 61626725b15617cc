//! Helpers shared by the `predict` and `serve` tests: MNIST test digits, the PyTorch-trained
//! model, and encoding pictures as PNG or JPEG bytes.
#![allow(dead_code)]

use std::io::Cursor;
use std::path::{Path, PathBuf};

use image::codecs::jpeg::JpegEncoder;
use image::{DynamicImage, GrayImage, ImageFormat};
use stn::data::ImageSet;

/// The repository root.
pub fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// The vendored PyTorch-trained tutorial model (95.80% test accuracy).
pub fn torch_model() -> PathBuf {
    root().join("tests/fixtures/trained/tutorial_torch_2ep.pt")
}

/// The vendored MNIST test set.
pub fn mnist_test() -> ImageSet {
    stn::data::mnist::load_dir(&root().join("data/mnist"))
        .expect("vendored MNIST")
        .test
}

/// Test digit `i` as a 28x28 grey image (white ink on black, as stored).
pub fn digit_image(set: &ImageSet, i: usize) -> GrayImage {
    GrayImage::from_raw(28, 28, set.image(i).to_vec()).expect("28x28")
}

/// `img` encoded as PNG.
pub fn png(img: &DynamicImage) -> Vec<u8> {
    let mut out = Vec::new();
    img.write_to(&mut Cursor::new(&mut out), ImageFormat::Png)
        .expect("PNG encodes");
    out
}

/// `img` encoded as JPEG at `quality` (colour or grey).
pub fn jpeg(img: &DynamicImage, quality: u8) -> Vec<u8> {
    let mut out = Vec::new();
    let rgb = DynamicImage::ImageRgb8(img.to_rgb8());
    JpegEncoder::new_with_quality(&mut out, quality)
        .encode_image(&rgb)
        .expect("JPEG encodes");
    out
}
