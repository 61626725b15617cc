//! The STN ops against PyTorch: every grid_sample mode/padding/align case and both affine_grid
//! conventions, outputs and gradients, in f64 (max abs error <= 1e-10; measured: 4e-14) and f32.

mod common;

use burn::tensor::{DType, Device, Tensor};
use common::{
    AffineGridFile, GridSampleCase, GridSampleFile, assert_abs, assert_rel, load, values,
};
use stn::ops;

/// Largest absolute error allowed in f64: the same formulas in another order differ by a few
/// ulps of values of order 1 (measured: at most 4.3e-14).
const F64_TOL: f64 = 1e-10;

/// Runs one case forward and backward; returns (output, grad_input, grad_grid).
fn run_case(case: &GridSampleCase, dtype: DType) -> (Vec<f64>, Vec<f64>, Vec<f64>) {
    let device = Device::flex().autodiff();
    let input: Tensor<4> = case.input.tensor(&device, dtype).require_grad();
    let grid: Tensor<4> = case.grid.tensor(&device, dtype).require_grad();
    let up: Tensor<4> = case.grad_output.tensor(&device, dtype);
    let out = ops::grid_sample(input.clone(), grid.clone(), case.options());
    let grads = (out.clone() * up).sum().backward();
    let gi = input.grad(&grads).expect("input gradient");
    let gg = grid.grad(&grads).map(values).unwrap_or_default();
    (values(out), values(gi), gg)
}

#[test]
fn grid_sample_matches_pytorch_f64() {
    stn::ops::kernels::for_each_isa(|isa| {
        eprintln!("path {isa}");
        let file: GridSampleFile = load("grid_sample.json");
        assert_eq!(
            file.cases.len(),
            18,
            "expected all 18 mode/padding/align cases"
        );
        for case in &file.cases {
            let what = format!(
                "{} {} align={}",
                case.mode, case.padding_mode, case.align_corners
            );
            let (out, gi, gg) = run_case(case, DType::F64);
            assert_abs(&format!("{what}: output"), &out, &case.output.data, F64_TOL);
            assert_abs(
                &format!("{what}: grad_input"),
                &gi,
                &case.grad_input.data,
                F64_TOL,
            );
            match &case.grad_grid {
                Some(want) => assert_abs(&format!("{what}: grad_grid"), &gg, &want.data, F64_TOL),
                // PyTorch has no grid gradient for nearest; ours is zero.
                None => assert!(
                    gg.iter().all(|&g| g == 0.0),
                    "{what}: nearest grid grad not zero"
                ),
            }
        }
    });
}

#[test]
fn grid_sample_matches_pytorch_f32() {
    stn::ops::kernels::for_each_isa(|isa| {
        eprintln!("path {isa}");
        let file: GridSampleFile = load("grid_sample.json");
        for case in &file.cases {
            let what = format!(
                "{} {} align={} (f32)",
                case.mode, case.padding_mode, case.align_corners
            );
            let (out, gi, gg) = run_case(case, DType::F32);
            assert_rel(&format!("{what}: output"), &out, &case.output.data, 1e-5);
            assert_rel(
                &format!("{what}: grad_input"),
                &gi,
                &case.grad_input.data,
                1e-5,
            );
            if let Some(want) = &case.grad_grid {
                // A grid coordinate within float rounding of a pixel boundary can flip the bilinear
                // cell in f32; the gradient then jumps by one pixel difference. Compare in bulk.
                assert_rel(&format!("{what}: grad_grid"), &gg, &want.data, 1e-4);
            }
        }
    });
}

#[test]
fn affine_grid_matches_pytorch() {
    stn::ops::kernels::for_each_isa(|isa| {
        eprintln!("path {isa}");
        let file: AffineGridFile = load("affine_grid.json");
        assert_eq!(file.cases.len(), 2);
        for case in &file.cases {
            let what = format!("affine_grid align={}", case.align_corners);
            for dtype in [DType::F64, DType::F32] {
                let device = Device::flex().autodiff();
                let theta: Tensor<3> = case.theta.tensor(&device, dtype).require_grad();
                let up: Tensor<4> = case.grad_grid.tensor(&device, dtype);
                let grid = ops::affine_grid(
                    theta.clone(),
                    case.size[2],
                    case.size[3],
                    case.align_corners,
                );
                let grads = (grid.clone() * up).sum().backward();
                let gt = values(theta.grad(&grads).expect("theta gradient"));
                let tol = if dtype == DType::F64 { F64_TOL } else { 1e-5 };
                if dtype == DType::F64 {
                    assert_abs(
                        &format!("{what}: grid"),
                        &values(grid),
                        &case.grid.data,
                        tol,
                    );
                    assert_abs(
                        &format!("{what}: grad_theta"),
                        &gt,
                        &case.grad_theta.data,
                        tol,
                    );
                } else {
                    assert_rel(
                        &format!("{what}: grid f32"),
                        &values(grid),
                        &case.grid.data,
                        tol,
                    );
                    assert_rel(
                        &format!("{what}: grad_theta f32"),
                        &gt,
                        &case.grad_theta.data,
                        tol,
                    );
                }
            }
        }
    });
}
