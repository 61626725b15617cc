//! Properties of the STN ops beyond the PyTorch fixtures: finite-difference gradient checks,
//! parity of the fused convolution/pooling kernels with burn's stock operations, agreement of
//! the fused affine sampler with affine_grid + grid_sample, determinism, edge semantics.

mod common;

use burn::tensor::module::{conv2d as stock_conv2d, max_pool2d};
use burn::tensor::ops::{ConvOptions, MaxPoolOptions};
use burn::tensor::{DType, Device, Distribution, Tensor, TensorData};
use common::{assert_abs, assert_rel, values};
use stn::ops::{self, Interpolation, Padding, SampleOptions};
use stn::rng::Rng;

fn dev() -> Device {
    Device::flex().autodiff()
}

fn random(shape: &[usize], rng: &mut Rng, lo: f64, hi: f64) -> TensorData {
    let n = shape.iter().product();
    TensorData::new(
        (0..n).map(|_| rng.range(lo, hi)).collect::<Vec<f64>>(),
        shape.to_vec(),
    )
}

fn t<const D: usize>(data: &TensorData, dtype: DType) -> Tensor<D> {
    Tensor::from_data(data.clone(), (&dev(), dtype))
}

/// Central differences of `f` at `x`, one coordinate at a time (f64).
fn numeric_grad(x: &[f64], eps: f64, f: &dyn Fn(&[f64]) -> f64) -> Vec<f64> {
    let mut p = x.to_vec();
    (0..x.len())
        .map(|i| {
            p[i] = x[i] + eps;
            let up = f(&p);
            p[i] = x[i] - eps;
            let down = f(&p);
            p[i] = x[i];
            (up - down) / (2.0 * eps)
        })
        .collect()
}

fn scalar<const D: usize>(t: Tensor<D>) -> f64 {
    values(t.sum())[0]
}

#[test]
fn grid_sample_gradients_match_finite_differences() {
    let mut rng = Rng::new(11);
    let (n, c, h, w, ho, wo) = (2, 2, 5, 6, 3, 4);
    for mode in [
        Interpolation::Bilinear,
        Interpolation::Bicubic,
        Interpolation::Nearest,
    ] {
        for padding in [Padding::Zeros, Padding::Border, Padding::Reflection] {
            for align in [false, true] {
                let o = SampleOptions::new(mode, padding, align);
                let x = random(&[n, c, h, w], &mut rng, -1.0, 1.0);
                let g = random(&[n, ho, wo, 2], &mut rng, -1.2, 1.2);
                let up = random(&[n, c, ho, wo], &mut rng, -1.0, 1.0);
                let loss = |xd: &TensorData, gd: &TensorData| {
                    let out = ops::grid_sample(t(xd, DType::F64), t(gd, DType::F64), o);
                    scalar(out * t::<4>(&up, DType::F64))
                };
                let xt: Tensor<4> = t::<4>(&x, DType::F64).require_grad();
                let gt: Tensor<4> = t::<4>(&g, DType::F64).require_grad();
                let out = ops::grid_sample(xt.clone(), gt.clone(), o);
                let grads = (out * t::<4>(&up, DType::F64)).sum().backward();
                let what = format!("{mode:?} {padding:?} align={align}");

                let xv: Vec<f64> = x.try_to_vec().unwrap();
                let num = numeric_grad(&xv, 1e-6, &|p| {
                    loss(&TensorData::new(p.to_vec(), x.shape().to_vec()), &g)
                });
                assert_abs(
                    &format!("{what} grad input"),
                    &values(xt.grad(&grads).unwrap()),
                    &num,
                    1e-6,
                );

                if mode != Interpolation::Nearest {
                    let gv: Vec<f64> = g.try_to_vec().unwrap();
                    let num = numeric_grad(&gv, 1e-7, &|p| {
                        loss(&x, &TensorData::new(p.to_vec(), g.shape().to_vec()))
                    });
                    assert_abs(
                        &format!("{what} grad grid"),
                        &values(gt.grad(&grads).unwrap()),
                        &num,
                        1e-5,
                    );
                }
            }
        }
    }
}

#[test]
fn grid_generators_gradients_match_finite_differences() {
    use stn::transformer::TransformKind;
    use stn::transformer::grid::generate;
    let mut rng = Rng::new(12);
    let n = 2;
    for kind in [
        TransformKind::Affine,
        TransformKind::Attention,
        TransformKind::Projective,
        TransformKind::Tps { grid: 3 },
    ] {
        for align in [false, true] {
            let p = kind.num_params();
            let ident: Vec<f64> = kind.identity().iter().map(|&v| v as f64).collect();
            let params: Vec<f64> = (0..n * p)
                .map(|i| ident[i % p] + rng.range(-0.1, 0.1))
                .collect();
            let pdata = TensorData::new(params.clone(), [n, p]);
            let up = random(&[n, 4, 5, 2], &mut rng, -1.0, 1.0);
            let loss = |pd: &[f64]| {
                let g = generate(
                    kind,
                    t(&TensorData::new(pd.to_vec(), [n, p]), DType::F64),
                    [4, 5],
                    align,
                );
                scalar(g * t::<4>(&up, DType::F64))
            };
            let pt: Tensor<2> = t::<2>(&pdata, DType::F64).require_grad();
            let g = generate(kind, pt.clone(), [4, 5], align);
            let grads = (g * t::<4>(&up, DType::F64)).sum().backward();
            let num = numeric_grad(&params, 1e-6, &loss);
            assert_abs(
                &format!("{kind:?} align={align}"),
                &values(pt.grad(&grads).unwrap()),
                &num,
                1e-6,
            );
        }
    }
}

#[test]
fn identity_parameters_give_the_identity_sampling() {
    use stn::transformer::TransformKind;
    use stn::transformer::grid::generate;
    let mut rng = Rng::new(13);
    let x = random(&[2, 1, 7, 9], &mut rng, -1.0, 1.0);
    for kind in [
        TransformKind::Affine,
        TransformKind::Attention,
        TransformKind::Projective,
        TransformKind::Tps { grid: 4 },
    ] {
        for align in [false, true] {
            // Exact (f64) identity parameters: the f32 ones of the model are rounded.
            let ident: Vec<f64> = match kind {
                TransformKind::Tps { grid } => stn::transformer::grid::control_points(grid)
                    .iter()
                    .flat_map(|&(x, y)| [x, y])
                    .collect(),
                _ => kind.identity().iter().map(|&v| v as f64).collect(),
            };
            let params = TensorData::new([ident.clone(), ident].concat(), [2, kind.num_params()]);
            let grid = generate(kind, t(&params, DType::F64), [7, 9], align);
            let out = ops::grid_sample(
                t(&x, DType::F64),
                grid,
                SampleOptions::new(Interpolation::Bilinear, Padding::Zeros, align),
            );
            assert_abs(
                &format!("{kind:?} align={align}"),
                &values(out),
                &x.try_to_vec::<f64>().unwrap(),
                1e-9,
            );
        }
    }
}

#[test]
fn fused_affine_sampler_equals_affine_grid_then_grid_sample() {
    stn::ops::kernels::for_each_isa(|isa| {
        eprintln!("path {isa}");
        let mut rng = Rng::new(14);
        for dtype in [DType::F64, DType::F32] {
            for padding in [Padding::Zeros, Padding::Border, Padding::Reflection] {
                for mode in [Interpolation::Bilinear, Interpolation::Bicubic] {
                    for align in [false, true] {
                        let o = SampleOptions::new(mode, padding, align);
                        // 9 x 11 outputs: plane sizes that are not multiples of the vector width.
                        let x = random(&[3, 2, 8, 10], &mut rng, -1.0, 1.0);
                        let th: Vec<f64> = (0..3)
                            .flat_map(|_| {
                                [
                                    1.0 + rng.range(-0.3, 0.3),
                                    rng.range(-0.3, 0.3),
                                    rng.range(-0.3, 0.3),
                                    rng.range(-0.3, 0.3),
                                    1.0 + rng.range(-0.3, 0.3),
                                    rng.range(-0.3, 0.3),
                                ]
                            })
                            .collect();
                        let theta = TensorData::new(th, [3, 2, 3]);
                        let up = random(&[3, 2, 9, 11], &mut rng, -1.0, 1.0);
                        let run = |fused: bool| {
                            let xt: Tensor<4> = t::<4>(&x, dtype).require_grad();
                            let tt: Tensor<3> = t::<3>(&theta, dtype).require_grad();
                            let out = if fused {
                                ops::affine_sample(xt.clone(), tt.clone(), [9, 11], o)
                            } else {
                                ops::grid_sample(
                                    xt.clone(),
                                    ops::affine_grid(tt.clone(), 9, 11, align),
                                    o,
                                )
                            };
                            let grads = (out.clone() * t::<4>(&up, dtype)).sum().backward();
                            (
                                values(out),
                                values(xt.grad(&grads).unwrap()),
                                values(tt.grad(&grads).unwrap()),
                            )
                        };
                        let (a, b) = (run(true), run(false));
                        let tol = if dtype == DType::F64 { 1e-10 } else { 1e-5 };
                        let what = format!("{dtype:?} {mode:?} {padding:?} align={align}");
                        assert_rel(&format!("{what}: output"), &a.0, &b.0, tol);
                        assert_rel(&format!("{what}: grad input"), &a.1, &b.1, tol);
                        assert_rel(
                            &format!("{what}: grad theta"),
                            &a.2,
                            &b.2,
                            tol.max(1e-4 * (dtype == DType::F32) as u8 as f64),
                        );
                    }
                }
            }
        }
    });
}

#[test]
fn simd_and_portable_sampling_paths_agree() {
    stn::ops::kernels::for_each_isa(|isa| {
        eprintln!("path {isa}");
        // The kernels directly: the AVX2 path (when present) against the portable one.
        use stn::ops::kernels::grid_sample::{SampleShape, backward, forward};
        let mut rng = Rng::new(15);
        let s = SampleShape {
            n: 3,
            c: 2,
            h_in: 9,
            w_in: 13,
            h_out: 7,
            w_out: 11,
        };
        let x: Vec<f32> = (0..s.n * s.c * s.h_in * s.w_in)
            .map(|_| rng.range(-1.0, 1.0) as f32)
            .collect();
        let mut g: Vec<f32> = (0..s.n * s.h_out * s.w_out * 2)
            .map(|_| rng.range(-1.3, 1.3) as f32)
            .collect();
        // Edge cases: NaN, infinities, huge values, exact borders.
        for (i, v) in [
            f32::NAN,
            f32::INFINITY,
            f32::NEG_INFINITY,
            1e30,
            -1e30,
            1.0,
            -1.0,
            0.0,
        ]
        .into_iter()
        .enumerate()
        {
            g[4 * i] = v;
        }
        let up: Vec<f32> = (0..s.n * s.c * s.h_out * s.w_out)
            .map(|_| rng.range(-1.0, 1.0) as f32)
            .collect();
        for padding in [Padding::Zeros, Padding::Border] {
            for align in [false, true] {
                let o = SampleOptions::new(Interpolation::Bilinear, padding, align);
                let mut out = vec![0.0; up.len()];
                forward(&x, &g, &mut out, s, o);
                let (mut gi, mut gg) = (vec![0.0; x.len()], vec![0.0; g.len()]);
                backward(&x, &g, &up, Some(&mut gi), Some(&mut gg), s, o);
                // The portable path: f64 computation of the same semantics, rounded.
                let x64: Vec<f64> = x.iter().map(|&v| v as f64).collect();
                let g64: Vec<f64> = g.iter().map(|&v| v as f64).collect();
                let up64: Vec<f64> = up.iter().map(|&v| v as f64).collect();
                let mut out64 = vec![0.0; up.len()];
                forward(&x64, &g64, &mut out64, s, o);
                let (mut gi64, mut gg64) = (vec![0.0; x.len()], vec![0.0; g.len()]);
                backward(&x64, &g64, &up64, Some(&mut gi64), Some(&mut gg64), s, o);
                let f = |v: &[f32]| v.iter().map(|&x| x as f64).collect::<Vec<_>>();
                // PyTorch's rules: NaN and infinite coordinates give NaN outputs under zeros
                // padding (NaN weights), none under border padding (NaN clipped to 0).
                let nans = out.iter().filter(|v| v.is_nan()).count();
                match padding {
                    Padding::Zeros => assert!(nans > 0, "{padding:?}: expected NaN outputs"),
                    _ => assert_eq!(nans, 0, "{padding:?}: NaN output under border padding"),
                }
                assert_rel(&format!("{padding:?} {align} out"), &f(&out), &out64, 1e-5);
                assert_rel(
                    &format!("{padding:?} {align} grad input"),
                    &f(&gi),
                    &gi64,
                    1e-5,
                );
                assert_rel(
                    &format!("{padding:?} {align} grad grid"),
                    &f(&gg),
                    &gg64,
                    1e-4,
                );
            }
        }
    });
}

#[test]
fn out_of_range_and_nan_coordinates_follow_pytorch() {
    // One pixel sampled at NaN, +inf and far outside, for each padding: PyTorch 2.15's CPU
    // results (F.grid_sample, float64, align_corners=False; its vectorized kernel's rules).
    let x = TensorData::new(vec![1.0f64, 2.0, 3.0, 4.0], [1, 1, 2, 2]);
    let nan = f64::NAN;
    // (x coordinate, zeros, border, reflection); y = 0 (between the two rows).
    let cases = [
        // NaN weights make the output NaN; the forward clip sends NaN to pixel 0.
        (nan, nan, 2.0, 2.0),
        // inf - floor(inf) is NaN; border clips to the last pixel; reflection computes
        // inf - inf (NaN), which the clip sends to pixel 0.
        (f64::INFINITY, nan, 3.0, 2.0),
        (5.0, 0.0, 3.0, 3.0),
        (-5.0, 0.0, 2.0, 2.0),
    ];
    for (gx, zeros, border, reflection) in cases {
        for (padding, want) in [
            (Padding::Zeros, zeros),
            (Padding::Border, border),
            (Padding::Reflection, reflection),
        ] {
            let grid = TensorData::new(vec![gx, 0.0], [1, 1, 1, 2]);
            let o = SampleOptions::new(Interpolation::Bilinear, padding, false);
            let out = values(ops::grid_sample(t(&x, DType::F64), t(&grid, DType::F64), o))[0];
            assert!(
                out == want || out.is_nan() && want.is_nan(),
                "{padding:?} at ({gx}, 0): {out}, PyTorch {want}"
            );
        }
    }
}

#[test]
fn sampling_gradients_are_bit_identical_across_runs() {
    stn::ops::kernels::for_each_isa(|isa| {
        eprintln!("path {isa}");
        let mut rng = Rng::new(16);
        let x = random(&[16, 3, 20, 20], &mut rng, -1.0, 1.0);
        let g = random(&[16, 20, 20, 2], &mut rng, -1.1, 1.1);
        let run = || {
            let xt: Tensor<4> = t::<4>(&x, DType::F32).require_grad();
            let gt: Tensor<4> = t::<4>(&g, DType::F32).require_grad();
            let grads = ops::grid_sample(xt.clone(), gt.clone(), SampleOptions::default())
                .powi_scalar(2)
                .sum()
                .backward();
            let a: Vec<f32> = xt.grad(&grads).unwrap().into_data().try_to_vec().unwrap();
            let b: Vec<f32> = gt.grad(&grads).unwrap().into_data().try_to_vec().unwrap();
            (
                a.iter().map(|v| v.to_bits()).collect::<Vec<_>>(),
                b.iter().map(|v| v.to_bits()).collect::<Vec<_>>(),
            )
        };
        let first = run();
        for _ in 0..3 {
            assert_eq!(run(), first);
        }
    });
}

/// Our fused conv (NCHW and batch-blocked) against burn's stock conv2d, forward and gradients.
#[test]
fn fused_convolution_matches_stock_convolution() {
    stn::ops::kernels::for_each_isa(|isa| {
        eprintln!("path {isa}");
        let mut rng = Rng::new(17);
        // (n, c, h, w, o, k): batch not a multiple of 8, odd sizes, all kernel sides, 1..12 channels.
        let shapes = [
            (5, 1, 12, 9, 3, 3),
            (9, 3, 11, 13, 10, 5),
            (16, 8, 11, 11, 10, 5),
            (3, 2, 9, 10, 7, 7),
            (8, 10, 12, 12, 20, 5),
            (2, 4, 6, 7, 12, 1),
            (1, 1, 5, 5, 1, 2),
            (4, 5, 10, 8, 6, 4),
            (3, 3, 8, 9, 5, 6),
            (3, 2, 12, 11, 6, 8),
            // The paper CNN's first layer (9x9) on a padded input, and a 20-filter layer.
            (5, 1, 16, 15, 9, 9),
            (2, 16, 13, 12, 20, 7),
        ];
        for (n, c, h, w, o, k) in shapes {
            let x = random(&[n, c, h, w], &mut rng, -1.0, 1.0);
            let wt = random(&[o, c, k, k], &mut rng, -0.5, 0.5);
            let b = random(&[o], &mut rng, -0.5, 0.5);
            let up = random(&[n, o, h - k + 1, w - k + 1], &mut rng, -1.0, 1.0);
            let run = |which: u8| {
                let (xt, wtt, bt) = (
                    t::<4>(&x, DType::F32).require_grad(),
                    t::<4>(&wt, DType::F32).require_grad(),
                    t::<1>(&b, DType::F32).require_grad(),
                );
                let y = match which {
                    0 => stock_conv2d(
                        xt.clone(),
                        wtt.clone(),
                        Some(bt.clone()),
                        ConvOptions::new([1, 1], [0, 0], [1, 1], 1),
                    ),
                    1 => ops::conv2d(xt.clone(), wtt.clone(), bt.clone()),
                    _ => ops::from_blocked(
                        ops::conv2d_blocked(ops::to_blocked(xt.clone()), wtt.clone(), bt.clone()),
                        n,
                    ),
                };
                let grads = (y.clone() * t::<4>(&up, DType::F32)).sum().backward();
                [
                    values(y),
                    values(xt.grad(&grads).unwrap()),
                    values(wtt.grad(&grads).unwrap()),
                    values(bt.grad(&grads).unwrap()),
                ]
            };
            let stock = run(0);
            for which in [1, 2] {
                let ours = run(which);
                for (i, name) in ["output", "grad x", "grad weight", "grad bias"]
                    .iter()
                    .enumerate()
                {
                    assert_rel(
                        &format!("conv {:?} path {which}: {name}", (n, c, h, w, o, k)),
                        &ours[i],
                        &stock[i],
                        2e-6,
                    );
                }
            }
        }
    });
}

#[test]
fn fused_pool_relu_matches_stock_pool_then_relu() {
    stn::ops::kernels::for_each_isa(|isa| {
        eprintln!("path {isa}");
        let mut rng = Rng::new(18);
        for (n, c, h, w) in [(3, 2, 7, 9), (9, 5, 12, 12), (8, 1, 24, 24), (1, 3, 5, 4)] {
            // Few distinct values, so windows hold ties, which the first maximum must win.
            let x: Vec<f64> = (0..n * c * h * w)
                .map(|_| (rng.below(7) as f64 - 3.0) * 0.5)
                .collect();
            let x = TensorData::new(x, [n, c, h, w]);
            let up = random(&[n, c, h / 2, w / 2], &mut rng, -1.0, 1.0);
            let run = |which: u8| {
                let xt: Tensor<4> = t::<4>(&x, DType::F32).require_grad();
                let y = match which {
                    0 => burn::tensor::activation::relu(max_pool2d(
                        xt.clone(),
                        MaxPoolOptions::new([2, 2]),
                    )),
                    1 => ops::max_pool2x2_relu(xt.clone()),
                    _ => ops::from_blocked(
                        ops::max_pool2x2_relu_blocked(ops::to_blocked(xt.clone())),
                        n,
                    ),
                };
                let grads = (y.clone() * t::<4>(&up, DType::F32)).sum().backward();
                [values(y), values(xt.grad(&grads).unwrap())]
            };
            let stock = run(0);
            for which in [1, 2] {
                let ours = run(which);
                assert_abs(
                    &format!("pool {:?} path {which}: output", (n, c, h, w)),
                    &ours[0],
                    &stock[0],
                    0.0,
                );
                assert_abs(
                    &format!("pool {:?} path {which}: grad", (n, c, h, w)),
                    &ours[1],
                    &stock[1],
                    0.0,
                );
            }
        }
    });
}

#[test]
fn blocked_layout_round_trips_with_gradients() {
    stn::ops::kernels::for_each_isa(|isa| {
        eprintln!("path {isa}");
        let x = Tensor::<4>::random([11, 3, 4, 5], Distribution::Normal(0.0, 1.0), &dev())
            .require_grad();
        let b = ops::to_blocked(x.clone());
        assert!(b.dims()[0] * b.dims()[4] >= 11);
        // The block width is the forced path's: the op ran on this thread's choice.
        assert_eq!(b.dims()[4], isa.lanes(), "block width on {isa}");
        let back = ops::from_blocked(b, 11);
        assert_abs("round trip", &values(back.clone()), &values(x.clone()), 0.0);
        let grads = (back * 3.0).sum().backward();
        assert!(values(x.grad(&grads).unwrap()).iter().all(|&g| g == 3.0));
    });
}

/// The fused convolution + pooling + ReLU against the three separate ops, forward and
/// gradients (blocked layout; odd sizes drop the last row/column as max_pool2d does).
#[test]
fn fused_conv_pool_relu_matches_separate_ops() {
    stn::ops::kernels::for_each_isa(|isa| {
        eprintln!("path {isa}");
        let mut rng = Rng::new(19);
        for (n, c, h, w, o, k) in [
            (9, 1, 28, 28, 10, 5),
            (16, 8, 11, 11, 10, 5),
            (8, 10, 12, 12, 20, 5),
            (3, 2, 12, 11, 7, 7),
            (5, 3, 9, 10, 4, 3),
        ] {
            let x = random(&[n, c, h, w], &mut rng, -1.0, 1.0);
            let wt = random(&[o, c, k, k], &mut rng, -0.5, 0.5);
            let b = random(&[o], &mut rng, -0.5, 0.5);
            // The convolution's output, halved (floor) by the pooling.
            let (ho, wo) = (h - k + 1, w - k + 1);
            let up = random(&[n, o, ho / 2, wo / 2], &mut rng, -1.0, 1.0);
            let run = |fused: bool| {
                let (xt, wtt, bt) = (
                    t::<4>(&x, DType::F32).require_grad(),
                    t::<4>(&wt, DType::F32).require_grad(),
                    t::<1>(&b, DType::F32).require_grad(),
                );
                let xb = ops::to_blocked(xt.clone());
                let y = if fused {
                    ops::conv2d_pool_relu_blocked(xb, wtt.clone(), bt.clone())
                } else {
                    ops::max_pool2x2_relu_blocked(ops::conv2d_blocked(xb, wtt.clone(), bt.clone()))
                };
                let y = ops::from_blocked(y, n);
                let grads = (y.clone() * t::<4>(&up, DType::F32)).sum().backward();
                [
                    values(y),
                    values(xt.grad(&grads).unwrap()),
                    values(wtt.grad(&grads).unwrap()),
                    values(bt.grad(&grads).unwrap()),
                ]
            };
            let (a, b2) = (run(true), run(false));
            for (i, name) in ["output", "grad x", "grad weight", "grad bias"]
                .iter()
                .enumerate()
            {
                assert_rel(
                    &format!("conv+pool {:?}: {name}", (n, c, h, w, o, k)),
                    &a[i],
                    &b2[i],
                    1e-6,
                );
            }
        }
    });
}
