//! The host side of the GPU kernels: shape and dtype checks, output buffers, and the launches
//! (grid and counts) of the kernels in [`super::sample`], [`super::sample_backward`] and
//! [`super::affine_grid`]. Nothing here reads a tensor back from the device.

use burn::backend::cubecl::dtype_to_storage_type;
use burn::backend::ops::FloatTensorOps;
use burn::tensor::{DType, Shape, TensorData};
use burn_cubecl::CubeBackend;
use burn_cubecl::kernel::into_contiguous;
use burn_cubecl::ops::numeric::empty_device_contiguous_dtype;
use burn_cubecl::tensor::CubeTensor;
use cubecl::client::Client;
use cubecl::features::TypeUsage;
use cubecl::{CubeCount, CubeDim, calculate_cube_count_elemwise};

use super::coords::{BICUBIC, BILINEAR, BORDER, NEAREST, REFLECTION, ZEROS};
use super::count_launch;
use super::sample;
use super::sample_backward::{self, THETA_UNITS};
use crate::kernels::affine_grid::base_coordinates;
use crate::{Interpolation, Padding, SampleOptions};

/// Output points per chunk of the input-gradient scatter (before the caps below): small
/// enough for parallelism, large enough that zeroing and summing the partial planes stays
/// cheap next to the scatter.
const POINTS_PER_CHUNK: usize = 64;
/// At most this many partial planes per (n, c) plane.
const MAX_CHUNKS: usize = 32;
/// Partial planes are halved in number until they fit in this many bytes.
const MAX_PARTIAL_BYTES: usize = 256 << 20;
/// Largest image side the kernels accept: pixel coordinates stay exact in f32 and every
/// index fits the kernels' 32-bit arithmetic.
const MAX_SIDE: usize = 1 << 24;

/// The kernels' compile-time codes of the options.
fn codes(options: SampleOptions) -> (u32, u32) {
    let mode = match options.mode {
        Interpolation::Bilinear => BILINEAR,
        Interpolation::Nearest => NEAREST,
        Interpolation::Bicubic => BICUBIC,
    };
    let padding = match options.padding {
        Padding::Zeros => ZEROS,
        Padding::Border => BORDER,
        Padding::Reflection => REFLECTION,
    };
    (mode, padding)
}

/// Panics unless the tensor is f32, or f64 on a device that computes in f64.
fn check_dtype(t: &CubeTensor, op: &str) {
    match t.dtype {
        DType::F32 => {}
        DType::F64 => {
            let usage = t
                .client
                .properties()
                .type_usage(dtype_to_storage_type(DType::F64));
            assert!(
                usage.contains(TypeUsage::Arithmetic),
                "stn {op}: this device ({}) has no f64 arithmetic; use f32, or the CPU device for f64",
                t.client.name()
            );
        }
        other => panic!("stn {op}: dtype {other:?} is not supported (f32 or f64)"),
    }
}

/// Panics if a size exceeds what the kernels' 32-bit index arithmetic covers.
fn check_sizes(op: &str, sides: &[usize], elements: &[usize]) {
    for &s in sides {
        assert!(
            s < MAX_SIDE,
            "stn {op}: side {s} is too large (max {MAX_SIDE})"
        );
    }
    for &e in elements {
        assert!(
            e < i32::MAX as usize,
            "stn {op}: {e} elements are too many for the GPU kernels"
        );
    }
}

fn u32_of(v: usize) -> u32 {
    u32::try_from(v).expect("checked by check_sizes")
}

/// An uninitialized contiguous tensor on `like`'s device, with its dtype.
fn empty_like(like: &CubeTensor, shape: Vec<usize>) -> CubeTensor {
    empty_device_contiguous_dtype(
        like.client.clone(),
        like.device.clone(),
        Shape::from(shape),
        like.dtype,
    )
}

/// One invocation per element of `n`, in as many cubes as needed.
fn elementwise(client: &Client, n: usize) -> (CubeCount, CubeDim) {
    let dim = CubeDim::new(client, n);
    (calculate_cube_count_elemwise(client, n, dim), dim)
}

/// The base coordinates [x_0 .. x_{w-1}, y_0 .. y_{h-1}] of an h x w output, computed on the
/// host exactly as the CPU kernels do and uploaded (W + H numbers; never read back).
fn base_coords(like: &CubeTensor, height: usize, width: usize, align: bool) -> CubeTensor {
    let data = match like.dtype {
        DType::F64 => {
            let mut v = base_coordinates::<f64>(width, align);
            v.extend(base_coordinates::<f64>(height, align));
            TensorData::new(v, [width + height])
        }
        _ => {
            let mut v = base_coordinates::<f32>(width, align);
            v.extend(base_coordinates::<f32>(height, align));
            TensorData::new(v, [width + height])
        }
    };
    into_contiguous(CubeBackend::float_from_data(data, &like.device))
}

/// [NaN, +inf] on `like`'s device and dtype: the backward kernels' stand-ins for literals
/// WGSL does not have (2 numbers uploaded per call; never read back).
fn specials(like: &CubeTensor) -> CubeTensor {
    let data = match like.dtype {
        DType::F64 => TensorData::new(vec![f64::NAN, f64::INFINITY], [2]),
        _ => TensorData::new(vec![f32::NAN, f32::INFINITY], [2]),
    };
    into_contiguous(CubeBackend::float_from_data(data, &like.device))
}

/// Sets every element of a contiguous tensor to zero.
fn fill_zero(t: &CubeTensor) {
    let len = t.meta.num_elements();
    if len == 0 {
        return;
    }
    let (count, dim) = elementwise(&t.client, len);
    count_launch();
    sample_backward::fill_zero_kernel::launch(
        &t.client,
        count,
        dim,
        t.clone().into_tensor_arg(),
        u32_of(len),
        dtype_to_storage_type(t.dtype),
    );
}

/// Sizes of one sampling call: input [n, c, h_in, w_in], output [n, c, h_out, w_out].
#[derive(Clone, Copy, Debug)]
struct Sizes {
    n: usize,
    c: usize,
    h_in: usize,
    w_in: usize,
    h_out: usize,
    w_out: usize,
}

impl Sizes {
    fn new(op: &str, input: &CubeTensor, h_out: usize, w_out: usize) -> Self {
        let s = input.meta.shape();
        assert_eq!(s.num_dims(), 4, "stn {op}: input must be [N, C, H, W]");
        let sizes = Self {
            n: s[0],
            c: s[1],
            h_in: s[2],
            w_in: s[3],
            h_out,
            w_out,
        };
        check_sizes(
            op,
            &[s[2], s[3], h_out, w_out],
            &[
                sizes.n * sizes.c * sizes.plane_in(),
                sizes.n * sizes.c * sizes.plane_out(),
                sizes.n * sizes.plane_out() * 2,
            ],
        );
        sizes
    }

    fn plane_in(&self) -> usize {
        self.h_in * self.w_in
    }

    fn plane_out(&self) -> usize {
        self.h_out * self.w_out
    }
}

/// Where the sampling coordinates come from: a grid tensor, or theta with base coordinates.
struct Source {
    coords: CubeTensor,
    base: CubeTensor,
    affine: bool,
}

impl Source {
    fn grid(grid: CubeTensor) -> Self {
        let grid = into_contiguous(grid);
        // The kernels take a base-coordinate tensor in both cases; the grid path never reads it.
        Self {
            base: grid.clone(),
            coords: grid,
            affine: false,
        }
    }

    fn affine(theta: CubeTensor, s: &Sizes, align: bool) -> Self {
        let theta = into_contiguous(theta);
        Self {
            base: base_coords(&theta, s.h_out, s.w_out, align),
            coords: theta,
            affine: true,
        }
    }
}

fn forward(input: CubeTensor, source: Source, s: Sizes, options: SampleOptions) -> CubeTensor {
    let input = into_contiguous(input);
    let output = empty_like(&input, vec![s.n, s.c, s.h_out, s.w_out]);
    let total = s.n * s.plane_out();
    if total == 0 || s.c == 0 {
        return output;
    }
    let (mode, padding) = codes(options);
    let (count, dim) = elementwise(&input.client, total);
    let dtype = dtype_to_storage_type(input.dtype);
    count_launch();
    sample::sample_forward_kernel::launch(
        &input.client.clone(),
        count,
        dim,
        input.into_tensor_arg(),
        source.coords.into_tensor_arg(),
        source.base.into_tensor_arg(),
        output.clone().into_tensor_arg(),
        u32_of(s.c),
        u32_of(s.h_in),
        u32_of(s.w_in),
        u32_of(s.w_out),
        u32_of(s.plane_out()),
        u32_of(total),
        mode,
        padding,
        options.align_corners,
        source.affine,
        dtype,
    );
    output
}

/// grid_sample forward: input [N, C, Hi, Wi], grid [N, Ho, Wo, 2] -> [N, C, Ho, Wo].
pub fn grid_sample(input: CubeTensor, grid: CubeTensor, options: SampleOptions) -> CubeTensor {
    check_dtype(&input, "grid_sample");
    let gs = grid.meta.shape().clone();
    let s = Sizes::new("grid_sample", &input, gs[1], gs[2]);
    forward(input, Source::grid(grid), s, options)
}

/// affine_sample forward: input [N, C, Hi, Wi], theta [N, 2, 3] -> [N, C, height, width].
pub fn affine_sample(
    input: CubeTensor,
    theta: CubeTensor,
    height: usize,
    width: usize,
    options: SampleOptions,
) -> CubeTensor {
    check_dtype(&input, "affine_sample");
    let s = Sizes::new("affine_sample", &input, height, width);
    let source = Source::affine(theta, &s, options.align_corners);
    forward(input, source, s, options)
}

/// How the output points of a plane are cut for the input-gradient scatter: (chunks S,
/// points per chunk). A function of the shapes only, so the summation order, and with it
/// every bit of the result, is the same from run to run.
pub fn partial_chunks(
    planes: usize,
    plane_in: usize,
    plane_out: usize,
    elem: usize,
) -> (usize, usize) {
    let mut chunks = plane_out.div_ceil(POINTS_PER_CHUNK).clamp(1, MAX_CHUNKS);
    while chunks > 1 && planes * chunks * plane_in * elem > MAX_PARTIAL_BYTES {
        chunks /= 2;
    }
    let chunk = plane_out.div_ceil(chunks).max(1);
    (plane_out.div_ceil(chunk).max(1), chunk)
}

/// The input gradient [N, C, Hi, Wi] of a sampling, deterministic (see [`sample_backward`]).
fn input_grad(
    source: &Source,
    grad_output: &CubeTensor,
    like: &CubeTensor,
    s: Sizes,
    options: SampleOptions,
) -> CubeTensor {
    let grad_input = empty_like(like, vec![s.n, s.c, s.h_in, s.w_in]);
    let planes = s.n * s.c;
    if planes * s.plane_in() == 0 {
        return grad_input;
    }
    if s.plane_out() == 0 {
        fill_zero(&grad_input);
        return grad_input;
    }
    let (chunks, chunk) = partial_chunks(planes, s.plane_in(), s.plane_out(), like.dtype.size());
    check_sizes(
        "grid_sample backward",
        &[],
        &[planes * chunks * s.plane_in()],
    );
    let target = if chunks == 1 {
        grad_input.clone()
    } else {
        empty_like(like, vec![planes * chunks, s.plane_in()])
    };
    fill_zero(&target);
    let (mode, padding) = codes(options);
    let client = &like.client;
    let dtype = dtype_to_storage_type(like.dtype);
    let total = planes * chunks;
    let (count, dim) = elementwise(client, total);
    count_launch();
    sample_backward::input_grad_kernel::launch(
        client,
        count,
        dim,
        source.coords.clone().into_tensor_arg(),
        source.base.clone().into_tensor_arg(),
        grad_output.clone().into_tensor_arg(),
        target.clone().into_tensor_arg(),
        u32_of(s.c),
        u32_of(s.h_in),
        u32_of(s.w_in),
        u32_of(s.w_out),
        u32_of(s.plane_out()),
        u32_of(chunks),
        u32_of(chunk),
        u32_of(total),
        mode,
        padding,
        options.align_corners,
        source.affine,
        dtype,
    );
    if chunks > 1 {
        let total = planes * s.plane_in();
        let (count, dim) = elementwise(client, total);
        count_launch();
        sample_backward::sum_partials_kernel::launch(
            client,
            count,
            dim,
            target.into_tensor_arg(),
            grad_input.clone().into_tensor_arg(),
            u32_of(chunks),
            u32_of(s.plane_in()),
            u32_of(total),
            dtype,
        );
    }
    grad_input
}

/// An empty [0] tensor: a gradient that was not asked for.
fn not_wanted(like: &CubeTensor) -> CubeTensor {
    empty_like(like, vec![0])
}

/// grid_sample backward: (grad_input, grad_grid), each an empty [0] tensor if not wanted.
pub fn grid_sample_backward(
    input: CubeTensor,
    grid: CubeTensor,
    grad_output: CubeTensor,
    options: SampleOptions,
    want_input: bool,
    want_grid: bool,
) -> (CubeTensor, CubeTensor) {
    check_dtype(&input, "grid_sample backward");
    let gs = grid.meta.shape().clone();
    let s = Sizes::new("grid_sample backward", &input, gs[1], gs[2]);
    let input = into_contiguous(input);
    let grad_output = into_contiguous(grad_output);
    let source = Source::grid(grid);
    let grad_input = if want_input {
        input_grad(&source, &grad_output, &input, s, options)
    } else {
        not_wanted(&input)
    };
    let grad_grid = if want_grid {
        let grad_grid = empty_like(&input, vec![s.n, s.h_out, s.w_out, 2]);
        let total = s.n * s.plane_out();
        if total > 0 {
            let (mode, padding) = codes(options);
            let client = &input.client;
            let (count, dim) = elementwise(client, total);
            let dtype = dtype_to_storage_type(input.dtype);
            count_launch();
            sample_backward::grid_grad_kernel::launch(
                client,
                count,
                dim,
                input.clone().into_tensor_arg(),
                source.coords.into_tensor_arg(),
                grad_output.into_tensor_arg(),
                specials(&input).into_tensor_arg(),
                grad_grid.clone().into_tensor_arg(),
                u32_of(s.c),
                u32_of(s.h_in),
                u32_of(s.w_in),
                u32_of(s.plane_out()),
                u32_of(total),
                mode,
                padding,
                options.align_corners,
                dtype,
            );
        }
        grad_grid
    } else {
        not_wanted(&input)
    };
    (grad_input, grad_grid)
}

/// affine_grid forward: theta [N, 2, 3] -> grid [N, height, width, 2].
pub fn affine_grid(theta: CubeTensor, height: usize, width: usize, align: bool) -> CubeTensor {
    check_dtype(&theta, "affine_grid");
    let theta = into_contiguous(theta);
    let n = theta.meta.shape()[0];
    let plane = height * width;
    check_sizes("affine_grid", &[height, width], &[n * plane * 2]);
    let grid = empty_like(&theta, vec![n, height, width, 2]);
    let total = n * plane;
    if total == 0 {
        return grid;
    }
    let base = base_coords(&theta, height, width, align);
    let client = theta.client.clone();
    let (count, dim) = elementwise(&client, total);
    let dtype = dtype_to_storage_type(theta.dtype);
    count_launch();
    super::affine_grid::affine_grid_kernel::launch(
        &client,
        count,
        dim,
        theta.into_tensor_arg(),
        base.into_tensor_arg(),
        grid.clone().into_tensor_arg(),
        u32_of(width),
        u32_of(plane),
        u32_of(total),
        dtype,
    );
    grid
}

/// Launches the theta reduction: one cube of [`THETA_UNITS`] units per batch item.
#[allow(clippy::too_many_arguments)]
fn theta_grad(
    grad_grid: &CubeTensor,
    input: &CubeTensor,
    source: &Source,
    grad_output: &CubeTensor,
    s: Sizes,
    options: SampleOptions,
    from_sampling: bool,
) -> CubeTensor {
    let grad_theta = empty_like(&source.coords, vec![s.n, 2, 3]);
    if s.n == 0 {
        return grad_theta;
    }
    assert!(
        s.n <= u16::MAX as usize,
        "stn theta gradient: batch of {} is too large (max {})",
        s.n,
        u16::MAX
    );
    let (mode, padding) = codes(options);
    let client = &source.coords.client;
    let dtype = dtype_to_storage_type(source.coords.dtype);
    count_launch();
    sample_backward::theta_grad_kernel::launch(
        client,
        CubeCount::Static(u32_of(s.n), 1, 1),
        CubeDim::new_1d(THETA_UNITS),
        grad_grid.clone().into_tensor_arg(),
        input.clone().into_tensor_arg(),
        source.coords.clone().into_tensor_arg(),
        source.base.clone().into_tensor_arg(),
        grad_output.clone().into_tensor_arg(),
        specials(&source.coords).into_tensor_arg(),
        grad_theta.clone().into_tensor_arg(),
        u32_of(s.c),
        u32_of(s.h_in),
        u32_of(s.w_in),
        u32_of(s.w_out),
        u32_of(s.plane_out()),
        mode,
        padding,
        options.align_corners,
        from_sampling,
        dtype,
    );
    grad_theta
}

/// affine_grid backward: grad_grid [N, H, W, 2] -> grad_theta [N, 2, 3].
pub fn affine_grid_backward(grad_grid: CubeTensor, align: bool) -> CubeTensor {
    check_dtype(&grad_grid, "affine_grid backward");
    let grad_grid = into_contiguous(grad_grid);
    let gs = grad_grid.meta.shape().clone();
    let (n, height, width) = (gs[0], gs[1], gs[2]);
    check_sizes(
        "affine_grid backward",
        &[height, width],
        &[n * height * width * 2],
    );
    let s = Sizes {
        n,
        c: 0,
        h_in: 0,
        w_in: 0,
        h_out: height,
        w_out: width,
    };
    // The reduction reads only grad_grid and the base coordinates; the sampling arguments are
    // placeholders.
    let source = Source {
        coords: grad_grid.clone(),
        base: base_coords(&grad_grid, height, width, align),
        affine: true,
    };
    let options = SampleOptions::new(Interpolation::Nearest, Padding::Zeros, align);
    theta_grad(
        &grad_grid, &grad_grid, &source, &grad_grid, s, options, false,
    )
}

/// affine_sample backward: (grad_input, grad_theta), each an empty [0] tensor if not wanted.
pub fn affine_sample_backward(
    input: CubeTensor,
    theta: CubeTensor,
    grad_output: CubeTensor,
    options: SampleOptions,
    want_input: bool,
    want_theta: bool,
) -> (CubeTensor, CubeTensor) {
    check_dtype(&input, "affine_sample backward");
    let go_shape = grad_output.meta.shape().clone();
    let s = Sizes::new("affine_sample backward", &input, go_shape[2], go_shape[3]);
    let input = into_contiguous(input);
    let grad_output = into_contiguous(grad_output);
    let source = Source::affine(theta, &s, options.align_corners);
    let grad_input = if want_input {
        input_grad(&source, &grad_output, &input, s, options)
    } else {
        not_wanted(&input)
    };
    let grad_theta = if want_theta {
        theta_grad(
            &source.coords,
            &input,
            &source,
            &grad_output,
            s,
            options,
            true,
        )
    } else {
        not_wanted(&input)
    };
    (grad_input, grad_theta)
}
