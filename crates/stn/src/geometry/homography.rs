//! Projective maps of the plane (3x3 homographies).

use super::linear::solve;

/// The homography (row-major 3×3, bottom-right entry 1) that maps each point of `from` to the
/// point of `to` at the same index; `None` if three of the points are collinear.
pub fn homography(from: &[[f64; 2]; 4], to: &[[f64; 2]; 4]) -> Option<[[f64; 3]; 3]> {
    // u = (h0 x + h1 y + h2) / (h6 x + h7 y + 1), v = (h3 x + h4 y + h5) / (same): two linear
    // equations per point pair.
    let mut a = Vec::with_capacity(64);
    let mut b = Vec::with_capacity(8);
    for (&[x, y], &[u, v]) in from.iter().zip(to) {
        a.extend_from_slice(&[x, y, 1.0, 0.0, 0.0, 0.0, -u * x, -u * y]);
        b.push(u);
        a.extend_from_slice(&[0.0, 0.0, 0.0, x, y, 1.0, -v * x, -v * y]);
        b.push(v);
    }
    let h = solve(&a, &b)?;
    Some([[h[0], h[1], h[2]], [h[3], h[4], h[5]], [h[6], h[7], 1.0]])
}

/// The inverse of a 3×3 matrix (adjugate over determinant); `None` if singular.
pub fn invert3(m: &[[f64; 3]; 3]) -> Option<[[f64; 3]; 3]> {
    let cof =
        |r0: usize, r1: usize, c0: usize, c1: usize| m[r0][c0] * m[r1][c1] - m[r0][c1] * m[r1][c0];
    let adj = [
        [cof(1, 2, 1, 2), -cof(0, 2, 1, 2), cof(0, 1, 1, 2)],
        [-cof(1, 2, 0, 2), cof(0, 2, 0, 2), -cof(0, 1, 0, 2)],
        [cof(1, 2, 0, 1), -cof(0, 2, 0, 1), cof(0, 1, 0, 1)],
    ];
    let det = m[0][0] * adj[0][0] + m[0][1] * adj[1][0] + m[0][2] * adj[2][0];
    if det.abs() <= 1e-12 || det.is_nan() {
        return None;
    }
    Some(adj.map(|row| row.map(|v| v / det)))
}

/// Applies the homography `h` to the point `p`; `None` where the point maps to infinity.
pub fn apply(h: &[[f64; 3]; 3], p: [f64; 2]) -> Option<[f64; 2]> {
    let w = h[2][0] * p[0] + h[2][1] * p[1] + h[2][2];
    if w == 0.0 || !w.is_finite() {
        return None;
    }
    Some([
        (h[0][0] * p[0] + h[0][1] * p[1] + h[0][2]) / w,
        (h[1][0] * p[0] + h[1][1] * p[1] + h[1][2]) / w,
    ])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn maps_corners_and_inverts() {
        let from = [[2.8, 2.8], [24.2, 2.8], [24.2, 24.2], [2.8, 24.2]];
        let to = [[1.0, 2.0], [25.0, -1.0], [29.0, 27.0], [-2.0, 24.0]];
        let h = homography(&from, &to).unwrap();
        for (p, q) in from.iter().zip(&to) {
            let [u, v] = apply(&h, *p).unwrap();
            assert!((u - q[0]).abs() < 1e-9 && (v - q[1]).abs() < 1e-9);
        }
        let inv = invert3(&h).unwrap();
        for i in 0..9 {
            let (r, c) = (i / 3, i % 3);
            let v: f64 = (0..3).map(|k| h[r][k] * inv[k][c]).sum();
            assert!(
                (v - if r == c { 1.0 } else { 0.0 }).abs() < 1e-9,
                "H H⁻¹ at {r},{c}: {v}"
            );
        }
    }

    #[test]
    fn collinear_points_have_none() {
        let from = [[0.0, 0.0], [1.0, 1.0], [2.0, 2.0], [3.0, 3.0]];
        assert!(homography(&from, &from).is_none());
    }
}
