//! Portable per-pixel sampling code, generic over the element type, every mode and padding,
//! and over where coordinates come from (a grid tensor or an affine map) and where their
//! gradients go (a grid gradient or theta's gradient).

use std::mem::MaybeUninit;

use super::Real;
use super::coords::{
    cubic_coefficients, cubic_coefficients_grad, in_bounds, pad_coordinate, source_index,
    source_index_forward, to_index, unnormalize,
};
use crate::sample_shape::SampleShape;
use crate::{Interpolation, Padding};

/// Normalized sampling coordinates of the output pixels.
pub trait Coords<T> {
    /// (x, y) of output pixel `p` (row-major index in the output plane).
    fn at(&self, p: usize) -> (T, T);
}

/// A grid tensor's plane, [h_out * w_out * 2] interleaved (x, y).
pub struct GridCoords<'a, T>(pub &'a [T]);

impl<T: Real> Coords<T> for GridCoords<'_, T> {
    #[inline(always)]
    fn at(&self, p: usize) -> (T, T) {
        (self.0[2 * p], self.0[2 * p + 1])
    }
}

/// Coordinates theta · (x_j, y_i, 1) of an affine map, from per-pixel base coordinates.
pub struct AffineCoords<'a, T> {
    /// theta, row-major [2, 3].
    pub theta: [T; 6],
    /// Base x of every output pixel.
    pub bx: &'a [T],
    /// Base y of every output pixel.
    pub by: &'a [T],
}

impl<T: Real> Coords<T> for AffineCoords<'_, T> {
    #[inline(always)]
    fn at(&self, p: usize) -> (T, T) {
        let t = &self.theta;
        let (x, y) = (self.bx[p], self.by[p]);
        // The same association as the affine_grid kernel: theta0 x + (theta1 y + theta2).
        (t[0] * x + (t[1] * y + t[2]), t[3] * x + (t[4] * y + t[5]))
    }
}

/// Receives the gradient with respect to each output pixel's sampling coordinates.
pub trait CoordGrads<T> {
    /// Whether gradients are wanted at all (false skips their computation).
    const WANTED: bool;
    /// Gradient of the loss with respect to pixel `p`'s (x, y).
    fn put(&mut self, p: usize, gx: T, gy: T);
}

/// No coordinate gradient wanted.
pub struct NoGrads;

impl<T> CoordGrads<T> for NoGrads {
    const WANTED: bool = false;
    #[inline(always)]
    fn put(&mut self, _: usize, _: T, _: T) {}
}

/// Writes into a grid gradient plane.
pub struct GridGrads<'a, T>(pub &'a mut [MaybeUninit<T>]);

impl<T: Real> CoordGrads<T> for GridGrads<'_, T> {
    const WANTED: bool = true;
    #[inline(always)]
    fn put(&mut self, p: usize, gx: T, gy: T) {
        self.0[2 * p].write(gx);
        self.0[2 * p + 1].write(gy);
    }
}

/// Accumulates theta's gradient: d/dtheta of theta · (x, y, 1).
pub struct ThetaGrads<'a, T> {
    /// Accumulated gradient, row-major [2, 3].
    pub acc: [T; 6],
    /// Base x of every output pixel.
    pub bx: &'a [T],
    /// Base y of every output pixel.
    pub by: &'a [T],
}

impl<T: Real> CoordGrads<T> for ThetaGrads<'_, T> {
    const WANTED: bool = true;
    #[inline(always)]
    fn put(&mut self, p: usize, gx: T, gy: T) {
        let (x, y) = (self.bx[p], self.by[p]);
        let a = &mut self.acc;
        a[0] = a[0] + gx * x;
        a[1] = a[1] + gx * y;
        a[2] = a[2] + gx;
        a[3] = a[3] + gy * x;
        a[4] = a[4] + gy * y;
        a[5] = a[5] + gy;
    }
}

/// Padding modes as const-generic parameters.
pub const ZEROS: u8 = 0;
/// See [`ZEROS`].
pub const BORDER: u8 = 1;
/// See [`ZEROS`].
pub const REFLECTION: u8 = 2;

/// The padding mode of a const-generic code.
#[inline(always)]
pub fn padding_of(p: u8) -> Padding {
    match p {
        ZEROS => Padding::Zeros,
        BORDER => Padding::Border,
        _ => Padding::Reflection,
    }
}

/// Bilinear corner indices and weights for one output pixel.
pub struct Bilinear<T> {
    x0: i64,
    y0: i64,
    /// PyTorch's w = x - x0, e = 1 - w, n = y - y0, s = 1 - n.
    fx: T,
    fx1: T,
    fy: T,
    fy1: T,
}

impl<T: Real> Bilinear<T> {
    /// From pixel coordinates as PyTorch's vectorized kernel takes them: the weights from the
    /// coordinates themselves (NaN for a NaN or infinite one, which makes the output NaN even
    /// where no neighbour is in range), `e` and `s` as `1 - w` and `1 - n` (not GridSampler.h's
    /// `x0 + 1 - x`), the corner indices by [`to_index`].
    #[inline(always)]
    fn new(ix: T, iy: T) -> Self {
        let x0f = ix.floor();
        let y0f = iy.floor();
        let one = T::one();
        let (fx, fy) = (ix - x0f, iy - y0f);
        Bilinear {
            x0: to_index(x0f),
            y0: to_index(y0f),
            fx,
            fx1: one - fx,
            fy,
            fy1: one - fy,
        }
    }

    /// Weights of (y0,x0), (y0,x0+1), (y0+1,x0), (y0+1,x0+1): PyTorch's nw, ne, sw, se.
    #[inline(always)]
    fn weights(&self) -> [T; 4] {
        [
            self.fx1 * self.fy1,
            self.fx * self.fy1,
            self.fx1 * self.fy,
            self.fx * self.fy,
        ]
    }

    /// Plane offsets of the four neighbours, `None` for those outside.
    #[inline(always)]
    fn offsets(&self, h: usize, w: usize) -> [Option<usize>; 4] {
        if self.x0 >= 0 && self.x0 + 1 < w as i64 && self.y0 >= 0 && self.y0 + 1 < h as i64 {
            let o = self.y0 as usize * w + self.x0 as usize;
            return [Some(o), Some(o + 1), Some(o + w), Some(o + w + 1)];
        }
        let at = |dy: i64, dx: i64| {
            let (y, x) = (self.y0 + dy, self.x0 + dx);
            in_bounds(y, x, h, w).then(|| y as usize * w + x as usize)
        };
        [at(0, 0), at(0, 1), at(1, 0), at(1, 1)]
    }
}

/// The 4x4 neighbourhood of a bicubic sample: padded tap offsets and weights.
struct CubicTaps<T> {
    offset: [[Option<usize>; 4]; 4],
    cx: [T; 4],
    cy: [T; 4],
    tx: T,
    ty: T,
    gmx: T,
    gmy: T,
}

impl<T: Real> CubicTaps<T> {
    #[inline(always)]
    fn new(gx: T, gy: T, s: &SampleShape, padding: Padding, align: bool) -> Self {
        let (ix, gmx) = unnormalize(gx, s.w_in, align);
        let (iy, gmy) = unnormalize(gy, s.h_in, align);
        let x0 = ix.floor();
        let y0 = iy.floor();
        let (tx, ty) = (ix - x0, iy - y0);
        let mut offset = [[None; 4]; 4];
        // PyTorch's `get_value_bounded`: each tap padded on its own (the forward clip, so a
        // NaN tap reads pixel 0 under border and reflection padding), then range-checked.
        let xs: [i64; 4] = core::array::from_fn(|i| {
            to_index(pad_coordinate(
                x0 + T::constant(i as f64 - 1.0),
                s.w_in,
                padding,
                align,
            ))
        });
        for (j, row) in offset.iter_mut().enumerate() {
            let y = to_index(pad_coordinate(
                y0 + T::constant(j as f64 - 1.0),
                s.h_in,
                padding,
                align,
            ));
            for (slot, &x) in row.iter_mut().zip(&xs) {
                *slot = in_bounds(y, x, s.h_in, s.w_in).then(|| y as usize * s.w_in + x as usize);
            }
        }
        Self {
            offset,
            cx: cubic_coefficients(tx),
            cy: cubic_coefficients(ty),
            tx,
            ty,
            gmx,
            gmy,
        }
    }

    #[inline(always)]
    fn value(&self, plane: &[T], i: usize, j: usize) -> T {
        self.offset[j][i].map_or(T::zero(), |off| plane[off])
    }
}

/// Samples output pixels `range` of one batch item: `input` [c, h_in, w_in], `out`
/// [c, h_out, w_out] (each of its values in `range` written once).
#[inline(always)]
pub fn forward_item<T: Real, C: Coords<T>, const PAD: u8, const ALIGN: bool>(
    mode: Interpolation,
    input: &[T],
    coords: &C,
    out: &mut [MaybeUninit<T>],
    s: &SampleShape,
    range: core::ops::Range<usize>,
) {
    let (plane_in, plane_out) = (s.h_in * s.w_in, s.h_out * s.w_out);
    let pad = padding_of(PAD);
    for p in range {
        let (gx, gy) = coords.at(p);
        match mode {
            Interpolation::Bilinear => {
                let ix = source_index_forward(gx, s.w_in, pad, ALIGN);
                let iy = source_index_forward(gy, s.h_in, pad, ALIGN);
                let b = Bilinear::new(ix, iy);
                let w = b.weights();
                let offs = b.offsets(s.h_in, s.w_in);
                for c in 0..s.c {
                    let pl = &input[c * plane_in..(c + 1) * plane_in];
                    let v = |k: usize| offs[k].map_or(T::zero(), |o| pl[o]);
                    out[c * plane_out + p]
                        .write(v(0) * w[0] + v(1) * w[1] + v(2) * w[2] + v(3) * w[3]);
                }
            }
            Interpolation::Nearest => {
                let ix = source_index_forward(gx, s.w_in, pad, ALIGN);
                let iy = source_index_forward(gy, s.h_in, pad, ALIGN);
                let (x, y) = (to_index(ix.round_even()), to_index(iy.round_even()));
                let inside = in_bounds(y, x, s.h_in, s.w_in);
                let off = if inside {
                    y as usize * s.w_in + x as usize
                } else {
                    0
                };
                for c in 0..s.c {
                    out[c * plane_out + p].write(if inside {
                        input[c * plane_in + off]
                    } else {
                        T::zero()
                    });
                }
            }
            Interpolation::Bicubic => {
                let taps = CubicTaps::new(gx, gy, s, pad, ALIGN);
                for c in 0..s.c {
                    let plane = &input[c * plane_in..(c + 1) * plane_in];
                    // PyTorch's association: each row's four products summed left to right,
                    // then the rows'.
                    let v = |i: usize, j: usize| taps.value(plane, i, j);
                    let row = |j: usize| {
                        taps.cx[0] * v(0, j)
                            + taps.cx[1] * v(1, j)
                            + taps.cx[2] * v(2, j)
                            + taps.cx[3] * v(3, j)
                    };
                    out[c * plane_out + p].write(
                        taps.cy[0] * row(0)
                            + taps.cy[1] * row(1)
                            + taps.cy[2] * row(2)
                            + taps.cy[3] * row(3),
                    );
                }
            }
        }
    }
}

/// Backward over output pixels `range` of one batch item: adds to `gin` (when given) and
/// reports each pixel's coordinate gradient to `grads`.
#[inline(always)]
#[allow(clippy::too_many_arguments)]
pub fn backward_item<T: Real, C: Coords<T>, G: CoordGrads<T>, const PAD: u8, const ALIGN: bool>(
    mode: Interpolation,
    input: &[T],
    coords: &C,
    grad_out: &[T],
    mut gin: Option<&mut [T]>,
    grads: &mut G,
    s: &SampleShape,
    range: core::ops::Range<usize>,
) {
    let (plane_in, plane_out) = (s.h_in * s.w_in, s.h_out * s.w_out);
    let pad = padding_of(PAD);
    for p in range {
        let (gx, gy) = coords.at(p);
        match mode {
            Interpolation::Bilinear => {
                let (ix, gmx) = source_index(gx, s.w_in, pad, ALIGN);
                let (iy, gmy) = source_index(gy, s.h_in, pad, ALIGN);
                let b = Bilinear::new(ix, iy);
                let wts = b.weights();
                let offs = b.offsets(s.h_in, s.w_in);
                let (mut gix, mut giy) = (T::zero(), T::zero());
                for c in 0..s.c {
                    let go = grad_out[c * plane_out + p];
                    if let Some(gin) = gin.as_deref_mut() {
                        let plane = &mut gin[c * plane_in..(c + 1) * plane_in];
                        for k in 0..4 {
                            if let Some(off) = offs[k] {
                                plane[off] = plane[off] + wts[k] * go;
                            }
                        }
                    }
                    if G::WANTED {
                        let plane = &input[c * plane_in..(c + 1) * plane_in];
                        let v = |k: usize| offs[k].map_or(T::zero(), |off| plane[off]);
                        let (nw, ne, sw, se) = (v(0), v(1), v(2), v(3));
                        gix = gix + ((ne - nw) * b.fy1 + (se - sw) * b.fy) * go;
                        giy = giy + ((sw - nw) * b.fx1 + (se - ne) * b.fx) * go;
                    }
                }
                grads.put(p, gmx * gix, gmy * giy);
            }
            Interpolation::Nearest => {
                if let Some(gin) = gin.as_deref_mut() {
                    // PyTorch's nearest backward pads as its forward does (`apply`, not
                    // `apply_get_grad`): a NaN coordinate's gradient goes to pixel 0 under
                    // border and reflection padding.
                    let ix = source_index_forward(gx, s.w_in, pad, ALIGN);
                    let iy = source_index_forward(gy, s.h_in, pad, ALIGN);
                    let (x, y) = (to_index(ix.round_even()), to_index(iy.round_even()));
                    if in_bounds(y, x, s.h_in, s.w_in) {
                        let off = y as usize * s.w_in + x as usize;
                        for c in 0..s.c {
                            let g = &mut gin[c * plane_in + off];
                            *g = *g + grad_out[c * plane_out + p];
                        }
                    }
                }
                // Nearest sampling is piecewise constant: no coordinate gradient.
                grads.put(p, T::zero(), T::zero());
            }
            Interpolation::Bicubic => {
                let taps = CubicTaps::new(gx, gy, s, pad, ALIGN);
                let (dx, dy) = (
                    cubic_coefficients_grad(taps.tx),
                    cubic_coefficients_grad(taps.ty),
                );
                let (mut gix, mut giy) = (T::zero(), T::zero());
                for c in 0..s.c {
                    let go = grad_out[c * plane_out + p];
                    // PyTorch's order: tap (i, j) with i (x) outer; the input gradient and
                    // the products as it associates them.
                    let plane = &input[c * plane_in..(c + 1) * plane_in];
                    let mut gplane = gin
                        .as_deref_mut()
                        .map(|g| &mut g[c * plane_in..(c + 1) * plane_in]);
                    for i in 0..4 {
                        for j in 0..4 {
                            if let (Some(g), Some(off)) = (gplane.as_deref_mut(), taps.offset[j][i])
                            {
                                g[off] = g[off] + go * taps.cx[i] * taps.cy[j];
                            }
                            if G::WANTED {
                                let v = taps.value(plane, i, j);
                                gix = gix - v * go * dx[i] * taps.cy[j];
                                giy = giy - v * go * dy[j] * taps.cx[i];
                            }
                        }
                    }
                }
                grads.put(p, taps.gmx * gix, taps.gmy * giy);
            }
        }
    }
}
