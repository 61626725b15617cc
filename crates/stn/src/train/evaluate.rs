//! Test loss and accuracy.

use super::step::batch_tensors;
use crate::data::ImageSet;
use crate::data::mnist::{MEAN, STD, normalization_lut};
use crate::model::{Mode, Net, nll_loss};

/// Mean test loss per image and number of correct predictions of `net` (eval mode) on `set`.
pub fn evaluate(net: &Net, set: &ImageSet, batch_size: usize) -> (f64, usize) {
    let lut = normalization_lut(MEAN, STD);
    let device = net.device();
    let (mut loss_sum, mut correct) = (0.0f64, 0usize);
    let indices: Vec<usize> = (0..set.len()).collect();
    for idx in indices.chunks(batch_size.max(1)) {
        let (mut images, mut labels) = (Vec::new(), Vec::new());
        set.gather(idx, &lut, &mut images, &mut labels);
        let (x, y) = batch_tensors(set, images, labels, &device);
        let log_probs = net.forward(x, &mut Mode::Eval);
        let n = idx.len();
        let loss: f32 = nll_loss(log_probs.clone(), y.clone()).into_scalar();
        loss_sum += loss as f64 * n as f64;
        let hits: i64 = log_probs
            .argmax(1)
            .reshape([n])
            .equal(y)
            .int()
            .sum()
            .into_scalar();
        correct += hits as usize;
    }
    (loss_sum / set.len() as f64, correct)
}
