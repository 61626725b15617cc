//! Grid sampling forward on the GPU, from a grid tensor or (fused) from an affine map: one
//! invocation per output point, all channels in a loop (the coordinates and weights are
//! computed once per point, as in the CPU kernel). The per-point pieces are shared with the
//! backward kernels ([`super::sample_backward`]).

use cubecl::prelude::*;

use super::coords::{
    BICUBIC, BILINEAR, NEAREST, cubic_coefficients, in_bounds, pad_coordinate, round_even,
    source_index_forward, to_index, unnormalize,
};

/// The normalized sampling coordinates (x, y) of output point `p` of batch item `n`: read
/// from a grid [N, P, 2], or `theta[n] · (x_j, y_i, 1)` with the base coordinates
/// `base = [x_0 .. x_{w_out-1}, y_0 .. y_{h_out-1}]` (`affine`). The affine association is
/// the CPU kernel's: theta0 x + (theta1 y + theta2).
#[cube]
pub fn point_coords<F: Float>(
    coords: &Tensor<F>,
    base: &Tensor<F>,
    n: usize,
    p: usize,
    w_out: usize,
    plane_out: usize,
    #[comptime] affine: bool,
) -> (F, F) {
    if affine {
        let t = n * 6;
        let x = base[p % w_out];
        let y = base[w_out + p / w_out];
        (
            coords[t] * x + (coords[t + 1] * y + coords[t + 2]),
            coords[t + 3] * x + (coords[t + 4] * y + coords[t + 5]),
        )
    } else {
        let g = (n * plane_out + p) * 2;
        (coords[g], coords[g + 1])
    }
}

/// Plane offset of pixel (y, x) of a plane `w` wide (the pixel must exist).
#[cube]
pub fn offset(y: i32, x: i32, w: u32) -> usize {
    y as usize * w as usize + x as usize
}

/// `plane[y, x]`, or 0 outside the plane. The read happens only for a pixel inside: an
/// empty input (a side of 0) is never touched.
#[cube]
pub fn read_or_zero<F: Float>(t: &Tensor<F>, plane: usize, y: i32, x: i32, h: u32, w: u32) -> F {
    let mut v = F::new(0.0);
    if in_bounds(y, x, h, w) {
        v = t[plane + offset(y, x, w)];
    }
    v
}

/// The four pixels around a bilinear sample, (nw, ne, sw, se) = `plane[y0.., x0..]`, 0
/// outside the plane.
#[cube]
pub fn bilinear_corners<F: Float>(
    t: &Tensor<F>,
    plane: usize,
    y0: i32,
    x0: i32,
    h: u32,
    w: u32,
) -> (F, F, F, F) {
    (
        read_or_zero::<F>(t, plane, y0, x0, h, w),
        read_or_zero::<F>(t, plane, y0, x0 + 1, h, w),
        read_or_zero::<F>(t, plane, y0 + 1, x0, h, w),
        read_or_zero::<F>(t, plane, y0 + 1, x0 + 1, h, w),
    )
}

/// The weights (nw, ne, sw, se) of the four corners, from the fractions of
/// [`bilinear_setup`].
#[cube]
pub fn bilinear_weights<F: Float>(fx: F, fx1: F, fy: F, fy1: F) -> (F, F, F, F) {
    (fx1 * fy1, fx * fy1, fx1 * fy, fx * fy)
}

/// The pixel (x, y) a nearest sample reads: the padded coordinate rounded half to even.
#[cube]
pub fn nearest_pixel<F: Float>(ix: F, iy: F) -> (i32, i32) {
    (
        to_index::<F>(round_even::<F>(ix)),
        to_index::<F>(round_even::<F>(iy)),
    )
}

/// The four coefficients of one axis of a bicubic sample as an array, indexed by tap.
#[cube]
pub fn taps_array<F: Float>(c0: F, c1: F, c2: F, c3: F) -> Array<F> {
    let mut a = Array::<F>::new(4usize);
    a[0] = c0;
    a[1] = c1;
    a[2] = c2;
    a[3] = c3;
    a
}

/// Bilinear corner and fractions of a padded pixel coordinate: (x0, y0, x - x0, x0 + 1 - x,
/// y - y0, y0 + 1 - y).
#[cube]
pub fn bilinear_setup<F: Float>(ix: F, iy: F) -> (i32, i32, F, F, F, F) {
    let one = F::new(1.0);
    let x0 = ix.floor();
    let y0 = iy.floor();
    (
        to_index::<F>(x0),
        to_index::<F>(y0),
        ix - x0,
        x0 + one - ix,
        iy - y0,
        y0 + one - iy,
    )
}

/// The 4x4 neighbourhood of a bicubic sample: padded tap columns `xs` and rows `ys`, their
/// weights `cx`, `cy`, the fractions (tx, ty) and d(pixel)/d(grid) (gmx, gmy).
#[derive(CubeType)]
pub struct CubicTaps<F: Float> {
    /// Tap columns (padded; may lie outside under zeros padding).
    pub xs: Array<i32>,
    /// Tap rows.
    pub ys: Array<i32>,
    /// Column weights.
    pub cx: Array<F>,
    /// Row weights.
    pub cy: Array<F>,
    /// x - floor(x) of the unpadded coordinate.
    pub tx: F,
    /// y - floor(y).
    pub ty: F,
    /// d(pixel x)/d(grid x).
    pub gmx: F,
    /// d(pixel y)/d(grid y).
    pub gmy: F,
}

/// The taps of the bicubic sample at grid coordinate (gx, gy), as the CPU's `CubicTaps::new`:
/// the fractions come from the unpadded coordinate, each tap is padded on its own.
#[cube]
pub fn cubic_taps<F: Float>(
    gx: F,
    gy: F,
    h_in: u32,
    w_in: u32,
    #[comptime] padding: u32,
    #[comptime] align: bool,
) -> CubicTaps<F> {
    let one = F::new(1.0);
    let (ix, gmx) = unnormalize::<F>(gx, w_in, align);
    let (iy, gmy) = unnormalize::<F>(gy, h_in, align);
    let x0 = ix.floor();
    let y0 = iy.floor();
    let tx = ix - x0;
    let ty = iy - y0;
    let mut xs = Array::<i32>::new(4usize);
    let mut ys = Array::<i32>::new(4usize);
    #[unroll]
    for i in 0..4u32 {
        let offset = F::cast_from(i) - one;
        xs[i as usize] = to_index::<F>(pad_coordinate::<F>(x0 + offset, w_in, padding, align));
        ys[i as usize] = to_index::<F>(pad_coordinate::<F>(y0 + offset, h_in, padding, align));
    }
    let (cx0, cx1, cx2, cx3) = cubic_coefficients::<F>(tx);
    let (cy0, cy1, cy2, cy3) = cubic_coefficients::<F>(ty);
    let cx = taps_array::<F>(cx0, cx1, cx2, cx3);
    let cy = taps_array::<F>(cy0, cy1, cy2, cy3);
    CubicTaps::<F> {
        xs,
        ys,
        cx,
        cy,
        tx,
        ty,
        gmx,
        gmy,
    }
}

/// Forward sampling: `output[n, c, p]` for every channel of output point `p` of item `n`
/// (one invocation per (n, p), `total` = N x P of them).
///
/// `input` [N, C, Hi, Wi]; `coords` a grid [N, P, 2] or theta [N, 2, 3] (`affine`, with the
/// base coordinates `base`); `output` [N, C, P]; all contiguous.
#[cube(launch)]
#[allow(clippy::too_many_arguments)]
pub fn sample_forward_kernel<F: Float>(
    input: &Tensor<F>,
    coords: &Tensor<F>,
    base: &Tensor<F>,
    output: &mut Tensor<F>,
    channels: u32,
    h_in: u32,
    w_in: u32,
    w_out: u32,
    plane_out: u32,
    total: u32,
    #[comptime] mode: u32,
    #[comptime] padding: u32,
    #[comptime] align: bool,
    #[comptime] affine: bool,
    #[define(F)] _dtype: ElemType,
) {
    let pos = ABSOLUTE_POS;
    if pos >= total as usize {
        terminate!();
    }
    let plane_out = plane_out as usize;
    let plane_in = (h_in * w_in) as usize;
    let n = pos / plane_out;
    let p = pos % plane_out;
    let channels = channels as usize;
    let (gx, gy) = point_coords::<F>(coords, base, n, p, w_out as usize, plane_out, affine);

    if comptime!(mode == BILINEAR) {
        let ix = source_index_forward::<F>(gx, w_in, padding, align);
        let iy = source_index_forward::<F>(gy, h_in, padding, align);
        let (x0, y0, fx, fx1, fy, fy1) = bilinear_setup::<F>(ix, iy);
        let (w_nw, w_ne, w_sw, w_se) = bilinear_weights::<F>(fx, fx1, fy, fy1);
        for c in 0..channels {
            let plane = (n * channels + c) * plane_in;
            let (nw, ne, sw, se) = bilinear_corners::<F>(input, plane, y0, x0, h_in, w_in);
            output[(n * channels + c) * plane_out + p] =
                nw * w_nw + ne * w_ne + sw * w_sw + se * w_se;
        }
    } else if comptime!(mode == NEAREST) {
        let ix = source_index_forward::<F>(gx, w_in, padding, align);
        let iy = source_index_forward::<F>(gy, h_in, padding, align);
        let (x, y) = nearest_pixel::<F>(ix, iy);
        for c in 0..channels {
            let v = read_or_zero::<F>(input, (n * channels + c) * plane_in, y, x, h_in, w_in);
            output[(n * channels + c) * plane_out + p] = v;
        }
    } else if comptime!(mode == BICUBIC) {
        let taps = cubic_taps::<F>(gx, gy, h_in, w_in, padding, align);
        for c in 0..channels {
            let plane = (n * channels + c) * plane_in;
            let mut acc = F::new(0.0);
            #[unroll]
            for j in 0..4usize {
                let mut row = F::new(0.0);
                #[unroll]
                for i in 0..4usize {
                    let v = read_or_zero::<F>(input, plane, taps.ys[j], taps.xs[i], h_in, w_in);
                    row += v * taps.cx[i];
                }
                acc += row * taps.cy[j];
            }
            output[(n * channels + c) * plane_out + p] = acc;
        }
    }
}
