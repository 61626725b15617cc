//! Convolution through the discrete Fourier transform, on the batch-blocked layout
//! [N / L, C, H, W, L] of [`crate::conv_blocked`], for the layers where it computes less.
//!
//! A valid stride-1 correlation of an H x W input with a k x k kernel has ho = H - k + 1 rows,
//! so the circular correlation of size H x W equals it on every output pixel (no tap wraps
//! around), and so do the circular forms of its two gradients (the kernel's zero padding
//! covers the wrapped taps). With the input's spectrum X, the output gradient's G and the
//! kernel's K (2-D DFTs of size H x W, the kernel zero-padded):
//!
//! - forward: Y = X conj(K);
//! - input gradient: dX = G K;
//! - weight gradient: dK = sum over the batch of X conj(G), of which the k x k corner is kept.
//!
//! Per frequency this is a C x O complex matrix product, where the direct convolution costs
//! k² multiply-adds per pixel and channel pair: for the paper's CNN's 7x7 layer (16 -> 32
//! channels on 20x20 padded maps) about a quarter of the direct kernels' multiply-adds in all,
//! the transforms included. The transforms are plain matrix products with the DFT's twiddles
//! (sizes 12-20 on the layers that take this path, where an FFT's bookkeeping would save
//! little), vectorized over the block's images as every kernel of this layout: no shuffles,
//! every load aligned; an input's all-zero border rows and columns (a "same" convolution's
//! padding) are left out of its transform. Sums run in fixed orders, so results do not depend
//! on the thread count; they differ from the direct kernels' in the last bits (the tests allow
//! 2e-5 of the values' scale).

use std::cell::Cell;
use std::sync::OnceLock;
use std::thread::LocalKey;

use rayon::prelude::*;

use crate::conv_blocked::{ConvShape, bias_grad};
use crate::simd::{Simd, dispatch};

/// Whether the ops should take the DFT path for this shape: where it [`pays`], unless
/// `STN_CONV=direct` (read once) forces the direct kernels everywhere, for comparisons;
/// `STN_CONV=dft` takes it wherever the shape is supported.
pub fn chosen(s: &ConvShape) -> bool {
    static MODE: OnceLock<Option<bool>> = OnceLock::new();
    let mode = *MODE.get_or_init(|| match std::env::var("STN_CONV").as_deref() {
        Ok("direct") => Some(false),
        Ok("dft") => Some(true),
        Ok(other) => {
            eprintln!("warning: STN_CONV={other} ignored (direct or dft)");
            None
        }
        Err(_) => None,
    });
    match mode {
        Some(dft) => dft && s.supported(),
        None => pays(s),
    }
}

/// Whether the DFT path computes markedly less than the direct kernels for this shape: its
/// multiply-adds (forward and both gradients, as the kernels run them without skipping any
/// zero border) under half of theirs. Measured (`conv_dft_bench`): the paper networks' 7x7
/// layers and the ST-CNN's second localization layer (0.25-0.47 of the direct count) run
/// 1.3-2.3x faster; the tutorial's 5x5 classifier layer (0.55) runs its forward pass no faster
/// than the direct kernel fused with the pooling, and stays direct.
pub fn pays(s: &ConvShape) -> bool {
    if !s.supported() {
        return false;
    }
    let (h, w, c, o, k) = (s.h, s.w, s.c, s.o, s.k);
    let (ho, wo, v) = (s.ho(), s.wo(), w / 2 + 1);
    let direct = 3 * ho * wo * k * k * c * o;
    // Transforms of x (forward and backward), of the gradient, the two inverses, the three
    // products.
    let r2c = |ih: usize, iw: usize| ih * v * iw * 2 + v * h * ih * 4;
    let c2r = |oh: usize, ow: usize| v * oh * h * 4 + oh * ow * v * 2;
    let fft = 2 * c * r2c(h, w)
        + o * r2c(ho, wo)
        + o * c2r(ho, wo)
        + c * c2r(h, w)
        + 3 * h * v * c * o * 4;
    2 * fft < direct
}

/// Twiddle tables of the H x W transforms (the half spectrum: V = W / 2 + 1 columns).
struct Dft {
    h: usize,
    w: usize,
    v: usize,
    /// Row transform, [v][n]: cos(2 pi v n / W) and -sin(..).
    rc: Vec<f32>,
    rs: Vec<f32>,
    /// Column transform, [u][m] (symmetric): cos(2 pi u m / H), sin(..) and -sin(..).
    cc: Vec<f32>,
    cs: Vec<f32>,
    cn: Vec<f32>,
    /// Inverse row transform to real values, [n][v]: a_v cos(2 pi v n / W) / (H W) and
    /// -a_v sin(..) / (H W), a_v = 2 for the columns that stand for two (conjugate) ones.
    ic: Vec<f32>,
    is: Vec<f32>,
}

impl Dft {
    fn new(h: usize, w: usize) -> Dft {
        let v = w / 2 + 1;
        let tau = std::f64::consts::TAU;
        let mut d = Dft {
            h,
            w,
            v,
            rc: vec![0.0; v * w],
            rs: vec![0.0; v * w],
            cc: vec![0.0; h * h],
            cs: vec![0.0; h * h],
            cn: vec![0.0; h * h],
            ic: vec![0.0; w * v],
            is: vec![0.0; w * v],
        };
        for f in 0..v {
            // Column W / 2 of an even W is its own conjugate: counted once.
            let a = if f == 0 || 2 * f == w { 1.0 } else { 2.0 };
            for n in 0..w {
                let t = tau * ((f * n) % w) as f64 / w as f64;
                d.rc[f * w + n] = t.cos() as f32;
                d.rs[f * w + n] = -t.sin() as f32;
                let scale = a / (h * w) as f64;
                d.ic[n * v + f] = (scale * t.cos()) as f32;
                d.is[n * v + f] = (-scale * t.sin()) as f32;
            }
        }
        for u in 0..h {
            for m in 0..h {
                let t = tau * ((u * m) % h) as f64 / h as f64;
                d.cc[u * h + m] = t.cos() as f32;
                d.cs[u * h + m] = t.sin() as f32;
                d.cn[u * h + m] = -t.sin() as f32;
            }
        }
        d
    }

    /// Frequencies of the half spectrum.
    fn bins(&self) -> usize {
        self.h * self.v
    }
}

/// Floats of one complex vector: re then im, L lanes each.
#[inline(always)]
fn cplx<S: Simd>() -> usize {
    2 * S::LANES
}

/// Where the data of a plane lies: rows `rows.0..rows.1` and columns `cols.0..cols.1` of an
/// H x W plane stored with `stride` values (of L lanes) per row; the rest reads as zero.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Region {
    rows: (usize, usize),
    cols: (usize, usize),
    stride: usize,
}

impl Region {
    /// A whole `ih` x `iw` plane at the top left.
    fn whole(ih: usize, iw: usize) -> Region {
        Region {
            rows: (0, ih),
            cols: (0, iw),
            stride: iw,
        }
    }
}

/// The spectrum of one plane `inp` (its data in `r`) into `out[bin * bin_stride + off ..]`
/// (re, im), bin = u V + v. `tmp` holds [rows, V] complex.
#[inline(always)]
#[allow(clippy::too_many_arguments)]
fn r2c<S: Simd>(
    simd: S,
    d: &Dft,
    inp: &[f32],
    r: Region,
    tmp: &mut [f32],
    out: &mut [f32],
    bin_stride: usize,
    off: usize,
) {
    let (l, v, h, w) = (S::LANES, d.v, d.h, d.w);
    let cl = cplx::<S>();
    let (ih, iw) = (r.rows.1 - r.rows.0, r.cols.1 - r.cols.0);
    assert!(r.rows.1 <= h && r.cols.1 <= w && r.cols.1 <= r.stride);
    assert!(inp.len() >= r.rows.1 * r.stride * l && tmp.len() >= ih * v * cl);
    assert!(out.len() >= (d.bins() - 1) * bin_stride + off + cl);
    // Rows: tmp[m][f] = sum_n inp[m][n] e^(-2 pi i f n / W).
    for m in 0..ih {
        let row = &inp[((r.rows.0 + m) * r.stride + r.cols.0) * l..][..iw * l];
        let mut f = 0;
        while f < v {
            let nf = (v - f).min(if S::REGISTERS >= 32 { 8 } else { 4 });
            let at = (f, r.cols.0, iw);
            macro_rules! chunk {
                ($($n:literal),*) => {
                    match nf {
                        $($n => row_chunk::<S, $n>(simd, d, row, at, &mut tmp[(m * v + f) * cl..]),)*
                        _ => unreachable!(),
                    }
                };
            }
            chunk!(1, 2, 3, 4, 5, 6, 7, 8);
            f += nf;
        }
    }
    // Columns: out[u][f] = sum_m tmp[m][f] e^(-2 pi i u m / H).
    for f in 0..v {
        let mut u = 0;
        while u < h {
            let nu = (h - u).min(4);
            let at = Cols {
                f,
                u,
                m0: r.rows.0,
                rows: ih,
                stride: v * cl,
            };
            macro_rules! chunk {
                ($($n:literal),*) => {
                    match nu {
                        $($n => col_chunk::<S, $n, false>(simd, d, &tmp[f * cl..], at, out, bin_stride, off),)*
                        _ => unreachable!(),
                    }
                };
            }
            chunk!(1, 2, 3, 4);
            u += nu;
        }
    }
}

/// The rows and columns of a block's `chans` planes [h, w, L] that hold a nonzero value (in
/// any channel or lane): the zero padding of a "same" convolution's input is left out of the
/// transforms. All zero: an empty region.
fn data_region(planes: &[f32], chans: usize, h: usize, w: usize, l: usize) -> Region {
    // Bits without the sign, or-ed: zero iff every value is +-0 (no early exit: vectorizes).
    let zero = |v: &[f32]| v.iter().fold(0u32, |a, x| a | (x.to_bits() & 0x7fff_ffff)) == 0;
    let zero_row = |y: usize| (0..chans).all(|c| zero(&planes[(c * h + y) * w * l..][..w * l]));
    let zero_col = |x: usize, rows: (usize, usize)| {
        (0..chans)
            .all(|c| (rows.0..rows.1).all(|y| zero(&planes[((c * h + y) * w + x) * l..][..l])))
    };
    let mut rows = (0, h);
    while rows.0 < rows.1 && zero_row(rows.0) {
        rows.0 += 1;
    }
    while rows.1 > rows.0 && zero_row(rows.1 - 1) {
        rows.1 -= 1;
    }
    let mut cols = (0, w);
    if rows.0 == rows.1 {
        cols = (0, 0);
    }
    while cols.0 < cols.1 && zero_col(cols.0, rows) {
        cols.0 += 1;
    }
    while cols.1 > cols.0 && zero_col(cols.1 - 1, rows) {
        cols.1 -= 1;
    }
    Region {
        rows,
        cols,
        stride: w,
    }
}

/// NF row frequencies from `f` of one real row of `iw` values from column `n0`; writes NF
/// complex vectors.
#[inline(always)]
fn row_chunk<S: Simd, const NF: usize>(
    simd: S,
    d: &Dft,
    row: &[f32],
    (f, n0, iw): (usize, usize, usize),
    out: &mut [f32],
) {
    let l = S::LANES;
    assert!(row.len() >= iw * l && out.len() >= NF * 2 * l && f + NF <= d.v && n0 + iw <= d.w);
    let (mut re, mut im) = ([simd.zero(); NF], [simd.zero(); NF]);
    // SAFETY: n < iw, so every load reads inside `row`; f + j < V and n0 + n < W index the
    // tables; the stores write the NF complex vectors that `out` holds (asserted above).
    unsafe {
        for n in 0..iw {
            let x = simd.load(row.as_ptr().add(n * l));
            for j in 0..NF {
                let t = (f + j) * d.w + n0 + n;
                re[j] = simd.mul_add(x, simd.splat(*d.rc.get_unchecked(t)), re[j]);
                im[j] = simd.mul_add(x, simd.splat(*d.rs.get_unchecked(t)), im[j]);
            }
        }
        for j in 0..NF {
            simd.store(out.as_mut_ptr().add(2 * j * l), re[j]);
            simd.store(out.as_mut_ptr().add((2 * j + 1) * l), im[j]);
        }
    }
}

/// Where a column transform reads and writes: row frequency `f`, first output row `u`, the
/// first input row's index `m0`, input rows and the stride between them (floats).
#[derive(Clone, Copy)]
struct Cols {
    f: usize,
    u: usize,
    m0: usize,
    rows: usize,
    stride: usize,
}

/// NU outputs from row `at.u` of the length-H complex DFT down one column (forward, or
/// inverse if INV; no scaling) of `src` (row m at m * stride), written to
/// `dst[(u * V + f) * bin_stride + off]` (forward) or `dst[(u * V + f) * 2L]` (inverse).
#[inline(always)]
fn col_chunk<S: Simd, const NU: usize, const INV: bool>(
    simd: S,
    d: &Dft,
    src: &[f32],
    at: Cols,
    dst: &mut [f32],
    bin_stride: usize,
    off: usize,
) {
    let l = S::LANES;
    let h = d.h;
    assert!(at.m0 + at.rows <= h && at.u + NU <= h && at.f < d.v);
    assert!(at.rows == 0 || src.len() >= (at.rows - 1) * at.stride + 2 * l);
    assert!(dst.len() >= ((at.u + NU - 1) * d.v + at.f) * bin_stride + off + 2 * l);
    let (mut re, mut im) = ([simd.zero(); NU], [simd.zero(); NU]);
    // Forward: (zr + i zi)(c - i s) = zr c + zi s + i (zi c - zr s); inverse: the conjugate
    // twiddle, zr c - zi s + i (zi c + zr s).
    let (sp, sn) = if INV { (&d.cn, &d.cs) } else { (&d.cs, &d.cn) };
    // SAFETY: rows m < at.rows read inside `src`, tables are indexed by u < H and m < H, and
    // the stores stay inside `dst` (all asserted above).
    unsafe {
        for m in 0..at.rows {
            let p = src.as_ptr().add(m * at.stride);
            let (zr, zi) = (simd.load(p), simd.load(p.add(l)));
            for j in 0..NU {
                let t = (at.u + j) * h + at.m0 + m;
                let c = simd.splat(*d.cc.get_unchecked(t));
                re[j] = simd.mul_add(zr, c, re[j]);
                re[j] = simd.mul_add(zi, simd.splat(*sp.get_unchecked(t)), re[j]);
                im[j] = simd.mul_add(zi, c, im[j]);
                im[j] = simd.mul_add(zr, simd.splat(*sn.get_unchecked(t)), im[j]);
            }
        }
        for j in 0..NU {
            let o = ((at.u + j) * d.v + at.f) * bin_stride + off;
            simd.store(dst.as_mut_ptr().add(o), re[j]);
            simd.store(dst.as_mut_ptr().add(o + l), im[j]);
        }
    }
}

/// The real plane `out` [oh, ow, L] (its first oh rows and ow columns, plus `bias`) of a
/// spectrum stored at `spec[(bin * chans + ch) * 2L ..]`. `tmp` holds [oh, V] complex.
#[inline(always)]
#[allow(clippy::too_many_arguments)]
fn c2r<S: Simd>(
    simd: S,
    d: &Dft,
    spec: &[f32],
    chans: usize,
    ch: usize,
    (oh, ow): (usize, usize),
    bias: f32,
    tmp: &mut [f32],
    out: &mut [f32],
) {
    let (l, v, h) = (S::LANES, d.v, d.h);
    let cl = cplx::<S>();
    assert!(oh <= h && ow <= d.w && ch < chans && spec.len() >= d.bins() * chans * cl);
    assert!(tmp.len() >= oh * v * cl && out.len() >= oh * ow * l);
    // Columns: tmp[y][f] = sum_u spec[u][f] e^(2 pi i u y / H).
    for f in 0..v {
        let mut y = 0;
        while y < oh {
            let ny = (oh - y).min(4);
            let at = Cols {
                f,
                u: y,
                m0: 0,
                rows: h,
                stride: v * chans * cl,
            };
            // The output is tmp's [y][f]: bin_stride 2L over (y V + f).
            macro_rules! chunk {
                ($($n:literal),*) => {
                    match ny {
                        $($n => col_chunk::<S, $n, true>(simd, d, &spec[(f * chans + ch) * cl..], at, tmp, cl, 0),)*
                        _ => unreachable!(),
                    }
                };
            }
            chunk!(1, 2, 3, 4);
            y += ny;
        }
    }
    // Rows: out[y][n] = bias + sum_f (re ic[n][f] + im is[n][f]).
    for y in 0..oh {
        let src = &tmp[y * v * cl..(y + 1) * v * cl];
        let dst = &mut out[y * ow * l..(y + 1) * ow * l];
        let mut n = 0;
        while n < ow {
            let nn = (ow - n).min(8);
            macro_rules! chunk {
                ($($k:literal),*) => {
                    match nn {
                        $($k => inv_row_chunk::<S, $k>(simd, d, src, n, bias, &mut dst[n * l..]),)*
                        _ => unreachable!(),
                    }
                };
            }
            chunk!(1, 2, 3, 4, 5, 6, 7, 8);
            n += nn;
        }
    }
}

/// NN real outputs from column `n` of one row of the inverse transform.
#[inline(always)]
fn inv_row_chunk<S: Simd, const NN: usize>(
    simd: S,
    d: &Dft,
    src: &[f32],
    n: usize,
    bias: f32,
    out: &mut [f32],
) {
    let (l, v) = (S::LANES, d.v);
    assert!(src.len() >= v * 2 * l && out.len() >= NN * l && n + NN <= d.w);
    let mut acc = [simd.splat(bias); NN];
    // SAFETY: f < V reads inside `src` (asserted), n + j < W indexes the tables, and the
    // stores write the NN vectors `out` holds.
    unsafe {
        for f in 0..v {
            let (zr, zi) = (
                simd.load(src.as_ptr().add(2 * f * l)),
                simd.load(src.as_ptr().add((2 * f + 1) * l)),
            );
            for j in 0..NN {
                let t = (n + j) * v + f;
                acc[j] = simd.mul_add(zr, simd.splat(*d.ic.get_unchecked(t)), acc[j]);
                acc[j] = simd.mul_add(zi, simd.splat(*d.is.get_unchecked(t)), acc[j]);
            }
        }
        for j in 0..NN {
            simd.store(out.as_mut_ptr().add(j * l), acc[j]);
        }
    }
}

/// Per frequency, the complex products `out[bin][o] = sum_i a[bin][i] t[bin][o][i]` of the
/// spectra `a` [bins, ni, 2L] and the scalar table `t` [bins, no, ni, 3] (re, im, -im).
#[inline(always)]
fn mix<S: Simd>(simd: S, a: &[f32], ni: usize, t: &[f32], no: usize, out: &mut [f32]) {
    let cl = cplx::<S>();
    let bins = out.len() / (no * cl);
    assert!(a.len() >= bins * ni * cl && t.len() >= bins * no * ni * 3);
    for bin in 0..bins {
        let a = &a[bin * ni * cl..(bin + 1) * ni * cl];
        let t = &t[bin * no * ni * 3..(bin + 1) * no * ni * 3];
        let out = &mut out[bin * no * cl..(bin + 1) * no * cl];
        let mut o = 0;
        while o < no {
            let n = (no - o).min(if S::REGISTERS >= 32 { 8 } else { 4 });
            macro_rules! chunk {
                ($($k:literal),*) => {
                    match n {
                        $($k => mix_tile::<S, $k>(simd, a, ni, &t[o * ni * 3..], &mut out[o * cl..]),)*
                        _ => unreachable!(),
                    }
                };
            }
            chunk!(1, 2, 3, 4, 5, 6, 7, 8);
            o += n;
        }
    }
}

/// NO outputs of one frequency's product (see [`mix`]).
#[inline(always)]
fn mix_tile<S: Simd, const NO: usize>(simd: S, a: &[f32], ni: usize, t: &[f32], out: &mut [f32]) {
    let l = S::LANES;
    assert!(a.len() >= ni * 2 * l && t.len() >= NO * ni * 3 && out.len() >= NO * 2 * l);
    let (mut re, mut im) = ([simd.zero(); NO], [simd.zero(); NO]);
    // SAFETY: i < ni and j < NO stay inside the lengths asserted above.
    unsafe {
        for i in 0..ni {
            let (xr, xi) = (
                simd.load(a.as_ptr().add(2 * i * l)),
                simd.load(a.as_ptr().add((2 * i + 1) * l)),
            );
            for j in 0..NO {
                let w = t.as_ptr().add((j * ni + i) * 3);
                let (kr, ki, kn) = (simd.splat(*w), simd.splat(*w.add(1)), simd.splat(*w.add(2)));
                re[j] = simd.mul_add(xr, kr, re[j]);
                re[j] = simd.mul_add(xi, kn, re[j]);
                im[j] = simd.mul_add(xr, ki, im[j]);
                im[j] = simd.mul_add(xi, kr, im[j]);
            }
        }
        for j in 0..NO {
            simd.store(out.as_mut_ptr().add(2 * j * l), re[j]);
            simd.store(out.as_mut_ptr().add((2 * j + 1) * l), im[j]);
        }
    }
}

/// Which product table [`kernel_table`] builds.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Table {
    /// The forward pass's, `[bin][o][c]` of conj(K).
    Forward,
    /// The input gradient's, `[bin][c][o]` of K.
    InputGrad,
}

/// The kernels' spectra as one pass's product table (each entry re, im, -im), in the first
/// `bins * o * c * 3` floats of one of this thread's buffers (hand it back with
/// `keep(&TABLES, ..)`; the rest is the buffer's scratch).
fn kernel_table(s: &ConvShape, d: &Dft, w: &[f32], which: Table) -> Vec<f32> {
    let (o, c, k) = (s.o, s.c, s.k);
    let pairs = o * c;
    let l = s.lanes();
    let groups = pairs.div_ceil(l);
    // The kernels as a blocked tensor [groups, k, k, L]: pair o c + i in lane (o c + i) % L.
    let mut blocked = vec![0.0f32; groups * k * k * l];
    for p in 0..pairs {
        for t in 0..k * k {
            blocked[((p / l) * k * k + t) * l + p % l] = w[p * k * k + t];
        }
    }
    let cl = 2 * l;
    let bins = d.bins();
    let len = bins * pairs * 3;
    let mut buf = scratch(&TABLES, len + bins * groups * cl + k * d.v * cl);
    let (table, rest) = buf.split_at_mut(len);
    let (spec, tmp) = rest.split_at_mut(bins * groups * cl);
    for g in 0..groups {
        let plane = &blocked[g * k * k * l..(g + 1) * k * k * l];
        let (r, off) = (Region::whole(k, k), g * cl);
        dispatch!(s.isa, r2c(d, plane, r, tmp, spec, groups * cl, off));
    }
    table
        .par_chunks_mut(pairs * 3)
        .zip(spec.par_chunks(groups * cl))
        .for_each(|(table, spec)| {
            for p in 0..pairs {
                let at = (p / l) * cl + p % l;
                let (re, im) = (spec[at], spec[at + l]);
                let (oi, ci) = (p / c, p % c);
                let (entry, value) = match which {
                    Table::Forward => (p, [re, -im, im]),
                    Table::InputGrad => (ci * o + oi, [re, im, -im]),
                };
                table[entry * 3..][..3].copy_from_slice(&value);
            }
        });
    buf
}

/// y = conv(x, w) + b on blocked tensors through the DFT (see the module's notes), parallel
/// over blocks; the same contract as [`crate::conv_blocked::forward`].
pub fn forward(x: &[f32], w: &[f32], b: Option<&[f32]>, y: &mut [f32], s: ConvShape) {
    let (img_in, img_out) = s.check_forward(x, w, b, y);
    let d = Dft::new(s.h, s.w);
    let tables = kernel_table(&s, &d, w, Table::Forward);
    let table = &tables[..d.bins() * s.o * s.c * 3];
    y.par_chunks_mut(img_out).enumerate().for_each(|(n, out)| {
        let inp = &x[n * img_in..(n + 1) * img_in];
        dispatch!(s.isa, forward_block(&d, &s, inp, table, b, out));
    });
    keep(&TABLES, tables);
}

/// One block of [`forward`].
#[inline(always)]
fn forward_block<S: Simd>(
    simd: S,
    d: &Dft,
    s: &ConvShape,
    inp: &[f32],
    table: &[f32],
    bias: Option<&[f32]>,
    out: &mut [f32],
) {
    let (l, cl) = (S::LANES, cplx::<S>());
    let (ho, wo, bins) = (s.ho(), s.wo(), d.bins());
    let r = data_region(inp, s.c, s.h, s.w, l);
    let tmp_len = s.h.max(ho) * d.v * cl;
    let mut buf = scratch(&BLOCK, (s.c + s.o) * bins * cl + tmp_len);
    let (xs, rest) = buf.split_at_mut(s.c * bins * cl);
    let (ys, tmp) = rest.split_at_mut(s.o * bins * cl);
    spectra(simd, d, inp, s.c, (s.h, s.w), r, tmp, xs);
    mix(simd, xs, s.c, table, s.o, ys);
    for oc in 0..s.o {
        let plane = &mut out[oc * ho * wo * l..(oc + 1) * ho * wo * l];
        let bv = bias.map_or(0.0, |b| b[oc]);
        c2r(simd, d, ys, s.o, oc, (ho, wo), bv, tmp, plane);
    }
    keep(&BLOCK, buf);
}

/// The spectra [bins, chans, 2L] of `chans` planes [h, w, L] stored one after another (their
/// data in region `r` of each), into `spec`; `tmp` holds [rows, V] complex.
#[inline(always)]
#[allow(clippy::too_many_arguments)]
fn spectra<S: Simd>(
    simd: S,
    d: &Dft,
    planes: &[f32],
    chans: usize,
    (h, w): (usize, usize),
    r: Region,
    tmp: &mut [f32],
    spec: &mut [f32],
) {
    let (l, cl) = (S::LANES, cplx::<S>());
    for ch in 0..chans {
        let plane = &planes[ch * h * w * l..(ch + 1) * h * w * l];
        r2c(simd, d, plane, r, tmp, spec, chans * cl, ch * cl);
    }
}

thread_local! {
    /// One block's spectra (the workers').
    static BLOCK: Cell<Vec<f32>> = const { Cell::new(Vec::new()) };
    /// A whole batch's spectra for the weight gradient (the calling thread's).
    static BATCH: Cell<Vec<f32>> = const { Cell::new(Vec::new()) };
    /// The kernels' product tables (the calling thread's).
    static TABLES: Cell<Vec<f32>> = const { Cell::new(Vec::new()) };
    /// The convolution's output before pooling ([`conv_pool_forward`], the calling thread's).
    static CONV_OUT: Cell<Vec<f32>> = const { Cell::new(Vec::new()) };
}

/// One of this thread's scratch buffers, at least `len` floats, kept between calls ([`keep`]
/// hands it back): a batch's spectra take megabytes, which fresh allocations would fault in
/// page by page on every call. The contents are left over from earlier calls: every user
/// writes before it reads. Each use has its own buffer, so that a calling thread that also
/// runs blocks as a pool worker never takes (and shrinks) the buffer of the other use. (A
/// function, not a closure-taking helper: closures are not compiled for the vector path's
/// target features.)
#[inline(always)]
fn scratch(key: &'static LocalKey<Cell<Vec<f32>>>, len: usize) -> Vec<f32> {
    let mut buf = key.take();
    if buf.len() < len {
        buf.resize(len, 0.0);
    }
    buf
}

/// Hands [`scratch`]'s buffer back for the next call on this thread.
#[inline(always)]
fn keep(key: &'static LocalKey<Cell<Vec<f32>>>, buf: Vec<f32>) {
    key.set(buf);
}

/// relu(max_pool2d(conv(x, w) + b, 2)) through the DFT path, with the window codes if
/// `codes`: the contract of [`crate::conv_pool_blocked::conv_pool_forward`] (the convolution's
/// output is kept in a scratch buffer, then pooled).
pub fn conv_pool_forward(
    x: &[f32],
    w: &[f32],
    b: &[f32],
    s: ConvShape,
    codes: bool,
) -> (Vec<f32>, Option<Vec<f32>>) {
    let len = s.nb * s.o * s.ho() * s.wo() * s.lanes();
    let mut z = scratch(&CONV_OUT, len);
    forward(x, w, Some(b), &mut z[..len], s);
    let out = crate::conv_pool_blocked::pool_relu_codes(&z[..len], s, codes);
    keep(&CONV_OUT, z);
    out
}

/// Gradients of [`forward`] through the DFT; the same contract as
/// [`crate::conv_blocked::backward`].
pub fn backward(
    x: &[f32],
    w: &[f32],
    dy: &[f32],
    dx: Option<&mut [f32]>,
    dw: &mut [f32],
    db: &mut [f32],
    s: ConvShape,
) {
    s.check_backward(x, w, dy, dx.as_ref().map(|d| d.len()), dw, db);
    let l = s.lanes();
    dispatch!(s.isa, bias_grad(dy, s.nb, s.o, s.ho() * s.wo(), db));

    let d = Dft::new(s.h, s.w);
    let cl = 2 * l;
    let bins = d.bins();
    let (xs_len, gs_len) = (bins * s.c * cl, bins * s.o * cl);
    let mut buf = scratch(&BATCH, s.nb * (xs_len + gs_len));
    let (xs, gs) = buf.split_at_mut(s.nb * xs_len);
    backward_spectra(&s, &d, x, dy, dx, w, xs, gs);
    weight_grad(&s, &d, xs, gs, dw);
    keep(&BATCH, buf);
}

/// The spectra of every block's input (`xs`) and output gradient (`gs`), and the input
/// gradient `dx` if wanted.
#[allow(clippy::too_many_arguments)]
fn backward_spectra(
    s: &ConvShape,
    d: &Dft,
    x: &[f32],
    dy: &[f32],
    dx: Option<&mut [f32]>,
    w: &[f32],
    xs: &mut [f32],
    gs: &mut [f32],
) {
    let l = s.lanes();
    let (ho, wo, bins, cl) = (s.ho(), s.wo(), d.bins(), 2 * l);
    let (img_in, img_out) = (s.c * s.h * s.w * l, s.o * ho * wo * l);
    let (xs_len, gs_len) = (bins * s.c * cl, bins * s.o * cl);
    let tables = dx
        .is_some()
        .then(|| kernel_table(s, d, w, Table::InputGrad));
    let table = tables.as_deref().map(|t| &t[..bins * s.o * s.c * 3]);
    let mut dx_items: Vec<&mut [f32]> = match dx {
        Some(dx) => dx.chunks_mut(img_in).collect(),
        None => (0..s.nb).map(|_| &mut [][..]).collect(),
    };
    xs.par_chunks_mut(xs_len)
        .zip(gs.par_chunks_mut(gs_len))
        .zip(dx_items.par_iter_mut())
        .enumerate()
        .for_each(|(n, ((xs, gs), dx))| {
            let inp = &x[n * img_in..(n + 1) * img_in];
            let grad = &dy[n * img_out..(n + 1) * img_out];
            dispatch!(s.isa, backward_block(d, s, inp, grad, table, xs, gs, dx));
        });
    if let Some(t) = tables {
        keep(&TABLES, t);
    }
}

/// The weight gradient `dw` from the spectra of [`backward_spectra`].
fn weight_grad(s: &ConvShape, d: &Dft, xs: &[f32], gs: &[f32], dw: &mut [f32]) {
    let (k, l, bins) = (s.k, s.lanes(), d.bins());
    let cl = 2 * l;

    // Weight gradient: per frequency, sum over blocks and lanes of X conj(G), stored blocked
    // over (o, c) pairs; then the k x k corner of its inverse transform.
    let pairs = s.o * s.c;
    let groups = pairs.div_ceil(l);
    let mut dk = vec![0.0f32; bins * groups * cl];
    dk.par_chunks_mut(groups * cl)
        .enumerate()
        .for_each(|(bin, out)| {
            dispatch!(s.isa, wgrad_bin(s, bin, xs, gs, out));
        });
    let mut corner = vec![0.0f32; k * k * l];
    let mut tmp = vec![0.0f32; k * d.v * cl];
    for g in 0..groups {
        dispatch!(
            s.isa,
            c2r(d, &dk, groups, g, (k, k), 0.0, &mut tmp, &mut corner)
        );
        for p in g * l..((g + 1) * l).min(pairs) {
            for t in 0..k * k {
                dw[p * k * k + t] = corner[t * l + p % l];
            }
        }
    }
}

/// One block of [`backward`]: the spectra of its input (`xs`) and output gradient (`gs`),
/// and, with the input-gradient `table`, its input gradient `dx`.
#[inline(always)]
#[allow(clippy::too_many_arguments)]
fn backward_block<S: Simd>(
    simd: S,
    d: &Dft,
    s: &ConvShape,
    inp: &[f32],
    grad: &[f32],
    table: Option<&[f32]>,
    xs: &mut [f32],
    gs: &mut [f32],
    dx: &mut [f32],
) {
    let (l, cl) = (S::LANES, cplx::<S>());
    let (ho, wo) = (s.ho(), s.wo());
    let r = data_region(inp, s.c, s.h, s.w, l);
    let dxs_len = if table.is_some() {
        d.bins() * s.c * cl
    } else {
        0
    };
    let mut buf = scratch(&BLOCK, dxs_len + s.h.max(ho) * d.v * cl);
    let (dxs, tmp) = buf.split_at_mut(dxs_len);
    spectra(simd, d, inp, s.c, (s.h, s.w), r, tmp, xs);
    spectra(simd, d, grad, s.o, (ho, wo), Region::whole(ho, wo), tmp, gs);
    if let Some(table) = table {
        mix(simd, gs, s.o, table, s.c, dxs);
        let plane = s.h * s.w * l;
        for ci in 0..s.c {
            let out = &mut dx[ci * plane..(ci + 1) * plane];
            c2r(simd, d, dxs, s.c, ci, (s.h, s.w), 0.0, tmp, out);
        }
    }
    keep(&BLOCK, buf);
}

/// One frequency of the weight gradient: `out` [groups, 2L] holds sum over blocks and lanes
/// of X[c] conj(G[o]) for pair o C + c in lane (o C + c) % L of group (o C + c) / L.
#[inline(always)]
fn wgrad_bin<S: Simd>(simd: S, s: &ConvShape, bin: usize, xs: &[f32], gs: &[f32], out: &mut [f32]) {
    let (l, cl) = (S::LANES, cplx::<S>());
    let bins = xs.len() / (s.nb * s.c * cl);
    let (xs_len, gs_len) = (bins * s.c * cl, bins * s.o * cl);
    assert!(bin < bins && gs.len() >= s.nb * gs_len && out.len() >= (s.o * s.c).div_ceil(l) * cl);
    let mut ob = 0;
    while ob < s.o {
        let no = (s.o - ob).min(2);
        let mut cb = 0;
        while cb < s.c {
            let nc = (s.c - cb).min(4);
            let mut re = [[simd.zero(); 4]; 2];
            let mut im = [[simd.zero(); 4]; 2];
            // SAFETY: block n < nb, bin < bins, channels cb + i < c and ob + j < o index
            // inside xs [nb, bins, c, 2L] and gs [nb, bins, o, 2L] (asserted above).
            unsafe {
                for n in 0..s.nb {
                    let xp = xs.as_ptr().add(n * xs_len + (bin * s.c + cb) * cl);
                    let gp = gs.as_ptr().add(n * gs_len + (bin * s.o + ob) * cl);
                    let mut g = [(simd.zero(), simd.zero()); 2];
                    for j in 0..no {
                        g[j] = (simd.load(gp.add(j * cl)), simd.load(gp.add(j * cl + l)));
                    }
                    for i in 0..nc {
                        let (xr, xi) = (simd.load(xp.add(i * cl)), simd.load(xp.add(i * cl + l)));
                        let nxr = simd.sub(simd.zero(), xr);
                        for j in 0..no {
                            let (gr, gi) = g[j];
                            // (xr + i xi)(gr - i gi) = xr gr + xi gi + i (xi gr - xr gi).
                            re[j][i] = simd.mul_add(xr, gr, re[j][i]);
                            re[j][i] = simd.mul_add(xi, gi, re[j][i]);
                            im[j][i] = simd.mul_add(xi, gr, im[j][i]);
                            im[j][i] = simd.mul_add(nxr, gi, im[j][i]);
                        }
                    }
                }
            }
            for j in 0..no {
                for i in 0..nc {
                    let p = (ob + j) * s.c + cb + i;
                    let at = (p / l) * cl + p % l;
                    out[at] = simd.hsum(re[j][i]);
                    out[at + l] = simd.hsum(im[j][i]);
                }
            }
            cb += nc;
        }
        ob += no;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::conv_blocked;
    use crate::simd::{Isa, for_each_isa};

    fn values(n: usize, seed: u32) -> Vec<f32> {
        let mut state = seed.wrapping_mul(2_654_435_761).wrapping_add(1);
        (0..n)
            .map(|_| {
                state = state.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
                (state >> 8) as f32 / (1u32 << 24) as f32 - 0.5
            })
            .collect()
    }

    fn close(a: &[f32], b: &[f32], what: &str) {
        let scale = b.iter().fold(0.0f32, |m, v| m.max(v.abs())).max(1e-3);
        for (i, (x, y)) in a.iter().zip(b).enumerate() {
            assert!(
                (x - y).abs() <= 2e-5 * scale,
                "{what}[{i}]: dft {x} direct {y} (scale {scale})"
            );
        }
    }

    /// The DFT path's forward pass and gradients (with and without the input gradient) against
    /// the direct kernels' on input `x`.
    fn assert_matches_direct(s: ConvShape, x: &[f32]) {
        let l = s.lanes();
        let wt = values(s.o * s.c * s.k * s.k, 2);
        let b = values(s.o, 3);
        let dy = values(s.nb * s.o * s.ho() * s.wo() * l, 4);
        let (mut y1, mut y2) = (vec![0.0; dy.len()], vec![0.0; dy.len()]);
        forward(x, &wt, Some(&b), &mut y1, s);
        conv_blocked::forward(x, &wt, Some(&b), &mut y2, s);
        close(&y1, &y2, "y");
        let (mut dx1, mut dx2) = (vec![0.0; x.len()], vec![0.0; x.len()]);
        let (mut dw1, mut dw2) = (vec![0.0; wt.len()], vec![0.0; wt.len()]);
        let (mut db1, mut db2) = (vec![0.0; s.o], vec![0.0; s.o]);
        backward(x, &wt, &dy, Some(&mut dx1), &mut dw1, &mut db1, s);
        conv_blocked::backward(x, &wt, &dy, Some(&mut dx2), &mut dw2, &mut db2, s);
        close(&dx1, &dx2, "dx");
        close(&dw1, &dw2, "dw");
        assert_eq!(db1, db2);
        let mut dw3 = vec![0.0; wt.len()];
        backward(x, &wt, &dy, None, &mut dw3, &mut db1, s);
        assert_eq!(
            dw3, dw1,
            "the weight gradient does not depend on computing dx"
        );
    }

    /// `x` with a zero border of `pad` pixels in every plane (a "same" convolution's input).
    fn zero_border(mut x: Vec<f32>, s: ConvShape, pad: usize) -> Vec<f32> {
        let l = s.lanes();
        for (i, v) in x.iter_mut().enumerate() {
            let (y, xx) = ((i / l / s.w) % s.h, (i / l) % s.w);
            if y < pad || xx < pad || y + pad >= s.h || xx + pad >= s.w {
                *v = 0.0;
            }
        }
        x
    }

    /// Every path, shapes odd and even, square and not, with and without a zero border: the
    /// DFT path equals the direct one.
    #[test]
    #[cfg_attr(
        miri,
        ignore = "many multiply-adds; the portable path is covered natively"
    )]
    fn dft_convolution_equals_the_direct_one() {
        for_each_isa(|isa: Isa| {
            for &(nb, c, h, w, o, k) in &[
                (2, 3, 12, 12, 5, 7),
                (1, 2, 11, 9, 3, 5),
                (2, 16, 20, 20, 32, 7),
                (1, 1, 15, 15, 4, 9),
                (1, 2, 6, 7, 2, 1),
            ] {
                let s = ConvShape {
                    isa,
                    nb,
                    c,
                    h,
                    w,
                    o,
                    k,
                };
                let x = values(nb * c * h * w * isa.lanes(), 1);
                assert_matches_direct(s, &x);
                assert_matches_direct(s, &zero_border(x, s, k / 2));
            }
        });
    }

    /// A shape small enough for Miri to check every access of the DFT path (forward, both
    /// gradients, a zero border left out of the transforms).
    #[test]
    fn dft_convolution_on_a_tiny_shape() {
        for_each_isa(|isa: Isa| {
            let s = ConvShape {
                isa,
                nb: 1,
                c: 2,
                h: 5,
                w: 4,
                o: 2,
                k: 2,
            };
            let x = values(s.c * s.h * s.w * isa.lanes(), 8);
            assert_matches_direct(s, &zero_border(x, s, 1));
        });
    }

    /// The fused convolution + pooling of the direct kernels equals the DFT path's
    /// `conv_pool_forward`, codes included (odd output sides; small enough for Miri).
    #[test]
    fn dft_then_pooling_equals_the_fused_kernel() {
        for_each_isa(|isa: Isa| {
            let s = ConvShape {
                isa,
                nb: 2,
                c: 2,
                h: 9,
                w: 8,
                o: 3,
                k: 3,
            };
            let l = isa.lanes();
            let x = values(s.nb * s.c * s.h * s.w * l, 5);
            let (wt, b) = (values(s.o * s.c * s.k * s.k, 6), values(s.o, 7));
            let (y, codes) = conv_pool_forward(&x, &wt, &b, s, true);
            let (y2, codes2) = crate::conv_pool_blocked::conv_pool_forward(&x, &wt, &b, s);
            close(&y, &y2, "pooled");
            let (y3, none) = conv_pool_forward(&x, &wt, &b, s, false);
            assert_eq!((y3, none), (y, None));
            let codes = codes.unwrap();
            let differ = codes.iter().zip(&codes2).filter(|(a, b)| a != b).count();
            // A code may differ only where two window values tie within rounding.
            assert!(differ <= codes.len() / 100, "{differ} codes differ");
        });
    }

    #[test]
    fn pays_for_the_paper_cnns_7x7_layer_not_for_small_ones() {
        let s = |c, h, o, k| ConvShape {
            isa: Isa::Portable,
            nb: 1,
            c,
            h,
            w: h,
            o,
            k,
        };
        assert!(pays(&s(16, 20, 32, 7)));
        assert!(pays(&s(12, 20, 23, 7)));
        // The tutorial's layers stay on the direct kernels.
        assert!(!pays(&s(10, 12, 20, 5)));
        assert!(!pays(&s(8, 11, 10, 5)));
        assert!(!pays(&s(1, 28, 10, 3)));
    }
}
