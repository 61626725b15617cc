//! Fused grid sampling: one pass forward, one pass backward, parallel over the batch; and the
//! fused affine sampler (affine grid + sampling in one pass, gradient straight to theta).
//!
//! Each batch item is independent and written by exactly one thread, so results do not depend
//! on scheduling: the same inputs give bit-identical outputs and gradients. Every
//! (padding, align_corners) pair is a separate monomorphized loop; f32 bilinear sampling with
//! zeros or border padding runs a vector of pixels at a time (`sample_simd.rs`) on the path
//! chosen at the call ([`crate::simd::isa`]).

use std::mem::MaybeUninit;

use rayon::prelude::*;

use super::affine_grid::base_planes;
use super::sample_scalar::{
    AffineCoords, BORDER, CoordGrads, Coords, GridCoords, GridGrads, NoGrads, REFLECTION,
    ThetaGrads, ZEROS, backward_item, forward_item,
};
use super::sample_simd::{
    VecCoords, VecGrads, backward_item as vec_backward, fits_i32, forward_item as vec_forward,
};
use super::{Real, is_f32, with_simd};
use crate::buffers::{NewBuffer, uninit, uninit_f32, zeroed};
pub use crate::sample_shape::SampleShape;
use crate::simd::{Isa, dispatch, isa};
use crate::{Interpolation, Padding, SampleOptions};

/// Calls `$f::<T, PAD, ALIGN>(args)` for the runtime padding and corner convention.
macro_rules! monomorphize {
    ($o:expr, $f:ident::<$($t:ty),*>($($arg:expr),*)) => {
        match ($o.padding, $o.align_corners) {
            (Padding::Zeros, false) => $f::<$($t),*, ZEROS, false>($($arg),*),
            (Padding::Zeros, true) => $f::<$($t),*, ZEROS, true>($($arg),*),
            (Padding::Border, false) => $f::<$($t),*, BORDER, false>($($arg),*),
            (Padding::Border, true) => $f::<$($t),*, BORDER, true>($($arg),*),
            (Padding::Reflection, false) => $f::<$($t),*, REFLECTION, false>($($arg),*),
            (Padding::Reflection, true) => $f::<$($t),*, REFLECTION, true>($($arg),*),
        }
    };
}

/// Whether the vector sampler applies (f32 bilinear, zeros or border padding, input planes
/// indexable in i32).
fn vector_path<T: 'static>(o: &SampleOptions, s: &SampleShape) -> bool {
    is_f32::<T>()
        && o.mode == Interpolation::Bilinear
        && o.padding != Padding::Reflection
        && fits_i32(s)
}

fn check(
    input: usize,
    coords: usize,
    out: usize,
    s: &SampleShape,
    coords_per_item: usize,
    what: &str,
) {
    assert_eq!(input, s.n * s.input_len(), "{what}: input length");
    assert_eq!(coords, s.n * coords_per_item, "{what}: grid/theta length");
    assert_eq!(out, s.n * s.output_len(), "{what}: output length");
}

/// Output = grid_sample(input, grid) with PyTorch's semantics.
pub fn forward<T: Real>(input: &[T], grid: &[T], out: &mut [T], s: SampleShape, o: SampleOptions) {
    forward_uninit(input, grid, uninit(out), s, o);
}

/// [`forward`] into a new buffer.
pub fn forward_alloc<T: Real>(input: &[T], grid: &[T], s: SampleShape, o: SampleOptions) -> Vec<T> {
    let mut out = NewBuffer::new(s.n * s.output_len());
    forward_uninit(input, grid, out.uninit(), s, o);
    // SAFETY: the forward pass writes every output value (vector and scalar parts).
    unsafe { out.finish() }
}

fn forward_uninit<T: Real>(
    input: &[T],
    grid: &[T],
    out: &mut [MaybeUninit<T>],
    s: SampleShape,
    o: SampleOptions,
) {
    let gl = s.plane_out() * 2;
    check(input.len(), grid.len(), out.len(), &s, gl, "grid_sample");
    let item = |n: usize| &grid[n * gl..(n + 1) * gl];
    forward_batch(
        input,
        out,
        s,
        o,
        |n| GridCoords(item(n)),
        |n| VecCoords::Grid(bytemuck::cast_slice(item(n))),
    );
}

/// The forward pass over the batch, parallel over items: item `n` samples at `coords(n)`,
/// given for the vector sampler as `lanes(n)` too (used only when T is f32).
fn forward_batch<'a, T: Real, C: Coords<T>>(
    input: &[T],
    out: &mut [MaybeUninit<T>],
    s: SampleShape,
    o: SampleOptions,
    coords: impl Fn(usize) -> C + Sync,
    lanes: impl Fn(usize) -> VecCoords<'a> + Sync,
) {
    if s.output_len() == 0 {
        return;
    }
    let isa = isa();
    out.par_chunks_mut(s.output_len())
        .enumerate()
        .for_each(|(n, out)| {
            let input = &input[n * s.input_len()..(n + 1) * s.input_len()];
            let mut start = 0;
            if vector_path::<T>(&o, &s) {
                let (input, out) = (bytemuck::cast_slice(input), uninit_f32(out));
                let (lanes, border) = (lanes(n), o.padding == Padding::Border);
                start = dispatch!(
                    isa,
                    vec_forward(input, &lanes, out, &s, border, o.align_corners)
                );
            }
            let coords = coords(n);
            with_simd(
                isa,
                #[inline(always)]
                || {
                    monomorphize!(
                        o,
                        forward_item::<T, C>(o.mode, input, &coords, out, &s, start..s.plane_out())
                    )
                },
            );
        });
}

/// Gradients of grid_sample. `grad_input` and `grad_grid`, when given, are overwritten.
pub fn backward<T: Real>(
    input: &[T],
    grid: &[T],
    grad_out: &[T],
    grad_input: Option<&mut [T]>,
    grad_grid: Option<&mut [T]>,
    s: SampleShape,
    o: SampleOptions,
) {
    backward_uninit(
        input,
        grid,
        grad_out,
        grad_input.map(uninit),
        grad_grid.map(uninit),
        s,
        o,
    );
}

/// [`backward`] into new buffers: (grad_input if `want_input`, grad_grid if `want_grid`).
pub fn backward_alloc<T: Real>(
    input: &[T],
    grid: &[T],
    grad_out: &[T],
    want_input: bool,
    want_grid: bool,
    s: SampleShape,
    o: SampleOptions,
) -> (Option<Vec<T>>, Option<Vec<T>>) {
    let mut gin = want_input.then(|| NewBuffer::new(s.n * s.input_len()));
    let mut ggrid = want_grid.then(|| NewBuffer::new(s.n * s.plane_out() * 2));
    backward_uninit(
        input,
        grid,
        grad_out,
        gin.as_mut().map(NewBuffer::uninit),
        ggrid.as_mut().map(NewBuffer::uninit),
        s,
        o,
    );
    // SAFETY: the backward pass zeroes each item of the input gradient before accumulating
    // into it and writes every value of the grid gradient.
    unsafe { (gin.map(|g| g.finish()), ggrid.map(|g| g.finish())) }
}

fn backward_uninit<T: Real>(
    input: &[T],
    grid: &[T],
    grad_out: &[T],
    grad_input: Option<&mut [MaybeUninit<T>]>,
    grad_grid: Option<&mut [MaybeUninit<T>]>,
    s: SampleShape,
    o: SampleOptions,
) {
    let gl = s.plane_out() * 2;
    check(
        input.len(),
        grid.len(),
        grad_out.len(),
        &s,
        gl,
        "grid_sample backward",
    );
    let mut gin = per_item(grad_input, s.input_len(), s.n);
    let mut ggrid = per_item(grad_grid, gl, s.n);
    let isa = isa();
    gin.par_iter_mut()
        .zip(ggrid.par_iter_mut())
        .enumerate()
        .for_each(|(n, (gin, ggrid))| {
            // The input gradient accumulates (zeroed first); every grid gradient value is
            // written once (vector and scalar parts).
            let mut gin = gin.take().map(|g| zeroed(g, T::zero()));
            let mut ggrid = ggrid.take();
            let input = &input[n * s.input_len()..(n + 1) * s.input_len()];
            let grid = &grid[n * gl..(n + 1) * gl];
            let gout = &grad_out[n * s.output_len()..(n + 1) * s.output_len()];
            let mut start = 0;
            if vector_path::<T>(&o, &s) {
                let v = VecCoords::Grid(bytemuck::cast_slice(grid));
                let mut g = match ggrid.as_deref_mut() {
                    Some(gg) => VecGrads::Grid(uninit_f32(gg)),
                    None => VecGrads::None,
                };
                let gin32 = gin.as_deref_mut().map(bytemuck::cast_slice_mut);
                let (input, gout) = (bytemuck::cast_slice(input), bytemuck::cast_slice(gout));
                let border = o.padding == Padding::Border;
                (start, _) = dispatch!(
                    isa,
                    vec_backward(input, &v, gout, gin32, &mut g, &s, border, o.align_corners)
                );
            }
            let coords = GridCoords(grid);
            let range = start..s.plane_out();
            match ggrid {
                Some(gg) => {
                    let mut sink = GridGrads(gg);
                    scalar_backward(isa, o, input, &coords, gout, gin, &mut sink, &s, range)
                }
                None => scalar_backward(isa, o, input, &coords, gout, gin, &mut NoGrads, &s, range),
            }
        });
}

#[allow(clippy::too_many_arguments)]
fn scalar_backward<T: Real, C: Coords<T>, G: CoordGrads<T>>(
    isa: Isa,
    o: SampleOptions,
    input: &[T],
    coords: &C,
    gout: &[T],
    gin: Option<&mut [T]>,
    sink: &mut G,
    s: &SampleShape,
    range: core::ops::Range<usize>,
) {
    with_simd(
        isa,
        #[inline(always)]
        || {
            monomorphize!(
                o,
                backward_item::<T, C, G>(o.mode, input, coords, gout, gin, sink, s, range)
            )
        },
    )
}

/// Splits an optional gradient buffer into per-item slices. They are not zeroed here: each
/// worker zeroes its own item just before accumulating into it, in parallel and while the
/// item is in cache.
fn per_item<T>(
    buf: Option<&mut [MaybeUninit<T>]>,
    len: usize,
    n: usize,
) -> Vec<Option<&mut [MaybeUninit<T>]>> {
    match buf {
        Some(g) => {
            assert_eq!(g.len(), n * len, "gradient buffer length");
            if len == 0 {
                (0..n).map(|_| Some(&mut [][..])).collect()
            } else {
                g.chunks_mut(len).map(Some).collect()
            }
        }
        None => (0..n).map(|_| None).collect(),
    }
}

/// Output = grid_sample(input, affine_grid(theta)) in one pass: theta [n, 2, 3].
pub fn affine_forward<T: Real>(
    input: &[T],
    theta: &[T],
    out: &mut [T],
    s: SampleShape,
    o: SampleOptions,
) {
    affine_forward_uninit(input, theta, uninit(out), s, o);
}

/// [`affine_forward`] into a new buffer.
pub fn affine_forward_alloc<T: Real>(
    input: &[T],
    theta: &[T],
    s: SampleShape,
    o: SampleOptions,
) -> Vec<T> {
    let mut out = NewBuffer::new(s.n * s.output_len());
    affine_forward_uninit(input, theta, out.uninit(), s, o);
    // SAFETY: the forward pass writes every output value (vector and scalar parts).
    unsafe { out.finish() }
}

fn affine_forward_uninit<T: Real>(
    input: &[T],
    theta: &[T],
    out: &mut [MaybeUninit<T>],
    s: SampleShape,
    o: SampleOptions,
) {
    check(input.len(), theta.len(), out.len(), &s, 6, "affine_sample");
    let (bx, by) = base_planes::<T>(s.h_out, s.w_out, o.align_corners);
    let th = |n: usize| -> [T; 6] { core::array::from_fn(|i| theta[n * 6 + i]) };
    forward_batch(
        input,
        out,
        s,
        o,
        |n| AffineCoords {
            theta: th(n),
            bx: &bx,
            by: &by,
        },
        |n| VecCoords::Affine {
            theta: th(n).map(|t| t.f64() as f32),
            bx: bytemuck::cast_slice(&bx),
            by: bytemuck::cast_slice(&by),
        },
    );
}

/// Gradients of [`affine_forward`]: `grad_theta` [n, 2, 3] and, when given, `grad_input`
/// (both overwritten).
pub fn affine_backward<T: Real>(
    input: &[T],
    theta: &[T],
    grad_out: &[T],
    grad_input: Option<&mut [T]>,
    grad_theta: &mut [T],
    s: SampleShape,
    o: SampleOptions,
) {
    affine_backward_uninit(
        input,
        theta,
        grad_out,
        grad_input.map(uninit),
        grad_theta,
        s,
        o,
    );
}

/// [`affine_backward`] into new buffers: (grad_input if `want_input`, grad_theta).
pub fn affine_backward_alloc<T: Real>(
    input: &[T],
    theta: &[T],
    grad_out: &[T],
    want_input: bool,
    s: SampleShape,
    o: SampleOptions,
) -> (Option<Vec<T>>, Vec<T>) {
    let mut gtheta = vec![T::zero(); s.n * 6];
    let mut gin = want_input.then(|| NewBuffer::new(s.n * s.input_len()));
    let g = gin.as_mut().map(NewBuffer::uninit);
    affine_backward_uninit(input, theta, grad_out, g, &mut gtheta, s, o);
    // SAFETY: the backward pass zeroes each item of the input gradient before accumulating.
    (unsafe { gin.map(|g| g.finish()) }, gtheta)
}

fn affine_backward_uninit<T: Real>(
    input: &[T],
    theta: &[T],
    grad_out: &[T],
    grad_input: Option<&mut [MaybeUninit<T>]>,
    grad_theta: &mut [T],
    s: SampleShape,
    o: SampleOptions,
) {
    check(
        input.len(),
        theta.len(),
        grad_out.len(),
        &s,
        6,
        "affine_sample backward",
    );
    assert_eq!(
        grad_theta.len(),
        s.n * 6,
        "affine_sample backward: grad_theta length"
    );
    let (bx, by) = base_planes::<T>(s.h_out, s.w_out, o.align_corners);
    let mut gin = per_item(grad_input, s.input_len(), s.n);
    let isa = isa();
    gin.par_iter_mut()
        .zip(grad_theta.par_chunks_mut(6))
        .enumerate()
        .for_each(|(n, (gin, gtheta))| {
            let mut gin = gin.take().map(|g| zeroed(g, T::zero()));
            let input = &input[n * s.input_len()..(n + 1) * s.input_len()];
            let gout = &grad_out[n * s.output_len()..(n + 1) * s.output_len()];
            let t: [T; 6] = core::array::from_fn(|i| theta[n * 6 + i]);
            let mut start = 0;
            let mut acc = [T::zero(); 6];
            if vector_path::<T>(&o, &s) {
                let bx32: &[f32] = bytemuck::cast_slice(&bx);
                let by32: &[f32] = bytemuck::cast_slice(&by);
                let v = VecCoords::Affine {
                    theta: t.map(|x| x.f64() as f32),
                    bx: bx32,
                    by: by32,
                };
                let mut g = VecGrads::Theta { bx: bx32, by: by32 };
                let gin32 = gin.as_deref_mut().map(bytemuck::cast_slice_mut);
                let (input, gout) = (bytemuck::cast_slice(input), bytemuck::cast_slice(gout));
                let border = o.padding == Padding::Border;
                let sums;
                (start, sums) = dispatch!(
                    isa,
                    vec_backward(input, &v, gout, gin32, &mut g, &s, border, o.align_corners)
                );
                acc = sums.map(|v| T::constant(v as f64));
            }
            let coords = AffineCoords {
                theta: t,
                bx: &bx,
                by: &by,
            };
            let mut sink = ThetaGrads {
                acc,
                bx: &bx,
                by: &by,
            };
            scalar_backward(
                isa,
                o,
                input,
                &coords,
                gout,
                gin,
                &mut sink,
                &s,
                start..s.plane_out(),
            );
            gtheta.copy_from_slice(&sink.acc);
        });
}
