//! Convolution, pooling and the batch-blocked layout on the CPU: the blocked kernels of
//! `stn-kernels` where they apply (f32, kernel side <= 9, a block width some path of this CPU
//! has), burn's own operations otherwise.

use burn::backend::TensorMetadata;
use burn::backend::flex::{Flex, FlexTensor};
use burn::tensor::DType;

use super::{contiguous, dims, empty, tensor};
use crate::StnBackend;
use crate::composite;
use crate::kernels;
use crate::profile::{label, time};

pub(super) fn to_blocked(x: FlexTensor, block: usize) -> FlexTensor {
    let x = contiguous(x);
    let [n, c, h, w] = dims(&x, "to_blocked input");
    let block = match block {
        // The width of the path kernels called now would run (see `kernels::simd`).
        0 if x.dtype() == DType::F32 => kernels::isa().lanes(),
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
            if let Some(plan) = ConvPlan::new(&x, &weight) {
                let (weight, bias) = (contiguous(weight), contiguous(bias));
                let xb = plan.blocked(x);
                let s = plan.shape;
                let mut y = vec![0.0f32; s.nb * s.o * s.ho() * s.wo() * s.lanes()];
                let forward = if kernels::conv_fft::chosen(&s) {
                    kernels::conv_fft::forward
                } else {
                    kernels::conv_blocked::forward
                };
                forward(&xb, weight.storage(), Some(bias.storage()), &mut y, s);
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
            if let Some(plan) = ConvPlan::new(&x, &weight) {
                let weight = contiguous(weight);
                let s = plan.shape;
                let xb = plan.blocked(x);
                let gb = plan.blocked(grad_output);
                let mut dx = want_x.then(|| vec![0.0f32; xb.len()]);
                let mut dw = vec![0.0f32; s.o * s.c * s.k * s.k];
                let mut db = vec![0.0f32; s.o];
                let backward = if kernels::conv_fft::chosen(&s) {
                    kernels::conv_fft::backward
                } else {
                    kernels::conv_blocked::backward
                };
                backward(
                    &xb,
                    weight.storage(),
                    &gb,
                    dx.as_deref_mut(),
                    &mut dw,
                    &mut db,
                    s,
                );
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
    let dtype = x.dtype();
    let (y, codes) = conv_pool_relu_with(x, weight, bias, true);
    (y, codes.unwrap_or_else(|| empty(dtype)))
}

/// [`conv_pool_relu`]'s output alone (inference): no window codes.
pub(super) fn conv_pool_relu_output(
    x: FlexTensor,
    weight: FlexTensor,
    bias: FlexTensor,
) -> FlexTensor {
    conv_pool_relu_with(x, weight, bias, false).0
}

/// The fused kernel where it applies (blocked f32 input), with the window codes if `codes`;
/// otherwise convolution then pooling, without codes.
fn conv_pool_relu_with(
    x: FlexTensor,
    weight: FlexTensor,
    bias: FlexTensor,
    codes: bool,
) -> (FlexTensor, Option<FlexTensor>) {
    time(
        label(|| {
            let what = if codes { "" } else { " (output only)" };
            format!(
                "conv+pool fwd{what} x{:?} w{:?}",
                x.shape().as_slice(),
                weight.shape().as_slice()
            )
        }),
        || {
            let Some(plan) = ConvPlan::new(&x, &weight).filter(|p| p.nchw.is_none()) else {
                return (Flex::stn_pool_relu(Flex::stn_conv2d(x, weight, bias)), None);
            };
            let (weight, bias) = (contiguous(weight), contiguous(bias));
            let xb = plan.blocked(x);
            let s = plan.shape;
            let shape = vec![s.nb, s.o, s.ho() / 2, s.wo() / 2, s.lanes()];
            let (w, b) = (weight.storage(), bias.storage());
            if kernels::conv_fft::chosen(&s) {
                let (y, c) = kernels::conv_fft::conv_pool_forward(&xb, w, b, s, codes);
                return (tensor(y, shape.clone()), c.map(|c| tensor(c, shape)));
            }
            if codes {
                let (y, c) = kernels::conv_pool_blocked::conv_pool_forward(&xb, w, b, s);
                (tensor(y, shape.clone()), Some(tensor(c, shape)))
            } else {
                let y = kernels::conv_pool_blocked::conv_pool_forward_output(&xb, w, b, s);
                (tensor(y, shape), None)
            }
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
    if codes.shape().num_elements() > 0
        && let Some(plan) = ConvPlan::new(&x, &weight).filter(|p| p.nchw.is_none())
    {
        let s = plan.shape;
        let (codes, grad) = (contiguous(codes), contiguous(grad_output));
        let dz = kernels::conv_pool_blocked::unpool_grad(grad.storage(), codes.storage(), s);
        let dz = tensor(dz, vec![s.nb, s.o, s.ho(), s.wo(), s.lanes()]);
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
                    Some(isa) => bytemuck::cast_vec(kernels::pool_blocked::pool_forward(
                        isa,
                        bytemuck::cast_slice(x.storage::<T>()),
                        planes,
                        h,
                        w,
                    )),
                    None => kernels::pool::forward::<T>(x.storage(), planes, h, w, lanes),
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
                    Some(isa) => bytemuck::cast_vec(kernels::pool_blocked::pool_backward(
                        isa,
                        bytemuck::cast_slice(x.storage::<T>()),
                        bytemuck::cast_slice(grad.storage::<T>()),
                        planes,
                        h,
                        w,
                    )),
                    None => kernels::pool::backward::<T>(
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

/// The path of the blocked f32 pooling kernels for this block width, if one applies.
fn fast_pool<T: 'static>(lanes: usize) -> Option<kernels::Isa> {
    kernels::is_f32::<T>()
        .then(|| isa_for_lanes(lanes))
        .flatten()
}

/// The path that runs blocked tensors of width `lanes`: the current one ([`kernels::isa`])
/// when its width matches, else another path of this CPU with that width (a tensor blocked
/// under another choice), else none (burn's operations then handle it).
fn isa_for_lanes(lanes: usize) -> Option<kernels::Isa> {
    let current = kernels::isa();
    if current.lanes() == lanes {
        return Some(current);
    }
    use kernels::Isa::*;
    [Neon, Avx2, Avx512, Portable]
        .into_iter()
        .find(|i| i.lanes() == lanes && i.supported())
}

/// Blocked f32 data: converted from NCHW, or a blocked tensor used in place.
enum BlockedData {
    Converted(Vec<f32>),
    Tensor(FlexTensor),
}

impl core::ops::Deref for BlockedData {
    type Target = [f32];
    fn deref(&self) -> &[f32] {
        match self {
            Self::Converted(v) => v,
            Self::Tensor(t) => t.storage(),
        }
    }
}

/// A convolution the batch-blocked kernels handle: f32, kernel side <= 9, input NCHW
/// (converted at the kernel's edges, for the current path) or blocked with a width some path
/// of this CPU has.
struct ConvPlan {
    shape: kernels::conv_blocked::ConvShape,
    /// Images of an NCHW input; `None` for a blocked one.
    nchw: Option<usize>,
}

impl ConvPlan {
    fn new(x: &FlexTensor, weight: &FlexTensor) -> Option<Self> {
        use kernels::conv_blocked::ConvShape;
        if x.dtype() != DType::F32 || weight.dtype() != DType::F32 {
            return None;
        }
        let shape = x.shape();
        let (isa, nb, c, h, w, nchw) = match shape.num_dims() {
            4 => {
                let isa = kernels::isa();
                let nb = shape[0].div_ceil(isa.lanes());
                (isa, nb, shape[1], shape[2], shape[3], Some(shape[0]))
            }
            5 => (
                isa_for_lanes(shape[4])?,
                shape[0],
                shape[1],
                shape[2],
                shape[3],
                None,
            ),
            _ => return None,
        };
        let [o, wc, k, k2] = dims(weight, "conv2d weight");
        let s = ConvShape {
            isa,
            nb,
            c,
            h,
            w,
            o,
            k,
        };
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
                    self.shape.lanes(),
                ))
            }
            None => BlockedData::Tensor(t),
        }
    }

    /// A blocked result [nb, c, h, w, L] in the input's layout.
    fn output(&self, data: Vec<f32>, c: usize, h: usize, w: usize) -> FlexTensor {
        let lanes = self.shape.lanes();
        match self.nchw {
            Some(n) => tensor(
                kernels::pool::from_blocked::<f32>(&data, n, c * h * w, lanes),
                vec![n, c, h, w],
            ),
            None => tensor(data, vec![self.shape.nb, c, h, w, lanes]),
        }
    }
}
