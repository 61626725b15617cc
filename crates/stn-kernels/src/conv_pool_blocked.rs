//! Convolution, 2x2 max pooling and ReLU in one pass on the batch-blocked layout
//! [N / L, C, H, W, L] (see [`crate::conv_blocked`]): the convolution's output is never stored.

use std::mem::MaybeUninit;

use rayon::prelude::*;

use crate::buffers::NewBuffer;
use crate::conv_blocked::ConvShape;
use crate::simd::{Simd, dispatch};

/// relu(max_pool2d(conv(x, w) + b, 2)) on blocked tensors in one pass, without writing the
/// convolution's output: each register tile is a 2x2 pixel window of a few output channels,
/// pooled before it is stored. Returns the pooled output [nb, o, ho/2, wo/2, L] and, per
/// pooled value, which window position won (0..4 row-major, PyTorch's first-maximum rule),
/// or 4 where the ReLU zeroed the value: what the backward pass needs. The codes are floats
/// because they travel as a float tensor between the passes.
pub fn conv_pool_forward(x: &[f32], w: &[f32], b: &[f32], s: ConvShape) -> (Vec<f32>, Vec<f32>) {
    let (y, codes) = conv_pool::<true>(x, w, b, s);
    (y, codes.expect("codes"))
}

/// [`conv_pool_forward`]'s output alone, for inference: no window codes computed or stored.
pub fn conv_pool_forward_output(x: &[f32], w: &[f32], b: &[f32], s: ConvShape) -> Vec<f32> {
    conv_pool::<false>(x, w, b, s).0
}

fn conv_pool<const CODES: bool>(
    x: &[f32],
    w: &[f32],
    b: &[f32],
    s: ConvShape,
) -> (Vec<f32>, Option<Vec<f32>>) {
    assert!(s.supported(), "conv_pool: unsupported shape or path {s:?}");
    let (ph, pw, l) = (s.ho() / 2, s.wo() / 2, s.lanes());
    let img_in = s.c * s.h * s.w * l;
    let img_out = s.o * ph * pw * l;
    assert_eq!(x.len(), s.nb * img_in, "conv_pool: input length");
    assert_eq!(w.len(), s.o * s.c * s.k * s.k, "conv_pool: weight length");
    assert_eq!(b.len(), s.o, "conv_pool: bias length");
    // SAFETY: each block's tiles store every pooled value (and code, if CODES) of the block.
    unsafe {
        pooled_outputs(s.nb, img_out, CODES, |n, y, arg| {
            let inp = &x[n * img_in..(n + 1) * img_in];
            dispatch!(s.isa, conv_pool_block::<CODES>(inp, w, b, &s, y, arg));
        })
    }
}

/// New pooled outputs of `nb` blocks of `img_out` floats, and their window codes if `codes`,
/// without zeroing first: `fill(n, y, arg)` writes block n, in parallel over blocks (`arg` is
/// empty without codes).
///
/// # Safety
/// `fill` must initialize every element of `y`, and of `arg` when it is not empty.
unsafe fn pooled_outputs(
    nb: usize,
    img_out: usize,
    codes: bool,
    fill: impl Fn(usize, &mut [MaybeUninit<f32>], &mut [MaybeUninit<f32>]) + Sync,
) -> (Vec<f32>, Option<Vec<f32>>) {
    let mut y = NewBuffer::new(nb * img_out);
    let mut arg = NewBuffer::new(if codes { nb * img_out } else { 0 });
    if img_out > 0 {
        let mut arg_items: Vec<&mut [MaybeUninit<f32>]> = if codes {
            arg.uninit().chunks_mut(img_out).collect()
        } else {
            (0..nb).map(|_| &mut [][..]).collect()
        };
        y.uninit()
            .par_chunks_mut(img_out)
            .zip(arg_items.par_iter_mut())
            .enumerate()
            .for_each(|(n, (y, arg))| fill(n, y, arg));
    }
    // SAFETY: the caller's `fill` initialized every element of every block.
    unsafe { (y.finish(), codes.then(|| arg.finish())) }
}

#[inline(always)]
fn conv_pool_block<S: Simd, const CODES: bool>(
    simd: S,
    inp: &[f32],
    wgt: &[f32],
    bias: &[f32],
    s: &ConvShape,
    y: &mut [MaybeUninit<f32>],
    arg: &mut [MaybeUninit<f32>],
) {
    let (ph, pw, l) = (s.ho() / 2, s.wo() / 2, S::LANES);
    assert!(inp.len() >= s.c * s.h * s.w * l && wgt.len() >= s.o * s.c * s.k * s.k);
    assert!(y.len() >= s.o * ph * pw * l && bias.len() >= s.o);
    assert!(!CODES || arg.len() >= y.len());
    // Channels x four window positions: 2 x 4 accumulators, 4 loads and a broadcast fit 16
    // registers (three channels would spill); with 32 registers, 5 (or 4) channels.
    let block = match S::REGISTERS {
        r if r >= 32 && s.o.is_multiple_of(5) => 5,
        r if r >= 32 => 4,
        _ => 2,
    };
    for py in 0..ph {
        for px in 0..pw {
            let mut ob = 0;
            while ob < s.o {
                let nb = (s.o - ob).min(block);
                let at = (ob, py, px);
                // SAFETY: the lengths were asserted above; ob + nb <= o, py < ho / 2 and
                // px < wo / 2, so the tile's windows lie inside the convolution's output.
                unsafe {
                    match nb {
                        5 => pool_tile::<S, 5, CODES>(simd, inp, s, wgt, bias, at, y, arg),
                        4 => pool_tile::<S, 4, CODES>(simd, inp, s, wgt, bias, at, y, arg),
                        3 => pool_tile::<S, 3, CODES>(simd, inp, s, wgt, bias, at, y, arg),
                        2 => pool_tile::<S, 2, CODES>(simd, inp, s, wgt, bias, at, y, arg),
                        _ => pool_tile::<S, 1, CODES>(simd, inp, s, wgt, bias, at, y, arg),
                    }
                }
                ob += nb;
            }
        }
    }
}

/// NB channels of the pooled pixel (py, px): `at` = (first channel, py, px); window codes
/// written to `arg` if CODES.
///
/// # Safety
/// The slices must hold the shape's block (input `[c, h, w, L]`, weights `[o, c, k, k]`, bias
/// `[o]`, `y` and, if CODES, `arg` `[o, ho / 2, wo / 2, L]`), and `ob + NB <= o`, `py < ho / 2`,
/// `px < wo / 2`.
#[inline(always)]
#[allow(clippy::too_many_arguments)]
unsafe fn pool_tile<S: Simd, const NB: usize, const CODES: bool>(
    simd: S,
    inp: &[f32],
    s: &ConvShape,
    wgt: &[f32],
    bias: &[f32],
    at: (usize, usize, usize),
    y: &mut [MaybeUninit<f32>],
    arg: &mut [MaybeUninit<f32>],
) {
    let (ob, py, px) = at;
    let l = S::LANES;
    let (k, kk) = (s.k, s.k * s.k);
    let wstride = s.c * kk;
    // acc[b][window position]: (2py, 2px), (2py, 2px+1), (2py+1, 2px), (2py+1, 2px+1).
    let mut acc = [[simd.zero(); 4]; NB];
    // SAFETY: the caller guarantees the lengths and the tile's position: input rows
    // 2 py + ky + 1 < h and columns 2 px + kx + 1 < w, weights of channels < o, outputs of
    // pooled pixel (py, px) of channels < o.
    unsafe {
        let ip = inp.as_ptr();
        let wp = wgt.as_ptr().add(ob * wstride);
        let (y0, x0) = (2 * py, 2 * px);
        for ci in 0..s.c {
            for ky in 0..k {
                let top = ip.add(((ci * s.h + y0 + ky) * s.w + x0) * l);
                let bottom = top.add(s.w * l);
                let wrow = wp.add(ci * kk + ky * k);
                for kx in 0..k {
                    let v = [
                        simd.load(top.add(kx * l)),
                        simd.load(top.add((kx + 1) * l)),
                        simd.load(bottom.add(kx * l)),
                        simd.load(bottom.add((kx + 1) * l)),
                    ];
                    for b in 0..NB {
                        let wv = simd.splat(*wrow.add(b * wstride + kx));
                        for p in 0..4 {
                            acc[b][p] = simd.mul_add(wv, v[p], acc[b][p]);
                        }
                    }
                }
            }
        }
        let (ph, pw) = (s.ho() / 2, s.wo() / 2);
        for b in 0..NB {
            let bv = simd.splat(bias[ob + b]);
            let (m, best) = pool_window(simd, acc[b].map(|a| simd.add(a, bv)));
            let o = (((ob + b) * ph + py) * pw + px) * l;
            simd.store(y.as_mut_ptr().add(o).cast(), m);
            if CODES {
                simd.store(arg.as_mut_ptr().add(o).cast(), best);
            }
        }
    }
}

/// relu(max) of a 2x2 window (row-major) and its code: which position won, or 4 where the
/// ReLU zeroed the value.
#[inline(always)]
fn pool_window<S: Simd>(simd: S, v: [S::F; 4]) -> (S::F, S::F) {
    let zero = simd.zero();
    // PyTorch's max pooling: a later value wins when greater, or NaN.
    let mut m = v[0];
    let mut best = simd.zero();
    for (p, &vp) in v.iter().enumerate().skip(1) {
        let take = simd.or(simd.gt(vp, m), simd.is_nan(vp));
        m = simd.select(take, vp, m);
        best = simd.select(take, simd.splat(p as f32), best);
    }
    // relu (NaN stays, like PyTorch's); a zeroed value passes no gradient (code 4).
    let keep = simd.or(simd.gt(m, zero), simd.is_nan(m));
    best = simd.select(simd.gt(m, zero), best, simd.splat(4.0));
    (simd.select(keep, m, zero), best)
}

/// [`conv_pool_forward`] (with the window codes if `codes`) from the convolution's output
/// `z` [nb, o, ho, wo, L] computed elsewhere (by the DFT path, [`crate::conv_fft`]).
pub fn pool_relu_codes(z: &[f32], s: ConvShape, codes: bool) -> (Vec<f32>, Option<Vec<f32>>) {
    let (ho, wo, l) = (s.ho(), s.wo(), s.lanes());
    let (ph, pw) = (ho / 2, wo / 2);
    let (img_in, img_out) = (s.o * ho * wo * l, s.o * ph * pw * l);
    assert_eq!(z.len(), s.nb * img_in, "pool_relu_codes: input length");
    // SAFETY: each block stores every pooled value (and, if codes, every code) of the block.
    unsafe {
        pooled_outputs(s.nb, img_out, codes, |n, y, arg| {
            let z = &z[n * img_in..(n + 1) * img_in];
            dispatch!(s.isa, pool_block(z, &s, y, arg));
        })
    }
}

/// One block of [`pool_relu_codes`]; codes written if `arg` is not empty.
#[inline(always)]
fn pool_block<S: Simd>(
    simd: S,
    z: &[f32],
    s: &ConvShape,
    y: &mut [MaybeUninit<f32>],
    arg: &mut [MaybeUninit<f32>],
) {
    let (ho, wo, l) = (s.ho(), s.wo(), S::LANES);
    let (ph, pw) = (ho / 2, wo / 2);
    assert!(z.len() >= s.o * ho * wo * l && y.len() >= s.o * ph * pw * l);
    assert!(arg.is_empty() || arg.len() >= y.len());
    for oc in 0..s.o {
        for py in 0..ph {
            for px in 0..pw {
                let at = |dy: usize, dx: usize| ((oc * ho + 2 * py + dy) * wo + 2 * px + dx) * l;
                // SAFETY: channel oc < o, rows 2 py + 1 < ho and columns 2 px + 1 < wo lie
                // inside z's block (asserted above); the output index inside y and arg.
                unsafe {
                    let zp = z.as_ptr();
                    let v = [
                        simd.load(zp.add(at(0, 0))),
                        simd.load(zp.add(at(0, 1))),
                        simd.load(zp.add(at(1, 0))),
                        simd.load(zp.add(at(1, 1))),
                    ];
                    let (m, best) = pool_window(simd, v);
                    let o = ((oc * ph + py) * pw + px) * l;
                    simd.store(y.as_mut_ptr().add(o).cast(), m);
                    if !arg.is_empty() {
                        simd.store(arg.as_mut_ptr().add(o).cast(), best);
                    }
                }
            }
        }
    }
}

/// The convolution's output gradient [nb, o, ho, wo, L] from the pooled output's gradient and
/// the window codes of [`conv_pool_forward`].
pub fn unpool_grad(grad: &[f32], codes: &[f32], s: ConvShape) -> Vec<f32> {
    assert!(s.isa.supported(), "unpool: {} unsupported", s.isa);
    let (ho, wo, l) = (s.ho(), s.wo(), s.lanes());
    let (ph, pw) = (ho / 2, wo / 2);
    assert_eq!(grad.len(), s.nb * s.o * ph * pw * l, "unpool: grad length");
    assert_eq!(codes.len(), grad.len(), "unpool: codes length");
    let plane = ho * wo * l;
    // Every value is written once (no zero fill first: a memset of the whole gradient took
    // ~3% of the paper CNN's training step).
    let mut dz = NewBuffer::new(s.nb * s.o * plane);
    if plane > 0 {
        let pooled = ph * pw * l;
        dz.uninit()
            .par_chunks_mut(plane)
            .enumerate()
            .for_each(|(p, dz)| {
                let g = &grad[p * pooled..(p + 1) * pooled];
                let c = &codes[p * pooled..(p + 1) * pooled];
                dispatch!(s.isa, unpool_plane(g, c, ho, wo, dz));
            });
    }
    // SAFETY: the planes cover the buffer and `unpool_plane` writes all of its plane's values.
    unsafe { dz.finish() }
}

/// One plane: each pooled value's gradient goes to the window position its code names (none
/// for code 4), zeros to the window's other positions and to the rows and columns beyond the
/// last window: every value of `dz` is written.
#[inline(always)]
fn unpool_plane<S: Simd>(
    simd: S,
    g: &[f32],
    codes: &[f32],
    ho: usize,
    wo: usize,
    dz: &mut [MaybeUninit<f32>],
) {
    let (ph, pw, l) = (ho / 2, wo / 2, S::LANES);
    assert!(g.len() >= ph * pw * l && codes.len() >= g.len() && dz.len() >= ho * wo * l);
    let zero = simd.zero();
    let out = dz.as_mut_ptr() as *mut f32;
    for py in 0..ph {
        for px in 0..pw {
            let i = (py * pw + px) * l;
            let a = ((2 * py) * wo + 2 * px) * l;
            // SAFETY: py < ph and px < pw, so (i + L) <= ph pw L <= g.len() <= codes.len()
            // (asserted above).
            let (gv, code) = unsafe {
                (
                    simd.load(g.as_ptr().add(i)),
                    simd.load(codes.as_ptr().add(i)),
                )
            };
            for (k, o) in [a, a + l, a + wo * l, a + (wo + 1) * l]
                .into_iter()
                .enumerate()
            {
                let hit = simd.eq(code, simd.splat(k as f32));
                // SAFETY: the window of (py, px) lies in rows < 2 ph <= ho and columns
                // < 2 pw <= wo of the ho x wo plane, and dz.len() >= ho wo L; a store to
                // uninitialized memory is a plain write.
                unsafe { simd.store(out.add(o), simd.select(hit, gv, zero)) };
            }
        }
    }
    // The odd last column of the window rows, and the odd last row.
    for y in 0..ho {
        let xs = if y < 2 * ph { 2 * pw..wo } else { 0..wo };
        for x in xs {
            // SAFETY: y < ho and x < wo: inside the plane.
            unsafe { simd.store(out.add((y * wo + x) * l), zero) };
        }
    }
}
