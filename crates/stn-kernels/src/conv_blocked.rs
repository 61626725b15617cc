//! Convolution kernels for the batch-blocked layout [N / L, C, H, W, L]: L images side by side
//! in every vector, L the lane count of the path ([`Isa::lanes`]: 16 on AVX-512, 8 on AVX2,
//! 4 on NEON and the portable path). One source for every path ([`crate::simd`]).
//!
//! Spatial-transformer networks run small images with few channels, where vectorizing over
//! pixels wastes lanes at every row end and over channels wastes lanes on 8- or 10-channel
//! layers. Vectorizing over the batch wastes nothing, needs no padding for alignment, and
//! keeps every load aligned; conversions happen only at the ends of a convolution stack.
//!
//! - forward: register tiles of up to 5 output channels x 2 output pixels (16 registers) or
//!   x 4 pixels (32 registers), streaming the kernel taps: per tap, one load per pixel, one
//!   weight broadcast per channel and one FMA per accumulator;
//! - input gradient: the forward kernel over the output gradient zero-padded by k - 1, with the
//!   kernel rotated by 180 degrees and its channel axes swapped; rows of taps that only meet
//!   padding are skipped;
//! - weight gradient: per (output channels, input channel, kernel row) the products are summed
//!   over blocks, rows and pixels in a fixed order (deterministic for any thread count), then
//!   over the lanes.

use rayon::prelude::*;

use crate::simd::{Isa, Simd, dispatch};

/// Largest kernel side the weight-gradient kernel is specialized for.
pub const MAX_K: usize = 9;

/// Geometry of a valid, stride-1 convolution on blocked tensors of path `isa`: input
/// [nb, c, h, w, lanes], kernel [o, c, k, k].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ConvShape {
    /// The path the kernels run; its lane count is the block width.
    pub isa: Isa,
    /// Blocks of `isa.lanes()` images.
    pub nb: usize,
    /// Input channels.
    pub c: usize,
    /// Input height.
    pub h: usize,
    /// Input width.
    pub w: usize,
    /// Output channels.
    pub o: usize,
    /// Kernel side.
    pub k: usize,
}

impl ConvShape {
    /// Output height.
    pub fn ho(&self) -> usize {
        self.h + 1 - self.k
    }
    /// Output width.
    pub fn wo(&self) -> usize {
        self.w + 1 - self.k
    }
    /// Images per block.
    pub fn lanes(&self) -> usize {
        self.isa.lanes()
    }
    /// Whether the kernels handle this shape (and this CPU the path).
    pub fn supported(&self) -> bool {
        (1..=MAX_K).contains(&self.k)
            && self.h >= self.k
            && self.w >= self.k
            && self.c > 0
            && self.o > 0
            && self.isa.supported()
    }

    /// Floats of one block's input [C, H, W, L] and output [O, ho, wo, L].
    fn block_floats(&self) -> (usize, usize) {
        let l = self.lanes();
        (
            self.c * self.h * self.w * l,
            self.o * self.ho() * self.wo() * l,
        )
    }

    /// Panics unless the forward pass's slices fit the shape (and the shape is supported);
    /// returns the floats of one block's input and output.
    pub(crate) fn check_forward(
        &self,
        x: &[f32],
        w: &[f32],
        b: Option<&[f32]>,
        y: &[f32],
    ) -> (usize, usize) {
        assert!(
            self.supported(),
            "conv2d: unsupported shape or path {self:?}"
        );
        let (img_in, img_out) = self.block_floats();
        assert_eq!(x.len(), self.nb * img_in, "conv2d: input length");
        assert_eq!(
            w.len(),
            self.o * self.c * self.k * self.k,
            "conv2d: weight length"
        );
        assert_eq!(y.len(), self.nb * img_out, "conv2d: output length");
        if let Some(b) = b {
            assert_eq!(b.len(), self.o, "conv2d: bias length");
        }
        (img_in, img_out)
    }

    /// Panics unless the backward pass's slices fit the shape (`dx_len`: the input gradient's
    /// length, if one is wanted); returns the floats of one block's input and output.
    pub(crate) fn check_backward(
        &self,
        x: &[f32],
        w: &[f32],
        dy: &[f32],
        dx_len: Option<usize>,
        dw: &[f32],
        db: &[f32],
    ) -> (usize, usize) {
        assert!(
            self.supported(),
            "conv2d backward: unsupported shape or path {self:?}"
        );
        let (img_in, img_out) = self.block_floats();
        assert_eq!(x.len(), self.nb * img_in, "conv2d backward: input length");
        let wl = self.o * self.c * self.k * self.k;
        assert_eq!(w.len(), wl, "conv2d backward: weight length");
        assert_eq!(dy.len(), self.nb * img_out, "conv2d backward: grad length");
        assert_eq!(dw.len(), wl, "conv2d backward: weight grad length");
        assert_eq!(db.len(), self.o, "conv2d backward: bias grad length");
        if let Some(n) = dx_len {
            assert_eq!(n, x.len(), "conv2d backward: input grad length");
        }
        (img_in, img_out)
    }
}

/// Sizes of one block's correlation (see [`correlate_block`]).
#[derive(Clone, Copy)]
struct Geometry {
    c: usize,
    ih: usize,
    iw: usize,
    top: isize,
    /// The input columns that hold data; the others are zero padding, whose taps are skipped.
    cols: (usize, usize),
    o: usize,
    k: usize,
    ho: usize,
    wo: usize,
}

/// One block's valid correlation: `out[o][y][x] = bias[o] + sum_{c,ky,kx} wgt[o][c][ky][kx] *
/// inp[c][y + ky + top][x + kx]`, for output rows `y` in 0..ho, where input rows outside
/// 0..ih read as zero (their taps are skipped, as are those of a tile's pixels that all fall on
/// zero columns outside `cols`). `inp` is [c, ih, iw, L], `out` [o, ho, wo, L].
#[inline(always)]
fn correlate_block<S: Simd>(
    simd: S,
    inp: &[f32],
    g: Geometry,
    wgt: &[f32],
    bias: Option<&[f32]>,
    out: &mut [f32],
) {
    let l = S::LANES;
    assert!(inp.len() >= g.c * g.ih * g.iw * l && out.len() >= g.o * g.ho * g.wo * l);
    assert!(wgt.len() >= g.o * g.c * g.k * g.k && g.wo + g.k - 1 <= g.iw);
    if let Some(b) = bias {
        assert!(b.len() >= g.o);
    }
    // Output channels per tile: 5 when they divide evenly (10, 20, ...), else 4; pixels per
    // tile: 2 with 16 registers, 4 with 32 (at most 20 accumulators, leaving registers for
    // the loads and the broadcast).
    let block = if g.o.is_multiple_of(5) { 5 } else { 4 };
    let pixels = if S::REGISTERS >= 32 { 4 } else { 2 };
    for y in 0..g.ho {
        // Kernel rows whose input row exists.
        let first = y as isize + g.top;
        let ky = (
            (-first).max(0) as usize,
            ((g.ih as isize - first).min(g.k as isize)).max(0) as usize,
        );
        let mut ob = 0;
        while ob < g.o {
            let nb = (g.o - ob).min(block);
            let mut x = 0;
            while x < g.wo {
                let np = (g.wo - x).min(pixels);
                // Kernel columns that meet data for at least one pixel of the tile.
                let kx = (
                    g.cols.0.saturating_sub(x + np - 1),
                    g.k.min(g.cols.1.saturating_sub(x)),
                );
                let at = Tile { ob, y, x, ky, kx };
                macro_rules! tiles {
                    ($(($b:literal, $p:literal)),*) => {
                        match (nb, np) {
                            $(($b, $p) => tile::<S, $b, $p>(simd, inp, &g, wgt, bias, at, out),)*
                            _ => unreachable!("tile sizes are 1..=5 x 1..=4"),
                        }
                    };
                }
                // SAFETY: the slices' lengths were asserted against the geometry above, and the
                // tile (channels ob..ob + nb < o, pixels x..x + np <= wo of row y < ho, kernel
                // rows ky and columns kx clipped to the input) lies inside it.
                unsafe {
                    tiles!(
                        (5, 4),
                        (5, 3),
                        (5, 2),
                        (5, 1),
                        (4, 4),
                        (4, 3),
                        (4, 2),
                        (4, 1),
                        (3, 4),
                        (3, 3),
                        (3, 2),
                        (3, 1),
                        (2, 4),
                        (2, 3),
                        (2, 2),
                        (2, 1),
                        (1, 4),
                        (1, 3),
                        (1, 2),
                        (1, 1)
                    )
                };
                x += np;
            }
            ob += nb;
        }
    }
}

/// Where a register tile sits: first output channel, output row and column, and the kernel
/// rows that meet the input.
#[derive(Clone, Copy)]
struct Tile {
    ob: usize,
    y: usize,
    x: usize,
    ky: (usize, usize),
    kx: (usize, usize),
}

/// NB output channels x NP output pixels of one row, accumulated in registers.
///
/// # Safety
/// The slices must hold the geometry's input, weights and output (as `correlate_block`
/// asserts), and the tile must lie inside it: `t.ob + NB <= g.o`, `t.y < g.ho`,
/// `t.x + NP <= g.wo`, input rows `t.y + g.top + ky` inside `0..g.ih` for `ky` in `t.ky`, and
/// `t.kx` within `0..g.k`.
#[inline(always)]
unsafe fn tile<S: Simd, const NB: usize, const NP: usize>(
    simd: S,
    inp: &[f32],
    g: &Geometry,
    wgt: &[f32],
    bias: Option<&[f32]>,
    t: Tile,
    out: &mut [f32],
) {
    let l = S::LANES;
    let (k, kk) = (g.k, g.k * g.k);
    let wstride = g.c * kk;
    let mut acc = [[simd.zero(); NP]; NB];
    // SAFETY: the caller guarantees the tile inside the geometry and the slices' lengths;
    // every offset below stays inside them.
    unsafe {
        let ip = inp.as_ptr();
        let wp = wgt.as_ptr().add(t.ob * wstride);
        for ci in 0..g.c {
            for ky in t.ky.0..t.ky.1 {
                let row = (t.y as isize + g.top + ky as isize) as usize;
                let base = ip.add(((ci * g.ih + row) * g.iw + t.x) * l);
                let wrow = wp.add(ci * kk + ky * k);
                for kx in t.kx.0..t.kx.1 {
                    let mut v = [simd.zero(); NP];
                    for p in 0..NP {
                        v[p] = simd.load(base.add((kx + p) * l));
                    }
                    for b in 0..NB {
                        let wv = simd.splat(*wrow.add(b * wstride + kx));
                        for p in 0..NP {
                            acc[b][p] = simd.mul_add(wv, v[p], acc[b][p]);
                        }
                    }
                }
            }
        }
        for b in 0..NB {
            let bv = simd.splat(bias.map_or(0.0, |bs| bs[t.ob + b]));
            let dst = out
                .as_mut_ptr()
                .add((((t.ob + b) * g.ho + t.y) * g.wo + t.x) * l);
            for p in 0..NP {
                simd.store(dst.add(p * l), simd.add(acc[b][p], bv));
            }
        }
    }
}

/// y = conv(x, w) + b on blocked tensors, parallel over blocks. `x` [nb, c, h, w, L],
/// `y` [nb, o, ho, wo, L].
pub fn forward(x: &[f32], w: &[f32], b: Option<&[f32]>, y: &mut [f32], s: ConvShape) {
    let (img_in, img_out) = s.check_forward(x, w, b, y);
    let (ho, wo) = (s.ho(), s.wo());
    let g = Geometry {
        c: s.c,
        ih: s.h,
        iw: s.w,
        top: 0,
        cols: (0, s.w),
        o: s.o,
        k: s.k,
        ho,
        wo,
    };
    y.par_chunks_mut(img_out).enumerate().for_each(|(n, out)| {
        let inp = &x[n * img_in..(n + 1) * img_in];
        dispatch!(s.isa, correlate_block(inp, g, w, b, out));
    });
}

/// Gradients of [`forward`]: `dx` (when given, [nb, c, h, w, L]), `dw` [o, c, k, k] and
/// `db` `[o]`, all overwritten.
pub fn backward(
    x: &[f32],
    w: &[f32],
    dy: &[f32],
    dx: Option<&mut [f32]>,
    dw: &mut [f32],
    db: &mut [f32],
    s: ConvShape,
) {
    let (img_in, img_out) = s.check_backward(x, w, dy, dx.as_ref().map(|d| d.len()), dw, db);
    let (ho, wo, k, l) = (s.ho(), s.wo(), s.k, s.lanes());

    dispatch!(s.isa, bias_grad(dy, s.nb, s.o, ho * wo, db));

    let kk = k * k;
    let group = dispatch!(s.isa, wgrad_group(k)).min(s.o);
    let groups = s.o.div_ceil(group);
    let parts: Vec<(usize, usize, Vec<f32>)> = (0..groups * s.c)
        .into_par_iter()
        .map(|task| {
            let (gi, ci) = (task / s.c, task % s.c);
            let o0 = gi * group;
            let nbo = (s.o - o0).min(group);
            let mut out = vec![0.0f32; nbo * kk];
            dispatch!(s.isa, wgrad_dispatch(x, dy, &s, ci, o0, nbo, &mut out));
            (o0, ci, out)
        })
        .collect();
    for (o0, ci, vals) in parts {
        for b in 0..vals.len() / kk {
            let d = ((o0 + b) * s.c + ci) * kk;
            dw[d..d + kk].copy_from_slice(&vals[b * kk..(b + 1) * kk]);
        }
    }

    if let Some(dx) = dx {
        // Rotated kernel with swapped channel axes: wr[c][o][ky][kx] = w[o][c][k-1-ky][k-1-kx].
        let mut wr = vec![0.0f32; w.len()];
        for o in 0..s.o {
            for ci in 0..s.c {
                for ky in 0..k {
                    for kx in 0..k {
                        wr[((ci * s.o + o) * k + ky) * k + kx] =
                            w[((o * s.c + ci) * k + (k - 1 - ky)) * k + (k - 1 - kx)];
                    }
                }
            }
        }
        // Columns are zero-padded by k - 1 on both sides; rows are not: the kernel skips taps
        // on rows outside the gradient (top = -(k - 1)).
        let pw = wo + 2 * (k - 1);
        let g = Geometry {
            c: s.o,
            ih: ho,
            iw: pw,
            top: -(k as isize - 1),
            cols: (k - 1, k - 1 + wo),
            o: s.c,
            k,
            ho: s.h,
            wo: s.w,
        };
        dx.par_chunks_mut(img_in).enumerate().for_each(|(n, out)| {
            let grad = &dy[n * img_out..(n + 1) * img_out];
            let mut padded = vec![0.0f32; s.o * ho * pw * l];
            for p in 0..s.o * ho {
                let src = &grad[p * wo * l..(p + 1) * wo * l];
                let d = (p * pw + k - 1) * l;
                padded[d..d + wo * l].copy_from_slice(src);
            }
            dispatch!(s.isa, correlate_block(&padded, g, &wr, None, out));
        });
    }
}

#[inline(always)]
pub(crate) fn bias_grad<S: Simd>(
    simd: S,
    dy: &[f32],
    nb: usize,
    o: usize,
    plane: usize,
    db: &mut [f32],
) {
    let l = S::LANES;
    assert!(dy.len() >= nb * o * plane * l && db.len() >= o);
    for (oc, g) in db.iter_mut().enumerate() {
        let mut acc = simd.zero();
        for n in 0..nb {
            let base = (n * o + oc) * plane * l;
            for p in 0..plane {
                // SAFETY: (base + (p + 1) L) <= nb o plane L <= dy.len() (asserted above).
                acc = simd.add(acc, unsafe { simd.load(dy.as_ptr().add(base + p * l)) });
            }
        }
        *g = simd.hsum(acc);
    }
}

/// Output channels per weight-gradient task: as many as keep K accumulators each, their
/// gradient vectors and an input vector in registers (at most 4).
#[inline(always)]
fn wgrad_group<S: Simd>(_: S, k: usize) -> usize {
    ((S::REGISTERS - 2) / (k + 1)).clamp(1, 4)
}

#[inline(always)]
#[allow(clippy::too_many_arguments)]
fn wgrad_dispatch<S: Simd>(
    simd: S,
    x: &[f32],
    dy: &[f32],
    s: &ConvShape,
    ci: usize,
    o0: usize,
    nbo: usize,
    out: &mut [f32],
) {
    macro_rules! sides {
        ($($kv:literal),*) => {
            match (nbo, s.k) {
                $((4, $kv) => wgrad::<S, 4, $kv>(simd, x, dy, s, ci, o0, out),)*
                $((3, $kv) => wgrad::<S, 3, $kv>(simd, x, dy, s, ci, o0, out),)*
                $((2, $kv) => wgrad::<S, 2, $kv>(simd, x, dy, s, ci, o0, out),)*
                $((_, $kv) => {
                    // One channel at a time for the rest (never more than the group).
                    for b in 0..nbo {
                        let kk = $kv * $kv;
                        let out = &mut out[b * kk..(b + 1) * kk];
                        wgrad::<S, 1, $kv>(simd, x, dy, s, ci, o0 + b, out);
                    }
                })*
                _ => unreachable!("kernel side checked by ConvShape::supported"),
            }
        };
    }
    sides!(1, 2, 3, 4, 5, 6, 7, 8, 9)
}

/// `dw[o0 + b][ci][ky][kx]` for b < NB: products of the output gradient and the shifted input,
/// summed over blocks, rows and pixels (in that order), then over lanes.
#[inline(always)]
fn wgrad<S: Simd, const NB: usize, const K: usize>(
    simd: S,
    x: &[f32],
    dy: &[f32],
    s: &ConvShape,
    ci: usize,
    o0: usize,
    out: &mut [f32],
) {
    let (ho, wo, l) = (s.ho(), s.wo(), S::LANES);
    let (img_in, img_out) = (s.c * s.h * s.w * l, s.o * ho * wo * l);
    assert!(x.len() >= s.nb * img_in && dy.len() >= s.nb * img_out);
    assert!(o0 + NB <= s.o && ci < s.c && K == s.k && out.len() >= NB * K * K);
    // SAFETY: with ci < c, o0 + NB <= o and K == k (asserted above), every offset below
    // (blocks n < nb, rows ky + y < h and y < ho, columns xx + kx < w and xx < wo) stays
    // inside the input and gradient lengths asserted above.
    unsafe {
        for ky in 0..K {
            let mut acc = [[simd.zero(); K]; NB];
            for n in 0..s.nb {
                let xb = x.as_ptr().add(n * img_in + (ci * s.h + ky) * s.w * l);
                let gb = dy.as_ptr().add(n * img_out + o0 * ho * wo * l);
                for y in 0..ho {
                    let xr = xb.add(y * s.w * l);
                    let gr = gb.add(y * wo * l);
                    for xx in 0..wo {
                        let mut g = [simd.zero(); NB];
                        for b in 0..NB {
                            g[b] = simd.load(gr.add((b * ho * wo + xx) * l));
                        }
                        for kx in 0..K {
                            let v = simd.load(xr.add((xx + kx) * l));
                            for b in 0..NB {
                                acc[b][kx] = simd.mul_add(g[b], v, acc[b][kx]);
                            }
                        }
                    }
                }
            }
            for b in 0..NB {
                for kx in 0..K {
                    out[b * K * K + ky * K + kx] = simd.hsum(acc[b][kx]);
                }
            }
        }
    }
}
