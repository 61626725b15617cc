//! Grid sampling backward on the GPU, deterministic: no float atomics anywhere.
//!
//! - **Input gradient** (a scatter: many output points add to one input pixel). The output
//!   points of each (n, c) plane are cut into `S` fixed, contiguous chunks; one invocation per
//!   (n, c, chunk) adds its chunk's contributions, point by point in order, to a private
//!   zeroed plane of a partial buffer [N, C, S, Hi, Wi]; [`sum_partials_kernel`] then adds the
//!   S partials of every pixel in chunk order. Nothing depends on scheduling, so two runs are
//!   bit-identical. `S` depends only on the shapes (see `gpu::partial_chunks`); with `S = 1`
//!   the invocation writes the gradient plane itself and the sum is skipped.
//! - **Grid gradient**: one invocation per output point, channels summed in order
//!   ([`grid_grad_kernel`]); no two invocations write the same place.
//! - **Theta gradient** (affine_sample, affine_grid): one cube per batch item; each unit sums
//!   a fixed, strided subset of the points, then a shared-memory tree of fixed shape adds the
//!   units' sums ([`theta_grad_kernel`]).

use cubecl::prelude::*;

use super::coords::{
    BICUBIC, BILINEAR, NEAREST, cubic_coefficients_grad, in_bounds, is_inf, is_nan, source_index,
};
use super::sample::{
    bilinear_corners, bilinear_setup, bilinear_weights, cubic_taps, nearest_pixel, offset,
    point_coords, read_or_zero, taps_array,
};

/// Units per cube of the theta-gradient reduction. A compile-time constant so that the
/// reduction tree, and with it the rounding of the result, is the same on every device.
pub const THETA_UNITS: u32 = 64;
/// log2 of [`THETA_UNITS`]: the levels of the reduction tree.
const THETA_LEVELS: usize = 6;

/// Adds `value` to `plane[y, x]` if that pixel exists.
// Written out as `t[at] = t[at] + value`: the form the kernels were tested with.
#[allow(clippy::assign_op_pattern)]
#[cube]
fn add_if_inside<F: Float>(
    t: &mut Tensor<F>,
    plane: usize,
    y: i32,
    x: i32,
    h: u32,
    w: u32,
    value: F,
) {
    if in_bounds(y, x, h, w) {
        let at = plane + offset(y, x, w);
        t[at] = t[at] + value;
    }
}

/// The input gradient's contributions of one chunk of output points of one (n, c) plane,
/// added in point order to plane `(n C + c) S + s` of `target` (zeroed by the caller):
/// [N, C, S, Hi, Wi] partials, or the gradient itself when S = 1. One invocation per
/// (n, c, s); `chunk` points each (the last chunk may be shorter).
#[cube(launch)]
#[allow(clippy::too_many_arguments)]
pub fn input_grad_kernel<F: Float>(
    coords: &Tensor<F>,
    base: &Tensor<F>,
    grad_output: &Tensor<F>,
    target: &mut Tensor<F>,
    channels: u32,
    h_in: u32,
    w_in: u32,
    w_out: u32,
    plane_out: u32,
    chunks: u32,
    chunk: u32,
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
    let chunks = chunks as usize;
    let nc = pos / chunks;
    let s = pos % chunks;
    let n = nc / channels as usize;
    let plane_out = plane_out as usize;
    let plane = pos * (h_in * w_in) as usize;
    let first = s * chunk as usize;
    let mut end = first + chunk as usize;
    if end > plane_out {
        end = plane_out;
    }
    for p in first..end {
        let (gx, gy) = point_coords::<F>(coords, base, n, p, w_out as usize, plane_out, affine);
        let go = grad_output[nc * plane_out + p];
        if comptime!(mode == BILINEAR) {
            let (ix, _) = source_index::<F>(gx, w_in, padding, align);
            let (iy, _) = source_index::<F>(gy, h_in, padding, align);
            let (x0, y0, fx, fx1, fy, fy1) = bilinear_setup::<F>(ix, iy);
            let (w_nw, w_ne, w_sw, w_se) = bilinear_weights::<F>(fx, fx1, fy, fy1);
            add_if_inside::<F>(target, plane, y0, x0, h_in, w_in, w_nw * go);
            add_if_inside::<F>(target, plane, y0, x0 + 1, h_in, w_in, w_ne * go);
            add_if_inside::<F>(target, plane, y0 + 1, x0, h_in, w_in, w_sw * go);
            add_if_inside::<F>(target, plane, y0 + 1, x0 + 1, h_in, w_in, w_se * go);
        } else if comptime!(mode == NEAREST) {
            let (ix, _) = source_index::<F>(gx, w_in, padding, align);
            let (iy, _) = source_index::<F>(gy, h_in, padding, align);
            let (x, y) = nearest_pixel::<F>(ix, iy);
            add_if_inside::<F>(target, plane, y, x, h_in, w_in, go);
        } else if comptime!(mode == BICUBIC) {
            let taps = cubic_taps::<F>(gx, gy, h_in, w_in, padding, align);
            #[unroll]
            for j in 0..4usize {
                #[unroll]
                for i in 0..4usize {
                    let value = go * taps.cx[i] * taps.cy[j];
                    add_if_inside::<F>(target, plane, taps.ys[j], taps.xs[i], h_in, w_in, value);
                }
            }
        }
    }
}

/// `out[plane, i] = sum over s of partials[plane, s, i]`, s in order: one invocation per
/// element of the input gradient ([NC, Hi Wi], `total` of them).
#[cube(launch)]
pub fn sum_partials_kernel<F: Float>(
    partials: &Tensor<F>,
    output: &mut Tensor<F>,
    chunks: u32,
    plane_in: u32,
    total: u32,
    #[define(F)] _dtype: ElemType,
) {
    let pos = ABSOLUTE_POS;
    if pos >= total as usize {
        terminate!();
    }
    let plane_in = plane_in as usize;
    let chunks = chunks as usize;
    let nc = pos / plane_in;
    let i = pos % plane_in;
    let start = nc * chunks * plane_in + i;
    let mut acc = partials[start];
    for s in 1..chunks {
        acc += partials[start + s * plane_in];
    }
    output[pos] = acc;
}

/// What `acc -= a * go` did over terms with an infinite `go`, for an accumulator `acc`: the
/// CPU's IEEE outcome without computing it (see [`point_coord_grad`]).
#[derive(CubeType)]
pub struct InfTally {
    /// A term was NaN (a = 0 or NaN).
    nan: bool,
    /// A term pushed the accumulator to +inf.
    up: bool,
    /// A term pushed it to -inf.
    down: bool,
}

#[cube]
impl InfTally {
    /// Nothing tallied.
    // A `#[cube]` constructor: `Default` would not be callable from kernel code.
    #[allow(clippy::new_without_default)]
    pub fn new() -> InfTally {
        InfTally {
            nan: false,
            up: false,
            down: false,
        }
    }

    /// Tallies `acc -= a * go` for an infinite `go`.
    pub fn subtract_infinite<F: Float>(&mut self, a: F, go: F) {
        let zero = F::new(0.0);
        // a * go is NaN for a = 0 or NaN, else an infinity of sign(a) sign(go).
        let nan = is_nan::<F>(a) || a == zero;
        let positive = (a > zero) == (go > zero);
        self.nan = self.nan || nan;
        self.down = self.down || (!nan && positive);
        self.up = self.up || (!nan && !positive);
    }

    /// The accumulator's final value, given its value from the finite terms; `specials` holds
    /// [NaN, +inf] (WGSL has no literal for either).
    pub fn resolve<F: Float>(&self, acc: F, specials: &Tensor<F>) -> F {
        let zero = F::new(0.0);
        let acc_inf = is_inf::<F>(acc);
        let nan = self.nan
            || is_nan::<F>(acc)
            || (self.up && self.down)
            || (self.up && acc_inf && acc < zero)
            || (self.down && acc_inf && acc > zero);
        let inf = specials[1];
        let mut out = acc;
        if self.up {
            out = inf;
        }
        if self.down {
            out = -inf;
        }
        if nan {
            out = specials[0];
        }
        out
    }
}

/// Gradient of the loss with respect to output point `p`'s sampling coordinates (x, y),
/// summed over the channels in order: the CPU kernel's formulas. Nearest sampling has none.
#[cube]
#[allow(clippy::too_many_arguments)]
pub fn point_coord_grad<F: Float>(
    input: &Tensor<F>,
    grad_output: &Tensor<F>,
    specials: &Tensor<F>,
    gx: F,
    gy: F,
    n: usize,
    p: usize,
    channels: usize,
    h_in: u32,
    w_in: u32,
    plane_out: usize,
    #[comptime] mode: u32,
    #[comptime] padding: u32,
    #[comptime] align: bool,
) -> (F, F) {
    let plane_in = (h_in * w_in) as usize;
    let mut gix = F::new(0.0);
    let mut giy = F::new(0.0);
    let mut gmx = F::new(0.0);
    let mut gmy = F::new(0.0);
    if comptime!(mode == BILINEAR) {
        let (ix, mx) = source_index::<F>(gx, w_in, padding, align);
        let (iy, my) = source_index::<F>(gy, h_in, padding, align);
        gmx = mx;
        gmy = my;
        let (x0, y0, fx, fx1, fy, fy1) = bilinear_setup::<F>(ix, iy);
        for c in 0..channels {
            let go = grad_output[(n * channels + c) * plane_out + p];
            let plane = (n * channels + c) * plane_in;
            let (nw, ne, sw, se) = bilinear_corners::<F>(input, plane, y0, x0, h_in, w_in);
            gix += ((ne - nw) * fy1 + (se - sw) * fy) * go;
            giy += ((sw - nw) * fx1 + (se - ne) * fx) * go;
        }
    } else if comptime!(mode == BICUBIC) {
        let taps = cubic_taps::<F>(gx, gy, h_in, w_in, padding, align);
        gmx = taps.gmx;
        gmy = taps.gmy;
        let (dx0, dx1, dx2, dx3) = cubic_coefficients_grad::<F>(taps.tx);
        let (dy0, dy1, dy2, dy3) = cubic_coefficients_grad::<F>(taps.ty);
        let dx = taps_array::<F>(dx0, dx1, dx2, dx3);
        let dy = taps_array::<F>(dy0, dy1, dy2, dy3);
        // An infinite upstream gradient: shader compilers may factor `go` out of the sum
        // (allowed for non-strict float math), which turns the CPU's NaN (0 x inf, or
        // inf - inf between terms) into an infinity. Such terms are tallied instead, and the
        // CPU's outcome is stated at the end.
        let mut sx = InfTally::new();
        let mut sy = InfTally::new();
        for c in 0..channels {
            let go = grad_output[(n * channels + c) * plane_out + p];
            let plane = (n * channels + c) * plane_in;
            let go_inf = is_inf::<F>(go);
            #[unroll]
            for j in 0..4usize {
                #[unroll]
                for i in 0..4usize {
                    let v = read_or_zero::<F>(input, plane, taps.ys[j], taps.xs[i], h_in, w_in);
                    let ax = v * dx[i] * taps.cy[j];
                    let ay = v * dy[j] * taps.cx[i];
                    if go_inf {
                        sx.subtract_infinite::<F>(ax, go);
                        sy.subtract_infinite::<F>(ay, go);
                    } else {
                        gix -= ax * go;
                        giy -= ay * go;
                    }
                }
            }
        }
        gix = sx.resolve::<F>(gix, specials);
        giy = sy.resolve::<F>(giy, specials);
    }
    // Nearest: piecewise constant, zero gradient (gmx = gmy = 0 times gix = giy = 0).
    (gmx * gix, gmy * giy)
}

/// Grid gradient [N, P, 2]: one invocation per output point (`total` = N x P).
#[cube(launch)]
#[allow(clippy::too_many_arguments)]
pub fn grid_grad_kernel<F: Float>(
    input: &Tensor<F>,
    grid: &Tensor<F>,
    grad_output: &Tensor<F>,
    specials: &Tensor<F>,
    grad_grid: &mut Tensor<F>,
    channels: u32,
    h_in: u32,
    w_in: u32,
    plane_out: u32,
    total: u32,
    #[comptime] mode: u32,
    #[comptime] padding: u32,
    #[comptime] align: bool,
    #[define(F)] _dtype: ElemType,
) {
    let pos = ABSOLUTE_POS;
    if pos >= total as usize {
        terminate!();
    }
    let plane_out = plane_out as usize;
    let n = pos / plane_out;
    let p = pos % plane_out;
    let gx = grid[pos * 2];
    let gy = grid[pos * 2 + 1];
    let (dx, dy) = point_coord_grad::<F>(
        input,
        grad_output,
        specials,
        gx,
        gy,
        n,
        p,
        channels as usize,
        h_in,
        w_in,
        plane_out,
        mode,
        padding,
        align,
    );
    grad_grid[pos * 2] = dx;
    grad_grid[pos * 2 + 1] = dy;
}

/// Theta gradient [N, 2, 3] = sum over points of (gx x, gx y, gx, gy x, gy y, gy), where
/// (gx, gy) is the gradient with respect to the point's sampling coordinates: read from
/// `grad_grid` [N, P, 2] (affine_grid backward), or computed from the sampling
/// (`from_sampling`: affine_sample backward, `coords` = theta). One cube of [`THETA_UNITS`]
/// units per batch item: unit u sums points u, u + U, u + 2U, ... in order, then a fixed tree
/// in shared memory adds the units' sums.
#[cube(launch)]
#[allow(clippy::too_many_arguments)]
pub fn theta_grad_kernel<F: Float>(
    grad_grid: &Tensor<F>,
    input: &Tensor<F>,
    coords: &Tensor<F>,
    base: &Tensor<F>,
    grad_output: &Tensor<F>,
    specials: &Tensor<F>,
    grad_theta: &mut Tensor<F>,
    channels: u32,
    h_in: u32,
    w_in: u32,
    w_out: u32,
    plane_out: u32,
    #[comptime] mode: u32,
    #[comptime] padding: u32,
    #[comptime] align: bool,
    #[comptime] from_sampling: bool,
    #[define(F)] _dtype: ElemType,
) {
    let units = comptime!(THETA_UNITS as usize);
    let n = CUBE_POS_X as usize;
    let unit = UNIT_POS_X as usize;
    let plane_out = plane_out as usize;
    let w_out = w_out as usize;
    let mut a0 = F::new(0.0);
    let mut a1 = F::new(0.0);
    let mut a2 = F::new(0.0);
    let mut a3 = F::new(0.0);
    let mut a4 = F::new(0.0);
    let mut a5 = F::new(0.0);
    let mut p = unit;
    while p < plane_out {
        let x = base[p % w_out];
        let y = base[w_out + p / w_out];
        let (gx, gy) = if from_sampling {
            let (cx, cy) = point_coords::<F>(coords, base, n, p, w_out, plane_out, true);
            point_coord_grad::<F>(
                input,
                grad_output,
                specials,
                cx,
                cy,
                n,
                p,
                channels as usize,
                h_in,
                w_in,
                plane_out,
                mode,
                padding,
                align,
            )
        } else {
            let g = (n * plane_out + p) * 2;
            (grad_grid[g], grad_grid[g + 1])
        };
        a0 += gx * x;
        a1 += gx * y;
        a2 += gx;
        a3 += gy * x;
        a4 += gy * y;
        a5 += gy;
        p += units;
    }
    let mut shared = Shared::<[F]>::new_slice(comptime!(6 * THETA_UNITS as usize));
    shared[unit] = a0;
    shared[units + unit] = a1;
    shared[2 * units + unit] = a2;
    shared[3 * units + unit] = a3;
    shared[4 * units + unit] = a4;
    shared[5 * units + unit] = a5;
    sync_cube();
    // Unrolled, so that every barrier sits in uniform control flow.
    #[unroll]
    for level in 0..THETA_LEVELS {
        let stride = units >> (level + 1);
        if unit < stride {
            #[unroll]
            for k in 0..6usize {
                let at = k * units + unit;
                shared[at] = shared[at] + shared[at + stride];
            }
        }
        sync_cube();
    }
    if unit < 6 {
        grad_theta[n * 6 + unit] = shared[unit * units];
    }
}

/// Sets the first `total` elements of `t` to zero (one invocation each): the partial planes
/// start from zero. Kernels of one stream run in order, so the scatter sees the zeros.
#[cube(launch)]
pub fn fill_zero_kernel<F: Float>(t: &mut Tensor<F>, total: u32, #[define(F)] _dtype: ElemType) {
    let pos = ABSOLUTE_POS;
    if pos >= total as usize {
        terminate!();
    }
    t[pos] = F::new(0.0);
}
