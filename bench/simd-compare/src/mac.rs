//! The conv forward tile written with macerator's generic `Simd` (same loop structure).
use macerator::{Arch, Scalar, Simd, Vector, WithSimd, vload_unaligned, vstore_unaligned};

pub struct Geo {
    pub c: usize,
    pub ih: usize,
    pub iw: usize,
    pub o: usize,
    pub k: usize,
    pub ho: usize,
    pub wo: usize,
}

#[inline(always)]
unsafe fn tile<S: Simd, const NB: usize, const NP: usize>(
    inp: &[f32],
    g: &Geo,
    wgt: &[f32],
    bias: &[f32],
    ob: usize,
    y: usize,
    x: usize,
    out: &mut [f32],
) {
    let l = f32::lanes::<S>();
    let (k, kk) = (g.k, g.k * g.k);
    let wstride = g.c * kk;
    let z: Vector<S, f32> = 0.0f32.splat();
    let mut acc = [[z; NP]; NB];
    unsafe {
        let ip = inp.as_ptr();
        let wp = wgt.as_ptr().add(ob * wstride);
        for ci in 0..g.c {
            for ky in 0..k {
                let base = ip.add(((ci * g.ih + y + ky) * g.iw + x) * l);
                let wrow = wp.add(ci * kk + ky * k);
                for kx in 0..k {
                    let mut v = [z; NP];
                    for p in 0..NP {
                        v[p] = vload_unaligned::<S, f32>(base.add((kx + p) * l));
                    }
                    for b in 0..NB {
                        let wv: Vector<S, f32> = (*wrow.add(b * wstride + kx)).splat();
                        for p in 0..NP {
                            acc[b][p] = wv.mul_add(v[p], acc[b][p]);
                        }
                    }
                }
            }
        }
        for b in 0..NB {
            let bv: Vector<S, f32> = bias[ob + b].splat();
            let dst = out.as_mut_ptr().add((((ob + b) * g.ho + y) * g.wo + x) * l);
            for p in 0..NP {
                vstore_unaligned::<S, f32>(dst.add(p * l), acc[b][p] + bv);
            }
        }
    }
}

struct Block<'a> {
    inp: &'a [f32],
    g: &'a Geo,
    wgt: &'a [f32],
    bias: &'a [f32],
    out: &'a mut [f32],
}

impl WithSimd for Block<'_> {
    type Output = ();
    #[inline(always)]
    fn with_simd<S: Simd>(self) {
        let Block {
            inp,
            g,
            wgt,
            bias,
            out,
        } = self;
        let l = f32::lanes::<S>();
        assert!(inp.len() >= g.c * g.ih * g.iw * l && out.len() >= g.o * g.ho * g.wo * l);
        let block = if g.o % 5 == 0 { 5 } else { 4 };
        let pixels = if l >= 16 { 4 } else { 2 };
        for y in 0..g.ho {
            let mut ob = 0;
            while ob < g.o {
                let nb = (g.o - ob).min(block);
                let mut x = 0;
                while x < g.wo {
                    let np = (g.wo - x).min(pixels);
                    unsafe {
                        match (nb, np) {
                            (5, 4) => tile::<S, 5, 4>(inp, g, wgt, bias, ob, y, x, out),
                            (5, 2) => tile::<S, 5, 2>(inp, g, wgt, bias, ob, y, x, out),
                            (4, 4) => tile::<S, 4, 4>(inp, g, wgt, bias, ob, y, x, out),
                            (4, 2) => tile::<S, 4, 2>(inp, g, wgt, bias, ob, y, x, out),
                            _ => unimplemented!("bench shapes only"),
                        }
                    }
                    x += np;
                }
                ob += nb;
            }
        }
    }
}

/// # Safety: `arch` must be supported.
pub unsafe fn correlate(
    arch: Arch,
    inp: &[f32],
    g: &Geo,
    wgt: &[f32],
    bias: &[f32],
    out: &mut [f32],
) {
    unsafe {
        arch.dispatch(Block {
            inp,
            g,
            wgt,
            bias,
            out,
        })
    }
}
