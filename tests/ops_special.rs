//! grid_sample on special coordinates against PyTorch (`grid_sample_special.json`, and
//! `grid_sample_special_f32.json` for float32): NaN, ±inf, huge values, exactly -1 and 1,
//! values just outside, and coordinates that land on pixel centres and edges, for every mode,
//! padding and corner convention, forward and backward, in f64 and f32, on every kernel path
//! this CPU has. A NaN or an infinity must appear exactly where PyTorch has one.
//!
//! PyTorch's CPU backward reads outside the input (a crash, or in f32 a read and a write at
//! some other pixel) on a few of these points with border and reflection padding; the
//! fixtures run its backward with those points replaced by (0, 0) (`backward_grid`), and so
//! do we: there is no PyTorch value to match there. What we do on the points themselves is
//! checked separately (`backward_on_points_pytorch_cannot_run_reads_nothing_outside`).

mod common;

use burn::tensor::{DType, Device, Tensor, TensorData};
use common::{Fx, assert_abs, assert_rel, load, max_abs_diff, sample_options, values};
use serde::Deserialize;
use stn::ops::{self, Interpolation, Padding, SampleOptions};

#[derive(Deserialize)]
struct File {
    cases: Vec<Case>,
}

#[derive(Deserialize)]
struct Case {
    mode: String,
    padding_mode: String,
    align_corners: bool,
    input: Fx,
    grid: Fx,
    grad_output: Fx,
    output: Fx,
    grad_input: Fx,
    grad_grid: Option<Fx>,
    backward_grid: Option<Fx>,
    /// [n, h, w] of the points `backward_grid` replaces.
    backward_replaced: Vec<[usize; 3]>,
}

fn options(case: &Case) -> SampleOptions {
    sample_options(&case.mode, &case.padding_mode, case.align_corners)
}

/// The same tolerance as the ordinary f64 cases: the formulas agree with PyTorch's to a few ulps.
const F64_TOL: f64 = 1e-10;

/// f32, relative to each tensor's largest finite magnitude: the same formulas as PyTorch's in
/// f32, a few associated differently (measured: at most 1.9e-7).
const F32_TOL: f64 = 1e-6;

/// (output, grad_input, grad_grid) of one case, the backward on `backward_grid`.
fn run(case: &Case, dtype: DType) -> (Vec<f64>, Vec<f64>, Vec<f64>) {
    let device = Device::flex().autodiff();
    let opts = options(case);
    let input: Tensor<4> = case.input.tensor(&device, dtype);
    let grid: Tensor<4> = case.grid.tensor(&device, dtype);
    let out = values(ops::grid_sample(input.clone(), grid, opts));

    let input = input.require_grad();
    let bgrid = case.backward_grid.as_ref().unwrap_or(&case.grid);
    let grid: Tensor<4> = bgrid.tensor::<4>(&device, dtype).require_grad();
    let up: Tensor<4> = case.grad_output.tensor(&device, dtype);
    let grads = (ops::grid_sample(input.clone(), grid.clone(), opts) * up)
        .sum()
        .backward();
    let gi = values(input.grad(&grads).expect("input gradient"));
    let gg = grid.grad(&grads).map(values).unwrap_or_default();
    (out, gi, gg)
}

fn check_file(name: &str, dtype: DType) {
    let file: File = load(name);
    assert_eq!(file.cases.len(), 18, "every mode/padding/align case");
    stn::ops::kernels::for_each_isa(|isa| {
        for case in &file.cases {
            let what = format!(
                "{isa} {dtype:?} {} {} align={}",
                case.mode, case.padding_mode, case.align_corners
            );
            let (out, gi, gg) = run(case, dtype);
            let check = |part: &str, got: &[f64], want: &[f64]| {
                let what = format!("{what}: {part}");
                match dtype {
                    DType::F64 => assert_abs(&what, got, want, F64_TOL),
                    _ => assert_rel(&what, got, want, F32_TOL),
                }
            };
            check("output", &out, &case.output.data);
            check("grad_input", &gi, &case.grad_input.data);
            match &case.grad_grid {
                Some(want) => check("grad_grid", &gg, &want.data),
                None => assert!(
                    gg.iter().all(|&g| g == 0.0),
                    "{what}: nearest has no grid gradient"
                ),
            }
        }
    });
}

#[test]
fn grid_sample_special_coordinates_match_pytorch() {
    check_file("grid_sample_special.json", DType::F64);
}

#[test]
fn grid_sample_special_coordinates_match_pytorch_f32() {
    check_file("grid_sample_special_f32.json", DType::F32);
}

/// The points the fixtures replace in the backward (PyTorch reads outside the input there):
/// our backward runs on the original grid, reads and writes nothing outside (the SIMD paths
/// use raw pointers; a stray index would show as a crash or as a changed value elsewhere),
/// gives every other point's grid gradient exactly as on the replaced grid, and a NaN in the
/// grid gradient at these points (their padded coordinate is NaN, as in PyTorch).
#[test]
fn backward_on_points_pytorch_cannot_run_reads_nothing_outside() {
    for (name, dtype) in [
        ("grid_sample_special.json", DType::F64),
        ("grid_sample_special_f32.json", DType::F32),
    ] {
        let file: File = load(name);
        let replaced_somewhere = file.cases.iter().any(|c| !c.backward_replaced.is_empty());
        assert!(replaced_somewhere, "{name}: expected replaced points");
        stn::ops::kernels::for_each_isa(|isa| {
            for case in file
                .cases
                .iter()
                .filter(|c| !c.backward_replaced.is_empty())
            {
                let what = format!(
                    "{isa} {dtype:?} {} {} align={}",
                    case.mode, case.padding_mode, case.align_corners
                );
                let device = Device::flex().autodiff();
                let opts = options(case);
                let input: Tensor<4> = case.input.tensor::<4>(&device, dtype).require_grad();
                let grid: Tensor<4> = case.grid.tensor::<4>(&device, dtype).require_grad();
                let up: Tensor<4> = case.grad_output.tensor(&device, dtype);
                let grads = (ops::grid_sample(input.clone(), grid.clone(), opts) * up)
                    .sum()
                    .backward();
                let gg = values(grid.grad(&grads).expect("grid gradient"));
                let (_, _, gg_safe) = run(case, dtype);
                let [_, h, w, _] = case.grid.shape[..] else {
                    panic!("grid rank")
                };
                for p in 0..gg.len() / 2 {
                    let pos = [p / (h * w), p / w % h, p % w];
                    let (got, safe) = (&gg[2 * p..2 * p + 2], &gg_safe[2 * p..2 * p + 2]);
                    if case.backward_replaced.contains(&pos) {
                        // The other component's weights can be finite, and its neighbours' values
                        // (all out of range) zero: a 0 there is PyTorch's formula too.
                        assert!(
                            got.iter().any(|g| g.is_nan()),
                            "{what}: point {pos:?}: grid gradient {got:?}, expected NaN"
                        );
                    } else {
                        let d = max_abs_diff(got, safe).unwrap_or_else(|e| panic!("{what}: {e}"));
                        assert_eq!(d, 0.0, "{what}: point {pos:?}: {got:?} vs {safe:?}");
                    }
                }
            }
        });
    }
}

/// The fused affine sampler (theta straight to sampling, no grid tensor; on f32 bilinear the
/// vector path) follows the same rules as grid_sample on affine_grid's grid, for thetas that
/// make NaN, infinite, huge and exactly-on-the-border coordinates: NaN and infinities in the
/// same places, outputs and gradients equal up to rounding.
#[test]
fn affine_sample_follows_grid_sample_on_special_thetas() {
    let (nan, inf) = (f64::NAN, f64::INFINITY);
    #[rustfmt::skip]
    let thetas: [[f64; 6]; 7] = [
        [1.0, 0.0, 0.0, 0.0, 1.0, 0.0],     // identity: pixel centres or corners exactly
        [1.0, 0.0, nan, 0.0, 1.0, 0.0],     // every x NaN
        [1.0, 0.0, 0.0, 0.0, 1.0, inf],     // every y +inf
        [1.0, 0.0, -inf, 0.0, 1.0, 0.0],    // every x -inf
        [1e30, 0.0, 0.0, 0.0, 1.0, 0.0],    // huge scale (and 1e30 * 0 at the centre)
        [1.0, 0.0, 1e10, 0.0, -1.0, -1e10], // huge shifts
        [2.0, 0.5, 1.0, -0.5, 2.0, -1.0],   // reaches past every border
    ];
    let n = thetas.len();
    let (c, h, w, ho, wo) = (2, 5, 7, 9, 11);
    let x: Vec<f64> = (0..n * c * h * w)
        .map(|i| ((i * 7919 % 97) as f64 / 48.0) - 1.0)
        .collect();
    let up: Vec<f64> = (0..n * c * ho * wo)
        .map(|i| ((i * 104_729 % 89) as f64 / 44.0) - 1.0)
        .collect();
    let theta: Vec<f64> = thetas.iter().flatten().copied().collect();
    stn::ops::kernels::for_each_isa(|isa| {
        for dtype in [DType::F64, DType::F32] {
            for mode in [
                Interpolation::Bilinear,
                Interpolation::Nearest,
                Interpolation::Bicubic,
            ] {
                for padding in [Padding::Zeros, Padding::Border, Padding::Reflection] {
                    for align in [false, true] {
                        let o = SampleOptions::new(mode, padding, align);
                        let device = Device::flex().autodiff();
                        let run = |fused: bool| {
                            let xt: Tensor<4> = Tensor::<4>::from_data(
                                TensorData::new(x.clone(), [n, c, h, w]),
                                (&device, dtype),
                            )
                            .require_grad();
                            let tt: Tensor<3> = Tensor::<3>::from_data(
                                TensorData::new(theta.clone(), [n, 2, 3]),
                                (&device, dtype),
                            )
                            .require_grad();
                            let upt: Tensor<4> = Tensor::<4>::from_data(
                                TensorData::new(up.clone(), [n, c, ho, wo]),
                                (&device, dtype),
                            );
                            let out = if fused {
                                ops::affine_sample(xt.clone(), tt.clone(), [ho, wo], o)
                            } else {
                                let grid = ops::affine_grid(tt.clone(), ho, wo, align);
                                ops::grid_sample(xt.clone(), grid, o)
                            };
                            let grads = (out.clone() * upt).sum().backward();
                            (
                                values(out),
                                values(xt.grad(&grads).expect("input gradient")),
                                values(tt.grad(&grads).expect("theta gradient")),
                            )
                        };
                        let (fused, plain) = (run(true), run(false));
                        let what = format!("{isa} {dtype:?} {mode:?} {padding:?} align={align}");
                        let tol = if dtype == DType::F64 { 1e-10 } else { 1e-5 };
                        assert_rel(&format!("{what}: output"), &fused.0, &plain.0, tol);
                        assert_rel(&format!("{what}: grad input"), &fused.1, &plain.1, tol);
                        // theta's gradient sums over every output pixel in another order.
                        assert_rel(
                            &format!("{what}: grad theta"),
                            &fused.2,
                            &plain.2,
                            tol * 10.0,
                        );
                    }
                }
            }
        }
    });
}
