//! The conv forward tile as it was written before issue 12: AVX2 intrinsics (a copy of the
//! old `crates/stn-kernels/src/conv_blocked.rs`, forward part only).
#![allow(dead_code)]

// AVX2 + FMA convolution kernels for the batch-blocked layout
// [N / 8, C, H, W, 8]: eight images side by side in every vector.
//
// Spatial-transformer networks run small images with few channels, where vectorizing over
// pixels wastes lanes at every row end and over channels wastes lanes on 8- or 10-channel
// layers. Vectorizing over the batch wastes nothing, needs no padding for alignment, and
// keeps every load aligned; conversions happen only at the ends of a convolution stack.
//
// - forward: register tiles of up to 5 output channels x 2 output pixels (10 accumulators of
//   8 images), streaming the kernel taps: per tap, 2 loads, 5 weight broadcasts and 10 FMAs;
// - input gradient: the forward kernel over the output gradient zero-padded by k - 1, with the
//   kernel rotated by 180 degrees and its channel axes swapped; rows of taps that only meet
//   padding are skipped;
// - weight gradient: per (output channels, input channel, kernel row) the products are summed
//   over blocks, rows and pixels in a fixed order (deterministic for any thread count), then
//   over the 8 lanes.

use std::arch::x86_64::*;

/// Images per block (the lanes of an AVX2 f32 vector).
pub const LANES: usize = 8;

/// Largest kernel side the weight-gradient kernel is specialized for.
pub const MAX_K: usize = 7;

/// Geometry of a valid, stride-1 convolution on blocked tensors: input [nb, c, h, w, 8],
/// kernel [o, c, k, k].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ConvShape {
    /// Blocks of 8 images.
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
    /// Whether the kernels handle this shape.
    pub fn supported(&self) -> bool {
        (1..=MAX_K).contains(&self.k)
            && self.h >= self.k
            && self.w >= self.k
            && self.c > 0
            && self.o > 0
    }
}

/// One block's valid correlation: out[o][y][x] = bias[o] + sum_{c,ky,kx} wgt[o][c][ky][kx] *
/// inp[c][y + ky + top][x + kx], for output rows `y` in 0..ho, where input rows outside
/// 0..ih read as zero (their taps are skipped). `inp` is [c, ih, iw, 8], `out` [o, ho, wo, 8].
#[target_feature(enable = "avx2,fma")]
#[allow(clippy::too_many_arguments)]
pub fn correlate_block(
    inp: &[f32],
    c: usize,
    ih: usize,
    iw: usize,
    top: isize,
    wgt: &[f32],
    bias: Option<&[f32]>,
    o: usize,
    k: usize,
    ho: usize,
    wo: usize,
    out: &mut [f32],
) {
    assert!(inp.len() >= c * ih * iw * LANES && out.len() >= o * ho * wo * LANES);
    assert!(wgt.len() >= o * c * k * k && wo + k - 1 <= iw);
    let geo = TileGeometry {
        c,
        ih,
        iw,
        top,
        k,
        ho,
        wo,
    };
    for y in 0..ho {
        // Kernel rows whose input row exists.
        let first = y as isize + top;
        let ky_lo = (-first).max(0) as usize;
        let ky_hi = ((ih as isize - first).min(k as isize)).max(0) as usize;
        // Output channels per tile: 5 when they divide evenly (10, 20, ...), else 4; with 2
        // pixels that is at most 10 accumulators, which leaves registers for the loads.
        let block = if o.is_multiple_of(5) { 5 } else { 4 };
        let mut ob = 0;
        while ob < o {
            let nb = (o - ob).min(block);
            let mut x = 0;
            while x < wo {
                let np = (wo - x).min(2);
                // SAFETY: bounds asserted above; features enabled on this function.
                unsafe {
                    match (nb, np) {
                        (5, 2) => tile::<5, 2>(inp, &geo, wgt, bias, ob, y, x, ky_lo, ky_hi, out),
                        (5, _) => tile::<5, 1>(inp, &geo, wgt, bias, ob, y, x, ky_lo, ky_hi, out),
                        (4, 2) => tile::<4, 2>(inp, &geo, wgt, bias, ob, y, x, ky_lo, ky_hi, out),
                        (4, _) => tile::<4, 1>(inp, &geo, wgt, bias, ob, y, x, ky_lo, ky_hi, out),
                        (3, 2) => tile::<3, 2>(inp, &geo, wgt, bias, ob, y, x, ky_lo, ky_hi, out),
                        (3, _) => tile::<3, 1>(inp, &geo, wgt, bias, ob, y, x, ky_lo, ky_hi, out),
                        (2, 2) => tile::<2, 2>(inp, &geo, wgt, bias, ob, y, x, ky_lo, ky_hi, out),
                        (2, _) => tile::<2, 1>(inp, &geo, wgt, bias, ob, y, x, ky_lo, ky_hi, out),
                        (_, 2) => tile::<1, 2>(inp, &geo, wgt, bias, ob, y, x, ky_lo, ky_hi, out),
                        (_, _) => tile::<1, 1>(inp, &geo, wgt, bias, ob, y, x, ky_lo, ky_hi, out),
                    }
                }
                x += np;
            }
            ob += nb;
        }
    }
}

struct TileGeometry {
    c: usize,
    ih: usize,
    iw: usize,
    top: isize,
    k: usize,
    ho: usize,
    wo: usize,
}

#[inline(always)]
#[allow(clippy::too_many_arguments)]
unsafe fn tile<const NB: usize, const NP: usize>(
    inp: &[f32],
    g: &TileGeometry,
    wgt: &[f32],
    bias: Option<&[f32]>,
    ob: usize,
    y: usize,
    x: usize,
    ky_lo: usize,
    ky_hi: usize,
    out: &mut [f32],
) {
    unsafe {
        let (k, kk) = (g.k, g.k * g.k);
        let wstride = g.c * kk;
        let mut acc = [[_mm256_setzero_ps(); NP]; NB];
        let ip = inp.as_ptr();
        let wp = wgt.as_ptr().add(ob * wstride);
        for ci in 0..g.c {
            for ky in ky_lo..ky_hi {
                let row = (y as isize + g.top + ky as isize) as usize;
                let base = ip.add(((ci * g.ih + row) * g.iw + x) * LANES);
                let wrow = wp.add(ci * kk + ky * k);
                for kx in 0..k {
                    let mut v = [_mm256_setzero_ps(); NP];
                    for p in 0..NP {
                        v[p] = _mm256_loadu_ps(base.add((kx + p) * LANES));
                    }
                    for b in 0..NB {
                        let wv = _mm256_broadcast_ss(&*wrow.add(b * wstride + kx));
                        for p in 0..NP {
                            acc[b][p] = _mm256_fmadd_ps(wv, v[p], acc[b][p]);
                        }
                    }
                }
            }
        }
        for b in 0..NB {
            let bv = _mm256_set1_ps(bias.map_or(0.0, |bs| bs[ob + b]));
            let dst = out
                .as_mut_ptr()
                .add((((ob + b) * g.ho + y) * g.wo + x) * LANES);
            for p in 0..NP {
                _mm256_storeu_ps(dst.add(p * LANES), _mm256_add_ps(acc[b][p], bv));
            }
        }
    }
}
