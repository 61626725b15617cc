//! 2x2 max pooling (stride 2, floor) followed by ReLU, fused, with PyTorch's tie and NaN rules:
//! the first maximum in row-major window order wins, and NaN propagates.
//!
//! Works on [planes, h, w, lanes]: lanes = 1 for NCHW tensors, 4, 8 or 16 for batch-blocked ones
//! (the innermost loop then runs over the images of a block and vectorizes).

use std::mem::MaybeUninit;

use rayon::prelude::*;

use super::{Real, with_simd};
use crate::buffers::NewBuffer;
use crate::simd::isa;

/// relu(max_pool2d(x, 2)) of `planes` planes of h x w x lanes; the output is
/// [planes, h / 2, w / 2, lanes].
pub fn forward<T: Real>(x: &[T], planes: usize, h: usize, w: usize, lanes: usize) -> Vec<T> {
    match lanes {
        1 => forward_impl::<T, 1>(x, planes, h, w),
        4 => forward_impl::<T, 4>(x, planes, h, w),
        8 => forward_impl::<T, 8>(x, planes, h, w),
        16 => forward_impl::<T, 16>(x, planes, h, w),
        _ => {
            // Any other block size: pool each lane as its own plane.
            let y = from_lanes(x, planes * h * w, lanes);
            let p = forward_impl::<T, 1>(&y, planes * lanes, h, w);
            to_lanes(&p, planes * (h / 2) * (w / 2), lanes)
        }
    }
}

/// Gradient of [`forward`] with respect to x: each output's gradient goes to its window's
/// first maximum when the output is positive.
pub fn backward<T: Real>(
    x: &[T],
    grad: &[T],
    planes: usize,
    h: usize,
    w: usize,
    lanes: usize,
) -> Vec<T> {
    match lanes {
        1 => backward_impl::<T, 1>(x, grad, planes, h, w),
        4 => backward_impl::<T, 4>(x, grad, planes, h, w),
        8 => backward_impl::<T, 8>(x, grad, planes, h, w),
        16 => backward_impl::<T, 16>(x, grad, planes, h, w),
        _ => {
            let y = from_lanes(x, planes * h * w, lanes);
            let g = from_lanes(grad, planes * (h / 2) * (w / 2), lanes);
            let d = backward_impl::<T, 1>(&y, &g, planes * lanes, h, w);
            to_lanes(&d, planes * h * w, lanes)
        }
    }
}

/// [n, lanes] -> [lanes, n].
fn from_lanes<T: Real>(x: &[T], n: usize, lanes: usize) -> Vec<T> {
    (0..lanes)
        .flat_map(|l| (0..n).map(move |i| x[i * lanes + l]))
        .collect()
}

/// [lanes, n] -> [n, lanes].
fn to_lanes<T: Real>(x: &[T], n: usize, lanes: usize) -> Vec<T> {
    (0..n)
        .flat_map(|i| (0..lanes).map(move |l| x[l * n + i]))
        .collect()
}

/// Which of the four window values PyTorch's max pooling picks, as one-hot lane masks: a later
/// value replaces the running maximum when it is greater or NaN.
#[inline(always)]
fn pick<T: Real, const L: usize>(v: [&[T]; 4]) -> ([T; L], [[bool; L]; 4]) {
    let mut m = [T::zero(); L];
    let mut take = [[false; L]; 4];
    m.copy_from_slice(&v[0][..L]);
    for k in 1..4 {
        for l in 0..L {
            let x = v[k][l];
            let t = x > m[l] || x.is_nan();
            take[k][l] = t;
            m[l] = if t { x } else { m[l] };
        }
    }
    // Position k wins if it took the maximum and no later one did.
    let mut chosen = [[false; L]; 4];
    for l in 0..L {
        let (t1, t2, t3) = (take[1][l], take[2][l], take[3][l]);
        chosen[3][l] = t3;
        chosen[2][l] = t2 && !t3;
        chosen[1][l] = t1 && !t2 && !t3;
        chosen[0][l] = !t1 && !t2 && !t3;
    }
    (m, chosen)
}

fn forward_impl<T: Real, const L: usize>(x: &[T], planes: usize, h: usize, w: usize) -> Vec<T> {
    assert_eq!(x.len(), planes * h * w * L, "pool: input length");
    let (ho, wo) = (h / 2, w / 2);
    let mut out = vec![T::zero(); planes * ho * wo * L];
    if out.is_empty() {
        return out;
    }
    let isa = isa();
    out.par_chunks_mut(ho * wo * L)
        .enumerate()
        .for_each(|(p, out)| {
            let plane = &x[p * h * w * L..(p + 1) * h * w * L];
            with_simd(
                isa,
                #[inline(always)]
                || {
                    for i in 0..ho {
                        for j in 0..wo {
                            let a = ((2 * i) * w + 2 * j) * L;
                            let win =
                                [a, a + L, a + w * L, a + (w + 1) * L].map(|o| &plane[o..o + L]);
                            let (m, _) = pick::<T, L>(win);
                            let o = &mut out[(i * wo + j) * L..(i * wo + j + 1) * L];
                            for l in 0..L {
                                // relu keeps NaN, like PyTorch's.
                                o[l] = if m[l] > T::zero() || m[l].is_nan() {
                                    m[l]
                                } else {
                                    T::zero()
                                };
                            }
                        }
                    }
                },
            );
        });
    out
}

fn backward_impl<T: Real, const L: usize>(
    x: &[T],
    grad: &[T],
    planes: usize,
    h: usize,
    w: usize,
) -> Vec<T> {
    let (ho, wo) = (h / 2, w / 2);
    assert_eq!(x.len(), planes * h * w * L, "pool backward: input length");
    assert_eq!(
        grad.len(),
        planes * ho * wo * L,
        "pool backward: grad length"
    );
    let mut dx = vec![T::zero(); planes * h * w * L];
    if dx.is_empty() || ho * wo == 0 {
        return dx;
    }
    let isa = isa();
    dx.par_chunks_mut(h * w * L)
        .enumerate()
        .for_each(|(p, dx)| {
            let plane = &x[p * h * w * L..(p + 1) * h * w * L];
            let g = &grad[p * ho * wo * L..(p + 1) * ho * wo * L];
            with_simd(
                isa,
                #[inline(always)]
                || {
                    for i in 0..ho {
                        for j in 0..wo {
                            let a = ((2 * i) * w + 2 * j) * L;
                            let offs = [a, a + L, a + w * L, a + (w + 1) * L];
                            let (m, chosen) = pick::<T, L>(offs.map(|o| &plane[o..o + L]));
                            let gi = &g[(i * wo + j) * L..(i * wo + j + 1) * L];
                            for (k, &off) in offs.iter().enumerate() {
                                let d = &mut dx[off..off + L];
                                for l in 0..L {
                                    d[l] = if chosen[k][l] && m[l] > T::zero() {
                                        gi[l]
                                    } else {
                                        T::zero()
                                    };
                                }
                            }
                        }
                    }
                },
            );
        });
    dx
}

/// NCHW [n, c, h, w] -> batch-blocked [ceil(n / lanes), c, h, w, lanes], zero-padding the
/// missing images of the last block.
///
/// Each block is written once, by the worker converting it (no serial zeroing first), a square
/// tile of `lanes` values of `lanes` images at a time: the tile's reads are `lanes` short
/// contiguous runs and its writes one contiguous run, where a plain loop over the output
/// strides through every image.
pub fn to_blocked<T: Real>(x: &[T], n: usize, chw: usize, lanes: usize) -> Vec<T> {
    assert_eq!(x.len(), n * chw, "to_blocked: input length");
    let nb = n.div_ceil(lanes);
    let mut out = NewBuffer::new(nb * chw * lanes);
    if chw > 0 {
        out.uninit()
            .par_chunks_mut(chw * lanes)
            .enumerate()
            .for_each(|(b, out)| {
                let images = lanes.min(n - b * lanes);
                let x = &x[b * lanes * chw..(b * lanes + images) * chw];
                match lanes {
                    4 => block_from_images::<T, 4>(x, images, chw, out),
                    8 => block_from_images::<T, 8>(x, images, chw, out),
                    16 => block_from_images::<T, 16>(x, images, chw, out),
                    _ => {
                        for (i, out) in out.chunks_mut(lanes).enumerate() {
                            for (l, o) in out.iter_mut().enumerate() {
                                o.write(if l < images {
                                    x[l * chw + i]
                                } else {
                                    T::zero()
                                });
                            }
                        }
                    }
                }
            });
    }
    // SAFETY: every block was written whole.
    unsafe { out.finish() }
}

/// One block [chw, L] from `images` (<= L) images of `chw` values each, zeros in the lanes
/// beyond them.
#[inline(always)]
fn block_from_images<T: Real, const L: usize>(
    x: &[T],
    images: usize,
    chw: usize,
    out: &mut [MaybeUninit<T>],
) {
    assert!(images <= L && x.len() == images * chw && out.len() == chw * L);
    let mut i = 0;
    while i < chw {
        let width = L.min(chw - i);
        let mut tile = [[T::zero(); L]; L];
        for (l, row) in tile.iter_mut().enumerate().take(images) {
            let src = &x[l * chw + i..l * chw + i + width];
            if width == L {
                // A constant-length copy: inlined, where a variable one calls memcpy.
                row.copy_from_slice(src);
            } else {
                row[..width].copy_from_slice(src);
            }
        }
        for (j, o) in out[i * L..(i + width) * L].chunks_exact_mut(L).enumerate() {
            for (l, o) in o.iter_mut().enumerate() {
                o.write(tile[l][j]);
            }
        }
        i += width;
    }
}

/// Batch-blocked [nb, c, h, w, lanes] -> NCHW [n, c, h, w] (n <= nb * lanes), a square tile at
/// a time as [`to_blocked`].
pub fn from_blocked<T: Real>(x: &[T], n: usize, chw: usize, lanes: usize) -> Vec<T> {
    assert!(
        x.len() >= n.div_ceil(lanes) * chw * lanes,
        "from_blocked: input length"
    );
    let mut out = NewBuffer::new(n * chw);
    if chw > 0 && lanes > 0 {
        out.uninit()
            .par_chunks_mut(chw * lanes)
            .enumerate()
            .for_each(|(b, out)| {
                let block = &x[b * chw * lanes..(b + 1) * chw * lanes];
                match lanes {
                    4 => images_from_block::<T, 4>(block, chw, out),
                    8 => images_from_block::<T, 8>(block, chw, out),
                    16 => images_from_block::<T, 16>(block, chw, out),
                    _ => {
                        for (l, img) in out.chunks_mut(chw).enumerate() {
                            for (j, o) in img.iter_mut().enumerate() {
                                o.write(block[j * lanes + l]);
                            }
                        }
                    }
                }
            });
    }
    // SAFETY: every image was written whole.
    unsafe { out.finish() }
}

/// The images of one block [chw, L]: `out` holds as many whole images as the block has.
#[inline(always)]
fn images_from_block<T: Real, const L: usize>(block: &[T], chw: usize, out: &mut [MaybeUninit<T>]) {
    let images = out.len() / chw;
    assert!(images <= L && out.len() == images * chw && block.len() == chw * L);
    let mut i = 0;
    while i < chw {
        let width = L.min(chw - i);
        let mut tile = [[T::zero(); L]; L];
        for (j, row) in block[i * L..(i + width) * L].chunks_exact(L).enumerate() {
            tile[j].copy_from_slice(row);
        }
        for (l, img) in out.chunks_exact_mut(chw).enumerate() {
            if width == L {
                let img: &mut [MaybeUninit<T>; L] = (&mut img[i..i + L]).try_into().unwrap();
                for (j, o) in img.iter_mut().enumerate() {
                    o.write(tile[j][l]);
                }
            } else {
                for (j, o) in img[i..i + width].iter_mut().enumerate() {
                    o.write(tile[j][l]);
                }
            }
        }
        i += width;
    }
}

#[cfg(test)]
mod tests {
    use super::{from_blocked, to_blocked};

    /// The tiled conversions equal the plain index arithmetic, for every block width the
    /// kernels use and one they do not, with partial last blocks and partial last tiles.
    #[test]
    fn layout_conversions_equal_the_plain_definitions() {
        // Under Miri (slow), fewer and smaller ones, partial blocks and tiles still.
        let shapes: &[(usize, usize)] = if cfg!(miri) {
            &[(1, 1), (5, 37), (17, 20)]
        } else {
            &[(1, 1), (5, 37), (16, 16), (17, 784), (33, 90)]
        };
        for lanes in [1, 3, 4, 8, 16] {
            for &(n, chw) in shapes {
                let x: Vec<f32> = (0..n * chw).map(|i| i as f32 + 1.0).collect();
                let nb = n.div_ceil(lanes);
                let mut want = vec![0.0f32; nb * chw * lanes];
                for img in 0..n {
                    for i in 0..chw {
                        want[((img / lanes) * chw + i) * lanes + img % lanes] = x[img * chw + i];
                    }
                }
                let blocked = to_blocked(&x, n, chw, lanes);
                assert_eq!(blocked, want, "to_blocked n {n} chw {chw} lanes {lanes}");
                let back = from_blocked(&blocked, n, chw, lanes);
                assert_eq!(back, x, "from_blocked n {n} chw {chw} lanes {lanes}");
            }
        }
    }
}
