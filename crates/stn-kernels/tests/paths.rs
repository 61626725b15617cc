//! Every kernel path this CPU supports (portable always; AVX2, AVX-512 or NEON where present)
//! against the same references: f64 convolutions computed naively, the generic scalar pooling,
//! and the f64 sampler. Skipped paths are named on stderr.
//!
//! Under Miri (`.ci/miri-tests`: the portable path only, and some thousand times slower), the
//! same checks run on smaller shapes that still cover the remainders (partial blocks, tiles and
//! vectors).

use stn_kernels::conv_blocked::{self, ConvShape};
use stn_kernels::grid_sample::{self, SampleShape};
use stn_kernels::{Interpolation, Isa, Padding, SampleOptions};
use stn_kernels::{conv_pool_blocked, for_each_isa, pool, pool_blocked};

/// A small deterministic generator (xorshift) of values in [lo, hi).
struct Gen(u64);

impl Gen {
    fn next(&mut self, lo: f64, hi: f64) -> f64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        lo + (hi - lo) * ((self.0 >> 11) as f64 / (1u64 << 53) as f64)
    }
    fn vec(&mut self, n: usize, lo: f64, hi: f64) -> Vec<f32> {
        (0..n).map(|_| self.next(lo, hi) as f32).collect()
    }
}

/// |got - want| <= rel x (the largest finite |want|), and NaN and infinities exactly where
/// `want` has them.
fn assert_close(what: &str, got: &[f32], want: &[f64], rel: f64) {
    assert_eq!(got.len(), want.len(), "{what}: length");
    let scale = want
        .iter()
        .filter(|v| v.is_finite())
        .fold(1e-3f64, |m, v| m.max(v.abs()));
    for (i, (&g, &w)) in got.iter().zip(want).enumerate() {
        let g = g as f64;
        if !(g.is_finite() && w.is_finite()) {
            assert!(
                g.is_nan() && w.is_nan() || g == w,
                "{what}[{i}]: {g} vs {w}"
            );
            continue;
        }
        let err = (g - w).abs();
        assert!(
            err <= rel * scale,
            "{what}[{i}]: {g} vs {w} (scale {scale})"
        );
    }
}

/// Naive valid convolution in f64: x [n, c, h, w], wt [o, c, k, k] -> [n, o, ho, wo].
fn conv_ref(x: &[f32], wt: &[f32], b: &[f32], dims: [usize; 6]) -> Vec<f64> {
    let [n, c, h, w, o, k] = dims;
    let (ho, wo) = (h - k + 1, w - k + 1);
    let mut y = vec![0.0; n * o * ho * wo];
    for i in 0..n {
        for oc in 0..o {
            for yy in 0..ho {
                for xx in 0..wo {
                    let mut s = b[oc] as f64;
                    for ci in 0..c {
                        for ky in 0..k {
                            for kx in 0..k {
                                s += wt[((oc * c + ci) * k + ky) * k + kx] as f64
                                    * x[((i * c + ci) * h + yy + ky) * w + xx + kx] as f64;
                            }
                        }
                    }
                    y[((i * o + oc) * ho + yy) * wo + xx] = s;
                }
            }
        }
    }
    y
}

/// Gradients of [`conv_ref`] for an upstream gradient `up`: (dx, dw, db).
fn conv_grad_ref(
    x: &[f32],
    wt: &[f32],
    up: &[f32],
    dims: [usize; 6],
) -> (Vec<f64>, Vec<f64>, Vec<f64>) {
    let [n, c, h, w, o, k] = dims;
    let (ho, wo) = (h - k + 1, w - k + 1);
    let (mut dx, mut dw, mut db) = (vec![0.0; x.len()], vec![0.0; wt.len()], vec![0.0; o]);
    for i in 0..n {
        for oc in 0..o {
            for yy in 0..ho {
                for xx in 0..wo {
                    let g = up[((i * o + oc) * ho + yy) * wo + xx] as f64;
                    db[oc] += g;
                    for ci in 0..c {
                        for ky in 0..k {
                            for kx in 0..k {
                                let xi = ((i * c + ci) * h + yy + ky) * w + xx + kx;
                                let wi = ((oc * c + ci) * k + ky) * k + kx;
                                dx[xi] += g * wt[wi] as f64;
                                dw[wi] += g * x[xi] as f64;
                            }
                        }
                    }
                }
            }
        }
    }
    (dx, dw, db)
}

const CONV_SHAPES: [[usize; 6]; 6] = [
    // n, c, h, w, o, k: batches that do not fill a block, every tile remainder, sides 1..7.
    [5, 1, 12, 9, 3, 3],
    [9, 3, 11, 13, 10, 5],
    [17, 8, 11, 11, 10, 5],
    [3, 2, 9, 10, 7, 7],
    [8, 10, 12, 12, 20, 5],
    [2, 4, 6, 7, 12, 1],
];

/// Under Miri: partial blocks, 5- and 4-channel tiles with remainders, sides 1, 3, 5 and 7.
const MIRI_CONV_SHAPES: [[usize; 6]; 4] = [
    [5, 1, 6, 5, 7, 3],
    [3, 1, 6, 7, 5, 5],
    [2, 1, 7, 8, 4, 7],
    [2, 2, 3, 3, 6, 1],
];

#[test]
fn convolution_matches_f64_reference_on_every_path() {
    let mut g = Gen(0x5eed);
    let shapes = if cfg!(miri) {
        &MIRI_CONV_SHAPES[..]
    } else {
        &CONV_SHAPES[..]
    };
    for_each_isa(|isa| {
        for &dims in shapes {
            let [n, c, h, w, o, k] = dims;
            let (ho, wo, l) = (h - k + 1, w - k + 1, isa.lanes());
            let x = g.vec(n * c * h * w, -1.0, 1.0);
            let wt = g.vec(o * c * k * k, -0.5, 0.5);
            let b = g.vec(o, -0.5, 0.5);
            let up = g.vec(n * o * ho * wo, -1.0, 1.0);
            let s = ConvShape {
                isa,
                nb: n.div_ceil(l),
                c,
                h,
                w,
                o,
                k,
            };
            let xb = pool::to_blocked(&x, n, c * h * w, l);
            let mut yb = vec![0.0; s.nb * o * ho * wo * l];
            conv_blocked::forward(&xb, &wt, Some(&b), &mut yb, s);
            let y = pool::from_blocked(&yb, n, o * ho * wo, l);
            let what = format!("{isa} {dims:?}");
            assert_close(
                &format!("{what} output"),
                &y,
                &conv_ref(&x, &wt, &b, dims),
                1e-5,
            );

            let upb = pool::to_blocked(&up, n, o * ho * wo, l);
            let (mut dxb, mut dw, mut db) =
                (vec![0.0; xb.len()], vec![0.0; wt.len()], vec![0.0; o]);
            conv_blocked::backward(&xb, &wt, &upb, Some(&mut dxb), &mut dw, &mut db, s);
            let dx = pool::from_blocked(&dxb, n, c * h * w, l);
            let (rdx, rdw, rdb) = conv_grad_ref(&x, &wt, &up, dims);
            assert_close(&format!("{what} grad x"), &dx, &rdx, 1e-5);
            assert_close(&format!("{what} grad weight"), &dw, &rdw, 1e-5);
            assert_close(&format!("{what} grad bias"), &db, &rdb, 1e-5);
        }
    });
}

/// Values with many ties and a few NaNs, for the first-maximum and NaN rules.
fn pool_input(g: &mut Gen, len: usize) -> Vec<f32> {
    (0..len)
        .map(|i| match i % 37 {
            5 => f32::NAN,
            _ => ((g.next(0.0, 7.0) as i32) - 3) as f32 * 0.5,
        })
        .collect()
}

#[test]
fn pooling_matches_the_scalar_kernel_bit_for_bit_on_every_path() {
    let mut g = Gen(0xbeef);
    for_each_isa(|isa| {
        let shapes: &[(usize, usize, usize)] = if cfg!(miri) {
            &[(2, 7, 9), (1, 6, 6), (4, 5, 4)]
        } else {
            &[(6, 7, 9), (3, 12, 12), (1, 24, 24), (4, 5, 4)]
        };
        for &(planes, h, w) in shapes {
            let l = isa.lanes();
            let x = pool_input(&mut g, planes * h * w * l);
            let up = g.vec(planes * (h / 2) * (w / 2) * l, -1.0, 1.0);
            let what = format!("{isa} pool {:?}", (planes, h, w));
            let bits = |v: &[f32]| v.iter().map(|f| f.to_bits()).collect::<Vec<_>>();
            let y = pool_blocked::pool_forward(isa, &x, planes, h, w);
            let want = pool::forward::<f32>(&x, planes, h, w, l);
            assert_eq!(bits(&y), bits(&want), "{what}: output");
            let dx = pool_blocked::pool_backward(isa, &x, &up, planes, h, w);
            let want = pool::backward::<f32>(&x, &up, planes, h, w, l);
            assert_eq!(bits(&dx), bits(&want), "{what}: gradient");
        }
    });
}

#[test]
fn fused_conv_pool_equals_conv_then_pool_bit_for_bit_on_every_path() {
    let mut g = Gen(0xf00d);
    for_each_isa(|isa| {
        let shapes: &[[usize; 6]] = if cfg!(miri) {
            &[[5, 2, 7, 6, 7, 3]]
        } else {
            &[
                [9, 1, 28, 28, 10, 5],
                [16, 8, 11, 11, 10, 5],
                [5, 3, 9, 10, 4, 3],
            ]
        };
        for &dims in shapes {
            let [n, c, h, w, o, k] = dims;
            let l = isa.lanes();
            let s = ConvShape {
                isa,
                nb: n.div_ceil(l),
                c,
                h,
                w,
                o,
                k,
            };
            let (ho, wo) = (s.ho(), s.wo());
            let xb = pool::to_blocked(&g.vec(n * c * h * w, -1.0, 1.0), n, c * h * w, l);
            let wt = g.vec(o * c * k * k, -0.5, 0.5);
            let b = g.vec(o, -0.2, 0.2);
            let mut z = vec![0.0; s.nb * o * ho * wo * l];
            conv_blocked::forward(&xb, &wt, Some(&b), &mut z, s);
            let planes = s.nb * o;
            // The pooling kernels need even sizes only in the rows and columns they read.
            let crop: Vec<f32> = (0..planes)
                .flat_map(|p| {
                    let z = &z;
                    (0..ho / 2 * 2).flat_map(move |yy| {
                        let row = (p * ho + yy) * wo * l;
                        z[row..row + wo / 2 * 2 * l].iter().copied()
                    })
                })
                .collect();
            let (ch, cw) = (ho / 2 * 2, wo / 2 * 2);
            let want = pool_blocked::pool_forward(isa, &crop, planes, ch, cw);
            let (y, codes) = conv_pool_blocked::conv_pool_forward(&xb, &wt, &b, s);
            let bits = |v: &[f32]| v.iter().map(|f| f.to_bits()).collect::<Vec<_>>();
            assert_eq!(bits(&y), bits(&want), "{isa} {dims:?}: output");
            let y_only = conv_pool_blocked::conv_pool_forward_output(&xb, &wt, &b, s);
            assert_eq!(
                bits(&y_only),
                bits(&want),
                "{isa} {dims:?}: output without codes"
            );
            let up = g.vec(y.len(), -1.0, 1.0);
            let dz = conv_pool_blocked::unpool_grad(&up, &codes, s);
            let dcrop = pool_blocked::pool_backward(isa, &crop, &up, planes, ch, cw);
            for p in 0..planes {
                for yy in 0..ho {
                    for xx in 0..wo {
                        for lane in 0..l {
                            let got = dz[((p * ho + yy) * wo + xx) * l + lane];
                            let want = if yy < ch && xx < cw {
                                dcrop[((p * ch + yy) * cw + xx) * l + lane]
                            } else {
                                0.0
                            };
                            assert_eq!(got.to_bits(), want.to_bits(), "{isa} {dims:?}: grad");
                        }
                    }
                }
            }
        }
    });
}

/// One bilinear case on one path: (output, grad input, grad grid, theta output, grad theta).
type Sampled = (Vec<f32>, Vec<f32>, Vec<f32>, Vec<f32>, Vec<f32>);

fn sample(isa: Isa, s: SampleShape, o: SampleOptions, data: &[Vec<f32>; 4]) -> Sampled {
    let [x, grid, up, theta] = data;
    stn_kernels::with_isa(isa, || {
        let mut out = vec![0.0; up.len()];
        grid_sample::forward(x, grid, &mut out, s, o);
        let (mut gi, mut gg) = (vec![0.0; x.len()], vec![0.0; grid.len()]);
        grid_sample::backward(x, grid, up, Some(&mut gi), Some(&mut gg), s, o);
        let mut aout = vec![0.0; up.len()];
        grid_sample::affine_forward(x, theta, &mut aout, s, o);
        let mut gt = vec![0.0; theta.len()];
        grid_sample::affine_backward(x, theta, up, None, &mut gt, s, o);
        (out, gi, gg, aout, gt)
    })
}

#[test]
fn bilinear_sampling_matches_f64_on_every_path_and_outputs_agree_bitwise() {
    let mut g = Gen(0xcafe);
    let s = if cfg!(miri) {
        SampleShape {
            n: 2,
            c: 1,
            h_in: 5,
            w_in: 7,
            h_out: 2,
            w_out: 9,
        }
    } else {
        SampleShape {
            n: 3,
            c: 2,
            h_in: 9,
            w_in: 13,
            h_out: 7,
            w_out: 37,
        }
    };
    let x = g.vec(s.n * s.c * s.h_in * s.w_in, -1.0, 1.0);
    let mut grid = g.vec(s.n * s.h_out * s.w_out * 2, -1.3, 1.3);
    // Edge cases: NaN, infinities, huge values, exact borders.
    let edges = [
        f32::NAN,
        f32::INFINITY,
        f32::NEG_INFINITY,
        1e30,
        -1e30,
        1.0,
        -1.0,
        0.0,
    ];
    for (i, v) in edges.into_iter().enumerate() {
        grid[6 * i + 1] = v;
    }
    let up = g.vec(s.n * s.c * s.h_out * s.w_out, -1.0, 1.0);
    let theta = g.vec(s.n * 6, -0.6, 0.6);
    let data = [x, grid, up, theta];
    let wide = |v: &[f32]| v.iter().map(|&x| x as f64).collect::<Vec<_>>();
    for padding in [Padding::Zeros, Padding::Border] {
        for align in [false, true] {
            let o = SampleOptions::new(Interpolation::Bilinear, padding, align);
            // The f64 kernels (scalar code) as the reference.
            let d64 = data.clone().map(|v| wide(&v));
            let [x, grid, up, theta] = &d64;
            let mut out = vec![0.0; up.len()];
            grid_sample::forward(x, grid, &mut out, s, o);
            let (mut gi, mut gg) = (vec![0.0; x.len()], vec![0.0; grid.len()]);
            grid_sample::backward(x, grid, up, Some(&mut gi), Some(&mut gg), s, o);
            let mut aout = vec![0.0; up.len()];
            grid_sample::affine_forward(x, theta, &mut aout, s, o);
            let mut gt = vec![0.0; theta.len()];
            grid_sample::affine_backward(x, theta, up, None, &mut gt, s, o);

            let portable = sample(Isa::Portable, s, o, &data);
            for_each_isa(|isa| {
                let r = sample(isa, s, o, &data);
                let what = format!("{isa} {padding:?} align={align}");
                // PyTorch's rules: a NaN or infinite coordinate gives a NaN output under zeros
                // padding (NaN weights), none under border padding (clipped, NaN to 0).
                let nans = r.0.iter().filter(|v| v.is_nan()).count();
                match padding {
                    Padding::Zeros => assert!(nans > 0, "{what}: expected NaN outputs"),
                    _ => assert_eq!(nans, 0, "{what}: NaN output under border padding"),
                }
                assert_close(&format!("{what} out"), &r.0, &out, 1e-5);
                assert_close(&format!("{what} grad input"), &r.1, &gi, 1e-5);
                assert_close(&format!("{what} grad grid"), &r.2, &gg, 1e-4);
                assert_close(&format!("{what} affine out"), &r.3, &aout, 1e-5);
                assert_close(&format!("{what} grad theta"), &r.4, &gt, 1e-4);
                // No fused multiply-adds in the sampler: outputs and grid gradients are the
                // same bits on every path.
                // (Every NaN as one: which NaN an operation returns is the instruction's business.)
                let bits = |v: &[f32]| {
                    v.iter()
                        .map(|f| if f.is_nan() { u32::MAX } else { f.to_bits() })
                        .collect::<Vec<_>>()
                };
                assert_eq!(bits(&r.0), bits(&portable.0), "{what}: output bits");
                assert_eq!(bits(&r.2), bits(&portable.2), "{what}: grid gradient bits");
                assert_eq!(bits(&r.3), bits(&portable.3), "{what}: affine output bits");
            });
        }
    }
}

#[test]
fn forcing_a_path_is_scoped_to_the_thread_and_restored() {
    let outer = stn_kernels::isa();
    stn_kernels::with_isa(Isa::Portable, || {
        assert_eq!(stn_kernels::isa(), Isa::Portable);
        // Other threads keep the process-wide choice.
        let other = std::thread::spawn(stn_kernels::isa).join().unwrap();
        assert_eq!(other, outer);
    });
    assert_eq!(stn_kernels::isa(), outer);
    for isa in Isa::ALL {
        assert_eq!(Isa::parse(isa.name()), Some(isa));
        if !isa.supported() {
            eprintln!("skipping {isa}: {}", isa.check().unwrap_err());
        }
    }
}

/// Input gradients of smooth warps, where most vectors of pixels are inside the input and
/// neighbouring lanes share input pixels (the vector samplers merge those lanes' writes):
/// identity, rotation with scaling, zoom in (lanes on the same pixels), zoom out (lanes two
/// pixels apart, some outside) and a mirror (lanes in decreasing order), on every path,
/// against the f64 sampler, for grid_sample and the fused affine sampler.
#[test]
fn input_gradients_of_smooth_warps_match_f64_on_every_path() {
    let mut g = Gen(0xbeef);
    let s = if cfg!(miri) {
        SampleShape {
            n: 5,
            c: 1,
            h_in: 8,
            w_in: 8,
            h_out: 4,
            w_out: 10,
        }
    } else {
        SampleShape {
            n: 5,
            c: 3,
            h_in: 40,
            w_in: 40,
            h_out: 33,
            w_out: 48,
        }
    };
    let theta: Vec<f32> = [
        [1.0, 0.0, 0.0, 0.0, 1.0, 0.0],
        [0.9, 0.1, 0.05, -0.1, 1.1, -0.05],
        [0.5, 0.0, 0.1, 0.0, 0.5, -0.1],
        [1.7, 0.0, 0.0, 0.0, 1.3, 0.02],
        [-1.0, 0.0, 0.01, 0.0, 1.0, 0.0],
    ]
    .concat();
    let x = g.vec(s.n * s.c * s.h_in * s.w_in, -1.0, 1.0);
    let up = g.vec(s.n * s.c * s.h_out * s.w_out, -1.0, 1.0);
    let wide = |v: &[f32]| v.iter().map(|&x| x as f64).collect::<Vec<_>>();
    for padding in [Padding::Zeros, Padding::Border] {
        for align in [false, true] {
            // Under Miri, two of the four (the bilinear test above runs all four).
            if cfg!(miri) && align != (padding == Padding::Border) {
                continue;
            }
            let o = SampleOptions::new(Interpolation::Bilinear, padding, align);
            let grid = stn_kernels::affine_grid::forward(&theta, s.n, s.h_out, s.w_out, align);
            let (x64, grid64, up64, theta64) = (wide(&x), wide(&grid), wide(&up), wide(&theta));
            let mut gi = vec![0.0; x.len()];
            grid_sample::backward(&x64, &grid64, &up64, Some(&mut gi), None, s, o);
            let mut agi = vec![0.0; x.len()];
            let mut gt = vec![0.0; theta.len()];
            grid_sample::affine_backward(&x64, &theta64, &up64, Some(&mut agi), &mut gt, s, o);
            for_each_isa(|isa| {
                let what = format!("{isa} {padding:?} align={align}");
                let (r, ar) = stn_kernels::with_isa(isa, || {
                    let mut r = vec![0.0f32; x.len()];
                    grid_sample::backward(&x, &grid, &up, Some(&mut r), None, s, o);
                    let mut ar = vec![0.0f32; x.len()];
                    let mut gt = vec![0.0f32; theta.len()];
                    grid_sample::affine_backward(&x, &theta, &up, Some(&mut ar), &mut gt, s, o);
                    (r, ar)
                });
                assert_close(&format!("{what} grad input"), &r, &gi, 1e-5);
                assert_close(&format!("{what} affine grad input"), &ar, &agi, 1e-5);
            });
        }
    }
}
