//! Learning curves: train and test loss (left panel) and test accuracy (right panel) per
//! epoch.

use plotters::prelude::*;

use super::{GRID, PALETTE, PlotError, bold, font, render};
use crate::report::Canvas;

/// One epoch's numbers.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct CurvePoint {
    /// Epoch number (from 1).
    pub epoch: usize,
    /// Mean training loss over the epoch.
    pub train_loss: f64,
    /// Mean test loss.
    pub test_loss: f64,
    /// Test accuracy, 0..1.
    pub test_accuracy: f64,
}

/// Size of the picture.
const WIDTH: u32 = 1100;
const HEIGHT: u32 = 440;

/// The two panels for `points` (in epoch order; non-finite values are left out).
pub fn curves(points: &[CurvePoint]) -> Result<Canvas, PlotError> {
    let first = points.first().map_or(1, |p| p.epoch) as i64;
    let last = points.last().map_or(1, |p| p.epoch) as i64;
    // One epoch alone still gets an axis around it.
    let xs = if last > first {
        first..last
    } else {
        first - 1..first + 1
    };
    let finite = |f: fn(&CurvePoint) -> f64| -> Vec<(i64, f64)> {
        points
            .iter()
            .map(|p| (p.epoch as i64, f(p)))
            .filter(|(_, v)| v.is_finite())
            .collect()
    };
    let train = finite(|p| p.train_loss);
    let test = finite(|p| p.test_loss);
    let acc = finite(|p| 100.0 * p.test_accuracy);
    let loss_max = train
        .iter()
        .chain(&test)
        .map(|p| p.1)
        .fold(0.0f64, f64::max)
        .max(1e-3);
    let acc_min = acc.iter().map(|p| p.1).fold(100.0f64, f64::min);
    // Whole percent below the worst epoch, so the curve never sits on the axis.
    let acc_lo = ((acc_min - 1.0).floor()).clamp(0.0, 99.0);
    render(WIDTH, HEIGHT, |root| {
        let (left, right) = root.split_horizontally(WIDTH / 2);
        let loss_series = [
            ("train loss", &train[..], PALETTE[0]),
            ("test loss", &test[..], PALETTE[1]),
        ];
        panel(
            &left,
            "Loss",
            "loss (negative log-likelihood)",
            xs.clone(),
            0.0..loss_max * 1.08,
            &loss_series,
            |v| format!("{v:.2}"),
        )?;
        panel(
            &right,
            "Test accuracy",
            "accuracy (%)",
            xs.clone(),
            acc_lo..100.0,
            &[("test accuracy", &acc[..], PALETTE[2])],
            |v| format!("{v:.0}"),
        )
    })
}

/// A named line of (epoch, value) points in a colour.
type Series<'a> = (&'a str, &'a [(i64, f64)], RGBColor);

/// One panel: a line with dots per series, a legend, epochs on x.
fn panel<DB: DrawingBackend>(
    area: &DrawingArea<DB, plotters::coord::Shift>,
    title: &str,
    y_desc: &str,
    xs: std::ops::Range<i64>,
    ys: std::ops::Range<f64>,
    series: &[Series<'_>],
    y_fmt: impl Fn(&f64) -> String,
) -> Result<(), PlotError> {
    let mut chart = ChartBuilder::on(area)
        .caption(title, bold(20.0))
        .margin(18)
        .x_label_area_size(44)
        .y_label_area_size(60)
        .build_cartesian_2d(xs, ys)
        .map_err(PlotError::of)?;
    chart
        .configure_mesh()
        .x_desc("epoch")
        .y_desc(y_desc)
        .label_style(font(14.0))
        .axis_desc_style(font(14.0))
        .bold_line_style(GRID.stroke_width(1))
        .light_line_style(TRANSPARENT)
        .axis_style(RGBColor(150, 155, 165))
        .x_labels(12)
        .y_labels(8)
        .y_label_formatter(&y_fmt)
        .draw()
        .map_err(PlotError::of)?;
    for &(name, points, colour) in series {
        chart
            .draw_series(LineSeries::new(
                points.iter().copied(),
                colour.stroke_width(3),
            ))
            .map_err(PlotError::of)?
            .label(name)
            .legend(move |(x, y)| {
                PathElement::new(vec![(x, y), (x + 22, y)], colour.stroke_width(3))
            });
        chart
            .draw_series(points.iter().map(|&p| Circle::new(p, 4, colour.filled())))
            .map_err(PlotError::of)?;
    }
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::UpperRight)
        .margin(12)
        .label_font(font(14.0))
        .background_style(WHITE.mix(0.9))
        .border_style(GRID)
        .draw()
        .map_err(PlotError::of)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn point(epoch: usize, acc: f64) -> CurvePoint {
        CurvePoint {
            epoch,
            train_loss: 1.0 / epoch as f64,
            test_loss: 0.5 / epoch as f64,
            test_accuracy: acc,
        }
    }

    #[test]
    fn draws_any_number_of_epochs() {
        for n in [0, 1, 2, 20] {
            let pts: Vec<_> = (1..=n).map(|e| point(e, 0.9 + 0.004 * e as f64)).collect();
            let c = curves(&pts).unwrap();
            assert_eq!((c.width, c.height), (WIDTH as usize, HEIGHT as usize));
            // Something besides white was drawn (axes, text).
            assert!(c.pixels.iter().any(|&p| p < 200));
        }
    }

    #[test]
    fn lines_use_the_series_colours() {
        let pts: Vec<_> = (1..=5).map(|e| point(e, 0.95)).collect();
        let c = curves(&pts).unwrap();
        let has = |rgb: RGBColor| c.pixels.chunks(3).any(|p| p == [rgb.0, rgb.1, rgb.2]);
        assert!(has(PALETTE[0]) && has(PALETTE[1]) && has(PALETTE[2]));
    }

    #[test]
    fn non_finite_values_are_skipped() {
        let mut pts: Vec<_> = (1..=3).map(|e| point(e, 0.9)).collect();
        pts[1].test_loss = f64::NAN;
        pts[2].train_loss = f64::INFINITY;
        assert!(curves(&pts).is_ok());
    }
}
