//! Bilinear sampling of f32 tensors, a vector of output pixels at a time (zeros and border
//! padding; the scalar code handles the rest), one source for every path ([`crate::simd`]).
//! Each lane computes exactly what the scalar code computes, in the same order, fusing only the
//! multiply-add the scalar code fuses (unnormalizing), so outputs and grid gradients are
//! bit-identical to the scalar path's on every path, NaN and infinite coordinates included;
//! input gradients are summed in another (fixed) order.

use std::mem::MaybeUninit;

use crate::grid_sample::SampleShape;
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

#[inline(always)]
unsafe fn load_coords<S: Simd>(c: &VecCoords, p: usize) -> (S::F, S::F) {
    // SAFETY: the caller passes a pixel index with a whole vector of pixels inside the plane.
    unsafe {
        match c {
            VecCoords::Grid(g) => {
                debug_assert!(2 * (p + S::LANES) <= g.len());
                S::load_pairs(g.as_ptr().add(2 * p))
            }
            VecCoords::Affine { theta: t, bx, by } => {
                let x = S::load(bx.as_ptr().add(p));
                let y = S::load(by.as_ptr().add(p));
                let s = S::splat;
                // theta0 x + (theta1 y + theta2), as the scalar code.
                let gx = S::add(S::mul(s(t[0]), x), S::add(S::mul(s(t[1]), y), s(t[2])));
                let gy = S::add(S::mul(s(t[3]), x), S::add(S::mul(s(t[4]), y), s(t[5])));
                (gx, gy)
            }
        }
    }
}

/// Pixel coordinates of normalized coordinates, and d(pixel)/d(coordinate), with PyTorch's
/// border clipping (see `coords.rs`: the same rules, lane by lane).
#[inline(always)]
fn pixel<S: Simd>(g: S::F, size: usize, border: bool, align: bool, backward: bool) -> (S::F, S::F) {
    let s = S::splat;
    let one = s(1.0);
    let sizef = size as f32;
    // As `coords::unnormalize`: PyTorch's CPU formulas, the multiply-add fused.
    let (mut x, gm) = if align {
        let scale = (sizef - 1.0) * 0.5;
        (S::mul(S::add(g, one), s(scale)), scale)
    } else {
        let scale = sizef * 0.5;
        (S::fused_mul_add(S::add(g, one), s(scale), s(-0.5)), scale)
    };
    let mut gm = s(gm);
    if border {
        let max = s(sizef - 1.0);
        if backward {
            // `clip_coordinates_get_grad`: NaN stays NaN (and passes the gradient); the
            // borders themselves pass none.
            let lo = S::le(x, S::zero());
            let hi = S::ge(x, max);
            x = S::select(hi, max, x);
            x = S::select(lo, S::zero(), x);
            gm = S::select(S::or(lo, hi), S::zero(), gm);
        } else {
            // `clip_coordinates`: minps(maxps(x, 0), max), which sends NaN to 0.
            x = S::min(S::max(x, S::zero()), max);
        }
    }
    (x, gm)
}

/// Bilinear interpolation state of one vector of pixels.
#[derive(Clone, Copy)]
struct Lanes<S: Simd> {
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
    fn new(ix: S::F, iy: S::F, h: usize, w: usize) -> Self {
        let one = S::splat(1.0);
        let (x0f, y0f) = (S::floor(ix), S::floor(iy));
        let (x0, y0) = (S::to_i32(x0f), S::to_i32(y0f));
        let (fx, fy) = (S::sub(ix, x0f), S::sub(iy, y0f));
        let i1 = S::splat_i(1);
        let (x1, y1) = (S::add_i(x0, i1), S::add_i(y0, i1));
        let inside = |v: S::I, n: usize| {
            S::and(S::gt_i(v, S::splat_i(-1)), S::gt_i(S::splat_i(n as i32), v))
        };
        let (vx0, vx1, vy0, vy1) = (inside(x0, w), inside(x1, w), inside(y0, h), inside(y1, h));
        Lanes {
            fx,
            fx1: S::sub(one, fx),
            fy,
            fy1: S::sub(one, fy),
            i00: S::add_i(S::mul_i(y0, S::splat_i(w as i32)), x0),
            mask: [
                S::and(vx0, vy0),
                S::and(vx1, vy0),
                S::and(vx0, vy1),
                S::and(vx1, vy1),
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
        let right = S::add(self.x0f, S::splat(1.0));
        S::and(
            S::eq(S::next_lane(self.x0f), right),
            S::eq(S::next_lane(self.y0f), self.y0f),
        )
    }

    #[inline(always)]
    fn weights(&self) -> [S::F; 4] {
        [
            S::mul(self.fx1, self.fy1),
            S::mul(self.fx, self.fy1),
            S::mul(self.fx1, self.fy),
            S::mul(self.fx, self.fy),
        ]
    }

    /// Whether all four neighbours of every lane are inside the input.
    #[inline(always)]
    fn interior(&self) -> bool {
        let m = self.mask;
        let all = S::and(S::and(m[0], m[1]), S::and(m[2], m[3]));
        S::bits(all) == S::bits(S::all_set())
    }

    /// The four neighbours' values in a plane (zero outside).
    ///
    /// When every neighbour is inside (`interior`, the common case), two 8-byte loads per
    /// pixel fetch the (x0, x0+1) pairs of both rows (fewer instructions than four gathers on
    /// the machines measured); otherwise one masked gather per neighbour (per-lane loads on
    /// the paths without gathers) reads the in-bounds ones.
    #[inline(always)]
    unsafe fn gather(&self, li: &LaneIndex, plane: &[f32], w: usize, interior: bool) -> [S::F; 4] {
        let p = plane.as_ptr();
        // SAFETY: interior lanes' pairs are inside the plane; otherwise only in-bounds
        // neighbours are read.
        unsafe {
            if interior {
                let (nw, ne) = S::gather_pairs(p, &li.i00);
                let (sw, se) = S::gather_pairs(p.add(w), &li.i00);
                return [nw, ne, sw, se];
            }
            let offs = [0, 1, w as i32, w as i32 + 1];
            core::array::from_fn(|k| {
                S::gather(p, S::add_i(self.i00, S::splat_i(offs[k])), self.mask[k])
            })
        }
    }

    /// The lanes' top-left indices and neighbour masks as plain arrays.
    #[inline(always)]
    fn index(&self) -> LaneIndex {
        let mut i00 = [0i32; MAX_LANES];
        // SAFETY: the array holds MAX_LANES >= LANES i32.
        unsafe { S::store_i(i00.as_mut_ptr(), self.i00) };
        LaneIndex {
            i00,
            mask: self.mask.map(S::bits),
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
    #[inline(always)]
    unsafe fn scatter<S: Simd>(
        &self,
        plane: &mut [f32],
        weights: &[S::F; 4],
        go: S::F,
        w: usize,
        interior: bool,
        shared: S::M,
    ) {
        let p = plane.as_mut_ptr();
        let offs = [0isize, 1, w as isize, w as isize + 1];
        // SAFETY: interior lanes' neighbours are all inside the plane; otherwise only in-bounds
        // neighbours are written.
        unsafe {
            // Where lane l's right neighbours are lane l+1's left ones (`shared`), their
            // contributions are added in registers and written once: right neighbours for
            // every lane, left ones for the lanes whose left neighbour did not take them. No
            // pixel is written twice (so no write waits for an earlier one's store), and about
            // half as many read-modify-writes as one per corner.
            let c = weights.map(|wt| S::mul(wt, go));
            let unshared = S::splat(-0.0);
            let top = S::add(c[1], S::select(shared, S::next_lane(c[0]), unshared));
            let bottom = S::add(c[3], S::select(shared, S::next_lane(c[2]), unshared));
            if interior {
                for l in 0..S::LANES {
                    let i = self.i00[l] as isize;
                    debug_assert!(((i + offs[3]) as usize) < plane.len());
                    *p.offset(i + offs[1]) += S::lane(top, l);
                    *p.offset(i + offs[3]) += S::lane(bottom, l);
                }
                let mut left = !(S::bits(shared) << 1) & (u32::MAX >> (32 - S::LANES));
                while left != 0 {
                    let l = left.trailing_zeros() as usize;
                    left &= left - 1;
                    let i = self.i00[l] as isize;
                    *p.offset(i) += S::lane(c[0], l);
                    *p.offset(i + offs[2]) += S::lane(c[2], l);
                }
                return;
            }
            // Lanes with neighbours outside the input: the same merge, each write only where
            // its pixel is inside. A shared pixel is inside for both lanes or for neither.
            let taken = S::bits(shared) << 1;
            let m = self.mask;
            for l in 0..S::LANES {
                let i = self.i00[l] as isize;
                if m[1] >> l & 1 != 0 {
                    *p.offset(i + offs[1]) += S::lane(top, l);
                }
                if m[3] >> l & 1 != 0 {
                    *p.offset(i + offs[3]) += S::lane(bottom, l);
                }
                if (m[0] & !taken) >> l & 1 != 0 {
                    *p.offset(i) += S::lane(c[0], l);
                }
                if (m[2] & !taken) >> l & 1 != 0 {
                    *p.offset(i + offs[2]) += S::lane(c[2], l);
                }
            }
        }
    }
}

/// Forward of pixels [0, plane_out - plane_out % LANES) of one batch item (each output value
/// written once); returns where the scalar code must continue.
#[inline(always)]
pub fn forward_item<S: Simd>(
    input: &[f32],
    coords: &VecCoords,
    out: &mut [MaybeUninit<f32>],
    s: &SampleShape,
    border: bool,
    align: bool,
) -> usize {
    let (plane_in, plane_out) = (s.h_in * s.w_in, s.h_out * s.w_out);
    assert!(input.len() >= s.c * plane_in && out.len() >= s.c * plane_out);
    check_coords(coords, plane_out);
    let end = plane_out - plane_out % S::LANES;
    for p in (0..end).step_by(S::LANES) {
        // SAFETY: p + LANES <= plane_out; planes checked above.
        unsafe {
            let (gx, gy) = load_coords::<S>(coords, p);
            let (ix, _) = pixel::<S>(gx, s.w_in, border, align, false);
            let (iy, _) = pixel::<S>(gy, s.h_in, border, align, false);
            let l = Lanes::<S>::new(ix, iy, s.h_in, s.w_in);
            let w = l.weights();
            let interior = l.interior();
            let li = l.index();
            for c in 0..s.c {
                let plane = &input[c * plane_in..(c + 1) * plane_in];
                let v = l.gather(&li, plane, s.w_in, interior);
                let acc = S::add(
                    S::add(
                        S::add(S::mul(v[0], w[0]), S::mul(v[1], w[1])),
                        S::mul(v[2], w[2]),
                    ),
                    S::mul(v[3], w[3]),
                );
                S::store(out.as_mut_ptr().add(c * plane_out + p).cast(), acc);
            }
        }
    }
    end
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
    let mut theta = [S::zero(); 6];
    let end = plane_out - plane_out % S::LANES;
    for p in (0..end).step_by(S::LANES) {
        // SAFETY: p + LANES <= plane_out; planes checked above.
        unsafe {
            let (gx, gy) = load_coords::<S>(coords, p);
            let (ix, gmx) = pixel::<S>(gx, s.w_in, border, align, true);
            let (iy, gmy) = pixel::<S>(gy, s.h_in, border, align, true);
            let l = Lanes::<S>::new(ix, iy, s.h_in, s.w_in);
            let interior = l.interior();
            let li = l.index();
            let weights = l.weights();
            let shared = l.shared_with_next();
            let (mut gix, mut giy) = (S::zero(), S::zero());
            for c in 0..s.c {
                let go = S::load(grad_out.as_ptr().add(c * plane_out + p));
                if let Some(gin) = gin.as_deref_mut() {
                    let plane = &mut gin[c * plane_in..(c + 1) * plane_in];
                    li.scatter::<S>(plane, &weights, go, s.w_in, interior, shared);
                }
                if want {
                    let plane = &input[c * plane_in..(c + 1) * plane_in];
                    let [nw, ne, sw, se] = l.gather(&li, plane, s.w_in, interior);
                    let ax = S::add(S::mul(S::sub(ne, nw), l.fy1), S::mul(S::sub(se, sw), l.fy));
                    let ay = S::add(S::mul(S::sub(sw, nw), l.fx1), S::mul(S::sub(se, ne), l.fx));
                    gix = S::add(gix, S::mul(ax, go));
                    giy = S::add(giy, S::mul(ay, go));
                }
            }
            let (gx, gy) = (S::mul(gmx, gix), S::mul(gmy, giy));
            match grads {
                VecGrads::None => {}
                VecGrads::Grid(out) => S::store_pairs(out.as_mut_ptr().add(2 * p).cast(), gx, gy),
                VecGrads::Theta { bx, by } => {
                    let x = S::load(bx.as_ptr().add(p));
                    let y = S::load(by.as_ptr().add(p));
                    let terms = [
                        S::mul(gx, x),
                        S::mul(gx, y),
                        gx,
                        S::mul(gy, x),
                        S::mul(gy, y),
                        gy,
                    ];
                    for (t, v) in theta.iter_mut().zip(terms) {
                        *t = S::add(*t, v);
                    }
                }
            }
        }
    }
    (end, theta.map(lane_sum::<S>))
}

/// The lanes' sum in lane order.
#[inline(always)]
fn lane_sum<S: Simd>(v: S::F) -> f32 {
    let mut a = [0.0f32; MAX_LANES];
    // SAFETY: the array holds MAX_LANES >= LANES floats.
    unsafe { S::store(a.as_mut_ptr(), v) };
    a[..S::LANES].iter().sum()
}
