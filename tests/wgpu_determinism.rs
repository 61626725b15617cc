//! The GPU backward passes are deterministic: two runs give bit-identical gradients, although
//! many output points add to the same input pixels (PyTorch's CUDA grid_sample backward uses
//! float atomics there and does not promise this, pytorch issue 68959).
//!
//! `XDG_RUNTIME_DIR=/tmp cargo test --release --features wgpu --test wgpu_determinism`
#![cfg(feature = "wgpu")]

mod wgpu_support;

use burn::tensor::{DType, Device, Distribution, Tensor};
use stn::ops::{self, Interpolation, Padding, SampleOptions};
use wgpu_support::{bits, wgpu};

/// Gradients of one grid_sample and one affine_sample backward on inputs `x`, `grid`, `theta`
/// (all f32 bits): grad_input and grad_grid of grid_sample, grad_input and grad_theta of
/// affine_sample.
fn gradients(
    device: &Device,
    x: &Tensor<4>,
    grid: &Tensor<4>,
    theta: &Tensor<3>,
    up: &Tensor<4>,
    o: SampleOptions,
) -> [Vec<u32>; 4] {
    let [_, _, ho, wo] = up.dims();
    let x = Tensor::<4>::from_data(x.to_data(), device).require_grad();
    let g = Tensor::<4>::from_data(grid.to_data(), device).require_grad();
    let t = Tensor::<3>::from_data(theta.to_data(), device).require_grad();
    let up = Tensor::<4>::from_data(up.to_data(), device);
    let a = ops::grid_sample(x.clone(), g.clone(), o);
    let b = ops::affine_sample(x.clone(), t.clone(), [ho, wo], o);
    let grads = (a * up.clone()).sum().backward();
    let gi = x.grad(&grads).expect("input gradient");
    let gg = g.grad(&grads).expect("grid gradient");
    let grads = (b * up).sum().backward();
    let gi2 = x.grad(&grads).expect("input gradient");
    let gt = t.grad(&grads).expect("theta gradient");
    [bits(gi), bits(gg), bits(gi2), bits(gt)]
}

#[test]
fn wgpu_backward_is_bit_deterministic() {
    let device = wgpu().autodiff();
    let (n, c, h, w) = (4, 3, 12, 12);
    let (ho, wo) = (48, 40);
    let x =
        Tensor::<4>::random([n, c, h, w], Distribution::Normal(0.0, 1.0), &device).cast(DType::F32);
    // Zoomed out 3x: each input pixel receives contributions from dozens of output points.
    let grid = Tensor::<4>::random([n, ho, wo, 2], Distribution::Uniform(-0.35, 0.35), &device);
    let theta = Tensor::<3>::from_floats(
        [
            [[0.3, 0.05, 0.1], [-0.04, 0.3, 0.0]],
            [[0.25, 0.0, -0.2], [0.0, 0.35, 0.1]],
            [[-0.3, 0.1, 0.0], [0.1, 0.3, 0.05]],
            [[0.2, -0.2, 0.0], [0.2, 0.2, -0.1]],
        ],
        &device,
    );
    let up = Tensor::<4>::random([n, c, ho, wo], Distribution::Normal(0.0, 1.0), &device);
    for mode in [
        Interpolation::Bilinear,
        Interpolation::Nearest,
        Interpolation::Bicubic,
    ] {
        let o = SampleOptions::new(mode, Padding::Zeros, false);
        let first = gradients(&device, &x, &grid, &theta, &up, o);
        let second = gradients(&device, &x, &grid, &theta, &up, o);
        for (k, what) in [
            "grid_sample grad_input",
            "grid_sample grad_grid",
            "affine_sample grad_input",
            "affine_sample grad_theta",
        ]
        .iter()
        .enumerate()
        {
            assert!(
                first[k].iter().any(|&b| b != 0) || mode == Interpolation::Nearest,
                "{mode:?} {what}: all zero, the test checks nothing"
            );
            assert_eq!(first[k], second[k], "{mode:?} {what}: runs differ");
        }
    }
}
