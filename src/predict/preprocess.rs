//! Turning an arbitrary picture of a digit into an MNIST-like 28x28 input, the way MNIST itself
//! was made (LeCun et al.): the ink's bounding box scaled, keeping its aspect ratio, to fit a
//! 20x20 box with anti-aliasing, then placed in a 28x28 field so that its centre of mass lands
//! on the field's centre.
//!
//! Pictures come in every style, so "ink" is measured as the distance of each pixel's colour
//! from the background colour (the per-channel median of the border pixels) rather than as
//! darkness: dark ink on white paper, white chalk on a blackboard and blue ink on a yellow note
//! all give bright strokes on black, as in MNIST. For pictures whose border is transparent the
//! ink is the opacity (a stroke drawn on a transparent canvas).

use image::imageops::{self, FilterType};
use image::{DynamicImage, ImageBuffer, Luma, RgbaImage};

use stn::data::mnist::{MEAN, STD};

/// Side of the MNIST field.
pub const SIDE: usize = 28;
/// Side of the box the digit's bounding box is scaled to fit (MNIST's 20x20).
pub const BOX: usize = 20;
/// Pixels of a preprocessed digit.
pub const PIXELS: usize = SIDE * SIDE;

/// Larger pictures are first shrunk (area averaging) to fit this side: the digit ends up 20
/// pixels tall anyway, and it bounds the time and memory a huge picture costs.
const WORK_SIDE: u32 = 1024;
/// Below this contrast with the background (on a 0..1 scale) there is no digit, only noise
/// (JPEG artefacts, sensor noise, a faint stain).
const MIN_CONTRAST: f32 = 0.1;
/// Ink below this fraction of the strongest ink is noise: it neither extends the bounding box
/// nor survives into the digit.
const NOISE_FLOOR: f32 = 0.1;

/// Why a picture holds no usable digit.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum PreprocessError {
    /// The picture has no pixels.
    #[error("the image has no pixels ({width}x{height})")]
    Empty {
        /// Width in pixels.
        width: u32,
        /// Height in pixels.
        height: u32,
    },
    /// Nothing stands out from the background.
    #[error("no digit found: the image is blank (nothing differs from its background)")]
    NoInk,
}

/// A digit prepared like MNIST: 28x28 intensities in 0..1, ink bright on a black background,
/// row-major.
#[derive(Clone, Debug, PartialEq)]
pub struct Digit {
    /// The pixels, 0 (background) to 1 (full ink).
    pub pixels: [f32; PIXELS],
}

impl Digit {
    /// Wraps MNIST bytes (0..255) as they are, without preprocessing.
    pub fn from_mnist(bytes: &[u8; PIXELS]) -> Self {
        Self {
            pixels: bytes.map(|b| b as f32 / 255.0),
        }
    }

    /// The network's input: `(p - MEAN) / STD` per pixel, as the tutorial's `Normalize`.
    pub fn normalized(&self) -> Vec<f32> {
        self.pixels.iter().map(|&p| (p - MEAN) / STD).collect()
    }

    /// The pixels as bytes (0..255), e.g. to save as an image.
    pub fn to_bytes(&self) -> [u8; PIXELS] {
        self.pixels
            .map(|p| (p.clamp(0.0, 1.0) * 255.0).round() as u8)
    }
}

/// Prepares `image` for the network like MNIST's digits were made: ink against the background
/// (any colours, either polarity), cropped to the ink's bounding box, scaled (anti-aliased,
/// aspect ratio kept) so its longer side is 20 pixels, and shifted by whole pixels within the
/// 28x28 field so that its centre of mass is at pixel (14, 14), as in MNIST.
pub fn preprocess(image: &DynamicImage) -> Result<Digit, PreprocessError> {
    let (width, height) = (image.width(), image.height());
    if width == 0 || height == 0 {
        return Err(PreprocessError::Empty { width, height });
    }
    let rgba = working_copy(image);
    let ink = ink_map(&rgba);
    let (w, h) = (rgba.width() as usize, rgba.height() as usize);
    let strongest = ink.iter().copied().fold(0.0f32, f32::max);
    if strongest < MIN_CONTRAST {
        return Err(PreprocessError::NoInk);
    }
    // Strongest ink = 1, as MNIST's strokes reach 255; faint noise is dropped.
    let floor = NOISE_FLOOR * strongest;
    let ink: Vec<f32> = ink
        .iter()
        .map(|&v| if v < floor { 0.0 } else { v / strongest })
        .collect();
    let (x0, y0, x1, y1) = bounding_box(&ink, w, h).ok_or(PreprocessError::NoInk)?;
    let (bw, bh) = (x1 - x0, y1 - y0);
    let crop: ImageBuffer<Luma<f32>, Vec<f32>> =
        ImageBuffer::from_fn(bw as u32, bh as u32, |x, y| {
            Luma([ink[(y0 + y as usize) * w + x0 + x as usize]])
        });
    // Longer side to 20 pixels; the triangle filter widens with the reduction factor, so
    // downscaling averages over the source area (no aliasing of thin strokes).
    let scale = BOX as f64 / bw.max(bh) as f64;
    let nw = ((bw as f64 * scale).round() as u32).clamp(1, BOX as u32);
    let nh = ((bh as f64 * scale).round() as u32).clamp(1, BOX as u32);
    let small = imageops::resize(&crop, nw, nh, FilterType::Triangle);
    let (nw, nh) = (nw as usize, nh as usize);
    let mut boxed: Vec<f32> = small.into_raw();
    let peak = boxed.iter().copied().fold(0.0f32, f32::max);
    if peak <= 0.0 {
        return Err(PreprocessError::NoInk);
    }
    // Thin strokes fade when shrunk a lot; MNIST's strokes are saturated.
    for v in &mut boxed {
        *v = (*v / peak).clamp(0.0, 1.0);
    }
    let (cx, cy) = centre_of_mass(&boxed, nw, nh);
    // Whole-pixel shift (as MNIST): the centre of mass goes to (14, 14) in pixel-index
    // coordinates, which is where MNIST's test digits have it on average (13.99, 14.00);
    // the box stays inside the field.
    let centre = (SIDE / 2) as f64;
    let ox = ((centre - cx).round() as i64).clamp(0, (SIDE - nw) as i64) as usize;
    let oy = ((centre - cy).round() as i64).clamp(0, (SIDE - nh) as i64) as usize;
    let mut pixels = [0.0f32; PIXELS];
    for y in 0..nh {
        for x in 0..nw {
            pixels[(oy + y) * SIDE + ox + x] = boxed[y * nw + x];
        }
    }
    Ok(Digit { pixels })
}

/// RGBA8 pixels of `image`, shrunk by area averaging to fit [`WORK_SIDE`] when larger.
fn working_copy(image: &DynamicImage) -> RgbaImage {
    let (w, h) = (image.width(), image.height());
    if w.max(h) <= WORK_SIDE {
        return image.to_rgba8();
    }
    let s = WORK_SIDE as f64 / w.max(h) as f64;
    let nw = ((w as f64 * s).round() as u32).max(1);
    let nh = ((h as f64 * s).round() as u32).max(1);
    imageops::thumbnail(image, nw, nh)
}

/// Per pixel, how much it differs from the background, 0..1: the opacity when the border is
/// transparent, else the RGB distance from the border's median colour (composited over it).
fn ink_map(img: &RgbaImage) -> Vec<f32> {
    let (w, h) = (img.width(), img.height());
    let mut border: Vec<[u8; 4]> = Vec::with_capacity(2 * (w + h) as usize);
    for x in 0..w {
        border.push(img.get_pixel(x, 0).0);
        border.push(img.get_pixel(x, h - 1).0);
    }
    for y in 0..h {
        border.push(img.get_pixel(0, y).0);
        border.push(img.get_pixel(w - 1, y).0);
    }
    // The per-channel median ignores the digit where it touches the border.
    let bg: [f32; 4] = std::array::from_fn(|c| {
        let mut v: Vec<u8> = border.iter().map(|p| p[c]).collect();
        let mid = v.len() / 2;
        *v.select_nth_unstable(mid).1 as f32 / 255.0
    });
    if bg[3] < 0.5 {
        return img.pixels().map(|p| p.0[3] as f32 / 255.0).collect();
    }
    img.pixels()
        .map(|p| {
            let a = p.0[3] as f32 / 255.0;
            let d2: f32 = (0..3)
                .map(|c| {
                    let d = p.0[c] as f32 / 255.0 - bg[c];
                    d * d
                })
                .sum();
            // Over an opaque background a half-transparent pixel shows half its difference.
            a * (d2 / 3.0).sqrt()
        })
        .collect()
}

/// The half-open box (x0, y0, x1, y1) around the nonzero pixels, `None` if there are none.
fn bounding_box(ink: &[f32], w: usize, h: usize) -> Option<(usize, usize, usize, usize)> {
    let (mut x0, mut y0, mut x1, mut y1) = (w, h, 0, 0);
    for y in 0..h {
        for x in 0..w {
            if ink[y * w + x] > 0.0 {
                x0 = x0.min(x);
                x1 = x1.max(x + 1);
                y0 = y0.min(y);
                y1 = y1.max(y + 1);
            }
        }
    }
    (x1 > x0 && y1 > y0).then_some((x0, y0, x1, y1))
}

/// Intensity-weighted mean (x, y) in pixel-index coordinates.
fn centre_of_mass(v: &[f32], w: usize, h: usize) -> (f64, f64) {
    let (mut m, mut mx, mut my) = (0.0f64, 0.0f64, 0.0f64);
    for y in 0..h {
        for x in 0..w {
            let p = v[y * w + x] as f64;
            m += p;
            mx += p * x as f64;
            my += p * y as f64;
        }
    }
    if m > 0.0 {
        (mx / m, my / m)
    } else {
        ((w as f64 - 1.0) / 2.0, (h as f64 - 1.0) / 2.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use image::{GrayImage, Rgb, RgbImage, Rgba};

    fn com(d: &Digit) -> (f64, f64) {
        centre_of_mass(&d.pixels, SIDE, SIDE)
    }

    fn bbox(d: &Digit) -> (usize, usize, usize, usize) {
        bounding_box(&d.pixels, SIDE, SIDE).unwrap()
    }

    #[test]
    fn dark_stroke_on_white_becomes_a_centred_bright_digit() {
        // A vertical bar, dark on white, off-centre in a wide picture.
        let img = GrayImage::from_fn(300, 180, |x, y| {
            if (40..60).contains(&x) && (20..160).contains(&y) {
                Luma([10])
            } else {
                Luma([250])
            }
        });
        let d = preprocess(&DynamicImage::ImageLuma8(img)).unwrap();
        let (x0, y0, x1, y1) = bbox(&d);
        assert_eq!(y1 - y0, BOX, "the longer side fills 20 pixels");
        assert!(x1 - x0 <= 4, "aspect ratio kept: {}", x1 - x0);
        let (cx, cy) = com(&d);
        assert!(
            (cx - 14.0).abs() <= 0.5 && (cy - 14.0).abs() <= 0.5,
            "{cx} {cy}"
        );
        let max = d.pixels.iter().copied().fold(0.0, f32::max);
        assert!((max - 1.0).abs() < 1e-6);
        assert_eq!(d.pixels[0], 0.0, "background is black");
    }

    #[test]
    fn polarity_and_colour_do_not_matter() {
        let shape = |x: u32, y: u32| (x as i32 - 50).pow(2) + (y as i32 - 45).pow(2) < 900;
        let white_on_black = GrayImage::from_fn(100, 100, |x, y| Luma([255 * shape(x, y) as u8]));
        let black_on_white =
            GrayImage::from_fn(100, 100, |x, y| Luma([255 - 255 * shape(x, y) as u8]));
        // Red ink on dark green: the same luma, told apart by colour.
        let colour = RgbImage::from_fn(100, 100, |x, y| {
            if shape(x, y) {
                Rgb([255, 0, 0])
            } else {
                Rgb([0, 76, 0])
            }
        });
        let a = preprocess(&DynamicImage::ImageLuma8(white_on_black)).unwrap();
        let b = preprocess(&DynamicImage::ImageLuma8(black_on_white)).unwrap();
        let c = preprocess(&DynamicImage::ImageRgb8(colour)).unwrap();
        assert_eq!(a, b);
        assert_eq!(bbox(&a), bbox(&c));
    }

    #[test]
    fn transparent_canvas_uses_opacity() {
        let img = RgbaImage::from_fn(64, 64, |x, y| {
            if (20..44).contains(&x) && (10..54).contains(&y) {
                Rgba([0, 0, 0, 255])
            } else {
                Rgba([0, 0, 0, 0])
            }
        });
        let d = preprocess(&DynamicImage::ImageRgba8(img)).unwrap();
        let (_, y0, _, y1) = bbox(&d);
        assert_eq!(y1 - y0, BOX);
    }

    #[test]
    fn blank_and_noise_only_pictures_are_errors() {
        let uniform = GrayImage::from_pixel(50, 50, Luma([128]));
        assert_eq!(
            preprocess(&DynamicImage::ImageLuma8(uniform)),
            Err(PreprocessError::NoInk)
        );
        let faint = GrayImage::from_fn(50, 50, |x, y| Luma([200 + ((x * 7 + y * 3) % 5) as u8]));
        assert_eq!(
            preprocess(&DynamicImage::ImageLuma8(faint)),
            Err(PreprocessError::NoInk)
        );
        let empty = DynamicImage::ImageLuma8(GrayImage::new(0, 10));
        assert!(matches!(
            preprocess(&empty),
            Err(PreprocessError::Empty { .. })
        ));
    }

    #[test]
    fn specks_below_the_noise_floor_do_not_widen_the_box() {
        let img = GrayImage::from_fn(200, 200, |x, y| {
            if (90..110).contains(&x) && (30..170).contains(&y) {
                Luma([255])
            } else if x == 5 && y == 5 {
                Luma([15]) // 6% of the ink: a speck of dust
            } else {
                Luma([0])
            }
        });
        let d = preprocess(&DynamicImage::ImageLuma8(img)).unwrap();
        let (x0, _, x1, _) = bbox(&d);
        assert!(x1 - x0 <= 4);
    }

    #[test]
    fn single_pixel_and_huge_pictures_work() {
        let dot = GrayImage::from_pixel(1, 1, Luma([255]));
        // A 1x1 picture is its own border: its colour is the background, so there is no ink.
        assert!(preprocess(&DynamicImage::ImageLuma8(dot)).is_err());
        let big = GrayImage::from_fn(3000, 2000, |x, y| {
            Luma([if (1400..1600).contains(&x) && (300..1700).contains(&y) {
                0
            } else {
                255
            }])
        });
        let d = preprocess(&DynamicImage::ImageLuma8(big)).unwrap();
        let (_, y0, _, y1) = bbox(&d);
        assert_eq!(y1 - y0, BOX);
    }

    #[test]
    fn mnist_digits_stay_much_the_same() {
        // A digit already in MNIST form (a 20-pixel tall box, centred by mass): preprocessing
        // gives it back, moved by at most the one pixel of rounding the centre of mass.
        let mut bytes = [0u8; PIXELS];
        for y in 4..24 {
            for x in 12..17 {
                bytes[y * SIDE + x] = if x == 12 { 128 } else { 255 };
            }
        }
        let img = GrayImage::from_raw(28, 28, bytes.to_vec()).unwrap();
        let got = preprocess(&DynamicImage::ImageLuma8(img))
            .unwrap()
            .to_bytes();
        let shifted = |dx: i64, dy: i64| {
            let mut out = [0u8; PIXELS];
            for y in 0..SIDE as i64 {
                for x in 0..SIDE as i64 {
                    let (sx, sy) = (x - dx, y - dy);
                    if (0..SIDE as i64).contains(&sx) && (0..SIDE as i64).contains(&sy) {
                        out[(y * 28 + x) as usize] = bytes[(sy * 28 + sx) as usize];
                    }
                }
            }
            out
        };
        let close = (-1..=1).any(|dx| (-1..=1).any(|dy| shifted(dx, dy) == got));
        assert!(close, "{got:?}");
    }
}
