//! Pictures: image grids with titles, written as PNG. No plotting dependency: a tiny raster
//! canvas, the 8x8 bitmap font of `font8x8`, and the `png` encoder.

use std::path::Path;

use font8x8::UnicodeFonts;

/// An RGB raster.
#[derive(Clone, Debug)]
pub struct Canvas {
    /// Width in pixels.
    pub width: usize,
    /// Height in pixels.
    pub height: usize,
    /// RGB bytes, row-major.
    pub pixels: Vec<u8>,
}

impl Canvas {
    /// A canvas filled with `color`.
    pub fn new(width: usize, height: usize, color: [u8; 3]) -> Self {
        let mut pixels = Vec::with_capacity(width * height * 3);
        for _ in 0..width * height {
            pixels.extend_from_slice(&color);
        }
        Self {
            width,
            height,
            pixels,
        }
    }

    /// Sets one pixel (ignored outside the canvas).
    pub fn set(&mut self, x: usize, y: usize, color: [u8; 3]) {
        if x < self.width && y < self.height {
            let i = (y * self.width + x) * 3;
            self.pixels[i..i + 3].copy_from_slice(&color);
        }
    }

    /// Fills a rectangle.
    pub fn fill(&mut self, x: usize, y: usize, w: usize, h: usize, color: [u8; 3]) {
        for yy in y..y + h {
            for xx in x..x + w {
                self.set(xx, yy, color);
            }
        }
    }

    /// Copies `other` with its top-left corner at (x, y).
    pub fn blit(&mut self, other: &Canvas, x: usize, y: usize) {
        for yy in 0..other.height {
            for xx in 0..other.width {
                let i = (yy * other.width + xx) * 3;
                let c = [other.pixels[i], other.pixels[i + 1], other.pixels[i + 2]];
                self.set(x + xx, y + yy, c);
            }
        }
    }

    /// Draws `text` with its top-left corner at (x, y), each font pixel `scale` x `scale`.
    pub fn text(&mut self, x: usize, y: usize, text: &str, scale: usize, color: [u8; 3]) {
        for (i, ch) in text.chars().enumerate() {
            let glyph = font8x8::BASIC_FONTS
                .get(ch)
                .or_else(|| font8x8::LATIN_FONTS.get(ch))
                .unwrap_or([0; 8]);
            for (row, bits) in glyph.iter().enumerate() {
                for col in 0..8 {
                    if bits >> col & 1 == 1 {
                        let gx = x + (i * 8 + col) * scale;
                        self.fill(gx, y + row * scale, scale, scale, color);
                    }
                }
            }
        }
    }

    /// Width in pixels of `text` drawn at `scale`.
    pub fn text_width(text: &str, scale: usize) -> usize {
        text.chars().count() * 8 * scale
    }

    /// Draws `text` centred horizontally on `cx`.
    pub fn text_centered(&mut self, cx: usize, y: usize, text: &str, scale: usize, color: [u8; 3]) {
        let w = Self::text_width(text, scale);
        self.text(cx.saturating_sub(w / 2), y, text, scale, color);
    }

    /// Nearest-neighbour enlargement by an integer factor.
    pub fn scaled(&self, factor: usize) -> Canvas {
        let mut out = Canvas::new(self.width * factor, self.height * factor, [0, 0, 0]);
        for y in 0..out.height {
            for x in 0..out.width {
                let i = ((y / factor) * self.width + x / factor) * 3;
                let c = [self.pixels[i], self.pixels[i + 1], self.pixels[i + 2]];
                out.set(x, y, c);
            }
        }
        out
    }

    /// Writes the canvas as an 8-bit RGB PNG.
    pub fn save_png(&self, path: &Path) -> std::io::Result<()> {
        let mut bytes = Vec::new();
        {
            let mut enc = png::Encoder::new(&mut bytes, self.width as u32, self.height as u32);
            enc.set_color(png::ColorType::Rgb);
            enc.set_depth(png::BitDepth::Eight);
            let mut w = enc.write_header().map_err(std::io::Error::other)?;
            w.write_image_data(&self.pixels)
                .map_err(std::io::Error::other)?;
        }
        stn::atomic_file::write_atomic(path, &bytes)
    }
}

/// torchvision's `make_grid`: `count` single-channel images of `rows` x `cols` (values in
/// [0, 1], clipped) in rows of `per_row`, separated and framed by 2 black pixels.
pub fn image_grid(
    images: &[f32],
    count: usize,
    rows: usize,
    cols: usize,
    per_row: usize,
) -> Canvas {
    let pad = 2;
    let per_row = per_row.max(1).min(count.max(1));
    let grid_rows = count.div_ceil(per_row);
    let mut c = Canvas::new(
        per_row * (cols + pad) + pad,
        grid_rows * (rows + pad) + pad,
        [0, 0, 0],
    );
    for i in 0..count {
        let (gy, gx) = (i / per_row, i % per_row);
        for y in 0..rows {
            for x in 0..cols {
                let v = images[i * rows * cols + y * cols + x].clamp(0.0, 1.0);
                let g = (v * 255.0).round() as u8;
                c.set(
                    pad + gx * (cols + pad) + x,
                    pad + gy * (rows + pad) + y,
                    [g, g, g],
                );
            }
        }
    }
    c
}

/// Side-by-side panels with a title above each, on a white background.
pub fn titled_panels(panels: &[(&str, &Canvas)]) -> Canvas {
    let margin = 16;
    let title_scale = 2;
    let title_h = 8 * title_scale + 12;
    // Each panel gets a slot at least as wide as its title.
    let slot = |t: &str, p: &Canvas| p.width.max(Canvas::text_width(t, title_scale));
    let width = margin
        + panels
            .iter()
            .map(|(t, p)| slot(t, p) + 2 * margin)
            .sum::<usize>();
    let height =
        margin + title_h + panels.iter().map(|(_, p)| p.height).max().unwrap_or(0) + margin;
    let mut c = Canvas::new(width, height, [255, 255, 255]);
    let mut x = margin;
    for (title, p) in panels {
        let w = slot(title, p);
        c.text_centered(x + w / 2, margin, title, title_scale, [0, 0, 0]);
        c.blit(p, x + (w - p.width) / 2, margin + title_h);
        x += w + 2 * margin;
    }
    c
}

/// Undoes the input normalization: `x * std + mean`.
pub fn denormalize(values: &[f32], mean: f32, std: f32) -> Vec<f32> {
    values.iter().map(|v| v * std + mean).collect()
}

/// The tutorial's picture: `count` test images ("Dataset Images") beside the same images after
/// the network's transformer ("Transformed Images"), de-normalized with MNIST's mean and std.
///
/// Images of several channels (the MNIST addition pairs) show each channel as its own tile,
/// side by side in channel order; so does the transformers' output (a 2xST network's two
/// transformers' outputs concatenated: the first's channels, then the second's).
pub fn transformed_digits(
    net: &stn::model::Net,
    set: &stn::data::ImageSet,
    count: usize,
) -> Canvas {
    use burn::tensor::{Tensor, TensorData};
    use stn::data::mnist::{MEAN, STD, normalization_lut};
    let count = count.min(set.len()).max(1);
    let lut = normalization_lut(MEAN, STD);
    let (mut images, mut labels) = (Vec::new(), Vec::new());
    let idx: Vec<usize> = (0..count).collect();
    set.gather(&idx, &lut, &mut images, &mut labels);
    let device = net.device();
    let x = Tensor::<4>::from_data(
        TensorData::new(images.clone(), [count, set.channels, set.rows, set.cols]),
        &device,
    );
    let out = net.transform(x);
    let [_, oc, oh, ow] = out.dims();
    let out: Vec<f32> = out
        .into_data()
        .convert::<f32>()
        .try_into_vec()
        .expect("f32 output");
    let per_row = (count as f64).sqrt().ceil() as usize;
    let in_row = per_row * set.channels;
    // Small images are enlarged so the picture is readable (panels of about 480 pixels; 960
    // for several channels, whose tiles are twice as many).
    let panel = if set.channels == 1 { 480 } else { 960 };
    let scale = (panel / (in_row * (set.cols + 2) + 2)).max(1);
    let input = image_grid(
        &denormalize(&images, MEAN, STD),
        count * set.channels,
        set.rows,
        set.cols,
        in_row,
    )
    .scaled(scale);
    let out_row = per_row * oc;
    let oscale = ((input.width as f64 / (out_row * (ow + 2) + 2) as f64).round() as usize).max(1);
    let output =
        image_grid(&denormalize(&out, MEAN, STD), count * oc, oh, ow, out_row).scaled(oscale);
    titled_panels(&[("Dataset Images", &input), ("Transformed Images", &output)])
}

/// A titled sheet of the first `count` images of `set` (raw pixels, no model; several channels
/// side by side).
pub fn sample_sheet(set: &stn::data::ImageSet, count: usize, title: &str) -> Canvas {
    let count = count.min(set.len()).max(1);
    // Several channels: each its own tile, side by side.
    let per_row = (count as f64).sqrt().ceil() as usize * set.channels;
    let pixels: Vec<f32> = set.images[..count * set.pixels()]
        .iter()
        .map(|&p| p as f32 / 255.0)
        .collect();
    let scale = (480 / (per_row * (set.cols + 2) + 2)).max(1);
    let grid = image_grid(&pixels, count * set.channels, set.rows, set.cols, per_row).scaled(scale);
    titled_panels(&[(title, &grid)])
}
