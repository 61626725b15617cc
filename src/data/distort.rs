//! The distorted MNIST datasets of Jaderberg et al. 2015, "Spatial Transformer Networks"
//! (appendix), generated from the plain 28×28 digits with a seed.
//!
//! What the appendix specifies (paraphrased):
//! - **R**: the digit rotated by a random angle in ±90°.
//! - **RTS**: rotated by a random angle in ±45°, scaled by a random factor in 0.7-1.2, and placed
//!   at a random location in a 42×42 image.
//! - **P**: a projective transformation: the digit scaled by a random factor in 0.75-1.0, then its
//!   four corners stretched by Gaussian noise with a standard deviation of 5 pixels.
//! - **E**: an elastic warp: a thin-plate spline through a 4×4 grid of control points, each
//!   perturbed by Gaussian noise with a standard deviation of 1.5 pixels.
//! - **TC**: the digit placed at a random location in a 60×60 image, with six random 6×6 crops of
//!   other digits added as clutter.
//!
//! Where it is silent, we assume:
//! - Each image is distorted **once**, with a fixed seed, rather than afresh every epoch; image
//!   `i` of a split has its own generator, so a dataset is reproducible byte for byte and
//!   independent of the thread count.
//! - "Random" means uniform, with all ranges inclusive of their ends up to floating-point
//!   resolution (angles and scales are drawn from half-open intervals).
//! - Warps are inverse-mapped with bilinear interpolation about the image centre
//!   `((w-1)/2, (h-1)/2)`, zero outside the source, rounded to the nearest byte. Positive angles
//!   turn the digit counterclockwise on screen.
//! - RTS: the rotated and scaled digit is cropped to its 28×28 frame (large scales may clip a
//!   wide digit's extremes) and pasted at an integer offset in 0..=14 on each axis, so the frame
//!   stays inside the 42×42 canvas.
//! - P: the "corners" are the centres of the corner pixels of the scaled image square. A
//!   perturbation that would fold the square (a non-convex or flipped quadrilateral, a > 3σ
//!   event) is redrawn, so the noise is very slightly truncated.
//! - E: control points sit at pixels 0, 9, 18, 27 on each axis; output pixel `p` samples the
//!   source at `TPS(p)`, where the spline maps each control point to its perturbed position (so
//!   the source content at a perturbed point appears at the control point). The spline is the
//!   standard one with `U(r) = r² log r²` and an affine part.
//! - TC: the digit is pasted at an integer offset in 0..=32; each clutter patch is a 6×6 crop at
//!   a uniform position of a uniformly chosen *other* digit of the same split (so the test set's
//!   clutter comes from test digits), pasted at a uniform position in 0..=54 and combined with
//!   `max` so that nothing erases the digit.

use rayon::prelude::*;

use super::{Dataset, ImageSet};
use crate::rng::Rng;

/// Side of the source digits.
pub const SOURCE_SIZE: usize = 28;
/// Side of the RTS canvas.
pub const RTS_SIZE: usize = 42;
/// Side of the TC canvas.
pub const TC_SIZE: usize = 60;
/// Number of clutter patches in a TC image.
pub const TC_PATCHES: usize = 6;
/// Side of a clutter patch.
pub const TC_PATCH: usize = 6;
/// Standard deviation of the P corner noise, in pixels.
pub const P_SIGMA: f64 = 5.0;
/// Standard deviation of the E control-point noise, in pixels.
pub const E_SIGMA: f64 = 1.5;
/// Control points per axis of the E grid.
pub const E_GRID: usize = 4;

/// One of the paper's distorted MNIST variants.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Distortion {
    /// Rotated by up to ±90°.
    R,
    /// Rotated, scaled and translated in a 42×42 canvas.
    Rts,
    /// Projectively warped.
    P,
    /// Elastically warped.
    E,
    /// Translated in a 60×60 canvas, with clutter.
    Tc,
}

impl Distortion {
    /// Every variant, in the paper's order.
    pub const ALL: [Distortion; 5] = [Self::R, Self::Rts, Self::P, Self::E, Self::Tc];

    /// The short lowercase name: "r", "rts", "p", "e" or "tc".
    pub fn name(self) -> &'static str {
        match self {
            Self::R => "r",
            Self::Rts => "rts",
            Self::P => "p",
            Self::E => "e",
            Self::Tc => "tc",
        }
    }

    /// The variant named `s` (case-insensitive), the inverse of [`Self::name`].
    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL
            .into_iter()
            .find(|d| d.name().eq_ignore_ascii_case(s.trim()))
    }

    /// Side of the output images.
    pub fn size(self) -> usize {
        match self {
            Self::R | Self::P | Self::E => SOURCE_SIZE,
            Self::Rts => RTS_SIZE,
            Self::Tc => TC_SIZE,
        }
    }

    /// The paper's sampler output side for this dataset: half resolution for the 42x42 and
    /// 60x60 sets (RTS, TC), the input size otherwise.
    pub fn st_size(self) -> Option<usize> {
        match self {
            Distortion::Rts => Some(21),
            Distortion::Tc => Some(30),
            _ => None,
        }
    }

    /// One-line description.
    pub fn describe(self) -> &'static str {
        match self {
            Self::R => "rotated ±90°",
            Self::Rts => "rotated ±45°, scaled 0.7-1.2, placed at random in 42×42",
            Self::P => "projective: scaled 0.75-1.0, corners moved by N(0, 5 px)",
            Self::E => "elastic: thin-plate spline, 4×4 control points moved by N(0, 1.5 px)",
            Self::Tc => "placed at random in 60×60 with six 6×6 clutter crops",
        }
    }
}

impl std::fmt::Display for Distortion {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// Parameters drawn for one image (for tests and reports).
#[derive(Clone, Debug, PartialEq)]
pub enum DistortionParams {
    /// R: the rotation angle.
    Rotation {
        /// Degrees, counterclockwise on screen.
        degrees: f64,
    },
    /// RTS: rotation, scale, and where the 28×28 frame went in the canvas.
    Rts {
        /// Degrees, counterclockwise on screen.
        degrees: f64,
        /// Scale factor about the centre.
        scale: f64,
        /// Column of the frame's top-left pixel in the canvas (an integer).
        dx: f64,
        /// Row of the frame's top-left pixel in the canvas (an integer).
        dy: f64,
    },
    /// P: where the corners of the scaled square went.
    Projective {
        /// Perturbed corners (x, y): top-left, top-right, bottom-right, bottom-left.
        corners: [[f64; 2]; 4],
        /// Scale applied before the corners were moved.
        scale: f64,
    },
    /// E: control-point noise.
    Elastic {
        /// Offset (x, y) of each control point of [`control_points`], in its order.
        offsets: Vec<[f64; 2]>,
    },
    /// TC: where the digit went.
    Cluttered {
        /// Column of the digit's top-left pixel in the canvas.
        x: usize,
        /// Row of the digit's top-left pixel in the canvas.
        y: usize,
    },
}

/// Bilinear sample of a square u8 image at (x, y), with zeros outside it.
fn sample(src: &[u8], size: usize, x: f64, y: f64) -> f64 {
    let n = size as f64;
    // Written so that NaN also lands outside.
    if !(x > -1.0 && y > -1.0 && x < n && y < n) {
        return 0.0;
    }
    let (x0, y0) = (x.floor(), y.floor());
    let (fx, fy) = (x - x0, y - y0);
    let (x0, y0) = (x0 as isize, y0 as isize);
    let px = |xi: isize, yi: isize| {
        if xi >= 0 && yi >= 0 && (xi as usize) < size && (yi as usize) < size {
            src[yi as usize * size + xi as usize] as f64
        } else {
            0.0
        }
    };
    // At integer coordinates the weights are exactly 1 and 0, so identity warps are exact.
    (1.0 - fy) * ((1.0 - fx) * px(x0, y0) + fx * px(x0 + 1, y0))
        + fy * ((1.0 - fx) * px(x0, y0 + 1) + fx * px(x0 + 1, y0 + 1))
}

fn to_u8(v: f64) -> u8 {
    v.round().clamp(0.0, 255.0) as u8
}

/// Inverse-maps every pixel of a `size`×`size` output through `map` (output → source position,
/// `None` for "nothing there") into the square source `src`.
fn warp(
    src: &[u8],
    size: usize,
    out_size: usize,
    map: impl Fn(f64, f64) -> Option<[f64; 2]>,
) -> Vec<u8> {
    let mut out = vec![0u8; out_size * out_size];
    for oy in 0..out_size {
        for ox in 0..out_size {
            if let Some([x, y]) = map(ox as f64, oy as f64) {
                out[oy * out_size + ox] = to_u8(sample(src, size, x, y));
            }
        }
    }
    out
}

fn centre(size: usize) -> f64 {
    (size as f64 - 1.0) / 2.0
}

fn check_square(image: &[u8], size: usize) {
    assert_eq!(
        image.len(),
        size * size,
        "expected a {size}×{size} image, got {} pixels",
        image.len()
    );
}

/// Rotates the square `image` (side `size`) by `degrees` (counterclockwise on screen) and scales
/// it by `scale`, both about its centre, crops the result to its `size`×`size` frame, and places
/// that frame with its top-left pixel at `offset` (x, y) in a zeroed `out_size`×`out_size`
/// canvas.
pub fn rotate(
    image: &[u8],
    size: usize,
    degrees: f64,
    scale: f64,
    out_size: usize,
    offset: [usize; 2],
) -> Vec<u8> {
    check_square(image, size);
    assert!(
        offset[0] + size <= out_size && offset[1] + size <= out_size,
        "a {size}-pixel frame at {offset:?} does not fit in {out_size}"
    );
    let c = centre(size);
    let (sin, cos) = degrees.to_radians().sin_cos();
    let (ox, oy) = (offset[0] as f64, offset[1] as f64);
    let n = size as f64;
    warp(image, size, out_size, |x, y| {
        let (lx, ly) = (x - ox, y - oy);
        if lx < 0.0 || ly < 0.0 || lx >= n || ly >= n {
            return None;
        }
        let (dx, dy) = (lx - c, ly - c);
        // The forward map turns (dx, dy) by -θ in y-down coordinates (counterclockwise on
        // screen) and scales; this is its inverse.
        Some([
            c + (dx * cos - dy * sin) / scale,
            c + (dx * sin + dy * cos) / scale,
        ])
    })
}

/// Solves `a x = b` for square row-major `a` (n×n, n = `b.len()`) by Gaussian elimination with
/// partial pivoting; `None` if `a` is singular to working precision.
pub fn solve_linear(a: &[f64], b: &[f64]) -> Option<Vec<f64>> {
    let n = b.len();
    assert_eq!(a.len(), n * n, "solve_linear: matrix is not {n}×{n}");
    let mut a = a.to_vec();
    let mut b = b.to_vec();
    let tiny = a.iter().fold(0.0f64, |m, v| m.max(v.abs())) * 1e-12;
    for col in 0..n {
        let pivot = (col..n)
            .max_by(|&i, &j| a[i * n + col].abs().total_cmp(&a[j * n + col].abs()))
            .expect("non-empty range");
        let p = a[pivot * n + col].abs();
        if p <= tiny || p.is_nan() {
            return None;
        }
        if pivot != col {
            for k in 0..n {
                a.swap(col * n + k, pivot * n + k);
            }
            b.swap(col, pivot);
        }
        for row in col + 1..n {
            let f = a[row * n + col] / a[col * n + col];
            if f != 0.0 {
                for k in col..n {
                    a[row * n + k] -= f * a[col * n + k];
                }
                b[row] -= f * b[col];
            }
        }
    }
    let mut x = vec![0.0; n];
    for row in (0..n).rev() {
        let s: f64 = (row + 1..n).map(|k| a[row * n + k] * x[k]).sum();
        x[row] = (b[row] - s) / a[row * n + row];
    }
    Some(x)
}

/// The homography (row-major 3×3, bottom-right entry 1) that maps each point of `from` to the
/// point of `to` at the same index; `None` if three of the points are collinear.
pub fn homography(from: &[[f64; 2]; 4], to: &[[f64; 2]; 4]) -> Option<[[f64; 3]; 3]> {
    // u = (h0 x + h1 y + h2) / (h6 x + h7 y + 1), v = (h3 x + h4 y + h5) / (same): two linear
    // equations per point pair.
    let mut a = Vec::with_capacity(64);
    let mut b = Vec::with_capacity(8);
    for (&[x, y], &[u, v]) in from.iter().zip(to) {
        a.extend_from_slice(&[x, y, 1.0, 0.0, 0.0, 0.0, -u * x, -u * y]);
        b.push(u);
        a.extend_from_slice(&[0.0, 0.0, 0.0, x, y, 1.0, -v * x, -v * y]);
        b.push(v);
    }
    let h = solve_linear(&a, &b)?;
    Some([[h[0], h[1], h[2]], [h[3], h[4], h[5]], [h[6], h[7], 1.0]])
}

/// The inverse of a 3×3 matrix (adjugate over determinant); `None` if singular.
fn invert3(m: &[[f64; 3]; 3]) -> Option<[[f64; 3]; 3]> {
    let cof =
        |r0: usize, r1: usize, c0: usize, c1: usize| m[r0][c0] * m[r1][c1] - m[r0][c1] * m[r1][c0];
    let adj = [
        [cof(1, 2, 1, 2), -cof(0, 2, 1, 2), cof(0, 1, 1, 2)],
        [-cof(1, 2, 0, 2), cof(0, 2, 0, 2), -cof(0, 1, 0, 2)],
        [cof(1, 2, 0, 1), -cof(0, 2, 0, 1), cof(0, 1, 0, 1)],
    ];
    let det = m[0][0] * adj[0][0] + m[0][1] * adj[1][0] + m[0][2] * adj[2][0];
    if det.abs() <= 1e-12 || det.is_nan() {
        return None;
    }
    Some(adj.map(|row| row.map(|v| v / det)))
}

/// The corners (x, y) of a `size`-pixel image square scaled by `scale` about its centre:
/// top-left, top-right, bottom-right, bottom-left (the centres of the corner pixels).
pub fn scaled_corners(size: usize, scale: f64) -> [[f64; 2]; 4] {
    let c = centre(size);
    let (lo, hi) = (c - scale * c, c + scale * c);
    [[lo, lo], [hi, lo], [hi, hi], [lo, hi]]
}

/// Whether the quadrilateral turns the same way at every corner as the image square does, so a
/// homography onto it does not fold the image.
fn is_convex_like_square(q: &[[f64; 2]; 4]) -> bool {
    (0..4).all(|i| {
        let (a, b, c) = (q[i], q[(i + 1) % 4], q[(i + 2) % 4]);
        let cross = (b[0] - a[0]) * (c[1] - b[1]) - (b[1] - a[1]) * (c[0] - b[0]);
        cross > 0.0
    })
}

/// Scales the square `image` (side `size`) by `scale` about its centre, then applies the
/// homography taking the scaled square's corners ([`scaled_corners`]) to `corners`; `None` if
/// `corners` are degenerate.
pub fn project(image: &[u8], size: usize, scale: f64, corners: &[[f64; 2]; 4]) -> Option<Vec<u8>> {
    check_square(image, size);
    let h = homography(&scaled_corners(size, scale), corners)?;
    let mut inv = invert3(&h)?;
    // Normalize so that w = 1 inside the target quadrilateral; pixels where w <= 0 lie beyond the
    // horizon and would otherwise sample a mirrored image.
    let (gx, gy) = (
        corners.iter().map(|p| p[0]).sum::<f64>() / 4.0,
        corners.iter().map(|p| p[1]).sum::<f64>() / 4.0,
    );
    let w0 = inv[2][0] * gx + inv[2][1] * gy + inv[2][2];
    if w0.abs() <= 1e-12 || w0.is_nan() {
        return None;
    }
    inv = inv.map(|row| row.map(|v| v / w0));
    let c = centre(size);
    Some(warp(image, size, size, |x, y| {
        let w = inv[2][0] * x + inv[2][1] * y + inv[2][2];
        if w <= 1e-9 {
            return None;
        }
        let qx = (inv[0][0] * x + inv[0][1] * y + inv[0][2]) / w;
        let qy = (inv[1][0] * x + inv[1][1] * y + inv[1][2]) / w;
        // Undo the scaling: the scaled image at q shows the source at c + (q - c) / scale.
        Some([c + (qx - c) / scale, c + (qy - c) / scale])
    }))
}

/// The E control points (x, y) of a `size`-pixel image: a 4×4 grid at pixels
/// `k (size-1) / 3` (0, 9, 18, 27 for 28 pixels), row after row.
pub fn control_points(size: usize) -> Vec<[f64; 2]> {
    let step = (size as f64 - 1.0) / (E_GRID as f64 - 1.0);
    (0..E_GRID)
        .flat_map(|r| (0..E_GRID).map(move |c| [c as f64 * step, r as f64 * step]))
        .collect()
}

/// A 2-D thin-plate spline.
#[derive(Clone, Debug)]
pub struct Tps {
    points: Vec<[f64; 2]>,
    /// Kernel weights per point, for x and y.
    weights: Vec<[f64; 2]>,
    /// Affine part: constant, x and y coefficients, for x and y.
    affine: [[f64; 2]; 3],
}

/// The thin-plate kernel as a function of the squared distance: `r² log r²`, 0 at 0.
fn tps_kernel(r2: f64) -> f64 {
    if r2 > 0.0 { r2 * r2.ln() } else { 0.0 }
}

impl Tps {
    /// The spline that maps each of `points` to the target at the same index, with minimal
    /// bending energy; `None` if the points are degenerate (say, all collinear).
    pub fn fit(points: &[[f64; 2]], targets: &[[f64; 2]]) -> Option<Self> {
        assert_eq!(
            points.len(),
            targets.len(),
            "Tps::fit: one target per point"
        );
        let n = points.len();
        let m = n + 3;
        // [K P; Pᵀ 0] [w; a] = [v; 0], with K_ij = U(|p_i - p_j|) and P_i = (1, x_i, y_i).
        let mut a = vec![0.0; m * m];
        for (i, p) in points.iter().enumerate() {
            for (j, q) in points.iter().enumerate() {
                a[i * m + j] = tps_kernel((p[0] - q[0]).powi(2) + (p[1] - q[1]).powi(2));
            }
            for (k, v) in [1.0, p[0], p[1]].into_iter().enumerate() {
                a[i * m + n + k] = v;
                a[(n + k) * m + i] = v;
            }
        }
        let mut weights = vec![[0.0; 2]; n];
        let mut affine = [[0.0; 2]; 3];
        for axis in 0..2 {
            let mut b: Vec<f64> = targets.iter().map(|t| t[axis]).collect();
            b.extend([0.0; 3]);
            let x = solve_linear(&a, &b)?;
            for i in 0..n {
                weights[i][axis] = x[i];
            }
            for k in 0..3 {
                affine[k][axis] = x[n + k];
            }
        }
        Some(Self {
            points: points.to_vec(),
            weights,
            affine,
        })
    }

    /// The spline at `p`.
    pub fn eval(&self, p: [f64; 2]) -> [f64; 2] {
        let [c, ax, ay] = self.affine;
        let mut out = [0, 1].map(|axis| c[axis] + ax[axis] * p[0] + ay[axis] * p[1]);
        for (q, w) in self.points.iter().zip(&self.weights) {
            let u = tps_kernel((p[0] - q[0]).powi(2) + (p[1] - q[1]).powi(2));
            out[0] += w[0] * u;
            out[1] += w[1] * u;
        }
        out
    }
}

/// Warps the square `image` (side `size`) elastically: output pixel `p` samples the source at
/// `TPS(p)`, where the spline maps each control point of [`control_points`] to itself plus the
/// offset at the same index. `None` if the spline is degenerate.
pub fn elastic(image: &[u8], size: usize, offsets: &[[f64; 2]]) -> Option<Vec<u8>> {
    check_square(image, size);
    let points = control_points(size);
    assert_eq!(
        offsets.len(),
        points.len(),
        "elastic: one offset per control point"
    );
    let targets: Vec<[f64; 2]> = points
        .iter()
        .zip(offsets)
        .map(|(p, o)| [p[0] + o[0], p[1] + o[1]])
        .collect();
    let tps = Tps::fit(&points, &targets)?;
    Some(warp(image, size, size, |x, y| Some(tps.eval([x, y]))))
}

/// Combines the `crop`-pixel square of `src` (side `src_size`) whose top-left pixel is at
/// `from` (x, y) into `canvas` (side `canvas_size`) at `to` (x, y), keeping the larger value of
/// each pixel.
pub fn paste_max(
    canvas: &mut [u8],
    canvas_size: usize,
    src: &[u8],
    src_size: usize,
    crop: usize,
    from: [usize; 2],
    to: [usize; 2],
) {
    check_square(src, src_size);
    assert!(from[0] + crop <= src_size && from[1] + crop <= src_size);
    assert!(to[0] + crop <= canvas_size && to[1] + crop <= canvas_size);
    for r in 0..crop {
        let s = &src[(from[1] + r) * src_size + from[0]..][..crop];
        let d = &mut canvas[(to[1] + r) * canvas_size + to[0]..][..crop];
        for (d, &s) in d.iter_mut().zip(s) {
            *d = (*d).max(s);
        }
    }
}

/// Uniform integer in `0..=hi`.
fn upto(rng: &mut Rng, hi: usize) -> usize {
    rng.below(hi as u64 + 1) as usize
}

/// Distorts one 28x28 source image (u8, row-major) and returns the output image (size()^2 u8)
/// and its parameters. `clutter` provides other source images for TC (ignored otherwise).
///
/// The draws, in order: R: angle. RTS: angle, scale, dx, dy. P: scale, then (x, y) noise of each
/// corner, redrawn while the quadrilateral folds. E: (x, y) noise of each control point. TC:
/// x, y, then per patch: its source image, crop x, crop y, paste x, paste y.
pub fn distort_one(
    kind: Distortion,
    image: &[u8],
    rng: &mut Rng,
    clutter: &dyn Fn(&mut Rng) -> Vec<u8>,
) -> (Vec<u8>, DistortionParams) {
    const S: usize = SOURCE_SIZE;
    check_square(image, S);
    match kind {
        Distortion::R => {
            let degrees = rng.range(-90.0, 90.0);
            let out = rotate(image, S, degrees, 1.0, S, [0, 0]);
            (out, DistortionParams::Rotation { degrees })
        }
        Distortion::Rts => {
            let degrees = rng.range(-45.0, 45.0);
            let scale = rng.range(0.7, 1.2);
            let slack = RTS_SIZE - S;
            let (dx, dy) = (upto(rng, slack), upto(rng, slack));
            let out = rotate(image, S, degrees, scale, RTS_SIZE, [dx, dy]);
            let params = DistortionParams::Rts {
                degrees,
                scale,
                dx: dx as f64,
                dy: dy as f64,
            };
            (out, params)
        }
        Distortion::P => {
            let scale = rng.range(0.75, 1.0);
            let base = scaled_corners(S, scale);
            // A fold needs a corner to move about half the square (> 3σ); a handful of tries is
            // plenty, and the unperturbed square is a safe last resort.
            let mut corners = base;
            for _ in 0..100 {
                let moved =
                    base.map(|[x, y]| [x + P_SIGMA * rng.normal(), y + P_SIGMA * rng.normal()]);
                if is_convex_like_square(&moved) && homography(&base, &moved).is_some() {
                    corners = moved;
                    break;
                }
            }
            let out = project(image, S, scale, &corners).expect("a convex quadrilateral");
            (out, DistortionParams::Projective { corners, scale })
        }
        Distortion::E => {
            let offsets: Vec<[f64; 2]> = (0..E_GRID * E_GRID)
                .map(|_| [E_SIGMA * rng.normal(), E_SIGMA * rng.normal()])
                .collect();
            // The control points are a fixed, well-spread grid, so the system is never singular.
            let out = elastic(image, S, &offsets).expect("a 4×4 grid fits a spline");
            (out, DistortionParams::Elastic { offsets })
        }
        Distortion::Tc => {
            let slack = TC_SIZE - S;
            let (x, y) = (upto(rng, slack), upto(rng, slack));
            let mut out = vec![0u8; TC_SIZE * TC_SIZE];
            paste_max(&mut out, TC_SIZE, image, S, S, [0, 0], [x, y]);
            for _ in 0..TC_PATCHES {
                let other = clutter(rng);
                let from = [upto(rng, S - TC_PATCH), upto(rng, S - TC_PATCH)];
                let to = [upto(rng, TC_SIZE - TC_PATCH), upto(rng, TC_SIZE - TC_PATCH)];
                paste_max(&mut out, TC_SIZE, &other, S, TC_PATCH, from, to);
            }
            (out, DistortionParams::Cluttered { x, y })
        }
    }
}

/// The distorted version of every image of `set` (labels unchanged). Image i uses its own
/// generator `Rng::derive(seed, &format!("{}-{split}-{i}", kind.name()))`, so generation is
/// deterministic, independent of thread count, and runs in parallel.
///
/// For TC, clutter comes from a uniformly chosen other image of `set` (the image itself only if
/// it is alone). Panics unless `set` holds 28×28 images.
pub fn distort_set(kind: Distortion, set: &ImageSet, seed: u64, split: &str) -> ImageSet {
    assert!(
        set.rows == SOURCE_SIZE && set.cols == SOURCE_SIZE,
        "distorted MNIST needs 28×28 source images, got {}×{}",
        set.rows,
        set.cols
    );
    let side = kind.size();
    let pixels = side * side;
    let n = set.len();
    let mut images = vec![0u8; n * pixels];
    images
        .par_chunks_mut(pixels)
        .enumerate()
        .for_each(|(i, out)| {
            let mut rng = Rng::derive(seed, &format!("{}-{split}-{i}", kind.name()));
            let clutter = |r: &mut Rng| {
                let j = if n > 1 {
                    // Uniform over the n - 1 other indices.
                    let j = r.below(n as u64 - 1) as usize;
                    if j >= i { j + 1 } else { j }
                } else {
                    i
                };
                set.image(j).to_vec()
            };
            let (image, _) = distort_one(kind, set.image(i), &mut rng, &clutter);
            out.copy_from_slice(&image);
        });
    ImageSet {
        images,
        labels: set.labels.clone(),
        rows: side,
        cols: side,
    }
}

/// Train and test sets distorted with `seed` (train with split "train", test with split
/// "test").
pub fn distort_dataset(kind: Distortion, base: &Dataset, seed: u64) -> Dataset {
    Dataset {
        train: distort_set(kind, &base.train, seed, "train"),
        test: distort_set(kind, &base.test, seed, "test"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn solve_linear_solves_and_detects_singular() {
        // Needs a row swap: the first pivot is zero.
        let a = [0.0, 2.0, 1.0, 1.0, 1.0, 0.0, 2.0, 0.0, 3.0];
        let x_true = [1.0, -2.0, 3.0];
        let b: Vec<f64> = (0..3)
            .map(|r| (0..3).map(|c| a[r * 3 + c] * x_true[c]).sum())
            .collect();
        let x = solve_linear(&a, &b).unwrap();
        for (x, t) in x.iter().zip(x_true) {
            assert!((x - t).abs() < 1e-12, "{x} vs {t}");
        }
        assert!(solve_linear(&[1.0, 2.0, 2.0, 4.0], &[1.0, 2.0]).is_none());
    }

    #[test]
    fn homography_maps_corners() {
        let from = scaled_corners(28, 0.8);
        let to = [[1.0, 2.0], [25.0, -1.0], [29.0, 27.0], [-2.0, 24.0]];
        let h = homography(&from, &to).unwrap();
        for (p, q) in from.iter().zip(&to) {
            let w = h[2][0] * p[0] + h[2][1] * p[1] + h[2][2];
            let u = (h[0][0] * p[0] + h[0][1] * p[1] + h[0][2]) / w;
            let v = (h[1][0] * p[0] + h[1][1] * p[1] + h[1][2]) / w;
            assert!((u - q[0]).abs() < 1e-9 && (v - q[1]).abs() < 1e-9);
        }
        let inv = invert3(&h).unwrap();
        for i in 0..9 {
            let (r, c) = (i / 3, i % 3);
            let v: f64 = (0..3).map(|k| h[r][k] * inv[k][c]).sum();
            assert!(
                (v - if r == c { 1.0 } else { 0.0 }).abs() < 1e-9,
                "H H⁻¹ at {r},{c}: {v}"
            );
        }
    }

    #[test]
    fn tps_interpolates_its_points() {
        let points = control_points(28);
        let targets: Vec<[f64; 2]> = points
            .iter()
            .enumerate()
            .map(|(i, p)| [p[0] + (i % 3) as f64 - 1.0, p[1] + (i % 5) as f64 * 0.5])
            .collect();
        let tps = Tps::fit(&points, &targets).unwrap();
        for (p, t) in points.iter().zip(&targets) {
            let e = tps.eval(*p);
            assert!((e[0] - t[0]).abs() < 1e-8 && (e[1] - t[1]).abs() < 1e-8);
        }
    }

    #[test]
    fn names_round_trip() {
        for d in Distortion::ALL {
            assert_eq!(Distortion::parse(d.name()), Some(d));
            assert_eq!(Distortion::parse(&d.name().to_uppercase()), Some(d));
            assert_eq!(
                serde_json::to_string(&d).unwrap(),
                format!("\"{}\"", d.name())
            );
        }
        assert_eq!(Distortion::parse("x"), None);
    }
}
