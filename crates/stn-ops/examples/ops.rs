//! The functional spatial-transformer ops, with PyTorch's names beside them.
//!
//! ```text
//! cargo run --release --example ops
//! cargo run --release -p stn-ops --example ops --features wgpu -- wgpu   # on a GPU
//! ```
//!
//! | stn_ops                                   | PyTorch                                        |
//! |-------------------------------------------|------------------------------------------------|
//! | `affine_grid(theta, h, w, align)`         | `F.affine_grid(theta, [N, C, h, w], align)`    |
//! | `grid_sample(x, grid, options)`           | `F.grid_sample(x, grid, mode, padding, align)` |
//! | `affine_sample(x, theta, [h, w], options)`| `F.grid_sample(x, F.affine_grid(theta, ..))`   |
//! | `projective_grid(h8, h, w, align)`        | (none: a homography grid)                      |
//! | `tps_grid(points, g, h, w, align)`        | (none: a thin-plate-spline grid)               |
//! | `conv2d(x, weight, bias)`                 | `F.conv2d(x, weight, bias)`                    |
//! | `max_pool2x2_relu(x)`                     | `F.relu(F.max_pool2d(x, 2))`                   |

use burn::tensor::{Device, Distribution, Tensor, TensorData};
use stn_ops::{
    Interpolation, Padding, SampleOptions, affine_grid, affine_sample, grid_sample,
    projective_grid, tps_control_points, tps_grid,
};

fn device() -> Device {
    let wants_gpu = std::env::args().any(|a| a == "wgpu");
    if wants_gpu {
        #[cfg(feature = "wgpu")]
        return Device::wgpu(burn::tensor::DeviceKind::DefaultDevice);
        #[cfg(not(feature = "wgpu"))]
        {
            eprintln!("error: this build has no wgpu device; add `--features wgpu`");
            std::process::exit(2);
        }
    }
    Device::flex()
}

fn main() {
    // Gradients flow through every op: an autodiff device.
    let device = device().autodiff();
    let (n, c, h, w) = (4, 3, 32, 32);
    let x = Tensor::<4>::random([n, c, h, w], Distribution::Default, &device).require_grad();

    // theta: rotate by 30 degrees and zoom in 1.5x, as `nn.Parameter` would hold it.
    let (s, co) = (
        30f32.to_radians().sin() / 1.5,
        30f32.to_radians().cos() / 1.5,
    );
    let theta = Tensor::<3>::from_data(
        TensorData::new([co, -s, 0.1, s, co, -0.1].repeat(n), [n, 2, 3]),
        &device,
    )
    .require_grad();

    // PyTorch: grid = F.affine_grid(theta, x.size(), align_corners=False)
    let grid = affine_grid(theta.clone(), h, w, false);
    println!(
        "affine_grid     theta {:?} -> grid {:?}",
        theta.dims(),
        grid.dims()
    );

    // PyTorch: F.grid_sample(x, grid, mode="bilinear", padding_mode="zeros", align_corners=False)
    let options = SampleOptions::new(Interpolation::Bilinear, Padding::Zeros, false);
    let y = grid_sample(x.clone(), grid, options);
    println!("grid_sample     x {:?} -> {:?}", x.dims(), y.dims());

    // The same in one fused pass, no grid tensor: what the affine spatial transformer runs.
    let fused = affine_sample(x.clone(), theta.clone(), [h, w], options);
    let diff = (fused.clone() - y.clone()).abs().max().into_scalar::<f32>();
    println!("affine_sample   max |fused - two-step| = {diff:.2e}");

    // Backward: gradients to the input and to theta.
    let grads = fused.sum().backward();
    let dtheta = theta.grad(&grads).expect("theta takes part");
    let dx = x.grad(&grads).expect("x takes part");
    println!(
        "backward        d/dtheta {:?}, d/dx {:?}",
        dtheta.dims(),
        dx.dims()
    );

    // Other padding and interpolation modes: PyTorch's padding_mode="reflection", mode="bicubic".
    let device = device.clone().without_autodiff();
    let x = Tensor::<4>::random([n, c, h, w], Distribution::Default, &device);
    let theta = Tensor::<3>::from_data(
        TensorData::new([1.2f32, 0.0, 0.0, 0.0, 1.2, 0.0].repeat(n), [n, 2, 3]),
        &device,
    );
    let bicubic = SampleOptions::new(Interpolation::Bicubic, Padding::Reflection, true);
    let y = grid_sample(x.clone(), affine_grid(theta, h, w, true), bicubic);
    println!("bicubic/reflect {:?}", y.dims());

    // A projective (homography) grid: a slight perspective tilt.
    let hom = Tensor::<2>::from_data(
        TensorData::new(
            [1.0f32, 0.0, 0.0, 0.0, 1.0, 0.0, 0.2, 0.0].repeat(n),
            [n, 8],
        ),
        &device,
    );
    let y = grid_sample(x.clone(), projective_grid(hom, h, w, false), options);
    println!("projective_grid -> {:?}", y.dims());

    // A thin-plate-spline grid through 4 x 4 control points, each moved a little.
    let points: Vec<f32> = tps_control_points(4)
        .into_iter()
        .flat_map(|(px, py)| [(px * 0.9) as f32, (py + 0.05 * px) as f32])
        .collect();
    let points = Tensor::<2>::from_data(TensorData::new(points.repeat(n), [n, 32]), &device);
    let y = grid_sample(x, tps_grid(points, 4, h, w, false), options);
    println!("tps_grid        -> {:?}", y.dims());
}
