//! One training step: forward and backward of a mini-batch, split over the two cores.

use std::collections::BTreeMap;

use burn::tensor::{Device, Int, Tensor, TensorData};

use crate::data::ImageSet;
use crate::model::state::{fresh_leaves, named_gradients};
use crate::model::{Mode, Net, nll_loss};
use crate::rng::Rng;

/// The loss, the largest |theta| and the gradients of one mini-batch.
pub(super) struct Step {
    pub loss: f32,
    pub theta_max: f32,
    pub grads: BTreeMap<String, Tensor<1>>,
}

/// Forward and backward of the images at `idx` (their mean NLL loss), on this thread.
fn forward_backward(
    net: &Net,
    set: &ImageSet,
    idx: &[usize],
    lut: &[f32; 256],
    rng: &mut Rng,
    device: &Device,
) -> Step {
    let (mut images, mut labels) = (Vec::new(), Vec::new());
    set.gather(idx, lut, &mut images, &mut labels);
    let (x, y) = batch_tensors(set, &images, &labels, device);
    let (log_probs, theta) = net.forward_with_params(x, &mut Mode::Train(rng));
    let loss = nll_loss(log_probs, y);
    let theta_max = theta.map_or(0.0, |t| t.abs().max().into_scalar());
    let value: f32 = loss.clone().into_scalar();
    let grads = loss.backward();
    Step {
        loss: value,
        theta_max,
        grads: named_gradients(net, &grads),
    }
}

/// One mini-batch, split in two halves that run forward and backward on the two cores at once
/// (each on its own autodiff graph), their gradients then averaged with the halves' weights:
/// the gradient of the whole batch's mean loss. Threads hand work back and forth far less this
/// way than when every kernel splits itself. Deterministic: the split, the halves' dropout
/// generators and the order of the sums are fixed.
pub(super) fn data_parallel_step(
    net: &Net,
    set: &ImageSet,
    idx: &[usize],
    lut: &[f32; 256],
    rng: &mut Rng,
    device: &Device,
) -> Step {
    // Halves of whole blocks of 8 images (the convolution kernels' vector width).
    let half = idx.len().div_ceil(16) * 8;
    // Split whatever the thread count (one thread runs the halves in turn), so results do not
    // depend on it.
    if idx.len() < 16 {
        return forward_backward(net, set, idx, lut, rng, device);
    }
    let (ia, ib) = idx.split_at(half);
    let mut rng_b = Rng::new(rng.next_u64());
    let (net_a, net_b) = (net.clone(), fresh_leaves(net.clone()));
    let (a, b) = rayon::join(
        move || forward_backward(&net_a, set, ia, lut, rng, device),
        move || forward_backward(&net_b, set, ib, lut, &mut rng_b, device),
    );
    let (wa, wb) = (
        ia.len() as f64 / idx.len() as f64,
        ib.len() as f64 / idx.len() as f64,
    );
    let mut grads_b = b.grads;
    let grads = a
        .grads
        .into_iter()
        .map(|(name, ga)| {
            // Taken, not cloned: a sole owner lets the backend reuse the buffer.
            let g = match grads_b.remove(&name) {
                Some(gb) => ga * wa + gb * wb,
                None => ga * wa,
            };
            (name, g)
        })
        .collect();
    Step {
        loss: (wa * a.loss as f64 + wb * b.loss as f64) as f32,
        theta_max: a.theta_max.max(b.theta_max),
        grads,
    }
}

/// Uploads a gathered batch: images [n, 1, rows, cols] and labels [n].
pub fn batch_tensors(
    set: &ImageSet,
    images: &[f32],
    labels: &[i64],
    device: &Device,
) -> (Tensor<4>, Tensor<1, Int>) {
    let n = labels.len();
    let x = Tensor::from_data(
        TensorData::new(images.to_vec(), [n, 1, set.rows, set.cols]),
        device,
    );
    let y = Tensor::from_data(TensorData::new(labels.to_vec(), [n]), device);
    (x, y)
}
