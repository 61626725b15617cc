//! A run folder's pictures, rewritten after every epoch as training goes: `stn.png` (test
//! digits beside their transformed versions), `curves.png` (loss and accuracy so far) and
//! `stn-epochs.png` (the first test digits after the transformer of every epoch so far).
//!
//! Pictures are a by-product: a picture that cannot be written is reported to the observer
//! ([`Observer::warning`]) and training goes on. [`WithPictures`] draws them from a training
//! run's [`Observer::epoch_network`].

use std::path::{Path, PathBuf};

use burn::tensor::{Tensor, TensorData};

use crate::plots::{CurvePoint, EpochRow, EpochRows, curves, epochs_figure};
use stn::data::ImageSet;
use stn::data::mnist::{MEAN, STD, normalization_lut};
use stn::model::Net;
use stn::run::{CURVES_FILE, EPOCH_ROWS_FILE, EPOCHS_FILE, EpochMetrics, PICTURE_FILE};
use stn::train::Observer;

/// How many test digits [`EPOCHS_FILE`] follows.
pub const EPOCH_DIGITS: usize = 12;
/// How many test digits [`PICTURE_FILE`] shows.
const PICTURE_DIGITS: usize = 64;

/// The pictures of one run folder.
pub struct RunPictures {
    out: PathBuf,
    /// Normalized inputs [count, channels, rows, cols] of the followed test digits.
    digits: Vec<f32>,
    count: usize,
    channels: usize,
    size: [usize; 2],
    rows: EpochRows,
}

impl RunPictures {
    /// Pictures of a run writing into `out`, following the first images of `test`;
    /// `epochs_done` epochs are already behind it (a resumed run continues its picture from
    /// the rows saved beside it).
    pub fn new(out: &Path, test: &ImageSet, epochs_done: usize) -> Self {
        // Every channel is a tile of its own (the MNIST addition pairs: two per input, four
        // after a 2xST network's transformers): fewer images keep the rows as wide.
        let count = (EPOCH_DIGITS / test.channels.pow(2)).max(1).min(test.len());
        let lut = normalization_lut(MEAN, STD);
        let idx: Vec<usize> = (0..count).collect();
        let (mut digits, mut labels) = (Vec::new(), Vec::new());
        test.gather(&idx, &lut, &mut digits, &mut labels);
        let input = EpochRow {
            label: "input".into(),
            width: test.cols,
            height: test.rows,
            images: test.images[..count * test.pixels()]
                .iter()
                .map(|&p| p as f32 / 255.0)
                .collect(),
        };
        let mut rows = EpochRows::load(&out.join(EPOCH_ROWS_FILE))
            .filter(|r| r.rows.first() == Some(&input))
            .unwrap_or_default();
        // Rows of epochs after the checkpoint (an epoch interrupted after its pictures were
        // written but before its checkpoint) are dropped.
        rows.rows.truncate(epochs_done + 1);
        if rows.rows.is_empty() {
            rows.rows.push(input);
        }
        Self {
            out: out.to_path_buf(),
            digits,
            count,
            channels: test.channels,
            size: [test.rows, test.cols],
            rows,
        }
    }

    /// Rewrites the pictures for `net` (eval mode) after the epochs of `history`.
    pub fn write(
        &mut self,
        net: &Net,
        test: &ImageSet,
        history: &[EpochMetrics],
    ) -> Result<(), String> {
        let fail = |path: &Path| {
            let p = path.display().to_string();
            move |e: String| format!("cannot write {p}: {e}")
        };
        let path = self.out.join(PICTURE_FILE);
        let digits = (PICTURE_DIGITS / test.channels.pow(2)).max(1);
        crate::report::transformed_digits(net, test, digits)
            .save_png(&path)
            .map_err(|e| e.to_string())
            .map_err(fail(&path))?;
        let points: Vec<CurvePoint> = history
            .iter()
            .map(|m| CurvePoint {
                epoch: m.epoch,
                train_loss: m.train_loss,
                test_loss: m.test_loss,
                test_accuracy: m.test_accuracy,
            })
            .collect();
        let path = self.out.join(CURVES_FILE);
        curves(&points)
            .map_err(|e| e.to_string())
            .and_then(|c| c.save_png(&path).map_err(|e| e.to_string()))
            .map_err(fail(&path))?;
        // The plain CNN has no transformer: nothing to show epoch by epoch.
        if net.transformer.is_none() || self.count == 0 {
            return Ok(());
        }
        let device = net.device();
        let [h, w] = self.size;
        let x = Tensor::<4>::from_data(
            TensorData::new(self.digits.clone(), [self.count, self.channels, h, w]),
            &device,
        );
        let out = net.transform(x);
        let [_, _, oh, ow] = out.dims();
        let images: Vec<f32> = out
            .into_data()
            .convert::<f32>()
            .try_into_vec::<f32>()
            .map_err(|e| format!("{e:?}"))?
            .iter()
            .map(|v| (v * STD + MEAN).clamp(0.0, 1.0))
            .collect();
        let epoch = history.last().map_or(0, |m| m.epoch);
        self.rows.rows.push(EpochRow {
            label: format!("epoch {epoch}"),
            width: ow,
            height: oh,
            images,
        });
        let path = self.out.join(EPOCH_ROWS_FILE);
        self.rows
            .save(&path)
            .map_err(|e| e.to_string())
            .map_err(fail(&path))?;
        let path = self.out.join(EPOCHS_FILE);
        epochs_figure(
            &self.rows.rows,
            "The same test digits after the spatial transformer, epoch by epoch",
        )
        .map_err(|e| e.to_string())
        .and_then(|c| c.save_png(&path).map_err(|e| e.to_string()))
        .map_err(fail(&path))
    }
}

/// An observer that passes everything on to `inner` and redraws the run folder's pictures after
/// every checkpointed epoch.
pub struct WithPictures<'a> {
    inner: &'a mut dyn Observer,
    pictures: RunPictures,
}

impl<'a> WithPictures<'a> {
    /// Pictures of a run writing into `out` (see [`RunPictures::new`]), shown to `inner`.
    pub fn new(
        out: &Path,
        test: &ImageSet,
        epochs_done: usize,
        inner: &'a mut dyn Observer,
    ) -> Self {
        Self {
            inner,
            pictures: RunPictures::new(out, test, epochs_done),
        }
    }
}

impl Observer for WithPictures<'_> {
    fn epoch_start(&mut self, epoch: usize, batches: usize) {
        self.inner.epoch_start(epoch, batches);
    }
    fn batch(&mut self, epoch: usize, batch: usize, images_done: usize, images: usize, loss: f32) {
        self.inner.batch(epoch, batch, images_done, images, loss);
    }
    fn epoch_end(&mut self, metrics: &EpochMetrics, test_images: usize) {
        self.inner.epoch_end(metrics, test_images);
    }
    fn epoch_network(&mut self, net: &Net, test: &ImageSet, history: &[EpochMetrics]) {
        self.inner.epoch_network(net, test, history);
        if let Err(e) = self.pictures.write(net, test, history) {
            self.inner.warning(&e);
        }
    }
    fn warning(&mut self, message: &str) {
        self.inner.warning(message);
    }
}
