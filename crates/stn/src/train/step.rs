//! One training step's forward and backward: a mini-batch split over the two cores.

use std::collections::BTreeMap;

use burn::tensor::{DType, Device, Int, Tensor, TensorData};

use crate::data::ImageSet;
use crate::model::state::{fresh_leaves, named_gradients};
use crate::model::{GivenMasks, Mode, Net, nll_loss};
use crate::rng::Rng;

/// The loss, the largest |theta| and the gradients of one mini-batch.
pub struct Step {
    /// The batch's mean NLL loss (before the update), in the network's precision.
    pub loss: f64,
    /// The largest |theta| of the batch (0 for the plain CNN): training stops if it is not
    /// finite.
    pub theta_max: f32,
    /// Every parameter's gradient of the loss, flattened, by PyTorch name.
    pub grads: BTreeMap<String, Tensor<1>>,
}

/// Where a step's dropout masks come from.
pub enum Dropout<'a> {
    /// Drawn from this generator (the first half's; the second half's generator is derived
    /// from it): what training does.
    Drawn(&'a mut Rng),
    /// Given in advance for the whole batch, rows in batch order (e.g. PyTorch's, replayed by
    /// the trajectory test).
    Given(GivenMasks),
}

/// Changes a part of a batch before the forward pass: called with the part's images (in the
/// network's dtype) and the index of its first row in the whole batch. For tests that feed
/// both implementations the same perturbed inputs (the trajectory test's dither).
pub type InputHook<'a> = &'a (dyn Fn(Tensor<4>, usize) -> Tensor<4> + Sync);

/// The images of a step: `idx` of `set`, normalized with `lut`, then `hook`.
#[derive(Clone, Copy)]
pub struct Batch<'a> {
    /// The image set the batch is drawn from.
    pub set: &'a ImageSet,
    /// The images' indices in `set`, in batch order.
    pub idx: &'a [usize],
    /// Pixel byte -> normalized value.
    pub lut: &'a [f32; 256],
    /// Applied to each part's input tensor, if any.
    pub hook: Option<InputHook<'a>>,
}

/// Forward and backward of the images at `idx` (their mean NLL loss), on this thread; `first`
/// is the index of idx[0] in the whole batch.
fn forward_backward(
    net: &Net,
    batch: Batch,
    first: usize,
    mode: &mut Mode,
    device: &Device,
) -> Step {
    let (mut images, mut labels) = (Vec::new(), Vec::new());
    batch
        .set
        .gather(batch.idx, batch.lut, &mut images, &mut labels);
    let (x, y) = batch_tensors(batch.set, images, labels, device);
    let x = x.cast(net.dtype());
    let x = match batch.hook {
        Some(hook) => hook(x, first),
        None => x,
    };
    let (log_probs, theta) = net.forward_with_params(x, mode);
    let loss = nll_loss(log_probs, y);
    let theta_max = theta.map_or(0.0, |t| t.abs().max().cast(DType::F32).into_scalar());
    let value: f64 = loss.clone().cast(DType::F64).into_scalar();
    let grads = loss.backward();
    Step {
        loss: value,
        theta_max,
        grads: named_gradients(net, &grads),
    }
}

/// One mini-batch (the images of `set` at `idx`, normalized with `lut`) forward and backward:
/// the step `stn train` takes before its SGD update.
///
/// The batch is split in two halves that run forward and backward on the two cores at once
/// (each on its own autodiff graph), their gradients then averaged with the halves' weights:
/// the gradient of the whole batch's mean loss. Threads hand work back and forth far less this
/// way than when every kernel splits itself. Deterministic: the split, the halves' dropout
/// generators and the order of the sums are fixed. On a GPU device the batch is not split.
pub fn data_parallel_step(
    net: &Net,
    set: &ImageSet,
    idx: &[usize],
    lut: &[f32; 256],
    dropout: Dropout,
    device: &Device,
) -> Step {
    let batch = Batch {
        set,
        idx,
        lut,
        hook: None,
    };
    data_parallel_step_on(net, batch, dropout, device)
}

/// [`data_parallel_step`] on a [`Batch`], whose inputs may be changed by a hook.
pub fn data_parallel_step_on(net: &Net, batch: Batch, dropout: Dropout, device: &Device) -> Step {
    let idx = batch.idx;
    // Halves of whole blocks of 8 images (the convolution kernels' vector width).
    let half = idx.len().div_ceil(16) * 8;
    // Split whatever the thread count (one thread runs the halves in turn), so results do not
    // depend on it. Off the CPU (a GPU device) the whole batch is one step: the device
    // parallelizes it.
    if idx.len() < 16 || !crate::device::is_cpu(device) {
        return match dropout {
            Dropout::Drawn(rng) => forward_backward(net, batch, 0, &mut Mode::Train(rng), device),
            Dropout::Given(mut masks) => {
                forward_backward(net, batch, 0, &mut Mode::Given(&mut masks), device)
            }
        };
    }
    let (ia, ib) = idx.split_at(half);
    let (ba, bb) = (Batch { idx: ia, ..batch }, Batch { idx: ib, ..batch });
    let (net_a, net_b) = (net.clone(), fresh_leaves(net.clone()));
    let (a, b) = match dropout {
        Dropout::Drawn(rng) => {
            let mut rng_b = Rng::new(rng.next_u64());
            rayon::join(
                move || forward_backward(&net_a, ba, 0, &mut Mode::Train(rng), device),
                move || forward_backward(&net_b, bb, half, &mut Mode::Train(&mut rng_b), device),
            )
        }
        Dropout::Given(masks) => {
            let (mut ma, mut mb) = masks.split_rows(ia.len(), idx.len());
            rayon::join(
                move || forward_backward(&net_a, ba, 0, &mut Mode::Given(&mut ma), device),
                move || forward_backward(&net_b, bb, half, &mut Mode::Given(&mut mb), device),
            )
        }
    };
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
        loss: wa * a.loss + wb * b.loss,
        theta_max: a.theta_max.max(b.theta_max),
        grads,
    }
}

/// Uploads a gathered batch: images `[n, channels, rows, cols]` and labels `[n]`.
/// The buffers are moved into the tensors (no copy of the images).
pub fn batch_tensors(
    set: &ImageSet,
    images: Vec<f32>,
    labels: Vec<i64>,
    device: &Device,
) -> (Tensor<4>, Tensor<1, Int>) {
    let n = labels.len();
    let x = Tensor::from_data(
        TensorData::new(images, [n, set.channels, set.rows, set.cols]),
        device,
    );
    let y = Tensor::from_data(TensorData::new(labels, [n]), device);
    (x, y)
}
