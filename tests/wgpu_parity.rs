//! The GPU kernels (burn's wgpu backend; a software Vulkan device such as llvmpipe will do)
//! against PyTorch and against the CPU kernels: every grid_sample and affine_grid fixture case
//! in f32 (outputs and gradients, relative error <= 1e-4 of each tensor's largest value, NaN
//! and infinity exactly where the reference has them), the fused affine sampler against the
//! separate ops and the CPU kernels, and (ignored by default) coordinates PyTorch treats
//! specially (NaN, infinite, huge, on the borders, half-way between pixels) against the CPU
//! kernels.
//!
//! `XDG_RUNTIME_DIR=/tmp cargo test --release --features wgpu --test wgpu_parity`
#![cfg(feature = "wgpu")]

mod wgpu_support;

use burn::tensor::{DType, Device, Tensor};
use stn::ops::{self, Interpolation, Padding, SampleOptions};
use wgpu_support::{
    AffineGridFile, Fx, GridSampleFile, assert_rel, load, max_abs_diff, values, wgpu,
};

/// Relative tolerance against PyTorch (f32).
const TOL: f64 = 1e-4;

/// Every (mode, padding, align_corners).
fn all_options() -> Vec<SampleOptions> {
    let mut v = Vec::new();
    for mode in [
        Interpolation::Bilinear,
        Interpolation::Nearest,
        Interpolation::Bicubic,
    ] {
        for padding in [Padding::Zeros, Padding::Border, Padding::Reflection] {
            for align in [false, true] {
                v.push(SampleOptions::new(mode, padding, align));
            }
        }
    }
    v
}

/// grid_sample forward and backward on `device`: (output, grad_input, grad_grid).
fn grid_sample_run(
    device: &Device,
    input: &Fx,
    grid: &Fx,
    grad_output: &Fx,
    o: SampleOptions,
) -> (Vec<f64>, Vec<f64>, Vec<f64>) {
    let device = device.clone().autodiff();
    let x: Tensor<4> = input.tensor(&device, DType::F32).require_grad();
    let g: Tensor<4> = grid.tensor(&device, DType::F32).require_grad();
    let up: Tensor<4> = grad_output.tensor(&device, DType::F32);
    let out = ops::grid_sample(x.clone(), g.clone(), o);
    let grads = (out.clone() * up).sum().backward();
    let gi = x.grad(&grads).expect("input gradient");
    let gg = g.grad(&grads).map(values).unwrap_or_default();
    (values(out), values(gi), gg)
}

#[test]
fn wgpu_grid_sample_matches_pytorch_f32() {
    let device = wgpu();
    let mut count = 0;
    let file = "grid_sample.json";
    let content: GridSampleFile = load(file);
    for case in &content.cases {
        let o = case.options();
        let what = format!("{file} {o:?}");
        let (out, gi, gg) = grid_sample_run(&device, &case.input, &case.grid, &case.grad_output, o);
        assert_rel(&format!("{what} output"), &out, &case.output.data, TOL);
        assert_rel(
            &format!("{what} grad_input"),
            &gi,
            &case.grad_input.data,
            TOL,
        );
        match &case.grad_grid {
            Some(want) => assert_rel(&format!("{what} grad_grid"), &gg, &want.data, TOL),
            // PyTorch gives no grid gradient in nearest mode; ours is zero.
            None => assert!(gg.iter().all(|&v| v == 0.0), "{what}: nonzero grad_grid"),
        }
        count += 1;
    }
    assert!(
        count >= 18,
        "expected at least the 18 mode/padding/align cases"
    );
}

#[test]
fn wgpu_affine_grid_matches_pytorch_f32() {
    let device = wgpu().autodiff();
    let mut count = 0;
    let file = "affine_grid.json";
    let content: AffineGridFile = load(file);
    for case in &content.cases {
        let what = format!("{file} align_corners={}", case.align_corners);
        let theta: Tensor<3> = case.theta.tensor(&device, DType::F32).require_grad();
        let (h, w) = (case.size[2], case.size[3]);
        let grid = ops::affine_grid(theta.clone(), h, w, case.align_corners);
        let up: Tensor<4> = case.grad_grid.tensor(&device, DType::F32);
        let grads = (grid.clone() * up).sum().backward();
        let gt = theta.grad(&grads).expect("theta gradient");
        assert_rel(&format!("{what} grid"), &values(grid), &case.grid.data, TOL);
        assert_rel(
            &format!("{what} grad_theta"),
            &values(gt),
            &case.grad_theta.data,
            TOL,
        );
        count += 1;
    }
    assert!(count >= 2, "expected both align_corners conventions");
}

/// A reproducible pseudo-random tensor in [-scale, scale).
fn noise(shape: &[usize], seed: u64, scale: f64) -> Fx {
    let mut s = seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
    let n: usize = shape.iter().product();
    let data = (0..n)
        .map(|_| {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            ((s >> 11) as f64 / (1u64 << 53) as f64 * 2.0 - 1.0) * scale
        })
        .collect();
    Fx {
        shape: shape.to_vec(),
        data,
    }
}

/// affine_sample forward and backward on `device`: (output, grad_input, grad_theta).
fn affine_sample_run(
    device: &Device,
    input: &Fx,
    theta: &Fx,
    up: &Fx,
    size: [usize; 2],
    o: SampleOptions,
    fused: bool,
) -> (Vec<f64>, Vec<f64>, Vec<f64>) {
    let device = device.clone().autodiff();
    let x: Tensor<4> = input.tensor(&device, DType::F32).require_grad();
    let t: Tensor<3> = theta.tensor(&device, DType::F32).require_grad();
    let up: Tensor<4> = up.tensor(&device, DType::F32);
    let out = if fused {
        ops::affine_sample(x.clone(), t.clone(), size, o)
    } else {
        let grid = ops::affine_grid(t.clone(), size[0], size[1], o.align_corners);
        ops::grid_sample(x.clone(), grid, o)
    };
    let grads = (out.clone() * up).sum().backward();
    let gi = x.grad(&grads).expect("input gradient");
    let gt = t.grad(&grads).expect("theta gradient");
    (values(out), values(gi), values(gt))
}

/// Rotations, zooms in and out (many output points on one input pixel) and shifts beyond
/// the borders, for every mode, padding and convention: the fused affine sampler equals
/// affine_grid followed by grid_sample on the GPU, and both equal the CPU kernels.
#[test]
fn wgpu_affine_sample_matches_separate_ops_and_cpu() {
    let gpu = wgpu();
    let cpu = Device::flex();
    let (n, c, h, w) = (3, 2, 9, 11);
    let size = [13, 7];
    let input = noise(&[n, c, h, w], 1, 1.0);
    let up = noise(&[n, c, size[0], size[1]], 2, 1.0);
    let theta = Fx {
        shape: vec![n, 2, 3],
        // Not round numbers: a sampling point exactly on a pixel (where the bilinear
        // gradient jumps) would make the comparison a coin toss of rounding.
        data: vec![
            0.8123, -0.4517, 0.1049, 0.5031, 0.9077, -0.2213, // rotation and zoom in
            2.5117, 0.3041, 0.4093, -0.2027, 1.8111, 0.1063, // zoom out: beyond the borders
            0.3071, 0.0113, 1.2043, -0.0097, 0.2969, -1.1021, // small patch near a corner
        ],
    };
    for o in all_options() {
        let fused = affine_sample_run(&gpu, &input, &theta, &up, size, o, true);
        let separate = affine_sample_run(&gpu, &input, &theta, &up, size, o, false);
        let on_cpu = affine_sample_run(&cpu, &input, &theta, &up, size, o, true);
        for (what, a, b, r) in [
            ("output", &fused.0, &separate.0, &on_cpu.0),
            ("grad_input", &fused.1, &separate.1, &on_cpu.1),
            ("grad_theta", &fused.2, &separate.2, &on_cpu.2),
        ] {
            assert_rel(&format!("{o:?} fused vs separate {what}"), a, b, TOL);
            assert_rel(&format!("{o:?} gpu vs cpu {what}"), a, r, TOL);
        }
    }
}

/// Coordinates that PyTorch's rules treat specially, in both axes: NaN, infinities, huge
/// values (beyond i32, beyond i64, and where the reflection's quotient is even or odd),
/// exact borders (+-1 and the pixel centres next to them), half-way points between pixels
/// (nearest rounds to even), and ordinary ones.
fn special_coordinates() -> Vec<f64> {
    vec![
        f64::NAN,
        f64::INFINITY,
        f64::NEG_INFINITY,
        1e30,
        -1e30,
        3e9,
        -3e9,
        1e10 + 0.3,
        65537.25,
        -1.0,
        1.0,
        -0.75,
        0.75,
        0.0,
        0.25,
        -0.25,
        0.5,
        1.5,
        -1.5,
        2.75,
        -3.25,
        1.0 + 1e-7,
        -1.0 - 1e-7,
        0.123,
        -0.987,
        7.0,
        -9.0,
    ]
}

/// Every pair of special coordinates as a grid [1, k, k, 2] (x from the row list, y from the
/// column list), on a 4 x 5 input: the GPU kernels put NaN, infinities and zeros exactly where
/// the CPU kernels (which follow PyTorch's C++ operation for operation) put them, and agree on
/// every finite value, forward and backward, for every mode, padding and convention.
///
/// Ignored by default: the GPU kernels do not promise PyTorch's CPU semantics for non-finite
/// and huge coordinates (the CPU kernels are being brought to them exactly, with fixtures of
/// their own); run with `--ignored` to see how close they are.
#[test]
#[ignore = "special-value semantics are promised on the CPU only"]
fn wgpu_special_coordinates_match_cpu() {
    let gpu = wgpu();
    let cpu = Device::flex();
    let coords = special_coordinates();
    let k = coords.len();
    let mut grid = Vec::with_capacity(k * k * 2);
    for &y in &coords {
        for &x in &coords {
            grid.push(x);
            grid.push(y);
        }
    }
    let grid = Fx {
        shape: vec![1, k, k, 2],
        data: grid,
    };
    let input = noise(&[1, 2, 4, 5], 3, 1.0);
    let up = noise(&[1, 2, k, k], 4, 1.0);
    for o in all_options() {
        let (out_g, gi_g, gg_g) = grid_sample_run(&gpu, &input, &grid, &up, o);
        let (out_c, gi_c, gg_c) = grid_sample_run(&cpu, &input, &grid, &up, o);
        assert_rel(&format!("{o:?} special output"), &out_g, &out_c, TOL);
        assert_rel(&format!("{o:?} special grad_input"), &gi_g, &gi_c, TOL);
        assert_rel(&format!("{o:?} special grad_grid"), &gg_g, &gg_c, TOL);
    }
}

/// Non-finite input values and upstream gradients travel like on the CPU (0 x inf = NaN in
/// the weighted sums). Ignored by default, as the special coordinates above.
#[test]
#[ignore = "special-value semantics are promised on the CPU only"]
fn wgpu_non_finite_values_match_cpu() {
    let gpu = wgpu();
    let cpu = Device::flex();
    let mut input = noise(&[2, 1, 6, 6], 5, 1.0);
    input.data[7] = f64::NAN;
    input.data[20] = f64::INFINITY;
    input.data[40] = f64::NEG_INFINITY;
    let grid = noise(&[2, 5, 5, 2], 6, 1.3);
    let mut up = noise(&[2, 1, 5, 5], 7, 1.0);
    up.data[3] = f64::INFINITY;
    up.data[30] = f64::NAN;
    for o in all_options() {
        let g = grid_sample_run(&gpu, &input, &grid, &up, o);
        let c = grid_sample_run(&cpu, &input, &grid, &up, o);
        assert_rel(&format!("{o:?} non-finite output"), &g.0, &c.0, TOL);
        assert_rel(&format!("{o:?} non-finite grad_input"), &g.1, &c.1, TOL);
        assert_rel(&format!("{o:?} non-finite grad_grid"), &g.2, &c.2, TOL);
    }
}

/// Empty batches, a single-pixel input (degenerate reflection) and a single output point.
#[test]
fn wgpu_degenerate_shapes_match_cpu() {
    let gpu = wgpu();
    let cpu = Device::flex();
    for (input_shape, out) in [
        ([1, 2, 1, 1], [1, 3, 4]),
        ([2, 1, 5, 3], [2, 1, 1]),
        ([0, 2, 5, 3], [0, 2, 2]),
        ([2, 0, 5, 3], [2, 2, 2]),
    ] {
        let input = noise(&input_shape, 8, 1.0);
        let grid = noise(&[out[0], out[1], out[2], 2], 9, 1.5);
        let up = noise(&[input_shape[0], input_shape[1], out[1], out[2]], 10, 1.0);
        for o in all_options() {
            let g = grid_sample_run(&gpu, &input, &grid, &up, o);
            let c = grid_sample_run(&cpu, &input, &grid, &up, o);
            let what = format!("{input_shape:?} -> {out:?} {o:?}");
            assert_rel(&format!("{what} output"), &g.0, &c.0, TOL);
            assert_rel(&format!("{what} grad_input"), &g.1, &c.1, TOL);
            if input_shape[2] == 1 && input_shape[3] == 1 {
                // A 1x1 input: every tap reads the same pixel, so the grid gradient is zero up
                // to rounding (the taps' weights sum to a constant) and its relative error
                // measures noise; compare it absolutely, at the scale of the inputs (1).
                let d = max_abs_diff(&g.2, &c.2).unwrap_or_else(|e| panic!("{what}: {e}"));
                assert!(d <= TOL, "{what} grad_grid: max abs error {d:e} > {TOL:e}");
            } else {
                assert_rel(&format!("{what} grad_grid"), &g.2, &c.2, TOL);
            }
        }
    }
}

/// f64 runs in f64 where the device has it (a tolerance only f64 meets); elsewhere the op
/// refuses with a message that says so.
#[test]
fn wgpu_f64_runs_or_refuses_clearly() {
    let device = wgpu();
    let cpu = Device::flex();
    let x = noise(&[2, 3, 5, 7], 11, 1.0);
    let grid = noise(&[2, 4, 6, 2], 12, 1.2);
    let o = SampleOptions::new(Interpolation::Bicubic, Padding::Reflection, false);
    let run = |device: &Device| {
        let x: Tensor<4> = x.tensor(device, DType::F64);
        let g: Tensor<4> = grid.tensor(device, DType::F64);
        values(ops::grid_sample(x, g, o))
    };
    if device.supports_dtype(DType::F64) {
        let got = run(&device);
        let want = run(&cpu);
        assert_rel("f64 grid_sample", &got, &want, 1e-12);
    } else {
        let err = std::panic::catch_unwind(|| run(&device)).expect_err("f64 must be refused");
        let msg = err
            .downcast_ref::<String>()
            .cloned()
            .or_else(|| err.downcast_ref::<&str>().map(|s| s.to_string()))
            .unwrap_or_default();
        assert!(msg.contains("f64"), "unclear refusal: {msg}");
    }
}
