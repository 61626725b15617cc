//! Grid generators: map the localization network's parameters to a sampling grid
//! [N, H, W, 2] of normalized (x, y) source coordinates, one per output pixel.
//!
//! - affine: 6 parameters, theta = [[a, b, c], [d, e, f]] (fused op, PyTorch's `affine_grid`);
//! - attention: 3 parameters (scale s, translation tx, ty): theta = [[s, 0, tx], [0, s, ty]];
//! - projective: 8 parameters, a homography with its last entry fixed to 1;
//! - thin-plate spline: the positions of a g x g grid of control points (2 g^2 parameters).
//!
//! Every generator's identity parameters give the identity sampling grid, for either
//! align_corners convention, because all of them use the same base coordinates as `affine_grid`.

use burn::tensor::{Tensor, TensorData};
use serde::{Deserialize, Serialize};

use crate::ops;

/// Which family of transformations the spatial transformer learns.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum TransformKind {
    /// General 2-D affine map (6 parameters).
    Affine,
    /// Isotropic scale plus translation (3 parameters), the paper's "attention" transformer.
    Attention,
    /// Projective map / homography (8 parameters).
    Projective,
    /// Thin-plate spline through a `grid` x `grid` lattice of control points (2 grid^2 parameters).
    Tps {
        /// Control points per side (4 gives the paper's 16 points).
        grid: usize,
    },
}

impl TransformKind {
    /// Number of parameters the localization network regresses.
    pub fn num_params(&self) -> usize {
        match self {
            Self::Affine => 6,
            Self::Attention => 3,
            Self::Projective => 8,
            Self::Tps { grid } => 2 * grid * grid,
        }
    }

    /// Parameters of the identity transformation.
    pub fn identity(&self) -> Vec<f32> {
        match self {
            Self::Affine => vec![1.0, 0.0, 0.0, 0.0, 1.0, 0.0],
            Self::Attention => vec![1.0, 0.0, 0.0],
            Self::Projective => vec![1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0],
            Self::Tps { grid } => control_points(*grid)
                .iter()
                .flat_map(|&(x, y)| [x as f32, y as f32])
                .collect(),
        }
    }

    /// A short lowercase name ("affine", "attention", "projective", "tps").
    pub fn name(&self) -> &'static str {
        match self {
            Self::Affine => "affine",
            Self::Attention => "attention",
            Self::Projective => "projective",
            Self::Tps { .. } => "tps",
        }
    }
}

/// The sampling grid [N, height, width, 2] for `params` [N, P].
pub fn generate(
    kind: TransformKind,
    params: Tensor<2>,
    size: [usize; 2],
    align_corners: bool,
) -> Tensor<4> {
    let [_, p] = params.dims();
    assert_eq!(
        p,
        kind.num_params(),
        "{kind:?} takes {} parameters, got {p}",
        kind.num_params()
    );
    let [h, w] = size;
    match kind {
        TransformKind::Affine | TransformKind::Attention => {
            let theta = affine_theta(kind, params).expect("affine family");
            ops::affine_grid(theta, h, w, align_corners)
        }
        TransformKind::Projective => ops::projective_grid(params, h, w, align_corners),
        TransformKind::Tps { grid } => ops::tps_grid(params, grid, h, w, align_corners),
    }
}

/// theta [N, 2, 3] for the affine families (affine, attention), `None` for the others.
pub fn affine_theta(kind: TransformKind, params: Tensor<2>) -> Option<Tensor<3>> {
    let [n, _] = params.dims();
    match kind {
        TransformKind::Affine => Some(params.reshape([n, 2, 3])),
        TransformKind::Attention => {
            // (s, tx, ty) -> (s, 0, tx, 0, s, ty) as a product with a constant 3x6 matrix.
            #[rustfmt::skip]
            let m = [
                1.0, 0.0, 0.0, 0.0, 1.0, 0.0,
                0.0, 0.0, 1.0, 0.0, 0.0, 0.0,
                0.0, 0.0, 0.0, 0.0, 0.0, 1.0f64,
            ];
            let m = constant(m.to_vec(), [3, 6], &params);
            Some(params.matmul(m).reshape([n, 2, 3]))
        }
        TransformKind::Projective | TransformKind::Tps { .. } => None,
    }
}

/// A constant with the dtype and device of `like` (f64 parameters get f64 grids).
fn constant<const D: usize, const L: usize>(
    values: Vec<f64>,
    shape: [usize; D],
    like: &Tensor<L>,
) -> Tensor<D> {
    Tensor::from_data(
        TensorData::new(values, shape),
        (&like.device(), like.dtype()),
    )
}

/// The g x g control points, row-major, spanning [-1, 1] on both axes.
pub fn control_points(g: usize) -> Vec<(f64, f64)> {
    ops::tps_control_points(g)
}
