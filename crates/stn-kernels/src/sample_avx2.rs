//! AVX2 bilinear sampling of f32 tensors, eight output pixels at a time (zeros and border
//! padding; the portable code handles the rest). Each lane computes exactly what the portable
//! code computes, in the same order, so outputs and grid gradients are bit-identical to the
//! portable path's; input gradients are summed in another (fixed) order.

use std::arch::x86_64::*;

use super::grid_sample::SampleShape;

/// Where the eight lanes' sampling coordinates come from.
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

/// Where coordinate gradients go. (The theta variant's per-lane sums make it large; it lives
/// on the stack for one batch item.)
#[allow(clippy::large_enum_variant)]
pub enum VecGrads<'a> {
    /// Not wanted.
    None,
    /// A grid gradient plane, interleaved (x, y).
    Grid(&'a mut [f32]),
    /// theta's gradient, accumulated per lane and summed into `acc` by [`finish`].
    Theta {
        /// Per-lane partial sums of the six entries.
        lanes: [__m256; 6],
        /// Base x per output pixel.
        bx: &'a [f32],
        /// Base y per output pixel.
        by: &'a [f32],
    },
}

impl VecGrads<'_> {
    fn wanted(&self) -> bool {
        !matches!(self, VecGrads::None)
    }
}

/// Lane sums of theta's partial gradients (zeros when not accumulating theta).
///
/// # Safety
/// Callable only where AVX2 is available (it is compiled for it).
#[target_feature(enable = "avx2,fma")]
pub fn finish(grads: &VecGrads) -> [f32; 6] {
    let mut out = [0.0f32; 6];
    if let VecGrads::Theta { lanes, .. } = grads {
        for (o, l) in out.iter_mut().zip(lanes) {
            let mut a = [0.0f32; 8];
            // SAFETY: `a` holds 8 floats.
            unsafe { _mm256_storeu_ps(a.as_mut_ptr(), *l) };
            *o = a.iter().sum();
        }
    }
    out
}

#[inline(always)]
unsafe fn load_coords(c: &VecCoords, p: usize) -> (__m256, __m256) {
    unsafe {
        match c {
            VecCoords::Grid(g) => {
                debug_assert!(2 * p + 16 <= g.len());
                deinterleave(g.as_ptr().add(2 * p))
            }
            VecCoords::Affine { theta: t, bx, by } => {
                let x = _mm256_loadu_ps(bx.as_ptr().add(p));
                let y = _mm256_loadu_ps(by.as_ptr().add(p));
                let s = _mm256_set1_ps;
                // theta0 x + (theta1 y + theta2), as the portable code.
                let gx = _mm256_add_ps(
                    _mm256_mul_ps(s(t[0]), x),
                    _mm256_add_ps(_mm256_mul_ps(s(t[1]), y), s(t[2])),
                );
                let gy = _mm256_add_ps(
                    _mm256_mul_ps(s(t[3]), x),
                    _mm256_add_ps(_mm256_mul_ps(s(t[4]), y), s(t[5])),
                );
                (gx, gy)
            }
        }
    }
}

/// 16 interleaved floats [a0 b0 a1 b1 .. a7 b7] -> ([a0..a7], [b0..b7]).
#[inline(always)]
unsafe fn deinterleave(p: *const f32) -> (__m256, __m256) {
    unsafe {
        let a = _mm256_loadu_ps(p);
        let b = _mm256_loadu_ps(p.add(8));
        let xs = _mm256_shuffle_ps::<0b10_00_10_00>(a, b);
        let ys = _mm256_shuffle_ps::<0b11_01_11_01>(a, b);
        let fix = |v: __m256| {
            _mm256_castpd_ps(_mm256_permute4x64_pd::<0b11_01_10_00>(_mm256_castps_pd(v)))
        };
        (fix(xs), fix(ys))
    }
}

#[inline(always)]
unsafe fn put_grads(g: &mut VecGrads, p: usize, gx: __m256, gy: __m256) {
    unsafe {
        match g {
            VecGrads::None => {}
            VecGrads::Grid(out) => {
                debug_assert!(2 * p + 16 <= out.len());
                let lo = _mm256_unpacklo_ps(gx, gy); // x0 y0 x1 y1 | x4 y4 x5 y5
                let hi = _mm256_unpackhi_ps(gx, gy); // x2 y2 x3 y3 | x6 y6 x7 y7
                let a = _mm256_permute2f128_ps::<0x20>(lo, hi);
                let b = _mm256_permute2f128_ps::<0x31>(lo, hi);
                _mm256_storeu_ps(out.as_mut_ptr().add(2 * p), a);
                _mm256_storeu_ps(out.as_mut_ptr().add(2 * p + 8), b);
            }
            VecGrads::Theta { lanes, bx, by } => {
                let x = _mm256_loadu_ps(bx.as_ptr().add(p));
                let y = _mm256_loadu_ps(by.as_ptr().add(p));
                for (l, v) in lanes.iter_mut().zip([
                    _mm256_mul_ps(gx, x),
                    _mm256_mul_ps(gx, y),
                    gx,
                    _mm256_mul_ps(gy, x),
                    _mm256_mul_ps(gy, y),
                    gy,
                ]) {
                    *l = _mm256_add_ps(*l, v);
                }
            }
        }
    }
}

/// Pixel coordinates of eight normalized coordinates, and d(pixel)/d(coordinate), with
/// PyTorch's border clipping and out-of-range handling (see `coords.rs`).
#[inline(always)]
unsafe fn pixel(
    g: __m256,
    size: usize,
    border: bool,
    align: bool,
    backward: bool,
) -> (__m256, __m256) {
    unsafe {
        let s = _mm256_set1_ps;
        let one = s(1.0);
        let sizef = size as f32;
        // As `coords::unnormalize`: PyTorch's CPU formulas, the multiply-add fused.
        let (mut x, gm) = if align {
            let scale = (sizef - 1.0) * 0.5;
            (_mm256_mul_ps(_mm256_add_ps(g, one), s(scale)), scale)
        } else {
            let scale = sizef * 0.5;
            (
                _mm256_fmsub_ps(_mm256_add_ps(g, one), s(scale), s(0.5)),
                scale,
            )
        };
        let mut gm = s(gm);
        if border {
            let max = s(sizef - 1.0);
            if backward {
                let lo = _mm256_cmp_ps::<_CMP_LE_OQ>(x, _mm256_setzero_ps());
                let hi = _mm256_cmp_ps::<_CMP_GE_OQ>(x, max);
                x = _mm256_blendv_ps(x, max, hi);
                x = _mm256_blendv_ps(x, _mm256_setzero_ps(), lo);
                gm = _mm256_andnot_ps(_mm256_or_ps(lo, hi), gm);
            } else {
                // std::min(max, std::max(x, 0)) sends NaN to max.
                let nan = _mm256_cmp_ps::<_CMP_UNORD_Q>(x, x);
                let clipped = _mm256_min_ps(_mm256_max_ps(x, _mm256_setzero_ps()), max);
                x = _mm256_blendv_ps(clipped, max, nan);
            }
        }
        // Unindexable coordinates (NaN, huge) go far out of bounds.
        let keep =
            _mm256_cmp_ps::<_CMP_LE_OQ>(_mm256_andnot_ps(s(-0.0), x), s((i32::MAX - 1) as f32));
        x = _mm256_blendv_ps(s(-100.0), x, keep);
        (x, gm)
    }
}

/// Bilinear interpolation state of eight pixels.
struct Lanes {
    fx: __m256,
    fx1: __m256,
    fy: __m256,
    fy1: __m256,
    idx: [__m256i; 4],
    mask: [__m256i; 4],
}

#[inline(always)]
unsafe fn lanes(ix: __m256, iy: __m256, h: usize, w: usize) -> Lanes {
    unsafe {
        let one = _mm256_set1_ps(1.0);
        let x0f = _mm256_floor_ps(ix);
        let y0f = _mm256_floor_ps(iy);
        let x0 = _mm256_cvttps_epi32(x0f);
        let y0 = _mm256_cvttps_epi32(y0f);
        let i1 = _mm256_set1_epi32(1);
        let (x1, y1) = (_mm256_add_epi32(x0, i1), _mm256_add_epi32(y0, i1));
        let inside = |v: __m256i, n: usize| {
            _mm256_and_si256(
                _mm256_cmpgt_epi32(v, _mm256_set1_epi32(-1)),
                _mm256_cmpgt_epi32(_mm256_set1_epi32(n as i32), v),
            )
        };
        let (vx0, vx1, vy0, vy1) = (inside(x0, w), inside(x1, w), inside(y0, h), inside(y1, h));
        let wv = _mm256_set1_epi32(w as i32);
        let i00 = _mm256_add_epi32(_mm256_mullo_epi32(y0, wv), x0);
        Lanes {
            fx: _mm256_sub_ps(ix, x0f),
            fx1: _mm256_sub_ps(_mm256_add_ps(x0f, one), ix),
            fy: _mm256_sub_ps(iy, y0f),
            fy1: _mm256_sub_ps(_mm256_add_ps(y0f, one), iy),
            idx: [
                i00,
                _mm256_add_epi32(i00, i1),
                _mm256_add_epi32(i00, wv),
                _mm256_add_epi32(_mm256_add_epi32(i00, wv), i1),
            ],
            mask: [
                _mm256_and_si256(vx0, vy0),
                _mm256_and_si256(vx1, vy0),
                _mm256_and_si256(vx0, vy1),
                _mm256_and_si256(vx1, vy1),
            ],
        }
    }
}

impl Lanes {
    #[inline(always)]
    unsafe fn weights(&self) -> [__m256; 4] {
        unsafe {
            [
                _mm256_mul_ps(self.fx1, self.fy1),
                _mm256_mul_ps(self.fx, self.fy1),
                _mm256_mul_ps(self.fx1, self.fy),
                _mm256_mul_ps(self.fx, self.fy),
            ]
        }
    }

    /// Whether all four neighbours of all eight lanes are inside the input.
    #[inline(always)]
    unsafe fn interior(&self) -> bool {
        unsafe {
            let all = _mm256_and_si256(
                _mm256_and_si256(self.mask[0], self.mask[1]),
                _mm256_and_si256(self.mask[2], self.mask[3]),
            );
            _mm256_movemask_ps(_mm256_castsi256_ps(all)) == 0xff
        }
    }

    /// The four neighbours' values in a plane (zero outside).
    ///
    /// Built from scalar loads rather than AVX2 gathers, which measured at ~50 cycles each on
    /// the Zen 3 machines here: when every neighbour is inside (`interior`, the common case),
    /// two 8-byte loads per pixel fetch the (x0, x0+1) pairs of both rows; otherwise each lane
    /// reads its in-bounds neighbours one by one.
    #[inline(always)]
    unsafe fn gather(&self, plane: &[f32], w: usize, interior: bool) -> [__m256; 4] {
        unsafe {
            let mut i00 = [0i32; 8];
            _mm256_storeu_si256(i00.as_mut_ptr().cast(), self.idx[0]);
            let p = plane.as_ptr();
            if interior {
                let (mut top, mut bottom) = ([0u64; 8], [0u64; 8]);
                for l in 0..8 {
                    let i = i00[l] as usize;
                    debug_assert!(i + w + 1 < plane.len());
                    top[l] = core::ptr::read_unaligned(p.add(i).cast::<u64>());
                    bottom[l] = core::ptr::read_unaligned(p.add(i + w).cast::<u64>());
                }
                let (nw, ne) = deinterleave(top.as_ptr().cast());
                let (sw, se) = deinterleave(bottom.as_ptr().cast());
                return [nw, ne, sw, se];
            }
            let mut vals = [[0.0f32; 8]; 4];
            let mut masks = [[0i32; 8]; 4];
            for k in 0..4 {
                _mm256_storeu_si256(masks[k].as_mut_ptr().cast(), self.mask[k]);
            }
            let offs = [0, 1, w, w + 1];
            for l in 0..8 {
                for k in 0..4 {
                    if masks[k][l] != 0 {
                        vals[k][l] = *p.add((i00[l] as isize + offs[k] as isize) as usize);
                    }
                }
            }
            vals.map(|v| _mm256_loadu_ps(v.as_ptr()))
        }
    }
}

/// Forward of pixels [0, plane_out - plane_out % 8) of one batch item; returns where the
/// portable code must continue.
///
/// # Safety
/// The CPU must support AVX2 and FMA.
#[target_feature(enable = "avx2,fma")]
pub unsafe fn forward_item(
    input: &[f32],
    coords: &VecCoords,
    out: &mut [f32],
    s: &SampleShape,
    border: bool,
    align: bool,
) -> usize {
    let (plane_in, plane_out) = (s.h_in * s.w_in, s.h_out * s.w_out);
    assert!(input.len() >= s.c * plane_in && out.len() >= s.c * plane_out);
    let end = plane_out - plane_out % 8;
    for p in (0..end).step_by(8) {
        unsafe {
            let (gx, gy) = load_coords(coords, p);
            let (ix, _) = pixel(gx, s.w_in, border, align, false);
            let (iy, _) = pixel(gy, s.h_in, border, align, false);
            let l = lanes(ix, iy, s.h_in, s.w_in);
            let w = l.weights();
            let interior = l.interior();
            for c in 0..s.c {
                let v = l.gather(&input[c * plane_in..(c + 1) * plane_in], s.w_in, interior);
                let acc = _mm256_add_ps(
                    _mm256_add_ps(
                        _mm256_add_ps(_mm256_mul_ps(v[0], w[0]), _mm256_mul_ps(v[1], w[1])),
                        _mm256_mul_ps(v[2], w[2]),
                    ),
                    _mm256_mul_ps(v[3], w[3]),
                );
                _mm256_storeu_ps(out.as_mut_ptr().add(c * plane_out + p), acc);
            }
        }
    }
    end
}

/// Backward of pixels [0, plane_out - plane_out % 8) of one batch item; returns where the
/// portable code must continue.
///
/// # Safety
/// The CPU must support AVX2 and FMA.
#[target_feature(enable = "avx2,fma")]
#[allow(clippy::too_many_arguments)]
pub unsafe fn backward_item(
    input: &[f32],
    coords: &VecCoords,
    grad_out: &[f32],
    mut gin: Option<&mut [f32]>,
    grads: &mut VecGrads,
    s: &SampleShape,
    border: bool,
    align: bool,
) -> usize {
    let (plane_in, plane_out) = (s.h_in * s.w_in, s.h_out * s.w_out);
    assert!(input.len() >= s.c * plane_in && grad_out.len() >= s.c * plane_out);
    if let Some(g) = gin.as_deref() {
        assert!(g.len() >= s.c * plane_in);
    }
    let want = grads.wanted();
    let end = plane_out - plane_out % 8;
    for p in (0..end).step_by(8) {
        unsafe {
            let (gx, gy) = load_coords(coords, p);
            let (ix, gmx) = pixel(gx, s.w_in, border, align, true);
            let (iy, gmy) = pixel(gy, s.h_in, border, align, true);
            let l = lanes(ix, iy, s.h_in, s.w_in);
            let interior = l.interior();
            let scatter_to = gin.is_some().then(|| (LaneIndex::new(&l), l.weights()));
            let (mut gix, mut giy) = (_mm256_setzero_ps(), _mm256_setzero_ps());
            for c in 0..s.c {
                let go = _mm256_loadu_ps(grad_out.as_ptr().add(c * plane_out + p));
                if let (Some(gin), Some((li, weights))) = (gin.as_deref_mut(), &scatter_to) {
                    scatter(
                        &mut gin[c * plane_in..(c + 1) * plane_in],
                        li,
                        weights,
                        go,
                        s.w_in,
                        interior,
                    );
                }
                if want {
                    let [nw, ne, sw, se] =
                        l.gather(&input[c * plane_in..(c + 1) * plane_in], s.w_in, interior);
                    let ax = _mm256_add_ps(
                        _mm256_mul_ps(_mm256_sub_ps(ne, nw), l.fy1),
                        _mm256_mul_ps(_mm256_sub_ps(se, sw), l.fy),
                    );
                    let ay = _mm256_add_ps(
                        _mm256_mul_ps(_mm256_sub_ps(sw, nw), l.fx1),
                        _mm256_mul_ps(_mm256_sub_ps(se, ne), l.fx),
                    );
                    gix = _mm256_add_ps(gix, _mm256_mul_ps(ax, go));
                    giy = _mm256_add_ps(giy, _mm256_mul_ps(ay, go));
                }
            }
            if want {
                put_grads(grads, p, _mm256_mul_ps(gmx, gix), _mm256_mul_ps(gmy, giy));
            }
        }
    }
    end
}

/// The lanes' corner offsets and masks as plain arrays, computed once per 8 pixels for the
/// scatter of the input gradient.
struct LaneIndex {
    i00: [i32; 8],
    mask: [[i32; 8]; 4],
}

impl LaneIndex {
    #[inline(always)]
    unsafe fn new(l: &Lanes) -> Self {
        unsafe {
            let mut i00 = [0i32; 8];
            let mut mask = [[0i32; 8]; 4];
            _mm256_storeu_si256(i00.as_mut_ptr().cast(), l.idx[0]);
            for k in 0..4 {
                _mm256_storeu_si256(mask[k].as_mut_ptr().cast(), l.mask[k]);
            }
            Self { i00, mask }
        }
    }
}

/// Adds weight x gradient to the four neighbours of each lane (AVX2 has no scatter
/// instruction). The order of the additions is fixed, so results are deterministic, but it
/// differs from the portable code's pixel-by-pixel order, so the input gradient may differ
/// from it in the last bits. `w` is the input's row length.
#[inline(always)]
unsafe fn scatter(
    plane: &mut [f32],
    li: &LaneIndex,
    weights: &[__m256; 4],
    go: __m256,
    w: usize,
    interior: bool,
) {
    unsafe {
        let mut contrib = [[0.0f32; 8]; 4];
        for k in 0..4 {
            _mm256_storeu_ps(contrib[k].as_mut_ptr(), _mm256_mul_ps(weights[k], go));
        }
        let p = plane.as_mut_ptr();
        let offs = [0isize, 1, w as isize, w as isize + 1];
        // Corner by corner across the lanes: neighbouring pixels share input pixels, and adding
        // lane by lane would chain every addition through the previous one's store.
        if interior {
            // Every neighbour exists: no bounds to check (the caller's interior test).
            for k in 0..4 {
                for lane in 0..8 {
                    let i = li.i00[lane] as isize + offs[k];
                    debug_assert!((i as usize) < plane.len());
                    *p.offset(i) += contrib[k][lane];
                }
            }
            return;
        }
        for k in 0..4 {
            for lane in 0..8 {
                if li.mask[k][lane] != 0 {
                    *p.offset(li.i00[lane] as isize + offs[k]) += contrib[k][lane];
                }
            }
        }
    }
}
