//! Warps of square u8 images (the distorted-MNIST generators' image operations): every output
//! pixel is inverse-mapped into the source and read with bilinear interpolation, zero outside.

use super::homography::{homography, invert3};
use super::tps::ThinPlateSpline;

/// Bilinear sample of a square u8 image at (x, y), with zeros outside it.
fn sample(src: &[u8], size: usize, x: f64, y: f64) -> f64 {
    let n = size as f64;
    // Written so that NaN also lands outside.
    if !(x > -1.0 && y > -1.0 && x < n && y < n) {
        return 0.0;
    }
    let (x0, y0) = (x.floor(), y.floor());
    let (fx, fy) = (x - x0, y - y0);
    let (x0, y0) = (x0 as isize, y0 as isize);
    let px = |xi: isize, yi: isize| {
        if xi >= 0 && yi >= 0 && (xi as usize) < size && (yi as usize) < size {
            src[yi as usize * size + xi as usize] as f64
        } else {
            0.0
        }
    };
    // At integer coordinates the weights are exactly 1 and 0, so identity warps are exact.
    (1.0 - fy) * ((1.0 - fx) * px(x0, y0) + fx * px(x0 + 1, y0))
        + fy * ((1.0 - fx) * px(x0, y0 + 1) + fx * px(x0 + 1, y0 + 1))
}

fn to_u8(v: f64) -> u8 {
    v.round().clamp(0.0, 255.0) as u8
}

/// Inverse-maps every pixel of a `size`×`size` output through `map` (output → source position,
/// `None` for "nothing there") into the square source `src`.
fn warp(
    src: &[u8],
    size: usize,
    out_size: usize,
    map: impl Fn(f64, f64) -> Option<[f64; 2]>,
) -> Vec<u8> {
    let mut out = vec![0u8; out_size * out_size];
    for oy in 0..out_size {
        for ox in 0..out_size {
            if let Some([x, y]) = map(ox as f64, oy as f64) {
                out[oy * out_size + ox] = to_u8(sample(src, size, x, y));
            }
        }
    }
    out
}

/// The centre of a `size`-pixel axis, in pixel coordinates.
pub fn centre(size: usize) -> f64 {
    (size as f64 - 1.0) / 2.0
}

pub(crate) fn check_square(image: &[u8], size: usize) {
    assert_eq!(
        image.len(),
        size * size,
        "expected a {size}×{size} image, got {} pixels",
        image.len()
    );
}

/// Rotates the square `image` (side `size`) by `degrees` (counterclockwise on screen) and scales
/// it by `scale`, both about its centre, crops the result to its `size`×`size` frame, and places
/// that frame with its top-left pixel at `offset` (x, y) in a zeroed `out_size`×`out_size`
/// canvas.
pub fn rotate(
    image: &[u8],
    size: usize,
    degrees: f64,
    scale: f64,
    out_size: usize,
    offset: [usize; 2],
) -> Vec<u8> {
    check_square(image, size);
    assert!(
        offset[0] + size <= out_size && offset[1] + size <= out_size,
        "a {size}-pixel frame at {offset:?} does not fit in {out_size}"
    );
    let c = centre(size);
    let (sin, cos) = degrees.to_radians().sin_cos();
    let (ox, oy) = (offset[0] as f64, offset[1] as f64);
    let n = size as f64;
    warp(image, size, out_size, |x, y| {
        let (lx, ly) = (x - ox, y - oy);
        if lx < 0.0 || ly < 0.0 || lx >= n || ly >= n {
            return None;
        }
        let (dx, dy) = (lx - c, ly - c);
        // The forward map turns (dx, dy) by -θ in y-down coordinates (counterclockwise on
        // screen) and scales; this is its inverse.
        Some([
            c + (dx * cos - dy * sin) / scale,
            c + (dx * sin + dy * cos) / scale,
        ])
    })
}

/// The corners (x, y) of a `size`-pixel image square scaled by `scale` about its centre:
/// top-left, top-right, bottom-right, bottom-left (the centres of the corner pixels).
pub fn scaled_corners(size: usize, scale: f64) -> [[f64; 2]; 4] {
    let c = centre(size);
    let (lo, hi) = (c - scale * c, c + scale * c);
    [[lo, lo], [hi, lo], [hi, hi], [lo, hi]]
}

/// Scales the square `image` (side `size`) by `scale` about its centre, then applies the
/// homography taking the scaled square's corners ([`scaled_corners`]) to `corners`; `None` if
/// `corners` are degenerate.
pub fn project(image: &[u8], size: usize, scale: f64, corners: &[[f64; 2]; 4]) -> Option<Vec<u8>> {
    project_from(image, size, scale, &scaled_corners(size, scale), corners)
}

/// Scales the square `image` (side `size`) by `scale` about its centre, then applies the
/// homography taking the image frame's corners (the centres of its corner pixels) to
/// `corners`; `None` if `corners` are degenerate. The P recipe's warp.
pub fn project_frame(
    image: &[u8],
    size: usize,
    scale: f64,
    corners: &[[f64; 2]; 4],
) -> Option<Vec<u8>> {
    project_from(image, size, scale, &scaled_corners(size, 1.0), corners)
}

/// Scales `image` by `scale` about its centre, then applies the homography taking `from` to
/// `corners`.
fn project_from(
    image: &[u8],
    size: usize,
    scale: f64,
    from: &[[f64; 2]; 4],
    corners: &[[f64; 2]; 4],
) -> Option<Vec<u8>> {
    check_square(image, size);
    let h = homography(from, corners)?;
    let mut inv = invert3(&h)?;
    // Normalize so that w = 1 inside the target quadrilateral; pixels where w <= 0 lie beyond the
    // horizon and would otherwise sample a mirrored image.
    let (gx, gy) = (
        corners.iter().map(|p| p[0]).sum::<f64>() / 4.0,
        corners.iter().map(|p| p[1]).sum::<f64>() / 4.0,
    );
    let w0 = inv[2][0] * gx + inv[2][1] * gy + inv[2][2];
    if w0.abs() <= 1e-12 || w0.is_nan() {
        return None;
    }
    inv = inv.map(|row| row.map(|v| v / w0));
    let c = centre(size);
    Some(warp(image, size, size, |x, y| {
        let w = inv[2][0] * x + inv[2][1] * y + inv[2][2];
        if w <= 1e-9 {
            return None;
        }
        let qx = (inv[0][0] * x + inv[0][1] * y + inv[0][2]) / w;
        let qy = (inv[1][0] * x + inv[1][1] * y + inv[1][2]) / w;
        // Undo the scaling: the scaled image at q shows the source at c + (q - c) / scale.
        Some([c + (qx - c) / scale, c + (qy - c) / scale])
    }))
}

/// Warps the square `image` (side `size`) with a thin-plate spline: output pixel `p` samples the
/// source at `TPS(p)`, where the spline maps each of `points` to itself plus the offset at the
/// same index (so the source content at a moved point appears at the point). `None` if the
/// spline is degenerate.
pub fn warp_tps(
    image: &[u8],
    size: usize,
    points: &[[f64; 2]],
    offsets: &[[f64; 2]],
) -> Option<Vec<u8>> {
    warp_tps_mapped(image, size, points, offsets, |q| q)
}

/// [`warp_tps`] of the image scaled by `scale` about its centre: output pixel `p` samples the
/// scaled image at `TPS(p)`. The E recipe's warp.
pub fn warp_tps_scaled(
    image: &[u8],
    size: usize,
    scale: f64,
    points: &[[f64; 2]],
    offsets: &[[f64; 2]],
) -> Option<Vec<u8>> {
    let c = centre(size);
    // The scaled image at q shows the source at c + (q - c) / scale.
    warp_tps_mapped(image, size, points, offsets, |[qx, qy]| {
        [c + (qx - c) / scale, c + (qy - c) / scale]
    })
}

/// Output pixel `p` samples the source at `map(TPS(p))`.
fn warp_tps_mapped(
    image: &[u8],
    size: usize,
    points: &[[f64; 2]],
    offsets: &[[f64; 2]],
    map: impl Fn([f64; 2]) -> [f64; 2],
) -> Option<Vec<u8>> {
    check_square(image, size);
    assert_eq!(
        offsets.len(),
        points.len(),
        "warp_tps: one offset per control point"
    );
    let targets: Vec<[f64; 2]> = points
        .iter()
        .zip(offsets)
        .map(|(p, o)| [p[0] + o[0], p[1] + o[1]])
        .collect();
    let tps = ThinPlateSpline::fit(points, &targets)?;
    Some(warp(image, size, size, |x, y| Some(map(tps.eval([x, y])))))
}

/// Combines the `crop`-pixel square of `src` (side `src_size`) whose top-left pixel is at
/// `from` (x, y) into `canvas` (side `canvas_size`) at `to` (x, y), keeping the larger value of
/// each pixel.
pub fn paste_max(
    canvas: &mut [u8],
    canvas_size: usize,
    src: &[u8],
    src_size: usize,
    crop: usize,
    from: [usize; 2],
    to: [usize; 2],
) {
    check_square(src, src_size);
    assert!(from[0] + crop <= src_size && from[1] + crop <= src_size);
    assert!(to[0] + crop <= canvas_size && to[1] + crop <= canvas_size);
    for r in 0..crop {
        let s = &src[(from[1] + r) * src_size + from[0]..][..crop];
        let d = &mut canvas[(to[1] + r) * canvas_size + to[0]..][..crop];
        for (d, &s) in d.iter_mut().zip(s) {
            *d = (*d).max(s);
        }
    }
}

/// Adds the `crop` x `crop` square of `src` at `from` (x, y) to `canvas` at `to` (x, y),
/// saturating at 255: MNIST-cluttered's "added and clipped to [0, 1]" for u8 pixels (for
/// non-negative pixels, saturating each sum equals clipping the total once).
pub fn paste_add(
    canvas: &mut [u8],
    canvas_size: usize,
    src: &[u8],
    src_size: usize,
    crop: usize,
    from: [usize; 2],
    to: [usize; 2],
) {
    check_square(src, src_size);
    assert!(from[0] + crop <= src_size && from[1] + crop <= src_size);
    assert!(to[0] + crop <= canvas_size && to[1] + crop <= canvas_size);
    for r in 0..crop {
        let s = &src[(from[1] + r) * src_size + from[0]..][..crop];
        let d = &mut canvas[(to[1] + r) * canvas_size + to[0]..][..crop];
        for (d, &s) in d.iter_mut().zip(s) {
            *d = d.saturating_add(s);
        }
    }
}
