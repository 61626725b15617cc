//! `stn predict` on pictures like people's: MNIST test digits resized, moved off-centre,
//! inverted, coloured and JPEG-compressed, through the same path as the command (bytes ->
//! decode -> preprocess -> predict) with the PyTorch-trained tutorial model; and the command
//! itself on good and bad files.

mod common;
mod ui_common;

use burn::tensor::Device;
use common::{stn, succeed};
use image::imageops::{self, FilterType};
use image::{DynamicImage, GrayImage, Luma, Rgb, RgbImage};
use stn::rng::Rng;
use stn_cli::predict::{Digit, Predictor, digit_from_bytes};
use ui_common::*;

/// Test digits used: every 50th of the 10000, 200 in all.
const DIGITS: usize = 200;
const STRIDE: usize = 50;

/// Ink and background colours of the colour family (ink first), dark-on-light and
/// light-on-dark, some with little difference in brightness.
const COLOURS: [([u8; 3], [u8; 3]); 6] = [
    ([20, 30, 110], [245, 235, 210]),  // navy on beige
    ([200, 30, 30], [250, 245, 170]),  // red on light yellow
    ([240, 240, 240], [20, 80, 40]),   // white on dark green
    ([250, 220, 60], [70, 20, 90]),    // yellow on purple
    ([30, 30, 30], [250, 190, 210]),   // black on pink
    ([40, 120, 230], [120, 120, 120]), // blue on grey (similar brightness)
];

fn scaled(img: &GrayImage, w: u32, h: u32) -> GrayImage {
    imageops::resize(img, w, h, FilterType::CatmullRom)
}

/// `img` (white ink on black) painted in `ink` on `bg`.
fn coloured(img: &GrayImage, ink: [u8; 3], bg: [u8; 3]) -> RgbImage {
    RgbImage::from_fn(img.width(), img.height(), |x, y| {
        let a = img.get_pixel(x, y).0[0] as f32 / 255.0;
        Rgb(std::array::from_fn(|c| {
            (bg[c] as f32 + a * (ink[c] as f32 - bg[c] as f32)).round() as u8
        }))
    })
}

/// `img` enlarged to a random size and pasted at a random place of a `w` x `h` black canvas.
fn off_centre(img: &GrayImage, w: u32, h: u32, rng: &mut Rng) -> GrayImage {
    let side = 40 + rng.below(71) as u32; // 40..110 pixels
    let small = scaled(img, side, side);
    let mut canvas = GrayImage::from_pixel(w, h, Luma([0]));
    let x = rng.below((w - side) as u64 + 1) as i64;
    let y = rng.below((h - side) as u64 + 1) as i64;
    imageops::overlay(&mut canvas, &small, x, y);
    canvas
}

type Variant = fn(&GrayImage, &mut Rng) -> Vec<u8>;

/// The families of pictures, each made from a 28x28 test digit, and whether the 90% bar
/// applies (the stretched family distorts the digit itself, which preprocessing keeps as MNIST
/// did: it is reported, not required).
fn families() -> Vec<(&'static str, bool, Variant)> {
    vec![
        ("resized to 100x100", true, |img, _| {
            png(&DynamicImage::ImageLuma8(scaled(img, 100, 100)))
        }),
        ("resized into a 300x180 picture", true, |img, _| {
            let mut canvas = GrayImage::from_pixel(300, 180, Luma([0]));
            imageops::overlay(&mut canvas, &scaled(img, 180, 180), 60, 0);
            png(&DynamicImage::ImageLuma8(canvas))
        }),
        ("off-centre in 320x240", true, |img, rng| {
            png(&DynamicImage::ImageLuma8(off_centre(img, 320, 240, rng)))
        }),
        ("inverted (dark on white) 140x140", true, |img, _| {
            let mut big = scaled(img, 140, 140);
            imageops::invert(&mut big);
            png(&DynamicImage::ImageLuma8(big))
        }),
        ("colour ink on colour background", true, |img, rng| {
            let (ink, bg) = COLOURS[rng.below(COLOURS.len() as u64) as usize];
            png(&DynamicImage::ImageRgb8(coloured(
                &scaled(img, 150, 150),
                ink,
                bg,
            )))
        }),
        ("JPEG quality 75, dark on white 200x200", true, |img, _| {
            let mut big = scaled(img, 200, 200);
            imageops::invert(&mut big);
            jpeg(&DynamicImage::ImageLuma8(big), 75)
        }),
        ("all: off-centre, colour, JPEG 75", true, |img, rng| {
            let (ink, bg) = COLOURS[rng.below(COLOURS.len() as u64) as usize];
            let moved = off_centre(img, 320, 240, rng);
            jpeg(&DynamicImage::ImageRgb8(coloured(&moved, ink, bg)), 75)
        }),
        (
            "(digit stretched to 300x180, not required)",
            false,
            |img, _| png(&DynamicImage::ImageLuma8(scaled(img, 300, 180))),
        ),
    ]
}

#[test]
fn real_world_like_pictures_are_classified_like_mnist() {
    let test = mnist_test();
    let predictor = Predictor::load(&torch_model(), &Device::flex()).expect("model loads");
    let idx: Vec<usize> = (0..DIGITS).map(|i| i * STRIDE).collect();
    let labels: Vec<usize> = idx.iter().map(|&i| test.labels[i] as usize).collect();
    let accuracy = |digits: &[Digit]| {
        let preds = predictor.predict(digits);
        let hits = preds
            .iter()
            .zip(&labels)
            .filter(|(p, l)| p.class == **l)
            .count();
        hits as f64 / DIGITS as f64
    };
    let raw: Vec<Digit> = idx
        .iter()
        .map(|&i| Digit::from_mnist(test.image(i).try_into().unwrap()))
        .collect();
    let base = accuracy(&raw);
    eprintln!(
        "{:<42} {:>6.1}%",
        "MNIST as is (no preprocessing)",
        100.0 * base
    );
    let mut failures = Vec::new();
    for (name, required, make) in families() {
        let mut rng = Rng::derive(7, name);
        let digits: Vec<Digit> = idx
            .iter()
            .map(|&i| {
                let bytes = make(&digit_image(&test, i), &mut rng);
                digit_from_bytes(&bytes).unwrap_or_else(|e| panic!("{name}, digit {i}: {e}"))
            })
            .collect();
        let acc = accuracy(&digits);
        eprintln!("{name:<42} {:>6.1}%", 100.0 * acc);
        if required && acc < 0.9 {
            failures.push(format!("{name}: {:.1}%", 100.0 * acc));
        }
    }
    assert!(failures.is_empty(), "below 90%: {failures:?}");
}

/// Writes test digit 0 (a 7) as dark ink on white, 150x150, plus a missing, a non-image and
/// a blank file, into `dir`.
fn files(dir: &std::path::Path) -> [std::path::PathBuf; 4] {
    let test = mnist_test();
    assert_eq!(test.labels[0], 7);
    let mut seven = scaled(&digit_image(&test, 0), 150, 150);
    imageops::invert(&mut seven);
    let good = dir.join("seven.png");
    std::fs::write(&good, png(&DynamicImage::ImageLuma8(seven))).unwrap();
    let missing = dir.join("missing.png");
    let junk = dir.join("notes.png");
    std::fs::write(&junk, "this is not a picture\n").unwrap();
    let blank = dir.join("blank.jpg");
    let white = GrayImage::from_pixel(64, 64, Luma([255]));
    std::fs::write(&blank, jpeg(&DynamicImage::ImageLuma8(white), 75)).unwrap();
    [good, missing, junk, blank]
}

#[test]
fn bad_files_are_reported_and_the_others_classified() {
    let dir = tempfile::tempdir().unwrap();
    let [good, missing, junk, blank] = files(dir.path());
    let out = stn()
        .args(["predict", "--model"])
        .arg(torch_model())
        .args([&missing, &good, &junk, &blank])
        .output()
        .unwrap();
    let (stdout, stderr) = (
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
    );
    assert_eq!(out.status.code(), Some(1), "stderr: {stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
    let errors: Vec<&str> = stderr.lines().collect();
    assert_eq!(errors.len(), 3, "one line per bad file: {stderr}");
    for (file, why) in [
        (&missing, "No such file"),
        (&junk, "not an image"),
        (&blank, "no digit found"),
    ] {
        let name = file.display().to_string();
        assert!(
            errors.iter().any(|l| l.contains(&name) && l.contains(why)),
            "no error naming {name} ({why}): {stderr}"
        );
    }
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(lines.len(), 1, "{stdout}");
    let prefix = format!("{}: 7 (", good.display());
    assert!(lines[0].starts_with(&prefix), "{}", lines[0]);
    assert!(lines[0].contains("%), then "), "{}", lines[0]);
}

#[test]
fn json_lines_and_pictures() {
    let dir = tempfile::tempdir().unwrap();
    let [good, ..] = files(dir.path());
    let other = dir.path().join("sub");
    std::fs::create_dir(&other).unwrap();
    // Same file name in another folder: its picture must not overwrite the first one's.
    let good2 = other.join("seven.png");
    std::fs::copy(&good, &good2).unwrap();
    let pics = dir.path().join("pictures");
    let out = succeed(
        stn()
            .args(["predict", "--json", "--model"])
            .arg(torch_model())
            .arg("--out")
            .arg(&pics)
            .args([&good, &good2]),
    );
    let stdout = String::from_utf8(out.stdout).unwrap();
    let lines: Vec<serde_json::Value> = stdout
        .lines()
        .map(|l| serde_json::from_str(l).expect("a JSON line"))
        .collect();
    assert_eq!(lines.len(), 2);
    for (v, file) in lines.iter().zip([&good, &good2]) {
        assert_eq!(v["file"], file.display().to_string());
        assert_eq!(v["class"], 7);
        let p: Vec<f64> = serde_json::from_value(v["probabilities"].clone()).unwrap();
        assert_eq!(p.len(), 10);
        assert!((p.iter().sum::<f64>() - 1.0).abs() < 1e-4);
        assert!(p[7] > 0.5);
        let theta: Vec<Vec<f64>> = serde_json::from_value(v["theta"].clone()).unwrap();
        assert_eq!((theta.len(), theta[0].len()), (2, 3));
    }
    for name in ["seven.png", "seven-2.png"] {
        let img = image::open(pics.join(name)).expect("picture written");
        // Two 224-pixel panels (28 x 8) side by side, with titles and margins.
        assert!(img.width() > 2 * 224 && img.height() > 224, "{name}");
    }
}

#[test]
fn run_folders_and_checkpoints_work_too() {
    let dir = tempfile::tempdir().unwrap();
    let [good, ..] = files(dir.path());
    let run = dir.path().join("run");
    succeed(
        stn()
            .args([
                "train",
                "--epochs",
                "1",
                "--limit-train",
                "128",
                "--limit-test",
                "20",
                "--log-interval",
                "0",
                "--out",
            ])
            .arg(&run),
    );
    // The run folder got its pictures after the epoch.
    for f in ["curves.png", "stn-epochs.png", "stn.png"] {
        assert!(run.join(f).is_file(), "{f} missing");
    }
    // A resumed run continues the picture of the epochs: the inputs, then epochs 1 and 2.
    succeed(stn().args(["train", "--epochs", "2", "--resume"]).arg(&run));
    let rows = stn_cli::plots::EpochRows::load(&run.join("stn-epochs.rows")).expect("rows saved");
    let labels: Vec<&str> = rows.rows.iter().map(|r| r.label.as_str()).collect();
    assert_eq!(labels, ["input", "epoch 1", "epoch 2"]);
    let curves = image::open(run.join("curves.png")).expect("curves.png is a PNG");
    assert!(curves.width() >= 800 && curves.height() >= 300);
    for model in [run.clone(), run.join("checkpoint.stn")] {
        let out = succeed(
            stn()
                .args(["predict", "--json", "--model"])
                .arg(&model)
                .arg(&good),
        );
        let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        assert!(v["class"].as_u64().unwrap() < 10);
    }
}
