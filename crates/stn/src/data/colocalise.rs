//! The co-localisation data of Jaderberg et al. 2015 (section 4.4, appendix A): one MNIST digit
//! at a random place on an 84x84 canvas (T), or the same with 16 random 6x6 crops of other
//! training digits added as clutter (TC). A co-localisation run sees the canvases of one class
//! and must find, without labels or boxes, the object they have in common.
//!
//! Choices where the paper is silent: the digit is pasted unscaled at an integer offset in
//! 0..=56 on each axis, and its box is that 28x28 frame; clutter crops come from uniformly
//! chosen training digits (any class, not the canvas's own digit) at uniform positions, and are
//! added and clipped at 255, as deepmind/mnist-cluttered does. Every canvas has its own
//! generator derived from the seed, the class and the index, so a set is byte-identical per
//! seed whatever the thread count.

use super::ImageSet;
use crate::geometry::warp::paste_add;
use crate::rng::Rng;

/// Side of the canvas.
pub const CANVAS: usize = 84;
/// Side of a digit.
pub const DIGIT: usize = 28;
/// Clutter crops on a TC canvas.
pub const CLUTTER_PATCHES: usize = 16;
/// Side of a clutter crop.
pub const CLUTTER_PATCH: usize = 6;

/// A box in pixels: left, top, right, bottom edges (right and bottom exclusive).
pub type PixelBox = [f64; 4];

/// Canvases of one class with the boxes of their digits.
#[derive(Clone, Debug, PartialEq)]
pub struct CoLocalisationSet {
    /// The canvases, [`CANVAS`] x [`CANVAS`] each, one digit of the class on each.
    pub images: ImageSet,
    /// Where each canvas's digit is.
    pub boxes: Vec<PixelBox>,
}

/// `count` canvases of the digits of class `class` in `source` (28x28 digits: the first
/// `count` of that class in order), with clutter when `clutter` (TC) or without (T), drawn
/// from `seed`. Fewer canvases if the class has fewer digits.
pub fn colocalisation_set(
    source: &ImageSet,
    class: u8,
    count: usize,
    clutter: bool,
    seed: u64,
) -> CoLocalisationSet {
    assert!(
        source.rows == DIGIT && source.cols == DIGIT,
        "co-localisation needs 28x28 digits, got {}x{}",
        source.rows,
        source.cols
    );
    let picked: Vec<usize> = (0..source.len())
        .filter(|&i| source.labels[i] == class)
        .take(count)
        .collect();
    let variant = if clutter { "tc" } else { "t" };
    let mut images = Vec::with_capacity(picked.len() * CANVAS * CANVAS);
    let mut boxes = Vec::with_capacity(picked.len());
    for (k, &i) in picked.iter().enumerate() {
        let mut rng = Rng::derive(seed, &format!("coloc-{variant}-{class}-{k}"));
        let mut canvas = vec![0u8; CANVAS * CANVAS];
        let slack = CANVAS - DIGIT;
        let x = rng.below(slack as u64 + 1) as usize;
        let y = rng.below(slack as u64 + 1) as usize;
        paste_add(
            &mut canvas,
            CANVAS,
            source.image(i),
            DIGIT,
            DIGIT,
            [0, 0],
            [x, y],
        );
        if clutter {
            for _ in 0..CLUTTER_PATCHES {
                let other = loop {
                    let j = rng.below(source.len() as u64) as usize;
                    if j != i || source.len() == 1 {
                        break j;
                    }
                };
                let span = (DIGIT - CLUTTER_PATCH) as u64 + 1;
                let from = [rng.below(span) as usize, rng.below(span) as usize];
                let reach = (CANVAS - CLUTTER_PATCH) as u64 + 1;
                let to = [rng.below(reach) as usize, rng.below(reach) as usize];
                paste_add(
                    &mut canvas,
                    CANVAS,
                    source.image(other),
                    DIGIT,
                    CLUTTER_PATCH,
                    from,
                    to,
                );
            }
        }
        images.extend_from_slice(&canvas);
        boxes.push([x as f64, y as f64, (x + DIGIT) as f64, (y + DIGIT) as f64]);
    }
    CoLocalisationSet {
        images: ImageSet {
            images,
            labels: vec![class; picked.len()],
            rows: CANVAS,
            cols: CANVAS,
            channels: 1,
        },
        boxes,
    }
}

/// Intersection over union of two boxes (0 when either is empty).
pub fn iou(a: &PixelBox, b: &PixelBox) -> f64 {
    let w = (a[2].min(b[2]) - a[0].max(b[0])).max(0.0);
    let h = (a[3].min(b[3]) - a[1].max(b[1])).max(0.0);
    let inter = w * h;
    let area = |r: &PixelBox| (r[2] - r[0]).max(0.0) * (r[3] - r[1]).max(0.0);
    let union = area(a) + area(b) - inter;
    if union > 0.0 { inter / union } else { 0.0 }
}

/// The box an attention transformer's parameters (scale `s`, translation `tx`, `ty`, in the
/// normalized coordinates of `affine_grid` with `align_corners = false`) crops from a square
/// image of side `side`: the output's edges at -1 and 1 sample the input at `t - s` and `t + s`.
pub fn attention_box(params: [f32; 3], side: usize) -> PixelBox {
    let [s, tx, ty] = params.map(f64::from);
    let s = s.abs();
    let edge = |v: f64| (v + 1.0) * side as f64 / 2.0;
    [edge(tx - s), edge(ty - s), edge(tx + s), edge(ty + s)]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn source() -> ImageSet {
        let n = 30;
        let mut images = vec![0u8; n * DIGIT * DIGIT];
        for (i, img) in images.chunks_mut(DIGIT * DIGIT).enumerate() {
            img[(10 + i % 5) * DIGIT + 14] = 255;
        }
        ImageSet {
            images,
            labels: (0..n).map(|i| (i % 3) as u8).collect(),
            rows: DIGIT,
            cols: DIGIT,
            channels: 1,
        }
    }

    #[test]
    fn sets_are_reproducible_and_hold_their_digit_in_its_box() {
        let src = source();
        for clutter in [false, true] {
            let a = colocalisation_set(&src, 1, 7, clutter, 3);
            assert_eq!(a, colocalisation_set(&src, 1, 7, clutter, 3));
            assert_ne!(
                a.images.images,
                colocalisation_set(&src, 1, 7, clutter, 4).images.images
            );
            assert_eq!(a.images.len(), 7);
            assert!(a.images.labels.iter().all(|&l| l == 1));
            for (k, b) in a.boxes.iter().enumerate() {
                let [x, y] = [b[0] as usize, b[1] as usize];
                assert!(x + DIGIT <= CANVAS && y + DIGIT <= CANVAS);
                let i = (0..src.len())
                    .filter(|&i| src.labels[i] == 1)
                    .nth(k)
                    .unwrap();
                let canvas = a.images.image(k);
                for r in 0..DIGIT {
                    for c in 0..DIGIT {
                        assert!(canvas[(y + r) * CANVAS + x + c] >= src.image(i)[r * DIGIT + c]);
                    }
                }
            }
        }
        // Clutter adds ink outside the digit's box; without clutter there is none.
        let t = colocalisation_set(&src, 2, 5, false, 1);
        let tc = colocalisation_set(&src, 2, 5, true, 1);
        let ink = |s: &CoLocalisationSet| s.images.images.iter().map(|&v| v as u64).sum::<u64>();
        assert!(ink(&tc) > ink(&t));
    }

    #[test]
    fn boxes_and_iou() {
        assert_eq!(attention_box([1.0, 0.0, 0.0], 84), [0.0, 0.0, 84.0, 84.0]);
        let b = attention_box([1.0 / 3.0, -0.5, 0.25], 84);
        assert!((b[2] - b[0] - 28.0).abs() < 1e-4 && (b[0] - 7.0).abs() < 1e-4);
        let a = [0.0, 0.0, 10.0, 10.0];
        assert_eq!(iou(&a, &a), 1.0);
        assert_eq!(iou(&a, &[10.0, 0.0, 20.0, 10.0]), 0.0);
        assert!((iou(&a, &[5.0, 0.0, 15.0, 10.0]) - 1.0 / 3.0).abs() < 1e-12);
    }
}
