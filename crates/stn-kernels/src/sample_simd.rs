//! Bilinear sampling of f32 tensors, a vector of output pixels at a time (zeros and border
//! padding; the scalar code handles the rest), one source for every path ([`crate::simd`]).
//! Each lane computes exactly what the scalar code computes, in the same order, fusing only the
//! multiply-add the scalar code fuses (unnormalizing), so outputs and grid gradients are
//! bit-identical to the scalar path's on every path, NaN and infinite coordinates included;
//! input gradients are summed in another (fixed) order.

use std::mem::MaybeUninit;

use crate::sample_shape::SampleShape;
use crate::simd::{MAX_LANES, Simd};

/// Where the lanes' sampling coordinates come from.
#[derive(Clone, Copy)]
pub enum VecCoords<'a> {
    /// A grid plane, interleaved (x, y).
    Grid(&'a [f32]),
    /// theta · (bx, by, 1).
    Affine {
        /// theta, row-major [2, 3].
        theta: [f32; 6],
        /// Base x per output pixel.
        bx: &'a [f32],
        /// Base y per output pixel.
        by: &'a [f32],
    },
}

/// Where coordinate gradients go.
pub enum VecGrads<'a> {
    /// Not wanted.
    None,
    /// A grid gradient plane, interleaved (x, y): each value written once.
    Grid(&'a mut [MaybeUninit<f32>]),
    /// theta's gradient: per-lane partial sums, then [`backward_item`] returns their totals.
    Theta {
        /// Base x per output pixel.
        bx: &'a [f32],
        /// Base y per output pixel.
        by: &'a [f32],
    },
}

/// The coordinates of output pixels p..p + LANES.
///
/// # Safety
/// Those pixels must be inside the plane that `c` holds coordinates for (`check_coords`).
#[inline(always)]
unsafe fn load_coords<S: Simd>(simd: S, c: &VecCoords, p: usize) -> (S::F, S::F) {
    match c {
        VecCoords::Grid(g) => {
            debug_assert!(2 * (p + S::LANES) <= g.len());
            // SAFETY: the caller guarantees pixels p..p + LANES inside the grid plane, i.e.
            // 2 x LANES floats from 2 p.
            unsafe { simd.load_pairs(g.as_ptr().add(2 * p)) }
        }
        VecCoords::Affine { theta: t, bx, by } => {
            debug_assert!(p + S::LANES <= bx.len().min(by.len()));
            // SAFETY: the caller guarantees pixels p..p + LANES inside both base planes.
            let (x, y) = unsafe { (simd.load(bx.as_ptr().add(p)), simd.load(by.as_ptr().add(p))) };
            let s = |v| simd.splat(v);
            // theta0 x + (theta1 y + theta2), as the scalar code.
            let gx = simd.add(
                simd.mul(s(t[0]), x),
                simd.add(simd.mul(s(t[1]), y), s(t[2])),
            );
            let gy = simd.add(
                simd.mul(s(t[3]), x),
                simd.add(simd.mul(s(t[4]), y), s(t[5])),
            );
            (gx, gy)
        }
    }
}

/// Pixel coordinates of normalized coordinates, and d(pixel)/d(coordinate), with PyTorch's
/// border clipping (see `coords.rs`: the same rules, lane by lane).
#[inline(always)]
fn pixel<S: Simd>(
    simd: S,
    g: S::F,
    size: usize,
    border: bool,
    align: bool,
    backward: bool,
) -> (S::F, S::F) {
    let s = |v| simd.splat(v);
    let one = s(1.0);
    let sizef = size as f32;
    // As `coords::unnormalize`: PyTorch's CPU formulas, the multiply-add fused.
    let (mut x, gm) = if align {
        let scale = (sizef - 1.0) * 0.5;
        (simd.mul(simd.add(g, one), s(scale)), scale)
    } else {
        let scale = sizef * 0.5;
        (
            simd.fused_mul_add(simd.add(g, one), s(scale), s(-0.5)),
            scale,
        )
    };
    let mut gm = s(gm);
    if border {
        let max = s(sizef - 1.0);
        if backward {
            // `clip_coordinates_get_grad`: NaN stays NaN (and passes the gradient); the
            // borders themselves pass none.
            let lo = simd.le(x, simd.zero());
            let hi = simd.ge(x, max);
            x = simd.select(hi, max, x);
            x = simd.select(lo, simd.zero(), x);
            gm = simd.select(simd.or(lo, hi), simd.zero(), gm);
        } else {
            // `clip_coordinates`: minps(maxps(x, 0), max), which sends NaN to 0.
            x = simd.min(simd.max(x, simd.zero()), max);
        }
    }
    (x, gm)
}

/// Bilinear interpolation state of one vector of pixels.
#[derive(Clone, Copy)]
struct Lanes<S: Simd> {
    simd: S,
    fx: S::F,
    fx1: S::F,
    fy: S::F,
    fy1: S::F,
    /// Row-major index of each lane's top-left neighbour (may be outside the plane).
    i00: S::I,
    /// Which of the four neighbours (nw, ne, sw, se) are inside the input.
    mask: [S::M; 4],
    /// floor of the pixel coordinates.
    x0f: S::F,
    y0f: S::F,
}

impl<S: Simd> Lanes<S> {
    /// As `sample_scalar::Bilinear::new`: weights from the coordinates themselves (NaN for a
    /// NaN or infinite one), `1 - w` and `1 - n` for the far weights, and NaN or huge corner
    /// coordinates converted to `i32::MIN` (out of range, with its neighbour).
    #[inline(always)]
    fn new(simd: S, ix: S::F, iy: S::F, h: usize, w: usize) -> Self {
        let one = simd.splat(1.0);
        let (x0f, y0f) = (simd.floor(ix), simd.floor(iy));
        let (x0, y0) = (simd.to_i32(x0f), simd.to_i32(y0f));
        let (fx, fy) = (simd.sub(ix, x0f), simd.sub(iy, y0f));
        let i1 = simd.splat_i(1);
        let (x1, y1) = (simd.add_i(x0, i1), simd.add_i(y0, i1));
        let inside = |v: S::I, n: usize| {
            simd.and(
                simd.gt_i(v, simd.splat_i(-1)),
                simd.gt_i(simd.splat_i(n as i32), v),
            )
        };
        let (vx0, vx1, vy0, vy1) = (inside(x0, w), inside(x1, w), inside(y0, h), inside(y1, h));
        Lanes {
            simd,
            fx,
            fx1: simd.sub(one, fx),
            fy,
            fy1: simd.sub(one, fy),
            i00: simd.add_i(simd.mul_i(y0, simd.splat_i(w as i32)), x0),
            mask: [
                simd.and(vx0, vy0),
                simd.and(vx1, vy0),
                simd.and(vx0, vy1),
                simd.and(vx1, vy1),
            ],
            x0f,
            y0f,
        }
    }

    /// Lanes whose top-right neighbour is the next lane's top-left one (and so their
    /// bottom-right the next one's bottom-left), for interior lanes: the common case wherever
    /// the sampling grid is not shrunk much. Never the last lane.
    #[inline(always)]
    fn shared_with_next(&self) -> S::M {
        let simd = self.simd;
        let right = simd.add(self.x0f, simd.splat(1.0));
        simd.and(
            simd.eq(simd.next_lane(self.x0f), right),
            simd.eq(simd.next_lane(self.y0f), self.y0f),
        )
    }

    #[inline(always)]
    fn weights(&self) -> [S::F; 4] {
        let simd = self.simd;
        [
            simd.mul(self.fx1, self.fy1),
            simd.mul(self.fx, self.fy1),
            simd.mul(self.fx1, self.fy),
            simd.mul(self.fx, self.fy),
        ]
    }

    /// Whether all four neighbours of every lane are inside the input.
    #[inline(always)]
    fn interior(&self) -> bool {
        let (simd, m) = (self.simd, self.mask);
        let all = simd.and(simd.and(m[0], m[1]), simd.and(m[2], m[3]));
        simd.bits(all) == simd.bits(simd.all_set())
    }

    /// The four neighbours' values in a plane (zero outside).
    ///
    /// When every neighbour is inside (`interior`, the common case), two 8-byte loads per
    /// pixel fetch the (x0, x0+1) pairs of both rows (fewer instructions than four gathers on
    /// the machines measured); otherwise one masked gather per neighbour (per-lane loads on
    /// the paths without gathers) reads the in-bounds ones.
    ///
    /// # Safety
    /// `plane` must be the `h x w` input plane these lanes were computed for (`Lanes::new`),
    /// `li` their [`Lanes::index`], and `interior` their [`Lanes::interior`].
    #[inline(always)]
    unsafe fn gather(&self, li: &LaneIndex, plane: &[f32], w: usize, interior: bool) -> [S::F; 4] {
        let (simd, p) = (self.simd, plane.as_ptr());
        if interior {
            // SAFETY: every neighbour of every lane is inside the plane (`interior`), so the
            // pairs (i00, i00 + 1) of the top row and (i00 + w, i00 + w + 1) of the bottom
            // row are readable, and p + w is inside the plane or one past it.
            return unsafe {
                let (nw, ne) = simd.gather_pairs(p, &li.i00);
                let (sw, se) = simd.gather_pairs(p.add(w), &li.i00);
                [nw, ne, sw, se]
            };
        }
        let offs = [0, 1, w as i32, w as i32 + 1];
        core::array::from_fn(|k| {
            let idx = simd.add_i(self.i00, simd.splat_i(offs[k]));
            // SAFETY: `mask[k]` sets exactly the lanes whose neighbour k is inside the h x w
            // plane, i.e. whose index i00 + offs[k] is in bounds; only those are read.
            unsafe { simd.gather(p, idx, self.mask[k]) }
        })
    }

    /// The lanes' top-left indices and neighbour masks as plain arrays.
    #[inline(always)]
    fn index(&self) -> LaneIndex {
        let simd = self.simd;
        LaneIndex {
            i00: simd.to_array_i(self.i00),
            mask: self.mask.map(|m| simd.bits(m)),
        }
    }
}

/// Per-lane offsets and neighbour masks (bit `l` for lane `l`), for the scalar loads and the
/// scatter of the input gradient.
struct LaneIndex {
    i00: [i32; MAX_LANES],
    mask: [u32; 4],
}

impl LaneIndex {
    /// Adds weight x gradient to the four neighbours of each lane (no scatter instruction
    /// helps: lanes collide). The order of the additions is fixed, so results are
    /// deterministic, but it differs from the scalar code's pixel-by-pixel order, so the input
    /// gradient may differ from it in the last bits. `w` is the input's row length.
    ///
    /// # Safety
    /// `plane` must be the `h x w` input plane (gradient) that the lanes of this index were
    /// computed for, `interior` and `shared` theirs ([`Lanes::interior`],
    /// [`Lanes::shared_with_next`]).
    #[inline(always)]
    #[allow(clippy::too_many_arguments)]
    unsafe fn scatter<S: Simd>(
        &self,
        simd: S,
        plane: &mut [f32],
        weights: &[S::F; 4],
        go: S::F,
        w: usize,
        interior: bool,
        shared: S::M,
    ) {
        // The length read before the pointer is taken: a later read through `plane` (even
        // `plane.len()`) would end the pointer's write permission (Miri, Tree Borrows).
        let (len, p) = (plane.len(), plane.as_mut_ptr());
        let offs = [0isize, 1, w as isize, w as isize + 1];
        // Where lane l's right neighbours are lane l+1's left ones (`shared`), their
        // contributions are added in registers and written once: right neighbours for every
        // lane, left ones for the lanes whose left neighbour did not take them. No pixel is
        // written twice (so no write waits for an earlier one's store), and about half as many
        // read-modify-writes as one per corner.
        let c = weights.map(|wt| simd.mul(wt, go));
        let unshared = simd.splat(-0.0);
        let top = simd.add(c[1], simd.select(shared, simd.next_lane(c[0]), unshared));
        let bottom = simd.add(c[3], simd.select(shared, simd.next_lane(c[2]), unshared));
        if interior {
            for l in 0..S::LANES {
                let i = self.i00[l] as isize;
                debug_assert!(((i + offs[3]) as usize) < len);
                // SAFETY: all four neighbours of every lane are inside the plane (`interior`).
                unsafe {
                    *p.offset(i + offs[1]) += simd.lane(top, l);
                    *p.offset(i + offs[3]) += simd.lane(bottom, l);
                }
            }
            let mut left = !(simd.bits(shared) << 1) & (u32::MAX >> (32 - S::LANES));
            while left != 0 {
                let l = left.trailing_zeros() as usize;
                left &= left - 1;
                let i = self.i00[l] as isize;
                // SAFETY: as above (`interior`).
                unsafe {
                    *p.offset(i) += simd.lane(c[0], l);
                    *p.offset(i + offs[2]) += simd.lane(c[2], l);
                }
            }
            return;
        }
        // Lanes with neighbours outside the input: the same merge, each write only where its
        // pixel is inside. A shared pixel is inside for both lanes or for neither.
        let taken = simd.bits(shared) << 1;
        let m = self.mask;
        for l in 0..S::LANES {
            let i = self.i00[l] as isize;
            // Bit l of mask k is set only where lane l's neighbour k, at i00 + offs[k], is
            // inside the plane.
            if m[1] >> l & 1 != 0 {
                // SAFETY: bit l of mask 1 is set: neighbour 1 of lane l is inside the plane.
                unsafe { *p.offset(i + offs[1]) += simd.lane(top, l) };
            }
            if m[3] >> l & 1 != 0 {
                // SAFETY: bit l of mask 3 is set: neighbour 3 of lane l is inside the plane.
                unsafe { *p.offset(i + offs[3]) += simd.lane(bottom, l) };
            }
            if (m[0] & !taken) >> l & 1 != 0 {
                // SAFETY: bit l of mask 0 is set: neighbour 0 of lane l is inside the plane.
                unsafe { *p.offset(i) += simd.lane(c[0], l) };
            }
            if (m[2] & !taken) >> l & 1 != 0 {
                // SAFETY: bit l of mask 2 is set: neighbour 2 of lane l is inside the plane.
                unsafe { *p.offset(i + offs[2]) += simd.lane(c[2], l) };
            }
        }
    }
}

/// Forward of pixels [0, plane_out - plane_out % LANES) of one batch item (each output value
/// written once); returns where the scalar code must continue.
#[inline(always)]
pub fn forward_item<S: Simd>(
    simd: S,
    input: &[f32],
    coords: &VecCoords,
    out: &mut [MaybeUninit<f32>],
    s: &SampleShape,
    border: bool,
    align: bool,
) -> usize {
    let (plane_in, plane_out) = (s.h_in * s.w_in, s.h_out * s.w_out);
    assert!(input.len() >= s.c * plane_in && out.len() >= s.c * plane_out);
    assert!(
        fits_i32(s),
        "vector sampler: input plane too large for i32 indices"
    );
    check_coords(coords, plane_out);
    let end = plane_out - plane_out % S::LANES;
    for p in (0..end).step_by(S::LANES) {
        // SAFETY: p + LANES <= end <= plane_out, inside the coordinates (`check_coords`).
        let (gx, gy) = unsafe { load_coords(simd, coords, p) };
        let (ix, _) = pixel(simd, gx, s.w_in, border, align, false);
        let (iy, _) = pixel(simd, gy, s.h_in, border, align, false);
        let l = Lanes::new(simd, ix, iy, s.h_in, s.w_in);
        let w = l.weights();
        let interior = l.interior();
        let li = l.index();
        for c in 0..s.c {
            let plane = &input[c * plane_in..(c + 1) * plane_in];
            // SAFETY: `plane` is the h_in x w_in plane the lanes were computed for.
            let v = unsafe { l.gather(&li, plane, s.w_in, interior) };
            let acc = simd.add(
                simd.add(
                    simd.add(simd.mul(v[0], w[0]), simd.mul(v[1], w[1])),
                    simd.mul(v[2], w[2]),
                ),
                simd.mul(v[3], w[3]),
            );
            // SAFETY: c < s.c and p + LANES <= plane_out: inside `out` (asserted above).
            unsafe { simd.store(out.as_mut_ptr().add(c * plane_out + p).cast(), acc) };
        }
    }
    end
}

/// Whether the lanes' neighbour indices (row-major in the input plane, computed in i32) are
/// exact: every index of an in-bounds neighbour is below h_in x w_in.
pub fn fits_i32(s: &SampleShape) -> bool {
    s.h_in
        .checked_mul(s.w_in)
        .is_some_and(|n| n <= i32::MAX as usize)
}

fn check_coords(coords: &VecCoords, plane_out: usize) {
    match coords {
        VecCoords::Grid(g) => assert!(g.len() >= 2 * plane_out),
        VecCoords::Affine { bx, by, .. } => assert!(bx.len() >= plane_out && by.len() >= plane_out),
    }
}

/// Backward of pixels [0, plane_out - plane_out % LANES) of one batch item. Returns where the
/// scalar code must continue and, for [`VecGrads::Theta`], theta's gradient over those pixels
/// (per-lane sums added up in lane order; zeros otherwise).
#[inline(always)]
#[allow(clippy::too_many_arguments)]
pub fn backward_item<S: Simd>(
    simd: S,
    input: &[f32],
    coords: &VecCoords,
    grad_out: &[f32],
    mut gin: Option<&mut [f32]>,
    grads: &mut VecGrads,
    s: &SampleShape,
    border: bool,
    align: bool,
) -> (usize, [f32; 6]) {
    let (plane_in, plane_out) = (s.h_in * s.w_in, s.h_out * s.w_out);
    assert!(input.len() >= s.c * plane_in && grad_out.len() >= s.c * plane_out);
    assert!(
        fits_i32(s),
        "vector sampler: input plane too large for i32 indices"
    );
    check_coords(coords, plane_out);
    if let Some(g) = gin.as_deref() {
        assert!(g.len() >= s.c * plane_in);
    }
    match grads {
        VecGrads::Grid(g) => assert!(g.len() >= 2 * plane_out),
        VecGrads::Theta { bx, by } => assert!(bx.len() >= plane_out && by.len() >= plane_out),
        VecGrads::None => {}
    }
    let want = !matches!(grads, VecGrads::None);
    let mut theta = [simd.zero(); 6];
    let end = plane_out - plane_out % S::LANES;
    for p in (0..end).step_by(S::LANES) {
        // SAFETY: p + LANES <= end <= plane_out, inside the coordinates (`check_coords`).
        let (gx, gy) = unsafe { load_coords(simd, coords, p) };
        let (ix, gmx) = pixel(simd, gx, s.w_in, border, align, true);
        let (iy, gmy) = pixel(simd, gy, s.h_in, border, align, true);
        let l = Lanes::new(simd, ix, iy, s.h_in, s.w_in);
        let interior = l.interior();
        let li = l.index();
        let weights = l.weights();
        let shared = l.shared_with_next();
        let (mut gix, mut giy) = (simd.zero(), simd.zero());
        for c in 0..s.c {
            // SAFETY: c < s.c and p + LANES <= plane_out: inside `grad_out` (asserted above).
            let go = unsafe { simd.load(grad_out.as_ptr().add(c * plane_out + p)) };
            if let Some(gin) = gin.as_deref_mut() {
                let plane = &mut gin[c * plane_in..(c + 1) * plane_in];
                // SAFETY: `plane` is the h_in x w_in plane the lanes were computed for, and
                // `interior` and `shared` are theirs.
                unsafe { li.scatter(simd, plane, &weights, go, s.w_in, interior, shared) };
            }
            if want {
                let plane = &input[c * plane_in..(c + 1) * plane_in];
                // SAFETY: `plane` is the h_in x w_in plane the lanes were computed for.
                let [nw, ne, sw, se] = unsafe { l.gather(&li, plane, s.w_in, interior) };
                let ax = simd.add(
                    simd.mul(simd.sub(ne, nw), l.fy1),
                    simd.mul(simd.sub(se, sw), l.fy),
                );
                let ay = simd.add(
                    simd.mul(simd.sub(sw, nw), l.fx1),
                    simd.mul(simd.sub(se, ne), l.fx),
                );
                gix = simd.add(gix, simd.mul(ax, go));
                giy = simd.add(giy, simd.mul(ay, go));
            }
        }
        let (gx, gy) = (simd.mul(gmx, gix), simd.mul(gmy, giy));
        match grads {
            VecGrads::None => {}
            VecGrads::Grid(out) => {
                // SAFETY: pixels p..p + LANES of the grid gradient plane, 2 x LANES floats
                // from 2 p, are inside it (asserted above).
                unsafe { simd.store_pairs(out.as_mut_ptr().add(2 * p).cast(), gx, gy) }
            }
            VecGrads::Theta { bx, by } => {
                // SAFETY: p + LANES <= plane_out: inside both base planes (asserted above).
                let (x, y) =
                    unsafe { (simd.load(bx.as_ptr().add(p)), simd.load(by.as_ptr().add(p))) };
                let terms = [
                    simd.mul(gx, x),
                    simd.mul(gx, y),
                    gx,
                    simd.mul(gy, x),
                    simd.mul(gy, y),
                    gy,
                ];
                for (t, v) in theta.iter_mut().zip(terms) {
                    *t = simd.add(*t, v);
                }
            }
        }
    }
    (end, theta.map(|v| lane_sum(simd, v)))
}

/// The lanes' sum in lane order.
#[inline(always)]
fn lane_sum<S: Simd>(simd: S, v: S::F) -> f32 {
    simd.to_array(v)[..S::LANES].iter().sum()
}
