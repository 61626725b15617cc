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
//! the transforms included. The row transforms are plain matrix products with the DFT's
//! twiddles; the column transforms too, except where H is a multiple of 4 (20 for the paper
//! networks' 7x7 layers on 28x28 digits), where they factor into four length-H/4 DFTs and
//! radix-4 butterflies ([`col_fft`]). Everything is vectorized over the block's images as every
//! kernel of this layout: no shuffles, every load aligned; an input's all-zero border rows and
//! columns (a "same" convolution's padding) are left out of its transform. The weight gradient
//! is summed per task of [`WGRAD_GROUP`] blocks while each block's spectra are in cache. Sums
//! run in fixed orders, so results do not depend on the thread count; they differ from the
//! direct kernels' in the last bits (the tests allow 2e-5 of the values' scale).

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
/// multiply-adds (forward and both gradients, counting plain column transforms and no skipped
/// zero border: an upper bound) under half of theirs. Measured (`conv_dft_bench`): the paper networks' 7x7
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
    /// The column transforms' factorization, where H is a multiple of 4 (else they are plain
    /// matrix products).
    fft: Option<ColFft>,
}

/// A length-H column transform, H = 4Q, as four length-Q DFTs of the rows m = 4j + r (each
/// through its conjugate-symmetric pairs j, Q - j), twiddles, and Q radix-4 butterflies
/// (additions only): for H = 20 about a third of the vector operations of the plain product,
/// which is most of what the 7x7 layers' transforms cost (`col_fft`).
struct ColFft {
    q: usize,
    /// cos and sin(2 pi j k / Q), [j][k] for j, k <= Q / 2.
    qc: Vec<f32>,
    qs: Vec<f32>,
    /// cos and sin(2 pi r k / H), [r][k] for r < 4, k < Q.
    tc: Vec<f32>,
    ts: Vec<f32>,
}

impl ColFft {
    /// The plan for length `h`, if `h` is a multiple of 4 with Q = h / 4 small enough for
    /// `col_fft`'s registers (Q <= 16).
    fn new(h: usize) -> Option<ColFft> {
        if !h.is_multiple_of(4) || h / 4 > 16 || h < 8 {
            return None;
        }
        let q = h / 4;
        let half = q / 2 + 1;
        let tau = std::f64::consts::TAU;
        let mut f = ColFft {
            q,
            qc: vec![0.0; half * half],
            qs: vec![0.0; half * half],
            tc: vec![0.0; 4 * q],
            ts: vec![0.0; 4 * q],
        };
        for j in 0..half {
            for k in 0..half {
                let t = tau * ((j * k) % q) as f64 / q as f64;
                f.qc[j * half + k] = t.cos() as f32;
                f.qs[j * half + k] = t.sin() as f32;
            }
        }
        for r in 0..4 {
            for k in 0..q {
                let t = tau * (r * k) as f64 / h as f64;
                f.tc[r * q + k] = t.cos() as f32;
                f.ts[r * q + k] = t.sin() as f32;
            }
        }
        Some(f)
    }
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
            fft: ColFft::new(h),
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

    /// Floats of the scratch [`r2c`] and [`c2r`] need for `rows` rows of L lanes: the row
    /// transforms' [rows, V] complex, then one column's H complex.
    fn tmp_len(&self, rows: usize, l: usize) -> usize {
        (rows * self.v + self.h) * 2 * l
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
    assert!(inp.len() >= r.rows.1 * r.stride * l && tmp.len() >= d.tmp_len(ih, l));
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
    let (rows_tmp, work) = tmp.split_at_mut(ih * v * cl);
    if let Some(plan) = &d.fft {
        for f in 0..v {
            let src = (&rows_tmp[f * cl..], r.rows.0, ih, v * cl);
            let dst = &mut out[f * bin_stride + off..];
            col_fft::<S, false>(simd, d, plan, src, work, (dst, v * bin_stride, h));
        }
        return;
    }
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
                        $($n => col_chunk::<S, $n, false>(simd, d, &rows_tmp[f * cl..], at, out, bin_stride, off),)*
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
/// transforms. All zero: an empty region. One pass over the data, or-ing the values' bits
/// without the sign (zero iff every value is +-0); inlined into the vector paths, so that the
/// or-ing is vectorized for their instruction sets.
#[inline(always)]
fn data_region(planes: &[f32], chans: usize, h: usize, w: usize, l: usize) -> Region {
    assert!(planes.len() >= chans * h * w * l);
    let (mut row, mut cols) = (vec![0u32; w * l], vec![0u32; w * l]);
    let mut rows = (h, 0);
    for y in 0..h {
        row.fill(0);
        for c in 0..chans {
            let src = &planes[(c * h + y) * w * l..][..w * l];
            for (a, v) in row.iter_mut().zip(src) {
                *a |= v.to_bits() & 0x7fff_ffff;
            }
        }
        if row.iter().fold(0, |a, &b| a | b) != 0 {
            rows = (rows.0.min(y), y + 1);
            for (a, b) in cols.iter_mut().zip(&row) {
                *a |= b;
            }
        }
    }
    if rows.0 >= rows.1 {
        return Region {
            rows: (0, 0),
            cols: (0, 0),
            stride: w,
        };
    }
    let nonzero = |x: usize| cols[x * l..(x + 1) * l].iter().any(|&b| b != 0);
    let first = (0..w).find(|&x| nonzero(x)).unwrap_or(0);
    let last = (0..w).rev().find(|&x| nonzero(x)).map_or(0, |x| x + 1);
    Region {
        rows,
        cols: (first, last),
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

/// One whole column transform through `plan` (forward, or inverse without scaling if INV):
/// `src` = (data, m0, rows, stride) holds the column's rows m0..m0 + rows at `stride` floats
/// apart (the others are zero); outputs u < `limit` go to `dst` = (data, stride, limit) at
/// u * stride. `work` holds H complex vectors.
#[inline(always)]
fn col_fft<S: Simd, const INV: bool>(
    simd: S,
    d: &Dft,
    plan: &ColFft,
    (src, m0, rows, stride): (&[f32], usize, usize, usize),
    work: &mut [f32],
    (dst, dst_stride, limit): (&mut [f32], usize, usize),
) {
    let (l, h, q) = (S::LANES, d.h, plan.q);
    let cl = 2 * l;
    let (pairs, half) = ((q - 1) / 2, q / 2 + 1);
    assert!(q <= 16 && 4 * q == h && m0 + rows <= h && limit <= h && work.len() >= h * cl);
    assert!(rows == 0 || src.len() >= (rows - 1) * stride + cl);
    assert!(limit == 0 || dst.len() >= (limit - 1) * dst_stride + cl);
    assert!(plan.qc.len() >= half * half && plan.tc.len() >= 4 * q);
    // The forward transform multiplies by e^(-i t), the inverse by e^(i t).
    let sign = if INV { -1.0f32 } else { 1.0 };
    // SAFETY: loads read rows m - m0 < rows of `src`, `work` entries < 4Q = H, the tables'
    // entries j, k < half and r < 4, k < Q, and stores go to outputs u < limit (all asserted).
    unsafe {
        // Macros, not closures: a closure is not compiled for the vector path's target
        // features.
        macro_rules! load {
            ($m:expr) => {{
                let m = $m;
                if m >= m0 && m < m0 + rows {
                    let p = src.as_ptr().add((m - m0) * stride);
                    (simd.load(p), simd.load(p.add(l)))
                } else {
                    (simd.zero(), simd.zero())
                }
            }};
        }
        // Length-Q DFTs of the rows m = 4j + r, twiddled by e^(-+2 pi i r k / H), into
        // work[r Q + k].
        for r in 0..4 {
            let z0 = load!(r);
            let (mut tr, mut ti) = ([simd.zero(); 8], [simd.zero(); 8]);
            let (mut dr, mut di) = ([simd.zero(); 8], [simd.zero(); 8]);
            for j in 1..=pairs {
                let (a, b) = (load!(4 * j + r), load!(4 * (q - j) + r));
                (tr[j - 1], ti[j - 1]) = (simd.add(a.0, b.0), simd.add(a.1, b.1));
                (dr[j - 1], di[j - 1]) = (simd.sub(a.0, b.0), simd.sub(a.1, b.1));
            }
            let mid = if q % 2 == 0 {
                load!(4 * (q / 2) + r)
            } else {
                (simd.zero(), simd.zero())
            };
            macro_rules! store {
                ($k:expr, $x:expr) => {{
                    let (k, (xr, xi)) = ($k, $x);
                    let (xr, xi) = if r > 0 && k > 0 {
                        let c = simd.splat(*plan.tc.get_unchecked(r * q + k));
                        let sn = simd.splat(sign * *plan.ts.get_unchecked(r * q + k));
                        // (xr + i xi)(c - i sn) with sn = +-sin.
                        (
                            simd.mul_add(xi, sn, simd.mul(xr, c)),
                            simd.sub(simd.mul(xi, c), simd.mul(xr, sn)),
                        )
                    } else {
                        (xr, xi)
                    };
                    let p = work.as_mut_ptr().add((r * q + k) * cl);
                    simd.store(p, xr);
                    simd.store(p.add(l), xi);
                }};
            }
            for k in 0..half {
                // A = z0 + sum_j cos(2 pi j k / Q) t_j (+ (-1)^k the middle row).
                let (mut ar, mut ai) = (z0.0, z0.1);
                if q % 2 == 0 {
                    if k % 2 == 0 {
                        (ar, ai) = (simd.add(ar, mid.0), simd.add(ai, mid.1));
                    } else {
                        (ar, ai) = (simd.sub(ar, mid.0), simd.sub(ai, mid.1));
                    }
                }
                for j in 1..=pairs {
                    let c = simd.splat(*plan.qc.get_unchecked(j * half + k));
                    ar = simd.mul_add(tr[j - 1], c, ar);
                    ai = simd.mul_add(ti[j - 1], c, ai);
                }
                if k == 0 || 2 * k == q {
                    store!(k, (ar, ai));
                    continue;
                }
                // B = sum_j sin(2 pi j k / Q) d_j; X_k = A -+ iB, X_(Q-k) = A +- iB.
                let (mut br, mut bi) = (simd.zero(), simd.zero());
                for j in 1..=pairs {
                    let sn = simd.splat(sign * *plan.qs.get_unchecked(j * half + k));
                    br = simd.mul_add(dr[j - 1], sn, br);
                    bi = simd.mul_add(di[j - 1], sn, bi);
                }
                store!(k, (simd.add(ar, bi), simd.sub(ai, br)));
                store!(q - k, (simd.sub(ar, bi), simd.add(ai, br)));
            }
        }
        // Radix-4 butterflies: X[k + Q k1] = sum_r work[r Q + k] (-+i)^(r k1).
        for k in 0..q {
            macro_rules! w {
                ($r:expr) => {{
                    let p = work.as_ptr().add(($r * q + k) * cl);
                    (simd.load(p), simd.load(p.add(l)))
                }};
            }
            let (a0, a1, a2, a3) = (w!(0), w!(1), w!(2), w!(3));
            let (s0, s1) = (
                (simd.add(a0.0, a2.0), simd.add(a0.1, a2.1)),
                (simd.sub(a0.0, a2.0), simd.sub(a0.1, a2.1)),
            );
            let (s2, s3) = (
                (simd.add(a1.0, a3.0), simd.add(a1.1, a3.1)),
                (simd.sub(a1.0, a3.0), simd.sub(a1.1, a3.1)),
            );
            // Forward: X1 = s1 - i s3, X3 = s1 + i s3; inverse the other way round.
            let (m1, p1) = (
                (simd.add(s1.0, s3.1), simd.sub(s1.1, s3.0)),
                (simd.sub(s1.0, s3.1), simd.add(s1.1, s3.0)),
            );
            let (x1, x3) = if INV { (p1, m1) } else { (m1, p1) };
            let outs = [
                (simd.add(s0.0, s2.0), simd.add(s0.1, s2.1)),
                x1,
                (simd.sub(s0.0, s2.0), simd.sub(s0.1, s2.1)),
                x3,
            ];
            for (k1, (xr, xi)) in outs.into_iter().enumerate() {
                let u = k + q * k1;
                if u < limit {
                    let p = dst.as_mut_ptr().add(u * dst_stride);
                    simd.store(p, xr);
                    simd.store(p.add(l), xi);
                }
            }
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
    assert!(tmp.len() >= d.tmp_len(oh, l) && out.len() >= oh * ow * l);
    // Columns: tmp[y][f] = sum_u spec[u][f] e^(2 pi i u y / H).
    let (tmp, work) = tmp.split_at_mut(oh * v * cl);
    for f in 0..v {
        let col = &spec[(f * chans + ch) * cl..];
        if let Some(plan) = &d.fft {
            let dst = (&mut tmp[f * cl..], v * cl, oh);
            col_fft::<S, true>(simd, d, plan, (col, 0, h, v * chans * cl), work, dst);
            continue;
        }
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
                        $($n => col_chunk::<S, $n, true>(simd, d, col, at, tmp, cl, 0),)*
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
/// spectra `a` [bins, ni, 2L] and the scalar table `t` [bins, no, ni, 3] (c, d - c, c + d for
/// the entry c + id; see [`mix_tile`]).
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

/// NO outputs of one frequency's product (see [`mix`]), with three real multiplications per
/// complex one: for x = a + ib and a table entry (c, d - c, c + d) of k = c + id,
/// re(x k) = c (a + b) - b (c + d) and im(x k) = c (a + b) + a (d - c), where a + b is shared by
/// the NO outputs.
#[inline(always)]
fn mix_tile<S: Simd, const NO: usize>(simd: S, a: &[f32], ni: usize, t: &[f32], out: &mut [f32]) {
    let l = S::LANES;
    assert!(a.len() >= ni * 2 * l && t.len() >= NO * ni * 3 && out.len() >= NO * 2 * l);
    let (mut k1, mut k2, mut k3) = ([simd.zero(); NO], [simd.zero(); NO], [simd.zero(); NO]);
    // SAFETY: i < ni and j < NO stay inside the lengths asserted above.
    unsafe {
        for i in 0..ni {
            let (xr, xi) = (
                simd.load(a.as_ptr().add(2 * i * l)),
                simd.load(a.as_ptr().add((2 * i + 1) * l)),
            );
            let sum = simd.add(xr, xi);
            for j in 0..NO {
                let w = t.as_ptr().add((j * ni + i) * 3);
                k1[j] = simd.mul_add(sum, simd.splat(*w), k1[j]);
                k2[j] = simd.mul_add(xr, simd.splat(*w.add(1)), k2[j]);
                k3[j] = simd.mul_add(xi, simd.splat(*w.add(2)), k3[j]);
            }
        }
        for j in 0..NO {
            simd.store(out.as_mut_ptr().add(2 * j * l), simd.sub(k1[j], k3[j]));
            simd.store(
                out.as_mut_ptr().add((2 * j + 1) * l),
                simd.add(k1[j], k2[j]),
            );
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

/// The kernels' spectra as one pass's product table (each entry c + id as c, d - c, c + d:
/// [`mix_tile`]'s form), in the first
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
    let mut buf = scratch(&TABLES, len + bins * groups * cl + d.tmp_len(k, l));
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
            // Pair o C + c sits in lane (o C + c) % L of group (o C + c) / L: the pairs in order
            // are the groups' lanes in order (no divisions: they took most of the table's time).
            let values = spec
                .chunks_exact(cl)
                .flat_map(|g| g[..l].iter().zip(&g[l..]))
                .take(pairs);
            // The entry a + ib: conj(K) forward, K for the input gradient ([c][o]).
            let entry = |(a, b): (f32, f32)| [a, b - a, a + b];
            match which {
                Table::Forward => {
                    for (t, (&re, &im)) in table.chunks_exact_mut(3).zip(values) {
                        t.copy_from_slice(&entry((re, -im)));
                    }
                }
                Table::InputGrad => {
                    let mut values = values;
                    for oi in 0..o {
                        for (ci, (&re, &im)) in (0..c).zip(values.by_ref()) {
                            table[(ci * o + oi) * 3..][..3].copy_from_slice(&entry((re, im)));
                        }
                    }
                }
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
    let tmp_len = d.tmp_len(s.h.max(ho), l);
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
    /// The weight gradient's per-task accumulators ([`backward`], the calling thread's).
    static WGRAD_ACCS: Cell<Vec<f32>> = const { Cell::new(Vec::new()) };
    /// The kernels' product tables (the calling thread's).
    static TABLES: Cell<Vec<f32>> = const { Cell::new(Vec::new()) };
    /// The convolution's output before pooling ([`conv_pool_forward`], the calling thread's).
    static CONV_OUT: Cell<Vec<f32>> = const { Cell::new(Vec::new()) };
}

/// One of this thread's scratch buffers, at least `len` floats, kept between calls ([`keep`]
/// hands it back): spectra and accumulators take megabytes, which fresh allocations would fault in
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

/// Blocks whose weight-gradient terms one task sums in its own accumulator: fixed, so that
/// the order of the sums does not depend on the thread count.
const WGRAD_GROUP: usize = 4;

/// Gradients of [`forward`] through the DFT; the same contract as
/// [`crate::conv_blocked::backward`].
///
/// Tasks of [`WGRAD_GROUP`] blocks each: per block the spectra of its input and output
/// gradient, its input gradient, and its terms of the weight gradient's spectrum added to the
/// task's accumulator while the block's spectra are still in cache (a whole batch's spectra,
/// kept for a pass over the frequencies, would take tens of megabytes); then the accumulators
/// summed in order and the k x k corner of their inverse transform.
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
    let (img_in, img_out) = (s.c * s.h * s.w * l, s.o * s.ho() * s.wo() * l);
    let acc_len = wgrad_len(&s, &d);
    let groups = s.nb.div_ceil(WGRAD_GROUP);
    let mut buf = scratch(&WGRAD_ACCS, groups * acc_len);
    let accs = &mut buf[..groups * acc_len];
    let tables = dx
        .is_some()
        .then(|| kernel_table(&s, &d, w, Table::InputGrad));
    let table = tables.as_deref().map(|t| &t[..d.bins() * s.o * s.c * 3]);
    let mut dx_items: Vec<&mut [f32]> = match dx {
        Some(dx) => dx.chunks_mut(img_in).collect(),
        None => (0..s.nb).map(|_| &mut [][..]).collect(),
    };
    accs.par_chunks_mut(acc_len)
        .zip(dx_items.par_chunks_mut(WGRAD_GROUP))
        .enumerate()
        .for_each(|(g, (acc, dxs))| {
            acc.fill(0.0);
            for (i, dx) in dxs.iter_mut().enumerate() {
                let n = g * WGRAD_GROUP + i;
                let inp = &x[n * img_in..(n + 1) * img_in];
                let grad = &dy[n * img_out..(n + 1) * img_out];
                dispatch!(s.isa, backward_block(&d, &s, inp, grad, table, acc, dx));
            }
        });
    if let Some(t) = tables {
        keep(&TABLES, t);
    }
    weight_grad(&s, &d, accs, dw);
    keep(&WGRAD_ACCS, buf);
}

/// Floats of one weight-gradient accumulator: [bins, O, Cv, 2L], the input channels padded to
/// Cv vectors of L (channel c in lane c % L of vector c / L).
fn wgrad_len(s: &ConvShape, d: &Dft) -> usize {
    d.bins() * s.o * s.c.div_ceil(s.lanes()) * 2 * s.lanes()
}

/// The weight gradient `dw` from the tasks' accumulators `accs` (see [`backward`]): their
/// sum in order, then per (output, input vector) pair the k x k corner of its inverse
/// transform.
fn weight_grad(s: &ConvShape, d: &Dft, accs: &mut [f32], dw: &mut [f32]) {
    let (k, l) = (s.k, s.lanes());
    let cv = s.c.div_ceil(l);
    let acc_len = wgrad_len(s, d);
    let (sum, rest) = accs.split_at_mut(acc_len);
    const CHUNK: usize = 4096;
    sum.par_chunks_mut(CHUNK).enumerate().for_each(|(i, out)| {
        for other in rest.chunks(acc_len) {
            for (a, b) in out.iter_mut().zip(&other[i * CHUNK..]) {
                *a += b;
            }
        }
    });
    let pgs = s.o * cv;
    let mut corner = vec![0.0f32; k * k * l];
    let mut tmp = vec![0.0f32; d.tmp_len(k, l)];
    for pg in 0..pgs {
        dispatch!(
            s.isa,
            c2r(d, sum, pgs, pg, (k, k), 0.0, &mut tmp, &mut corner)
        );
        let (oi, cvi) = (pg / cv, pg % cv);
        for lane in 0..l.min(s.c - cvi * l) {
            let p = oi * s.c + cvi * l + lane;
            for t in 0..k * k {
                dw[p * k * k + t] = corner[t * l + lane];
            }
        }
    }
}

/// One block of [`backward`]: the spectra of its input and output gradient, with the
/// input-gradient `table` its input gradient `dx`, and its weight-gradient terms added to
/// `acc`.
#[inline(always)]
#[allow(clippy::too_many_arguments)]
fn backward_block<S: Simd>(
    simd: S,
    d: &Dft,
    s: &ConvShape,
    inp: &[f32],
    grad: &[f32],
    table: Option<&[f32]>,
    acc: &mut [f32],
    dx: &mut [f32],
) {
    let (l, cl) = (S::LANES, cplx::<S>());
    let (ho, wo, bins) = (s.ho(), s.wo(), d.bins());
    let r = data_region(inp, s.c, s.h, s.w, l);
    let (xs_len, gs_len) = (bins * s.c * cl, bins * s.o * cl);
    let dxs_len = if table.is_some() { xs_len } else { 0 };
    let xt_len = l * s.c.div_ceil(l) * cl;
    let tmp_len = d.tmp_len(s.h.max(ho), l);
    let mut buf = scratch(&BLOCK, xs_len + gs_len + dxs_len + xt_len + tmp_len);
    let (xs, rest) = buf.split_at_mut(xs_len);
    let (gs, rest) = rest.split_at_mut(gs_len);
    let (dxs, rest) = rest.split_at_mut(dxs_len);
    let (xt, tmp) = rest.split_at_mut(xt_len);
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
    wgrad_block(simd, s, bins, xs, gs, xt, acc);
    keep(&BLOCK, buf);
}

/// Adds one block's weight-gradient terms to `acc` [bins, O, Cv, 2L]: per frequency, the sum
/// over the block's images of X[c] conj(G[o]). The images are the lanes of both spectra, so
/// X is transposed per frequency into `xt` [L, Cv, 2L] (channels along the lanes) and each
/// image's G[o] broadcast: no horizontal sums.
#[inline(always)]
fn wgrad_block<S: Simd>(
    simd: S,
    s: &ConvShape,
    bins: usize,
    xs: &[f32],
    gs: &[f32],
    xt: &mut [f32],
    acc: &mut [f32],
) {
    let (l, cl) = (S::LANES, cplx::<S>());
    let cv = s.c.div_ceil(l);
    assert!(xs.len() >= bins * s.c * cl && gs.len() >= bins * s.o * cl);
    assert!(xt.len() >= l * cv * cl && acc.len() >= bins * s.o * cv * cl);
    let no_max = if S::REGISTERS >= 32 { 8 } else { 4 };
    for bin in 0..bins {
        let x = &xs[bin * s.c * cl..(bin + 1) * s.c * cl];
        xt[..l * cv * cl].fill(0.0);
        for c in 0..s.c {
            for part in 0..2 {
                for img in 0..l {
                    xt[((img * cv + c / l) * 2 + part) * l + c % l] = x[c * cl + part * l + img];
                }
            }
        }
        let g = &gs[bin * s.o * cl..(bin + 1) * s.o * cl];
        let acc = &mut acc[bin * s.o * cv * cl..(bin + 1) * s.o * cv * cl];
        for cvi in 0..cv {
            let mut o = 0;
            while o < s.o {
                let no = (s.o - o).min(no_max);
                let at = (o, cv, cvi);
                macro_rules! tile {
                    ($($n:literal),*) => {
                        match no {
                            $($n => wgrad_tile::<S, $n>(simd, g, xt, at, acc),)*
                            _ => unreachable!(),
                        }
                    };
                }
                tile!(1, 2, 3, 4, 5, 6, 7, 8);
                o += no;
            }
        }
    }
}

/// NO outputs from `o` of [`wgrad_block`] for input vector `cvi` of `cv`, at one frequency.
#[inline(always)]
fn wgrad_tile<S: Simd, const NO: usize>(
    simd: S,
    g: &[f32],
    xt: &[f32],
    (o, cv, cvi): (usize, usize, usize),
    acc: &mut [f32],
) {
    let (l, cl) = (S::LANES, cplx::<S>());
    assert!(cvi < cv && g.len() >= (o + NO) * cl && xt.len() >= l * cv * cl);
    assert!(acc.len() >= ((o + NO - 1) * cv + cvi + 1) * cl);
    // SAFETY: outputs o + j < o + NO, images < L and vector cvi < cv index inside the lengths
    // asserted above.
    unsafe {
        let at = |j: usize| ((o + j) * cv + cvi) * cl;
        let (mut re, mut im) = ([simd.zero(); NO], [simd.zero(); NO]);
        for j in 0..NO {
            re[j] = simd.load(acc.as_ptr().add(at(j)));
            im[j] = simd.load(acc.as_ptr().add(at(j) + l));
        }
        for img in 0..l {
            let xp = xt.as_ptr().add((img * cv + cvi) * cl);
            let (xr, xi) = (simd.load(xp), simd.load(xp.add(l)));
            let nxr = simd.sub(simd.zero(), xr);
            for j in 0..NO {
                let gp = g.as_ptr().add((o + j) * cl + img);
                let (gr, gi) = (simd.splat(*gp), simd.splat(*gp.add(l)));
                // (xr + i xi)(gr - i gi) = xr gr + xi gi + i (xi gr - xr gi).
                re[j] = simd.mul_add(xr, gr, re[j]);
                re[j] = simd.mul_add(xi, gi, re[j]);
                im[j] = simd.mul_add(xi, gr, im[j]);
                im[j] = simd.mul_add(nxr, gi, im[j]);
            }
        }
        for j in 0..NO {
            simd.store(acc.as_mut_ptr().add(at(j)), re[j]);
            simd.store(acc.as_mut_ptr().add(at(j) + l), im[j]);
        }
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
                // Column lengths 4Q for Q even (16, 24, 8) and odd (12, 20, 36) take the
                // factored column transform.
                (1, 2, 16, 12, 3, 5),
                (1, 2, 24, 8, 2, 3),
                (1, 1, 8, 9, 2, 3),
                (1, 3, 36, 10, 2, 7),
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
    fn data_region_finds_the_nonzero_rows_and_columns() {
        let (chans, h, w, l) = (2, 7, 6, 4);
        let mut planes = vec![0.0f32; chans * h * w * l];
        assert_eq!(data_region(&planes, chans, h, w, l).rows.1, 0);
        // Channel 1, row 2, column 4, lane 3; channel 0, row 5, column 1, lane 0; a -0.0
        // elsewhere counts as zero.
        planes[((h + 2) * w + 4) * l + 3] = 1.0;
        planes[(5 * w + 1) * l] = -2.0;
        planes[(6 * w + 5) * l + 1] = -0.0;
        let r = data_region(&planes, chans, h, w, l);
        assert_eq!((r.rows, r.cols, r.stride), ((2, 6), (1, 5), w));
    }

    #[test]
    fn dft_convolution_on_a_tiny_shape() {
        // Sizes Miri can afford: a plain column transform (H = 5) and the factored one with
        // Q even (H = 8) and odd (H = 12).
        for_each_isa(|isa: Isa| {
            for (h, w, k) in [(5, 4, 2), (8, 3, 2), (12, 3, 3)] {
                let s = ConvShape {
                    isa,
                    nb: 1,
                    c: 2,
                    h,
                    w,
                    o: 2,
                    k,
                };
                let x = values(s.c * s.h * s.w * isa.lanes(), 8);
                assert_matches_direct(s, &zero_border(x, s, 1));
            }
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
