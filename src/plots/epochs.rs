//! The same test digits after the transformer at the end of every epoch: one row per epoch
//! under a first row of the untransformed inputs, so a run's picture shows the transformer
//! learning to straighten, centre and zoom.
//!
//! The picture accumulates: [`EpochRows`] keeps the rows so far (and saves them next to the
//! picture, so a resumed run continues the same picture), and [`epochs_figure`] draws them all.

use std::path::Path;

use plotters::prelude::*;

use super::{INK, PlotError, bold, font, render};
use crate::report::Canvas;

/// One row: `count` single-channel images of `height` x `width`, values 0..1.
#[derive(Clone, Debug, PartialEq)]
pub struct EpochRow {
    /// Shown left of the row ("input", "epoch 3").
    pub label: String,
    /// Image width.
    pub width: usize,
    /// Image height.
    pub height: usize,
    /// The images, one after the other, row-major.
    pub images: Vec<f32>,
}

impl EpochRow {
    /// Number of images in the row.
    pub fn count(&self) -> usize {
        self.images.len() / (self.width * self.height).max(1)
    }
}

/// The gap between images and around the picture.
const GAP: usize = 4;
const MARGIN: usize = 20;
const LABEL_WIDTH: usize = 96;
const TITLE_HEIGHT: usize = 44;

/// Draws `rows` one under the other (images enlarged by whole factors to a common cell),
/// each labelled, under `title`.
pub fn epochs_figure(rows: &[EpochRow], title: &str) -> Result<Canvas, PlotError> {
    let side = rows
        .iter()
        .map(|r| r.width.max(r.height))
        .max()
        .unwrap_or(28)
        .max(1);
    // Cells of about 56 pixels: 28x28 digits twice their size.
    let cell = side * (56 / side).max(1);
    let count = rows.iter().map(EpochRow::count).max().unwrap_or(0).max(1);
    let width = 2 * MARGIN + LABEL_WIDTH + count * (cell + GAP);
    let height = MARGIN + TITLE_HEIGHT + rows.len() * (cell + GAP) + MARGIN;
    render(width as u32, height as u32, |root| {
        root.draw(&Text::new(
            title.to_string(),
            (MARGIN as i32, MARGIN as i32),
            bold(18.0),
        ))
        .map_err(PlotError::of)?;
        for (r, row) in rows.iter().enumerate() {
            let y0 = MARGIN + TITLE_HEIGHT + r * (cell + GAP);
            root.draw(&Text::new(
                row.label.clone(),
                (MARGIN as i32, (y0 + cell / 2) as i32 - 8),
                if r == 0 { bold(15.0) } else { font(15.0) },
            ))
            .map_err(PlotError::of)?;
            let factor = (cell / row.width.max(row.height).max(1)).max(1);
            let (iw, ih) = (row.width * factor, row.height * factor);
            for i in 0..row.count() {
                let x0 = MARGIN + LABEL_WIDTH + i * (cell + GAP);
                // Black tiles as MNIST's backgrounds, the image centred in its cell.
                root.draw(&Rectangle::new(
                    [
                        (x0 as i32, y0 as i32),
                        ((x0 + cell) as i32, (y0 + cell) as i32),
                    ],
                    BLACK.filled(),
                ))
                .map_err(PlotError::of)?;
                let (ox, oy) = (
                    x0 + (cell - iw.min(cell)) / 2,
                    y0 + (cell - ih.min(cell)) / 2,
                );
                let img = &row.images[i * row.width * row.height..(i + 1) * row.width * row.height];
                for y in 0..ih.min(cell) {
                    for x in 0..iw.min(cell) {
                        let v = img[(y / factor) * row.width + x / factor].clamp(0.0, 1.0);
                        let g = (v * 255.0).round() as u8;
                        root.draw_pixel(((ox + x) as i32, (oy + y) as i32), &RGBColor(g, g, g))
                            .map_err(PlotError::of)?;
                    }
                }
            }
            if r == 0 && rows.len() > 1 {
                // A rule between the inputs and the epochs.
                let y = (y0 + cell + GAP / 2) as i32;
                root.draw(&PathElement::new(
                    vec![(MARGIN as i32, y), ((width - MARGIN) as i32, y)],
                    INK.mix(0.3).stroke_width(1),
                ))
                .map_err(PlotError::of)?;
            }
        }
        Ok(())
    })
}

/// The rows of a run's picture so far, saved beside it (`stn-epochs.rows`) so that a resumed
/// run draws on: images quantized to bytes, in a small binary format (magic `STNROWS1`, then
/// per row: label length u16 + label, width, height, count as u32, the bytes).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct EpochRows {
    /// The rows, first the inputs, then one per epoch.
    pub rows: Vec<EpochRow>,
}

const MAGIC: &[u8; 8] = b"STNROWS1";

impl EpochRows {
    /// Encodes the rows.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = MAGIC.to_vec();
        out.extend((self.rows.len() as u32).to_le_bytes());
        for r in &self.rows {
            let label = r.label.as_bytes();
            let label = &label[..label.len().min(u16::MAX as usize)];
            out.extend((label.len() as u16).to_le_bytes());
            out.extend(label);
            for v in [r.width, r.height, r.count()] {
                out.extend((v as u32).to_le_bytes());
            }
            out.extend(
                r.images
                    .iter()
                    .map(|v| (v.clamp(0.0, 1.0) * 255.0).round() as u8),
            );
        }
        out
    }

    /// Decodes rows written by [`Self::to_bytes`]; `None` for anything else (a damaged file
    /// starts a new picture rather than failing a training run).
    pub fn from_bytes(bytes: &[u8]) -> Option<Self> {
        let mut rd = Reader(bytes.strip_prefix(MAGIC)?);
        let n = rd.u32()? as usize;
        let mut rows = Vec::new();
        for _ in 0..n {
            let len = u16::from_le_bytes(rd.take(2)?.try_into().ok()?) as usize;
            let label = String::from_utf8(rd.take(len)?.to_vec()).ok()?;
            let (width, height, count) =
                (rd.u32()? as usize, rd.u32()? as usize, rd.u32()? as usize);
            let len = width.checked_mul(height)?.checked_mul(count)?;
            let images = rd.take(len)?.iter().map(|&b| b as f32 / 255.0).collect();
            rows.push(EpochRow {
                label,
                width,
                height,
                images,
            });
        }
        rd.0.is_empty().then_some(Self { rows })
    }

    /// Reads `path`; `None` if it is missing or not such a file.
    pub fn load(path: &Path) -> Option<Self> {
        Self::from_bytes(&std::fs::read(path).ok()?)
    }

    /// Writes `path` atomically.
    pub fn save(&self, path: &Path) -> std::io::Result<()> {
        stn::atomic_file::write_atomic(path, &self.to_bytes())
    }
}

struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        if self.0.len() < n {
            return None;
        }
        let (head, rest) = self.0.split_at(n);
        self.0 = rest;
        Some(head)
    }

    fn u32(&mut self) -> Option<u32> {
        Some(u32::from_le_bytes(self.take(4)?.try_into().ok()?))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(label: &str, side: usize, count: usize, v: f32) -> EpochRow {
        EpochRow {
            label: label.into(),
            width: side,
            height: side,
            images: vec![v; side * side * count],
        }
    }

    #[test]
    fn one_row_per_epoch_under_the_inputs() {
        let rows = vec![row("input", 28, 12, 0.0), row("epoch 1", 28, 12, 1.0)];
        let c = epochs_figure(&rows, "t").unwrap();
        assert_eq!(c.width, 2 * MARGIN + LABEL_WIDTH + 12 * 60);
        assert_eq!(c.height, 2 * MARGIN + TITLE_HEIGHT + 2 * 60);
        // First image of the epoch row: white (value 1), of the input row: black.
        let px = |x: usize, y: usize| c.pixels[(y * c.width + x) * 3];
        let x = MARGIN + LABEL_WIDTH + 28;
        assert_eq!(px(x, MARGIN + TITLE_HEIGHT + 28), 0);
        assert_eq!(px(x, MARGIN + TITLE_HEIGHT + 60 + 28), 255);
    }

    #[test]
    fn rows_of_other_sizes_and_no_rows() {
        let rows = vec![row("input", 42, 3, 0.5), row("epoch 1", 21, 3, 0.5)];
        assert!(epochs_figure(&rows, "t").is_ok());
        assert!(epochs_figure(&[], "t").is_ok());
    }

    #[test]
    fn rows_round_trip_and_damage_is_detected() {
        let rows = EpochRows {
            rows: vec![row("input", 28, 2, 1.0), row("epoch 1", 21, 2, 0.0)],
        };
        let bytes = rows.to_bytes();
        assert_eq!(EpochRows::from_bytes(&bytes), Some(rows));
        assert_eq!(EpochRows::from_bytes(&bytes[..bytes.len() - 1]), None);
        assert_eq!(EpochRows::from_bytes(b"STNROWS1\xff\xff\xff\xff"), None);
        assert_eq!(EpochRows::from_bytes(b"garbage"), None);
    }
}
