//! Dropout with masks drawn from our own seeded generator, so training is reproducible and its
//! random state can be checkpointed; or with masks given in advance, to replay another
//! implementation's draws.

use std::collections::VecDeque;

use burn::tensor::{Tensor, TensorData};

use crate::rng::Rng;

/// Whether a forward pass trains (dropout on) or evaluates, and where the masks come from.
pub enum Mode<'a> {
    /// Evaluation: dropout is the identity.
    Eval,
    /// Training: dropout masks come from this generator.
    Train(&'a mut Rng),
    /// Training with these masks, taken in the order the forward pass applies dropout.
    Given(&'a mut GivenMasks),
}

/// Dropout masks decided in advance (`true`: keep), one per dropout call of a forward pass, in
/// order: for the tutorial's network, conv2's channel mask ([N, C] values) then fc1's ([N, F]).
/// What the PyTorch trajectory test replays.
#[derive(Clone, Debug, Default)]
pub struct GivenMasks(pub VecDeque<Vec<bool>>);

impl GivenMasks {
    /// The masks of a batch of `rows` images split after image `at`: each mask is `rows`
    /// equal rows, one per image, in batch order.
    ///
    /// # Panics
    /// If a mask's length is not a multiple of `rows`.
    pub fn split_rows(self, at: usize, rows: usize) -> (Self, Self) {
        let (mut a, mut b) = (VecDeque::new(), VecDeque::new());
        for mut m in self.0 {
            assert!(
                m.len().is_multiple_of(rows),
                "a mask of {} values is not {rows} rows",
                m.len()
            );
            let tail = m.split_off(at * (m.len() / rows));
            a.push_back(m);
            b.push_back(tail);
        }
        (Self(a), Self(b))
    }
}

/// The scaled keep mask of `len` values: 0 for a dropped value, 1/(1-p) for a kept one.
///
/// # Panics
/// With [`Mode::Given`], if no mask is left or the next one has another length.
fn mask(mode: &mut Mode, len: usize, p: f32) -> Vec<f32> {
    let scale = 1.0 / (1.0 - p);
    match mode {
        Mode::Eval => vec![1.0; len],
        Mode::Train(rng) => (0..len)
            .map(|_| if rng.uniform_f32() < p { 0.0 } else { scale })
            .collect(),
        Mode::Given(masks) => {
            let keep = masks
                .0
                .pop_front()
                .expect("a dropout mask for every dropout call");
            assert_eq!(keep.len(), len, "a given dropout mask has the wrong length");
            keep.into_iter()
                .map(|k| if k { scale } else { 0.0 })
                .collect()
        }
    }
}

/// Channel dropout (PyTorch's `Dropout2d`) on [N, C, H, W] feature maps: each of the N x C maps
/// is zeroed with probability `p`, the rest scaled by 1/(1-p). The masks are drawn image by
/// image, channel by channel.
pub fn dropout2d(x: Tensor<4>, p: f32, mode: &mut Mode) -> Tensor<4> {
    if let Mode::Eval = mode {
        return x;
    }
    let [n, c, _, _] = x.dims();
    let m = Tensor::<4>::from_data(
        TensorData::new(mask(mode, n * c, p), [n, c, 1, 1]),
        (&x.device(), x.dtype()),
    );
    x * m
}

/// Element dropout (PyTorch's `F.dropout`) on [N, F] features.
pub fn dropout(x: Tensor<2>, p: f32, mode: &mut Mode) -> Tensor<2> {
    if let Mode::Eval = mode {
        return x;
    }
    let [n, f] = x.dims();
    let m = Tensor::<2>::from_data(
        TensorData::new(mask(mode, n * f, p), [n, f]),
        (&x.device(), x.dtype()),
    );
    x * m
}
