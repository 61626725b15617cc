//! The MNIST addition dataset of Jaderberg et al. 2015 (appendix A), generated from the plain
//! 28×28 digits with a seed.
//!
//! What the appendix specifies: two MNIST digits, each in its own 42×42 channel after its own
//! random RTS distortion (rotated by ±45°, scaled by 0.7-1.2, placed at random: see
//! [`Distortion::Rts`]); the label is their sum, one of 19 classes (0 to 18).
//!
//! Where it is silent, we assume:
//! - Pair `i` of a split has MNIST image `i` of that split as its first digit and, as its
//!   second, a uniformly drawn *other* image of the same split (so the test pairs are made of
//!   test digits only). A split of `n` digits makes `n` pairs.
//! - Pair `i` has its own generator `Rng::derive(seed, "addition-{split}-{i}")`, which draws,
//!   in order: the second digit's index, then the first digit's RTS parameters, then the
//!   second's (each as [`distort_one`] draws them). A set is reproducible byte for byte,
//!   independent of the thread count, and its first pairs do not depend on how many are made.
//! - Channel 0 holds the first digit, channel 1 the second; both are written into one 4-D IDX
//!   file [n, 2, 42, 42] by `stn data --dataset addition` (see
//!   [`super::mnist::write_split`]).

use rayon::prelude::*;

use super::distort::{Distortion, DistortionParams, RTS_SIZE, SOURCE_SIZE, distort_one};
use super::{Dataset, ImageSet};
use crate::rng::Rng;

/// Channels of an addition image: one per digit.
pub const CHANNELS: usize = 2;
/// Side of each channel.
pub const SIZE: usize = RTS_SIZE;
/// Classes: the sums 0 to 18.
pub const CLASSES: usize = 19;

/// One generated pair: the image, where its second digit came from, and both distortions.
#[derive(Clone, Debug, PartialEq)]
pub struct Pair {
    /// The two channels, [2, 42, 42] row-major (the first digit's channel first).
    pub image: Vec<u8>,
    /// Index in the split of the second digit (the first is the pair's own index).
    pub partner: usize,
    /// The RTS parameters of the first and the second digit.
    pub params: [DistortionParams; 2],
}

/// A uniform index among the `n` indices other than `i` (`i` itself if it is alone).
fn other_index(rng: &mut Rng, n: usize, i: usize) -> usize {
    if n > 1 {
        let j = rng.below(n as u64 - 1) as usize;
        if j >= i { j + 1 } else { j }
    } else {
        i
    }
}

/// Pair `i` of `set` (28×28 single-channel digits) for the split named `split`.
///
/// # Panics
/// If `i` is not an index of `set`, or `set` does not hold 28×28 single-channel images.
pub fn pair(set: &ImageSet, seed: u64, split: &str, i: usize) -> Pair {
    check_source(set);
    let mut rng = Rng::derive(seed, &format!("addition-{split}-{i}"));
    let partner = other_index(&mut rng, set.len(), i);
    let no_clutter = |_: &mut Rng| Vec::new();
    let (a, pa) = distort_one(Distortion::Rts, set.image(i), &mut rng, &no_clutter);
    let (b, pb) = distort_one(Distortion::Rts, set.image(partner), &mut rng, &no_clutter);
    let mut image = a;
    image.extend_from_slice(&b);
    Pair {
        image,
        partner,
        params: [pa, pb],
    }
}

fn check_source(set: &ImageSet) {
    assert!(
        set.rows == SOURCE_SIZE && set.cols == SOURCE_SIZE && set.channels == 1,
        "the addition pairs are made of 28×28 single-channel digits, got {}×{}×{}",
        set.channels,
        set.rows,
        set.cols
    );
}

/// The first `limit` pairs (all of them: `None`) of the split `split` made from `set`, as a
/// two-channel [`ImageSet`] of 42×42 images labelled with the sums. Pairs are generated in
/// parallel; the result does not depend on the thread count.
///
/// # Panics
/// If `set` does not hold 28×28 single-channel images.
pub fn addition_set(set: &ImageSet, seed: u64, split: &str, limit: Option<usize>) -> ImageSet {
    check_source(set);
    let n = limit.map_or(set.len(), |l| l.min(set.len()));
    let values = CHANNELS * SIZE * SIZE;
    let mut images = vec![0u8; n * values];
    let partners: Vec<usize> = images
        .par_chunks_mut(values)
        .enumerate()
        .map(|(i, out)| {
            let p = pair(set, seed, split, i);
            out.copy_from_slice(&p.image);
            p.partner
        })
        .collect();
    let labels = partners
        .iter()
        .enumerate()
        .map(|(i, &j)| set.labels[i] + set.labels[j])
        .collect();
    ImageSet {
        images,
        labels,
        rows: SIZE,
        cols: SIZE,
        channels: CHANNELS,
    }
}

/// Train and test pairs made from `base` with `seed` (splits "train" and "test"), at most
/// `limits` = (train, test) pairs of each.
pub fn addition_dataset(
    base: &Dataset,
    seed: u64,
    limits: (Option<usize>, Option<usize>),
) -> Dataset {
    Dataset {
        train: addition_set(&base.train, seed, "train", limits.0),
        test: addition_set(&base.test, seed, "test", limits.1),
    }
}

/// One-line description.
pub const DESCRIPTION: &str =
    "two digits, each RTS-distorted in its own 42×42 channel; the label is their sum";
