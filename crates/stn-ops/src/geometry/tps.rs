//! Thin-plate splines: the smooth maps of the plane through given point pairs that the paper's
//! TPS transformer and its elastic (E) distortion are made of.

use super::linear::solve;

/// A 2-D thin-plate spline.
#[derive(Clone, Debug)]
pub struct ThinPlateSpline {
    points: Vec<[f64; 2]>,
    /// Kernel weights per point, for x and y.
    weights: Vec<[f64; 2]>,
    /// Affine part: constant, x and y coefficients, for x and y.
    affine: [[f64; 2]; 3],
}

/// The thin-plate radial basis as a function of the squared distance: `U = r² log r²`, 0 at 0.
pub fn radial_basis(r2: f64) -> f64 {
    if r2 > 0.0 { r2 * r2.ln() } else { 0.0 }
}

fn squared_distance(p: [f64; 2], q: [f64; 2]) -> f64 {
    (p[0] - q[0]).powi(2) + (p[1] - q[1]).powi(2)
}

/// The spline's linear system `[K P; Pᵀ 0]` (row-major, n + 3 square), with K_ij =
/// U(|p_i - p_j|) and P_i = (1, x_i, y_i).
fn system_matrix(points: &[[f64; 2]]) -> Vec<f64> {
    let n = points.len();
    let m = n + 3;
    let mut a = vec![0.0; m * m];
    for (i, p) in points.iter().enumerate() {
        for (j, q) in points.iter().enumerate() {
            a[i * m + j] = radial_basis(squared_distance(*p, *q));
        }
        for (k, v) in [1.0, p[0], p[1]].into_iter().enumerate() {
            a[i * m + n + k] = v;
            a[(n + k) * m + i] = v;
        }
    }
    a
}

impl ThinPlateSpline {
    /// The spline that maps each of `points` to the target at the same index, with minimal
    /// bending energy; `None` if the points are degenerate (say, all collinear).
    pub fn fit(points: &[[f64; 2]], targets: &[[f64; 2]]) -> Option<Self> {
        assert_eq!(
            points.len(),
            targets.len(),
            "ThinPlateSpline::fit: one target per point"
        );
        let n = points.len();
        let a = system_matrix(points);
        let mut weights = vec![[0.0; 2]; n];
        let mut affine = [[0.0; 2]; 3];
        for axis in 0..2 {
            let mut b: Vec<f64> = targets.iter().map(|t| t[axis]).collect();
            b.extend([0.0; 3]);
            let x = solve(&a, &b)?;
            for i in 0..n {
                weights[i][axis] = x[i];
            }
            for k in 0..3 {
                affine[k][axis] = x[n + k];
            }
        }
        Some(Self {
            points: points.to_vec(),
            weights,
            affine,
        })
    }

    /// The spline at `p`.
    pub fn eval(&self, p: [f64; 2]) -> [f64; 2] {
        let [c, ax, ay] = self.affine;
        let mut out = [0, 1].map(|axis| c[axis] + ax[axis] * p[0] + ay[axis] * p[1]);
        for (q, w) in self.points.iter().zip(&self.weights) {
            let u = radial_basis(squared_distance(p, *q));
            out[0] += w[0] * u;
            out[1] += w[1] * u;
        }
        out
    }
}

/// The matrix M (row-major, `queries.len()` x `points.len()`) for which the spline through
/// `points[k] -> v[k]` takes the value `sum_k M[q][k] v[k]` at `queries[q]`, for any values v:
/// what a grid generator multiplies the predicted control-point targets by. `None` if the
/// points are degenerate.
pub fn interpolation_matrix(points: &[[f64; 2]], queries: &[[f64; 2]]) -> Option<Vec<f64>> {
    let n = points.len();
    let a = system_matrix(points);
    // Column k: the spline coefficients of the k-th unit vector of values.
    let mut columns = Vec::with_capacity(n);
    for k in 0..n {
        let mut b = vec![0.0; n + 3];
        b[k] = 1.0;
        columns.push(solve(&a, &b)?);
    }
    let mut m = Vec::with_capacity(queries.len() * n);
    for &q in queries {
        let basis: Vec<f64> = points
            .iter()
            .map(|&p| radial_basis(squared_distance(q, p)))
            .chain([1.0, q[0], q[1]])
            .collect();
        for column in &columns {
            m.push(basis.iter().zip(column).map(|(b, x)| b * x).sum());
        }
    }
    Some(m)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lattice() -> Vec<[f64; 2]> {
        (0..4)
            .flat_map(|r| (0..4).map(move |c| [c as f64 * 9.0, r as f64 * 9.0]))
            .collect()
    }

    #[test]
    fn interpolates_its_points() {
        let points = lattice();
        let targets: Vec<[f64; 2]> = points
            .iter()
            .enumerate()
            .map(|(i, p)| [p[0] + (i % 3) as f64 - 1.0, p[1] + (i % 5) as f64 * 0.5])
            .collect();
        let tps = ThinPlateSpline::fit(&points, &targets).unwrap();
        for (p, t) in points.iter().zip(&targets) {
            let e = tps.eval(*p);
            assert!((e[0] - t[0]).abs() < 1e-8 && (e[1] - t[1]).abs() < 1e-8);
        }
    }

    #[test]
    fn interpolation_matrix_agrees_with_the_fitted_spline() {
        let points = lattice();
        let targets: Vec<[f64; 2]> = points
            .iter()
            .map(|p| [p[0] * 0.9 + 0.1 * p[1], p[1] + (p[0] * 0.3).sin()])
            .collect();
        let queries = [[0.5, 0.5], [13.0, 4.0], [27.0, 27.0], [-3.0, 30.0]];
        let m = interpolation_matrix(&points, &queries).unwrap();
        let tps = ThinPlateSpline::fit(&points, &targets).unwrap();
        for (q, row) in queries.iter().zip(m.chunks(points.len())) {
            let want = tps.eval(*q);
            for axis in 0..2 {
                let got: f64 = row.iter().zip(&targets).map(|(w, t)| w * t[axis]).sum();
                assert!((got - want[axis]).abs() < 1e-9, "{got} vs {}", want[axis]);
            }
        }
    }

    #[test]
    fn collinear_points_are_degenerate() {
        let points: Vec<[f64; 2]> = (0..5).map(|i| [i as f64, 2.0 * i as f64]).collect();
        assert!(ThinPlateSpline::fit(&points, &points).is_none());
    }
}
