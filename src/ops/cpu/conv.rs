//! Convolution, pooling and the batch-blocked layout on the CPU: the AVX2 kernels of
//! `stn-kernels` where they apply (f32, kernel side <= 7), burn's own operations otherwise.

use burn::backend::TensorMetadata;
use burn::backend::flex::{Flex, FlexTensor};
use burn::tensor::DType;

use super::{contiguous, dims, empty, tensor};
use crate::ops::StnBackend;
use crate::ops::composite;
use crate::ops::kernels;
use crate::ops::profile::{label, time};

pub(super) fn to_blocked(x: FlexTensor, block: usize) -> FlexTensor {
    let x = contiguous(x);
    let [n, c, h, w] = dims(&x, "to_blocked input");
    let block = match block {
        0 if x.dtype() == DType::F32 && simd() => kernels::conv_blocked::LANES,
        0 => 1,
        b => b,
    };
    with_float!(x.dtype(), T, {
        let out = kernels::pool::to_blocked::<T>(x.storage(), n, c * h * w, block);
        tensor(out, vec![n.div_ceil(block), c, h, w, block])
    })
}

pub(super) fn from_blocked(x: FlexTensor, n: usize) -> FlexTensor {
    let x = contiguous(x);
    let [_, c, h, w, b] = dims(&x, "from_blocked input");
    with_float!(x.dtype(), T, {
        tensor(
            kernels::pool::from_blocked::<T>(x.storage(), n, c * h * w, b),
            vec![n, c, h, w],
        )
    })
}

pub(super) fn conv2d(x: FlexTensor, weight: FlexTensor, bias: FlexTensor) -> FlexTensor {
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
                    kernels::conv_blocked::forward(
                        &xb,
                        weight.storage(),
                        Some(bias.storage()),
                        &mut y,
                        s,
                    );
                }
                return plan.output(y, s.o, s.ho(), s.wo());
            }
            composite::conv2d::<Flex>(x, weight, bias)
        },
    )
}

pub(super) fn conv2d_backward(
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
                    kernels::conv_blocked::backward(
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
            composite::conv2d_backward::<Flex>(x, weight, bias, grad_output, want_x)
        },
    )
}

pub(super) fn conv_pool_relu(
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
                    kernels::conv_pool_blocked::conv_pool_forward(
                        &xb,
                        weight.storage(),
                        bias.storage(),
                        s,
                    )
                };
                let shape = vec![
                    s.nb,
                    s.o,
                    s.ho() / 2,
                    s.wo() / 2,
                    kernels::conv_blocked::LANES,
                ];
                let codes: Vec<f32> = codes.into_iter().map(f32::from).collect();
                return (tensor(y, shape.clone()), tensor(codes, shape));
            }
            let y = Flex::stn_pool_relu(Flex::stn_conv2d(x.clone(), weight, bias));
            (y, empty(x.dtype()))
        },
    )
}

pub(super) fn conv_pool_relu_backward(
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
        let dz = kernels::conv_pool_blocked::unpool_grad(grad.storage(), &codes, s);
        let dz = tensor(
            dz,
            vec![s.nb, s.o, s.ho(), s.wo(), kernels::conv_blocked::LANES],
        );
        return Flex::stn_conv2d_backward(x, weight, bias, dz, want_x);
    }
    let z = Flex::stn_conv2d(x.clone(), weight.clone(), bias.clone());
    let dz = Flex::stn_pool_relu_backward(z, grad_output);
    Flex::stn_conv2d_backward(x, weight, bias, dz, want_x)
}

pub(super) fn pool_relu(x: FlexTensor) -> FlexTensor {
    time(
        label(|| format!("pool_relu fwd {:?}", x.shape().as_slice())),
        || {
            let x = contiguous(x);
            let (planes, h, w, lanes, mut shape) = pool_geometry(&x);
            with_float!(x.dtype(), T, {
                let out = match fast_pool::<T>(lanes) {
                    // SAFETY: fast_pool checked the CPU features; T is f32.
                    true => bytemuck::cast_vec(unsafe { pool_b8(x.storage(), None, planes, h, w) }),
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

pub(super) fn pool_relu_backward(x: FlexTensor, grad_output: FlexTensor) -> FlexTensor {
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
            None => kernels::pool_blocked::pool_forward(x, planes, h, w),
            Some(g) => kernels::pool_blocked::pool_backward(x, g, planes, h, w),
        }
    }
    #[cfg(not(target_arch = "x86_64"))]
    unreachable!("no blocked kernels on this architecture: {x:?} {grad:?} {planes} {h} {w}")
}

/// Whether the AVX2 kernels may run.
pub(super) fn simd() -> bool {
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
    shape: kernels::conv_blocked::ConvShape,
    /// Images of an NCHW input; `None` for a blocked one.
    nchw: Option<usize>,
}

#[cfg(target_arch = "x86_64")]
impl ConvPlan {
    fn new(x: &FlexTensor, weight: &FlexTensor) -> Option<Self> {
        use kernels::conv_blocked::{ConvShape, LANES};
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
                    kernels::conv_blocked::LANES,
                ))
            }
            None => BlockedData::Tensor(t),
        }
    }

    /// A blocked result [nb, c, h, w, 8] in the input's layout.
    fn output(&self, data: Vec<f32>, c: usize, h: usize, w: usize) -> FlexTensor {
        let lanes = kernels::conv_blocked::LANES;
        match self.nchw {
            Some(n) => tensor(
                kernels::pool::from_blocked::<f32>(&data, n, c * h * w, lanes),
                vec![n, c, h, w],
            ),
            None => tensor(data, vec![self.shape.nb, c, h, w, lanes]),
        }
    }
}
