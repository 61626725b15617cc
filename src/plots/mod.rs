//! Plots of runs and experiments, drawn with plotters into an RGB buffer and written as PNG
//! (by [`crate::report::Canvas`]):
//!
//! - [`curves()`]: train / test loss and test accuracy per epoch (`curves.png` of a run);
//! - [`epochs_figure`]: the same test digits after the transformer at the end of every epoch
//!   (`stn-epochs.png` of a run);
//! - [`table_figure`]: the paper's Table 1 errors beside ours (`table1.png`).
//!
//! The functions take plain values (no training loop, no network), so they can draw anything
//! shaped like them; the training loop (`train`) and the experiments call them. Text uses a DejaVu Sans subset
//! compiled into the binary (`assets/fonts`), never the system's fonts, so the pictures look
//! the same on a machine without any font installed.

pub mod curves;
pub mod epochs;
pub mod table;

use std::sync::OnceLock;

use plotters::prelude::*;
use plotters::style::FontStyle;

pub use curves::{CurvePoint, curves};
pub use epochs::{EpochRow, EpochRows, epochs_figure};
pub use table::{ErrorBar, table_figure};

use crate::report::Canvas;

/// The font family name the plots use (registered by [`fonts`]).
const FAMILY: &str = "sans-serif";

/// A picture could not be drawn.
#[derive(Debug, Clone, thiserror::Error)]
#[error("cannot draw the plot: {0}")]
pub struct PlotError(String);

impl PlotError {
    fn of<E: std::fmt::Display>(e: E) -> Self {
        Self(e.to_string())
    }
}

/// Registers the compiled-in fonts with plotters, once per process.
fn fonts() -> Result<(), PlotError> {
    static REGISTERED: OnceLock<Result<(), PlotError>> = OnceLock::new();
    REGISTERED
        .get_or_init(|| {
            let regular: &'static [u8] = include_bytes!("../../assets/fonts/DejaVuSans.ttf");
            let bold: &'static [u8] = include_bytes!("../../assets/fonts/DejaVuSans-Bold.ttf");
            plotters::style::register_font(FAMILY, FontStyle::Normal, regular)
                .map_err(|_| PlotError("the built-in font is invalid".into()))?;
            plotters::style::register_font(FAMILY, FontStyle::Bold, bold)
                .map_err(|_| PlotError("the built-in bold font is invalid".into()))
        })
        .clone()
}

/// A text style of the plots' font.
fn font(size: f64) -> TextStyle<'static> {
    (FAMILY, size).into_font().color(&INK)
}

/// The bold variant.
fn bold(size: f64) -> TextStyle<'static> {
    (FAMILY, size)
        .into_font()
        .style(FontStyle::Bold)
        .color(&INK)
}

/// Text colour: a dark grey, softer than black.
const INK: RGBColor = RGBColor(40, 44, 52);
/// Grid lines.
const GRID: RGBColor = RGBColor(226, 229, 234);
/// A colour-blind friendly palette (Okabe and Ito), for series and models.
const PALETTE: [RGBColor; 6] = [
    RGBColor(0, 114, 178),   // blue
    RGBColor(230, 159, 0),   // orange
    RGBColor(0, 158, 115),   // green
    RGBColor(204, 121, 167), // pink
    RGBColor(86, 180, 233),  // sky
    RGBColor(213, 94, 0),    // vermillion
];

/// Draws with `draw` on a white `width` x `height` RGB buffer and returns it as a canvas.
fn render(
    width: u32,
    height: u32,
    draw: impl FnOnce(&DrawingArea<BitMapBackend<'_>, plotters::coord::Shift>) -> Result<(), PlotError>,
) -> Result<Canvas, PlotError> {
    fonts()?;
    let mut pixels = vec![255u8; width as usize * height as usize * 3];
    {
        let root = BitMapBackend::with_buffer(&mut pixels, (width, height)).into_drawing_area();
        draw(&root)?;
        root.present().map_err(PlotError::of)?;
    }
    Ok(Canvas {
        width: width as usize,
        height: height as usize,
        pixels,
    })
}
