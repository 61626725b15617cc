//! The Flex (CPU) implementation: the kernels run in place on Flex's buffers, no copies beyond
//! making inputs contiguous.

use burn::backend::TensorMetadata;
use burn::backend::flex::{Flex, FlexTensor};
use burn::tensor::{DType, TensorData};

use super::generic;
use super::kernels::grid_sample::SampleShape;
use super::kernels::{self, Real};
use super::profile::{label, time};
use super::{SampleOptions, StnBackend};

fn contiguous(t: FlexTensor) -> FlexTensor {
    if t.is_contiguous() {
        t
    } else {
        t.to_contiguous()
    }
}

fn dims<const D: usize>(t: &FlexTensor, what: &str) -> [usize; D] {
    let shape = t.shape();
    assert_eq!(
        shape.num_dims(),
        D,
        "{what}: expected {D} dimensions, got {shape:?}"
    );
    core::array::from_fn(|i| shape[i])
}

fn tensor<T: Real + burn::tensor::Element>(data: Vec<T>, shape: Vec<usize>) -> FlexTensor {
    FlexTensor::from_data(TensorData::new(data, shape))
}

fn empty(dtype: DType) -> FlexTensor {
    FlexTensor::empty(vec![0].into(), dtype)
}

/// Runs `$body` with `$t` bound to the element type of `$dtype` (f32 or f64).
macro_rules! with_float {
    ($dtype:expr, $t:ident, $body:block) => {
        match $dtype {
            DType::F32 => {
                type $t = f32;
                $body
            }
            DType::F64 => {
                type $t = f64;
                $body
            }
            other => panic!("stn ops support f32 and f64 tensors, got {other:?}"),
        }
    };
}

fn sample_shape(input: &FlexTensor, grid: &FlexTensor) -> SampleShape {
    let [n, c, h_in, w_in] = dims(input, "grid_sample input");
    let [gn, h_out, w_out, two] = dims(grid, "grid_sample grid");
    assert!(
        gn == n && two == 2,
        "grid_sample: grid {:?} does not fit input {:?}",
        grid.shape(),
        input.shape()
    );
    SampleShape {
        n,
        c,
        h_in,
        w_in,
        h_out,
        w_out,
    }
}

impl StnBackend for Flex {
    fn stn_grid_sample(input: FlexTensor, grid: FlexTensor, options: SampleOptions) -> FlexTensor {
        time(
            label(|| format!("grid_sample fwd {:?}", input.shape().as_slice())),
            || {
                let (input, grid) = (contiguous(input), contiguous(grid));
                let s = sample_shape(&input, &grid);
                assert_eq!(
                    input.dtype(),
                    grid.dtype(),
                    "grid_sample: input and grid dtypes differ"
                );
                with_float!(input.dtype(), T, {
                    let mut out = vec![T::default(); s.n * s.c * s.h_out * s.w_out];
                    kernels::grid_sample::forward::<T>(
                        input.storage(),
                        grid.storage(),
                        &mut out,
                        s,
                        options,
                    );
                    tensor(out, vec![s.n, s.c, s.h_out, s.w_out])
                })
            },
        )
    }

    fn stn_grid_sample_backward(
        input: FlexTensor,
        grid: FlexTensor,
        grad_output: FlexTensor,
        options: SampleOptions,
        want_input: bool,
        want_grid: bool,
    ) -> (FlexTensor, FlexTensor) {
        time(
            label(|| format!("grid_sample bwd {:?}", input.shape().as_slice())),
            || {
                let (input, grid, grad_output) =
                    (contiguous(input), contiguous(grid), contiguous(grad_output));
                let s = sample_shape(&input, &grid);
                let dtype = input.dtype();
                with_float!(dtype, T, {
                    let mut gin =
                        want_input.then(|| vec![T::default(); s.n * s.c * s.h_in * s.w_in]);
                    let mut ggrid =
                        want_grid.then(|| vec![T::default(); s.n * s.h_out * s.w_out * 2]);
                    kernels::grid_sample::backward::<T>(
                        input.storage(),
                        grid.storage(),
                        grad_output.storage(),
                        gin.as_deref_mut(),
                        ggrid.as_deref_mut(),
                        s,
                        options,
                    );
                    (
                        gin.map_or_else(
                            || empty(dtype),
                            |g| tensor(g, vec![s.n, s.c, s.h_in, s.w_in]),
                        ),
                        ggrid.map_or_else(
                            || empty(dtype),
                            |g| tensor(g, vec![s.n, s.h_out, s.w_out, 2]),
                        ),
                    )
                })
            },
        )
    }

    fn stn_affine_grid(
        theta: FlexTensor,
        height: usize,
        width: usize,
        align_corners: bool,
    ) -> FlexTensor {
        let theta = contiguous(theta);
        let [n, _, _] = dims(&theta, "affine_grid theta");
        with_float!(theta.dtype(), T, {
            let grid = kernels::affine_grid::forward::<T>(
                theta.storage(),
                n,
                height,
                width,
                align_corners,
            );
            tensor(grid, vec![n, height, width, 2])
        })
    }

    fn stn_affine_sample(
        input: FlexTensor,
        theta: FlexTensor,
        height: usize,
        width: usize,
        options: SampleOptions,
    ) -> FlexTensor {
        time(
            label(|| format!("affine_sample fwd {:?}", input.shape().as_slice())),
            || {
                let (input, theta) = (contiguous(input), contiguous(theta));
                let [n, c, h_in, w_in] = dims(&input, "affine_sample input");
                let _: [usize; 3] = dims(&theta, "affine_sample theta");
                let s = SampleShape {
                    n,
                    c,
                    h_in,
                    w_in,
                    h_out: height,
                    w_out: width,
                };
                with_float!(input.dtype(), T, {
                    let mut out = vec![T::default(); n * c * height * width];
                    kernels::grid_sample::affine_forward::<T>(
                        input.storage(),
                        theta.storage(),
                        &mut out,
                        s,
                        options,
                    );
                    tensor(out, vec![n, c, height, width])
                })
            },
        )
    }

    fn stn_affine_sample_backward(
        input: FlexTensor,
        theta: FlexTensor,
        grad_output: FlexTensor,
        options: SampleOptions,
        want_input: bool,
        want_theta: bool,
    ) -> (FlexTensor, FlexTensor) {
        time(
            label(|| format!("affine_sample bwd {:?}", input.shape().as_slice())),
            || {
                let (input, theta, grad) = (
                    contiguous(input),
                    contiguous(theta),
                    contiguous(grad_output),
                );
                let [n, c, h_in, w_in] = dims(&input, "affine_sample input");
                let [_, _, h_out, w_out] = dims(&grad, "affine_sample grad");
                let s = SampleShape {
                    n,
                    c,
                    h_in,
                    w_in,
                    h_out,
                    w_out,
                };
                let dtype = input.dtype();
                with_float!(dtype, T, {
                    let mut gin = want_input.then(|| vec![T::default(); n * c * h_in * w_in]);
                    let mut gtheta = vec![T::default(); n * 6];
                    kernels::grid_sample::affine_backward::<T>(
                        input.storage(),
                        theta.storage(),
                        grad.storage(),
                        gin.as_deref_mut(),
                        &mut gtheta,
                        s,
                        options,
                    );
                    (
                        gin.map_or_else(|| empty(dtype), |g| tensor(g, vec![n, c, h_in, w_in])),
                        if want_theta {
                            tensor(gtheta, vec![n, 2, 3])
                        } else {
                            empty(dtype)
                        },
                    )
                })
            },
        )
    }

    fn stn_to_blocked(x: FlexTensor, block: usize) -> FlexTensor {
        let x = contiguous(x);
        let [n, c, h, w] = dims(&x, "to_blocked input");
        let block = match block {
            0 if x.dtype() == DType::F32 && simd() => kernels::conv_b8::LANES,
            0 => 1,
            b => b,
        };
        with_float!(x.dtype(), T, {
            let out = kernels::pool::to_blocked::<T>(x.storage(), n, c * h * w, block);
            tensor(out, vec![n.div_ceil(block), c, h, w, block])
        })
    }

    fn stn_from_blocked(x: FlexTensor, n: usize) -> FlexTensor {
        let x = contiguous(x);
        let [_, c, h, w, b] = dims(&x, "from_blocked input");
        with_float!(x.dtype(), T, {
            tensor(
                kernels::pool::from_blocked::<T>(x.storage(), n, c * h * w, b),
                vec![n, c, h, w],
            )
        })
    }

    fn stn_conv2d(x: FlexTensor, weight: FlexTensor, bias: FlexTensor) -> FlexTensor {
        time(
            label(|| {
                format!(
                    "conv2d fwd x{:?} w{:?}",
                    x.shape().as_slice(),
                    weight.shape().as_slice()
                )
            }),
            || {
                #[cfg(target_arch = "x86_64")]
                if let Some(plan) = ConvPlan::new(&x, &weight) {
                    let (weight, bias) = (contiguous(weight), contiguous(bias));
                    let xb = plan.blocked(x);
                    let s = plan.shape;
                    let mut y = vec![0.0f32; s.nb * s.o * s.ho() * s.wo() * 8];
                    // SAFETY: ConvPlan checked the CPU features.
                    unsafe {
                        kernels::conv_b8::forward(
                            &xb,
                            weight.storage(),
                            Some(bias.storage()),
                            &mut y,
                            s,
                        );
                    }
                    return plan.output(y, s.o, s.ho(), s.wo());
                }
                generic::conv2d::<Flex>(x, weight, bias)
            },
        )
    }

    fn stn_conv2d_backward(
        x: FlexTensor,
        weight: FlexTensor,
        bias: FlexTensor,
        grad_output: FlexTensor,
        want_x: bool,
    ) -> (FlexTensor, FlexTensor, FlexTensor) {
        time(
            label(|| {
                format!(
                    "conv2d bwd x{:?} w{:?} dx={want_x}",
                    x.shape().as_slice(),
                    weight.shape().as_slice()
                )
            }),
            || {
                #[cfg(target_arch = "x86_64")]
                if let Some(plan) = ConvPlan::new(&x, &weight) {
                    let weight = contiguous(weight);
                    let s = plan.shape;
                    let xb = plan.blocked(x);
                    let gb = plan.blocked(grad_output);
                    let mut dx = want_x.then(|| vec![0.0f32; xb.len()]);
                    let mut dw = vec![0.0f32; s.o * s.c * s.k * s.k];
                    let mut db = vec![0.0f32; s.o];
                    // SAFETY: ConvPlan checked the CPU features.
                    unsafe {
                        kernels::conv_b8::backward(
                            &xb,
                            weight.storage(),
                            &gb,
                            dx.as_deref_mut(),
                            &mut dw,
                            &mut db,
                            s,
                        );
                    }
                    return (
                        dx.map_or_else(|| empty(DType::F32), |g| plan.output(g, s.c, s.h, s.w)),
                        tensor(dw, vec![s.o, s.c, s.k, s.k]),
                        tensor(db, vec![s.o]),
                    );
                }
                generic::conv2d_backward::<Flex>(x, weight, bias, grad_output, want_x)
            },
        )
    }

    fn stn_conv_pool_relu(
        x: FlexTensor,
        weight: FlexTensor,
        bias: FlexTensor,
    ) -> (FlexTensor, FlexTensor) {
        time(
            label(|| {
                format!(
                    "conv+pool fwd x{:?} w{:?}",
                    x.shape().as_slice(),
                    weight.shape().as_slice()
                )
            }),
            || {
                #[cfg(target_arch = "x86_64")]
                if let Some(plan) = ConvPlan::new(&x, &weight).filter(|p| p.nchw.is_none()) {
                    let (weight, bias) = (contiguous(weight), contiguous(bias));
                    let xb = plan.blocked(x);
                    let s = plan.shape;
                    // SAFETY: ConvPlan checked the CPU features.
                    let (y, codes) = unsafe {
                        kernels::conv_b8::conv_pool_forward(
                            &xb,
                            weight.storage(),
                            bias.storage(),
                            s,
                        )
                    };
                    let shape = vec![s.nb, s.o, s.ho() / 2, s.wo() / 2, kernels::conv_b8::LANES];
                    let codes: Vec<f32> = codes.into_iter().map(f32::from).collect();
                    return (tensor(y, shape.clone()), tensor(codes, shape));
                }
                let y = Self::stn_pool_relu(Self::stn_conv2d(x.clone(), weight, bias));
                (y, empty(x.dtype()))
            },
        )
    }

    fn stn_conv_pool_relu_backward(
        x: FlexTensor,
        weight: FlexTensor,
        bias: FlexTensor,
        codes: FlexTensor,
        grad_output: FlexTensor,
        want_x: bool,
    ) -> (FlexTensor, FlexTensor, FlexTensor) {
        #[cfg(target_arch = "x86_64")]
        if codes.shape().num_elements() > 0
            && let Some(plan) = ConvPlan::new(&x, &weight).filter(|p| p.nchw.is_none())
        {
            let s = plan.shape;
            let (codes, grad) = (contiguous(codes), contiguous(grad_output));
            let codes: Vec<u8> = codes.storage::<f32>().iter().map(|&c| c as u8).collect();
            let dz = kernels::conv_b8::unpool_grad(grad.storage(), &codes, s);
            let dz = tensor(dz, vec![s.nb, s.o, s.ho(), s.wo(), kernels::conv_b8::LANES]);
            return Self::stn_conv2d_backward(x, weight, bias, dz, want_x);
        }
        let z = Self::stn_conv2d(x.clone(), weight.clone(), bias.clone());
        let dz = Self::stn_pool_relu_backward(z, grad_output);
        Self::stn_conv2d_backward(x, weight, bias, dz, want_x)
    }

    fn stn_pool_relu(x: FlexTensor) -> FlexTensor {
        time(
            label(|| format!("pool_relu fwd {:?}", x.shape().as_slice())),
            || {
                let x = contiguous(x);
                let (planes, h, w, lanes, mut shape) = pool_geometry(&x);
                with_float!(x.dtype(), T, {
                    let out = match fast_pool::<T>(lanes) {
                        // SAFETY: fast_pool checked the CPU features; T is f32.
                        true => {
                            bytemuck::cast_vec(unsafe { pool_b8(x.storage(), None, planes, h, w) })
                        }
                        false => kernels::pool::forward::<T>(x.storage(), planes, h, w, lanes),
                    };
                    let r = shape.len();
                    let at = if r == 5 { r - 3 } else { r - 2 };
                    shape[at] = h / 2;
                    shape[at + 1] = w / 2;
                    tensor(out, shape)
                })
            },
        )
    }

    fn stn_pool_relu_backward(x: FlexTensor, grad_output: FlexTensor) -> FlexTensor {
        time(
            label(|| format!("pool_relu bwd {:?}", x.shape().as_slice())),
            || {
                let (x, grad) = (contiguous(x), contiguous(grad_output));
                let (planes, h, w, lanes, shape) = pool_geometry(&x);
                with_float!(x.dtype(), T, {
                    let dx = match fast_pool::<T>(lanes) {
                        // SAFETY: fast_pool checked the CPU features; T is f32.
                        true => bytemuck::cast_vec(unsafe {
                            pool_b8(x.storage(), Some(grad.storage()), planes, h, w)
                        }),
                        false => kernels::pool::backward::<T>(
                            x.storage(),
                            grad.storage(),
                            planes,
                            h,
                            w,
                            lanes,
                        ),
                    };
                    tensor(dx, shape)
                })
            },
        )
    }

    fn stn_affine_grid_backward(grad_grid: FlexTensor, align_corners: bool) -> FlexTensor {
        let grad_grid = contiguous(grad_grid);
        let [n, h, w, _] = dims(&grad_grid, "affine_grid grad");
        with_float!(grad_grid.dtype(), T, {
            let g =
                kernels::affine_grid::backward::<T>(grad_grid.storage(), n, h, w, align_corners);
            tensor(g, vec![n, 2, 3])
        })
    }
}

/// (planes, h, w, lanes, shape) of a pooling input, NCHW or blocked.
fn pool_geometry(x: &FlexTensor) -> (usize, usize, usize, usize, Vec<usize>) {
    let shape = x.shape().to_vec();
    match shape.len() {
        4 => (shape[0] * shape[1], shape[2], shape[3], 1, shape),
        5 => (shape[0] * shape[1], shape[2], shape[3], shape[4], shape),
        r => panic!("pool_relu: expected a 4-D or 5-D tensor, got {r} dimensions"),
    }
}

/// Whether the blocked AVX2 pooling kernels apply.
fn fast_pool<T: 'static>(lanes: usize) -> bool {
    lanes == 8 && std::any::TypeId::of::<T>() == std::any::TypeId::of::<f32>() && simd()
}

/// Blocked f32 pooling forward (`grad` None) or backward.
///
/// # Safety
/// AVX2 must be available.
unsafe fn pool_b8(x: &[f32], grad: Option<&[f32]>, planes: usize, h: usize, w: usize) -> Vec<f32> {
    #[cfg(target_arch = "x86_64")]
    // SAFETY: the caller guarantees AVX2.
    unsafe {
        match grad {
            None => kernels::conv_b8::pool_forward(x, planes, h, w),
            Some(g) => kernels::conv_b8::pool_backward(x, g, planes, h, w),
        }
    }
    #[cfg(not(target_arch = "x86_64"))]
    unreachable!("no blocked kernels on this architecture: {x:?} {grad:?} {planes} {h} {w}")
}

/// Whether the AVX2 kernels may run.
fn simd() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        kernels::has_avx2()
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        false
    }
}

/// Blocked f32 data: converted from NCHW, or a blocked tensor used in place.
#[cfg(target_arch = "x86_64")]
enum BlockedData {
    Converted(Vec<f32>),
    Tensor(FlexTensor),
}

#[cfg(target_arch = "x86_64")]
impl core::ops::Deref for BlockedData {
    type Target = [f32];
    fn deref(&self) -> &[f32] {
        match self {
            Self::Converted(v) => v,
            Self::Tensor(t) => t.storage(),
        }
    }
}

/// A convolution the batch-blocked AVX2 kernels handle: f32, kernel side <= 7, CPU support,
/// input NCHW (converted at the kernel's edges) or blocked by 8.
#[cfg(target_arch = "x86_64")]
struct ConvPlan {
    shape: kernels::conv_b8::ConvShape,
    /// Images of an NCHW input; `None` for a blocked one.
    nchw: Option<usize>,
}

#[cfg(target_arch = "x86_64")]
impl ConvPlan {
    fn new(x: &FlexTensor, weight: &FlexTensor) -> Option<Self> {
        use kernels::conv_b8::{ConvShape, LANES};
        if x.dtype() != DType::F32 || weight.dtype() != DType::F32 || !simd() {
            return None;
        }
        let shape = x.shape();
        let (nb, c, h, w, nchw) = match shape.num_dims() {
            4 => (
                shape[0].div_ceil(LANES),
                shape[1],
                shape[2],
                shape[3],
                Some(shape[0]),
            ),
            5 if shape[4] == LANES => (shape[0], shape[1], shape[2], shape[3], None),
            _ => return None,
        };
        let [o, wc, k, k2] = dims(weight, "conv2d weight");
        let s = ConvShape { nb, c, h, w, o, k };
        (wc == c && k == k2 && s.supported() && nb > 0).then_some(Self { shape: s, nchw })
    }

    /// The input's data in the blocked layout (converted, or the tensor itself).
    fn blocked(&self, t: FlexTensor) -> BlockedData {
        let t = contiguous(t);
        match self.nchw {
            Some(n) => {
                let chw = t.shape().num_elements() / n.max(1);
                BlockedData::Converted(kernels::pool::to_blocked::<f32>(
                    t.storage(),
                    n,
                    chw,
                    kernels::conv_b8::LANES,
                ))
            }
            None => BlockedData::Tensor(t),
        }
    }

    /// A blocked result [nb, c, h, w, 8] in the input's layout.
    fn output(&self, data: Vec<f32>, c: usize, h: usize, w: usize) -> FlexTensor {
        let lanes = kernels::conv_b8::LANES;
        match self.nchw {
            Some(n) => tensor(
                kernels::pool::from_blocked::<f32>(&data, n, c * h * w, lanes),
                vec![n, c, h, w],
            ),
            None => tensor(data, vec![self.shape.nb, c, h, w, lanes]),
        }
    }
}
