//! Fused grid sampling: one pass forward, one pass backward, parallel over the batch.
//!
//! Each batch item is independent and written by exactly one thread, so results do not depend
//! on scheduling: the same inputs give bit-identical outputs and gradients.

use rayon::prelude::*;

use super::Real;
use super::coords::{
    cubic_coefficients, cubic_coefficients_grad, in_bounds, pad_coordinate, source_index,
    source_index_forward, unnormalize,
};
use crate::ops::{Interpolation, SampleOptions};

/// Sizes of one grid-sample call: input [n, c, h_in, w_in], grid [n, h_out, w_out, 2].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SampleShape {
    /// Batch size.
    pub n: usize,
    /// Channels.
    pub c: usize,
    /// Input height.
    pub h_in: usize,
    /// Input width.
    pub w_in: usize,
    /// Output height.
    pub h_out: usize,
    /// Output width.
    pub w_out: usize,
}

impl SampleShape {
    fn input_len(&self) -> usize {
        self.c * self.h_in * self.w_in
    }
    fn output_len(&self) -> usize {
        self.c * self.h_out * self.w_out
    }
    fn grid_len(&self) -> usize {
        self.h_out * self.w_out * 2
    }
}

/// Bilinear corner indices and weights for one output pixel.
struct Bilinear<T> {
    x0: i64,
    y0: i64,
    /// Weights of (y0,x0), (y0,x0+1), (y0+1,x0), (y0+1,x0+1).
    w: [T; 4],
    /// Fractional offsets: x - x0, x0 + 1 - x, y - y0, y0 + 1 - y.
    fx: T,
    fx1: T,
    fy: T,
    fy1: T,
}

#[inline(always)]
fn bilinear<T: Real>(ix: T, iy: T) -> Bilinear<T> {
    let x0f = ix.floor();
    let y0f = iy.floor();
    let one = T::one();
    let fx = ix - x0f;
    let fy = iy - y0f;
    let fx1 = x0f + one - ix;
    let fy1 = y0f + one - iy;
    Bilinear {
        x0: x0f.f64() as i64,
        y0: y0f.f64() as i64,
        w: [fx1 * fy1, fx * fy1, fx1 * fy, fx * fy],
        fx,
        fx1,
        fy,
        fy1,
    }
}

const CORNERS: [(i64, i64); 4] = [(0, 0), (0, 1), (1, 0), (1, 1)];

/// Output = grid_sample(input, grid) with PyTorch's semantics.
pub fn forward<T: Real>(input: &[T], grid: &[T], out: &mut [T], s: SampleShape, o: SampleOptions) {
    assert_eq!(
        input.len(),
        s.n * s.input_len(),
        "grid_sample: input length"
    );
    assert_eq!(grid.len(), s.n * s.grid_len(), "grid_sample: grid length");
    assert_eq!(
        out.len(),
        s.n * s.output_len(),
        "grid_sample: output length"
    );
    if s.output_len() == 0 {
        return;
    }
    out.par_chunks_mut(s.output_len())
        .enumerate()
        .for_each(|(n, out)| {
            let input = &input[n * s.input_len()..(n + 1) * s.input_len()];
            let grid = &grid[n * s.grid_len()..(n + 1) * s.grid_len()];
            forward_one(input, grid, out, s, o);
        });
}

fn forward_one<T: Real>(input: &[T], grid: &[T], out: &mut [T], s: SampleShape, o: SampleOptions) {
    let plane_in = s.h_in * s.w_in;
    let plane_out = s.h_out * s.w_out;
    for p in 0..plane_out {
        let gx = grid[2 * p];
        let gy = grid[2 * p + 1];
        match o.mode {
            Interpolation::Bilinear => {
                let ix = source_index_forward(gx, s.w_in, o.padding, o.align_corners);
                let iy = source_index_forward(gy, s.h_in, o.padding, o.align_corners);
                let b = bilinear(ix, iy);
                let mut offsets = [usize::MAX; 4];
                for (k, (dy, dx)) in CORNERS.iter().enumerate() {
                    let (y, x) = (b.y0 + dy, b.x0 + dx);
                    if in_bounds(y, x, s.h_in, s.w_in) {
                        offsets[k] = y as usize * s.w_in + x as usize;
                    }
                }
                for c in 0..s.c {
                    let plane = &input[c * plane_in..(c + 1) * plane_in];
                    let mut acc = T::zero();
                    for k in 0..4 {
                        if offsets[k] != usize::MAX {
                            acc = acc + plane[offsets[k]] * b.w[k];
                        }
                    }
                    out[c * plane_out + p] = acc;
                }
            }
            Interpolation::Nearest => {
                let ix = source_index_forward(gx, s.w_in, o.padding, o.align_corners);
                let iy = source_index_forward(gy, s.h_in, o.padding, o.align_corners);
                let x = ix.f64().round_ties_even() as i64;
                let y = iy.f64().round_ties_even() as i64;
                let inside = in_bounds(y, x, s.h_in, s.w_in);
                for c in 0..s.c {
                    out[c * plane_out + p] = if inside {
                        input[c * plane_in + y as usize * s.w_in + x as usize]
                    } else {
                        T::zero()
                    };
                }
            }
            Interpolation::Bicubic => {
                let taps = CubicTaps::new(gx, gy, s, o);
                for c in 0..s.c {
                    let plane = &input[c * plane_in..(c + 1) * plane_in];
                    let mut acc = T::zero();
                    for j in 0..4 {
                        let mut row = T::zero();
                        for i in 0..4 {
                            row = row + taps.value(plane, i, j) * taps.cx[i];
                        }
                        acc = acc + row * taps.cy[j];
                    }
                    out[c * plane_out + p] = acc;
                }
            }
        }
    }
}

/// The 4x4 neighbourhood of a bicubic sample: padded tap offsets and weights.
struct CubicTaps<T> {
    /// Offset into a plane of tap (i, j), or usize::MAX when it falls outside.
    offset: [[usize; 4]; 4],
    cx: [T; 4],
    cy: [T; 4],
    tx: T,
    ty: T,
    /// d(pixel)/d(grid) for x and y.
    gmx: T,
    gmy: T,
}

impl<T: Real> CubicTaps<T> {
    fn new(gx: T, gy: T, s: SampleShape, o: SampleOptions) -> Self {
        let (ix, gmx) = unnormalize(gx, s.w_in, o.align_corners);
        let (iy, gmy) = unnormalize(gy, s.h_in, o.align_corners);
        let x0 = ix.floor();
        let y0 = iy.floor();
        let tx = ix - x0;
        let ty = iy - y0;
        let mut offset = [[usize::MAX; 4]; 4];
        for (j, row) in offset.iter_mut().enumerate() {
            let yj = y0 + T::of(j as f64 - 1.0);
            let y = pad_coordinate(yj, s.h_in, o.padding, o.align_corners).f64() as i64;
            for (i, slot) in row.iter_mut().enumerate() {
                let xi = x0 + T::of(i as f64 - 1.0);
                let x = pad_coordinate(xi, s.w_in, o.padding, o.align_corners).f64() as i64;
                if in_bounds(y, x, s.h_in, s.w_in) {
                    *slot = y as usize * s.w_in + x as usize;
                }
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
        let off = self.offset[j][i];
        if off == usize::MAX {
            T::zero()
        } else {
            plane[off]
        }
    }
}

/// Gradients of grid_sample. `grad_input` and `grad_grid`, when given, are overwritten.
pub fn backward<T: Real>(
    input: &[T],
    grid: &[T],
    grad_out: &[T],
    grad_input: Option<&mut [T]>,
    grad_grid: Option<&mut [T]>,
    s: SampleShape,
    o: SampleOptions,
) {
    assert_eq!(
        input.len(),
        s.n * s.input_len(),
        "grid_sample backward: input length"
    );
    assert_eq!(
        grid.len(),
        s.n * s.grid_len(),
        "grid_sample backward: grid length"
    );
    assert_eq!(
        grad_out.len(),
        s.n * s.output_len(),
        "grid_sample backward: grad length"
    );
    let mut gin: Vec<Option<&mut [T]>> = match grad_input {
        Some(g) => {
            assert_eq!(
                g.len(),
                s.n * s.input_len(),
                "grid_sample backward: grad_input length"
            );
            g.fill(T::zero());
            chunks(g, s.input_len(), s.n)
        }
        None => (0..s.n).map(|_| None).collect(),
    };
    let mut ggrid: Vec<Option<&mut [T]>> = match grad_grid {
        Some(g) => {
            assert_eq!(
                g.len(),
                s.n * s.grid_len(),
                "grid_sample backward: grad_grid length"
            );
            g.fill(T::zero());
            chunks(g, s.grid_len(), s.n)
        }
        None => (0..s.n).map(|_| None).collect(),
    };
    gin.par_iter_mut()
        .zip(ggrid.par_iter_mut())
        .enumerate()
        .for_each(|(n, (gin, ggrid))| {
            backward_one(
                &input[n * s.input_len()..(n + 1) * s.input_len()],
                &grid[n * s.grid_len()..(n + 1) * s.grid_len()],
                &grad_out[n * s.output_len()..(n + 1) * s.output_len()],
                gin.as_deref_mut(),
                ggrid.as_deref_mut(),
                s,
                o,
            );
        });
}

fn chunks<T>(data: &mut [T], len: usize, n: usize) -> Vec<Option<&mut [T]>> {
    if len == 0 {
        return (0..n).map(|_| Some(&mut [][..])).collect();
    }
    data.chunks_mut(len).map(Some).collect()
}

fn backward_one<T: Real>(
    input: &[T],
    grid: &[T],
    grad_out: &[T],
    mut gin: Option<&mut [T]>,
    mut ggrid: Option<&mut [T]>,
    s: SampleShape,
    o: SampleOptions,
) {
    let plane_in = s.h_in * s.w_in;
    let plane_out = s.h_out * s.w_out;
    let want_grid = ggrid.is_some() && o.mode != Interpolation::Nearest;
    for p in 0..plane_out {
        let gx = grid[2 * p];
        let gy = grid[2 * p + 1];
        match o.mode {
            Interpolation::Bilinear => {
                let (ix, gmx) = source_index(gx, s.w_in, o.padding, o.align_corners);
                let (iy, gmy) = source_index(gy, s.h_in, o.padding, o.align_corners);
                let b = bilinear(ix, iy);
                let mut offsets = [usize::MAX; 4];
                for (k, (dy, dx)) in CORNERS.iter().enumerate() {
                    let (y, x) = (b.y0 + dy, b.x0 + dx);
                    if in_bounds(y, x, s.h_in, s.w_in) {
                        offsets[k] = y as usize * s.w_in + x as usize;
                    }
                }
                let (mut gix, mut giy) = (T::zero(), T::zero());
                for c in 0..s.c {
                    let go = grad_out[c * plane_out + p];
                    if let Some(gin) = gin.as_deref_mut() {
                        let plane = &mut gin[c * plane_in..(c + 1) * plane_in];
                        for k in 0..4 {
                            if offsets[k] != usize::MAX {
                                plane[offsets[k]] = plane[offsets[k]] + b.w[k] * go;
                            }
                        }
                    }
                    if want_grid {
                        let plane = &input[c * plane_in..(c + 1) * plane_in];
                        let v = |k: usize| {
                            if offsets[k] == usize::MAX {
                                T::zero()
                            } else {
                                plane[offsets[k]]
                            }
                        };
                        let (nw, ne, sw, se) = (v(0), v(1), v(2), v(3));
                        gix = gix + ((ne - nw) * b.fy1 + (se - sw) * b.fy) * go;
                        giy = giy + ((sw - nw) * b.fx1 + (se - ne) * b.fx) * go;
                    }
                }
                if want_grid && let Some(gg) = ggrid.as_deref_mut() {
                    gg[2 * p] = gmx * gix;
                    gg[2 * p + 1] = gmy * giy;
                }
            }
            Interpolation::Nearest => {
                let Some(gin) = gin.as_deref_mut() else {
                    continue;
                };
                let (ix, _) = source_index(gx, s.w_in, o.padding, o.align_corners);
                let (iy, _) = source_index(gy, s.h_in, o.padding, o.align_corners);
                let x = ix.f64().round_ties_even() as i64;
                let y = iy.f64().round_ties_even() as i64;
                if in_bounds(y, x, s.h_in, s.w_in) {
                    let off = y as usize * s.w_in + x as usize;
                    for c in 0..s.c {
                        let g = &mut gin[c * plane_in + off];
                        *g = *g + grad_out[c * plane_out + p];
                    }
                }
            }
            Interpolation::Bicubic => {
                let taps = CubicTaps::new(gx, gy, s, o);
                let (dx, dy) = if want_grid {
                    (
                        cubic_coefficients_grad(taps.tx),
                        cubic_coefficients_grad(taps.ty),
                    )
                } else {
                    ([T::zero(); 4], [T::zero(); 4])
                };
                let (mut gix, mut giy) = (T::zero(), T::zero());
                for c in 0..s.c {
                    let go = grad_out[c * plane_out + p];
                    if let Some(gin) = gin.as_deref_mut() {
                        let plane = &mut gin[c * plane_in..(c + 1) * plane_in];
                        for j in 0..4 {
                            for i in 0..4 {
                                let off = taps.offset[j][i];
                                if off != usize::MAX {
                                    plane[off] = plane[off] + go * taps.cx[i] * taps.cy[j];
                                }
                            }
                        }
                    }
                    if want_grid {
                        let plane = &input[c * plane_in..(c + 1) * plane_in];
                        for j in 0..4 {
                            for i in 0..4 {
                                let v = taps.value(plane, i, j);
                                gix = gix - v * dx[i] * taps.cy[j] * go;
                                giy = giy - v * dy[j] * taps.cx[i] * go;
                            }
                        }
                    }
                }
                if want_grid && let Some(gg) = ggrid.as_deref_mut() {
                    gg[2 * p] = taps.gmx * gix;
                    gg[2 * p + 1] = taps.gmy * giy;
                }
            }
        }
    }
}
