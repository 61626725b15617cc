//! The paper's Table 1 as bars: test error per dataset (groups) and model (colours), ours
//! solid beside the paper's lighter and hatched.

use plotters::prelude::*;

use super::{GRID, INK, PALETTE, PlotError, bold, font, render};
use crate::report::Canvas;

/// One model on one dataset.
#[derive(Clone, Debug, PartialEq)]
pub struct ErrorBar {
    /// Dataset name, the group ("R", "RTS", ...).
    pub dataset: String,
    /// Model name, the colour ("CNN", "ST-CNN affine", ...).
    pub model: String,
    /// Our test error in percent (`None`: not run).
    pub ours: Option<f64>,
    /// The paper's test error in percent (`None`: not reported).
    pub paper: Option<f64>,
}

const WIDTH: u32 = 1200;
const HEIGHT: u32 = 560;
/// Horizontal units: one bar is 1, models of a group are 0.35 apart, groups 1.6.
const MODEL_GAP: f64 = 0.35;
const GROUP_GAP: f64 = 1.6;

/// Light version of a colour (mixed with white) for the paper's bars.
fn light(c: RGBColor) -> RGBColor {
    let mix = |v: u8| (v as f64 * 0.3 + 255.0 * 0.7).round() as u8;
    RGBColor(mix(c.0), mix(c.1), mix(c.2))
}

/// Grouped bars of `bars` (datasets and models in order of first appearance).
pub fn table_figure(bars: &[ErrorBar], title: &str) -> Result<Canvas, PlotError> {
    let mut datasets: Vec<&str> = Vec::new();
    let mut models: Vec<&str> = Vec::new();
    for b in bars {
        if !datasets.contains(&b.dataset.as_str()) {
            datasets.push(&b.dataset);
        }
        if !models.contains(&b.model.as_str()) {
            models.push(&b.model);
        }
    }
    let colour = |model: &str| {
        let i = models.iter().position(|m| *m == model).unwrap_or(0);
        PALETTE[i % PALETTE.len()]
    };
    // Bar positions: (x of the left edge, dataset, bar).
    let mut placed: Vec<(f64, &ErrorBar)> = Vec::new();
    let mut groups: Vec<(f64, f64, &str)> = Vec::new();
    let mut x = GROUP_GAP / 2.0;
    for d in &datasets {
        let start = x;
        for b in bars.iter().filter(|b| b.dataset == *d) {
            placed.push((x, b));
            x += 2.0 + MODEL_GAP;
        }
        groups.push((start, x - MODEL_GAP, d));
        x += GROUP_GAP - MODEL_GAP;
    }
    let x_max = (x - GROUP_GAP / 2.0).max(1.0);
    let y_max = bars
        .iter()
        .flat_map(|b| [b.ours, b.paper])
        .flatten()
        .filter(|v| v.is_finite())
        .fold(0.0f64, f64::max)
        .max(0.5)
        * 1.12;
    render(WIDTH, HEIGHT, |root| {
        let (top, chart_area) = root.split_vertically(96);
        top.draw(&Text::new(title.to_string(), (24, 18), bold(20.0)))
            .map_err(PlotError::of)?;
        // Legend: one swatch per model, then the meaning of solid and hatched.
        let mut lx = 24i32;
        for m in &models {
            let c = colour(m);
            top.draw(&Rectangle::new([(lx, 58), (lx + 16, 74)], c.filled()))
                .map_err(PlotError::of)?;
            top.draw(&Text::new(m.to_string(), (lx + 22, 58), font(14.0)))
                .map_err(PlotError::of)?;
            lx += 22 + text_width(&top, m, 14.0) + 24;
        }
        let grey = RGBColor(120, 125, 135);
        top.draw(&Rectangle::new([(lx, 58), (lx + 16, 74)], grey.filled()))
            .map_err(PlotError::of)?;
        top.draw(&Text::new("ours".to_string(), (lx + 22, 58), font(14.0)))
            .map_err(PlotError::of)?;
        lx += 22 + text_width(&top, "ours", 14.0) + 24;
        hatched(&top, (lx, 58), (lx + 16, 74), grey)?;
        top.draw(&Text::new(
            "paper (Jaderberg et al. 2015)".to_string(),
            (lx + 22, 58),
            font(14.0),
        ))
        .map_err(PlotError::of)?;

        let mut chart = ChartBuilder::on(&chart_area)
            .margin(18)
            .margin_top(4)
            .x_label_area_size(40)
            .y_label_area_size(64)
            .build_cartesian_2d(0.0..x_max, 0.0..y_max)
            .map_err(PlotError::of)?;
        chart
            .configure_mesh()
            .disable_x_mesh()
            .disable_x_axis()
            .y_desc("test error (%)")
            .label_style(font(14.0))
            .axis_desc_style(font(14.0))
            .bold_line_style(GRID.stroke_width(1))
            .light_line_style(TRANSPARENT)
            .axis_style(RGBColor(150, 155, 165))
            .y_label_formatter(&|v| format!("{v:.1}"))
            .draw()
            .map_err(PlotError::of)?;
        for &(x, b) in &placed {
            let c = colour(&b.model);
            if let Some(v) = b.ours.filter(|v| v.is_finite()) {
                chart
                    .draw_series(std::iter::once(Rectangle::new(
                        [(x, 0.0), (x + 1.0, v)],
                        c.filled(),
                    )))
                    .map_err(PlotError::of)?;
            }
            if let Some(v) = b.paper.filter(|v| v.is_finite()) {
                let p0 = chart.backend_coord(&(x + 1.0, v));
                let p1 = chart.backend_coord(&(x + 2.0, 0.0));
                hatched(root, p0, p1, c)?;
            }
        }
        // Dataset names under their groups, and the base line.
        for &(x0, x1, name) in &groups {
            let (px, py) = chart.backend_coord(&((x0 + x1) / 2.0, 0.0));
            let w = text_width(root, name, 16.0);
            root.draw(&Text::new(
                name.to_string(),
                (px - w / 2, py + 12),
                bold(16.0),
            ))
            .map_err(PlotError::of)?;
        }
        let (a, b) = (
            chart.backend_coord(&(0.0, 0.0)),
            chart.backend_coord(&(x_max, 0.0)),
        );
        root.draw(&PathElement::new(vec![a, b], INK.stroke_width(1)))
            .map_err(PlotError::of)?;
        Ok(())
    })
}

/// Width in pixels of `text` at `size` (bold, the wider), for laying out labels.
fn text_width<DB: DrawingBackend>(
    area: &DrawingArea<DB, plotters::coord::Shift>,
    text: &str,
    size: f64,
) -> i32 {
    area.estimate_text_size(text, &bold(size))
        .map_or(8 * text.len() as i32, |(w, _)| w as i32)
}

/// A light rectangle with diagonal hatching in `c`, between pixel corners `p0` and `p1`.
fn hatched<DB: DrawingBackend>(
    area: &DrawingArea<DB, plotters::coord::Shift>,
    p0: (i32, i32),
    p1: (i32, i32),
    c: RGBColor,
) -> Result<(), PlotError> {
    let (x0, x1) = (p0.0.min(p1.0), p0.0.max(p1.0));
    let (y0, y1) = (p0.1.min(p1.1), p0.1.max(p1.1));
    area.draw(&Rectangle::new([(x0, y0), (x1, y1)], light(c).filled()))
        .map_err(PlotError::of)?;
    // Lines x - y = k (falling to the right on screen), clipped to the rectangle.
    let step = 6;
    let mut k = x0 - y1;
    while k < x1 - y0 {
        let (ya, yb) = ((x0 - k).max(y0), (x1 - k).min(y1));
        if ya < yb {
            area.draw(&PathElement::new(
                vec![(ya + k, ya), (yb + k, yb)],
                c.stroke_width(1),
            ))
            .map_err(PlotError::of)?;
        }
        k += step;
    }
    area.draw(&Rectangle::new([(x0, y0), (x1, y1)], c.stroke_width(1)))
        .map_err(PlotError::of)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bar(d: &str, m: &str, ours: Option<f64>, paper: Option<f64>) -> ErrorBar {
        ErrorBar {
            dataset: d.into(),
            model: m.into(),
            ours,
            paper,
        }
    }

    #[test]
    fn draws_ours_solid_and_the_papers_light() {
        let bars = vec![
            bar("R", "CNN", Some(1.0), Some(1.2)),
            bar("R", "ST-CNN affine", Some(0.8), Some(0.7)),
            bar("TC", "CNN", Some(3.0), Some(3.5)),
            bar("TC", "ST-CNN affine, background padding", Some(2.0), None),
            bar("TC", "odd", Some(f64::NAN), None),
        ];
        let c = table_figure(&bars, "Table 1").unwrap();
        let has = |rgb: RGBColor| c.pixels.chunks(3).any(|p| p == [rgb.0, rgb.1, rgb.2]);
        assert!(has(PALETTE[0]) && has(PALETTE[1]) && has(light(PALETTE[0])));
        assert!(table_figure(&[], "empty").is_ok());
    }
}
