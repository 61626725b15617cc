//! Dropout with masks drawn from our own seeded generator, so training is reproducible and its
//! random state can be checkpointed.

use burn::tensor::{Tensor, TensorData};

use crate::rng::Rng;

/// Whether a forward pass trains (dropout on, drawing from the generator) or evaluates.
pub enum Mode<'a> {
    /// Evaluation: dropout is the identity.
    Eval,
    /// Training: dropout masks come from this generator.
    Train(&'a mut Rng),
}

fn mask(rng: &mut Rng, len: usize, p: f32) -> Vec<f32> {
    let scale = 1.0 / (1.0 - p);
    (0..len)
        .map(|_| if rng.uniform_f32() < p { 0.0 } else { scale })
        .collect()
}

/// Channel dropout (PyTorch's `Dropout2d`) on [N, C, H, W] feature maps: each of the N x C maps
/// is zeroed with probability `p`, the rest scaled by 1/(1-p). The masks are drawn image by
/// image, channel by channel.
pub fn dropout2d(x: Tensor<4>, p: f32, mode: &mut Mode) -> Tensor<4> {
    match mode {
        Mode::Eval => x,
        Mode::Train(rng) => {
            let [n, c, _, _] = x.dims();
            let m = Tensor::<4>::from_data(
                TensorData::new(mask(rng, n * c, p), [n, c, 1, 1]),
                &x.device(),
            );
            x * m
        }
    }
}

/// Element dropout (PyTorch's `F.dropout`) on [N, F] features.
pub fn dropout(x: Tensor<2>, p: f32, mode: &mut Mode) -> Tensor<2> {
    match mode {
        Mode::Eval => x,
        Mode::Train(rng) => {
            let [n, f] = x.dims();
            let m =
                Tensor::<2>::from_data(TensorData::new(mask(rng, n * f, p), [n, f]), &x.device());
            x * m
        }
    }
}
