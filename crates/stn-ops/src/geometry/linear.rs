//! Dense linear systems.

/// Solves `a x = b` for square row-major `a` (n×n, n = `b.len()`) by Gaussian elimination with
/// partial pivoting; `None` if `a` is singular to working precision.
pub fn solve(a: &[f64], b: &[f64]) -> Option<Vec<f64>> {
    let n = b.len();
    assert_eq!(a.len(), n * n, "solve: matrix is not {n}×{n}");
    let mut a = a.to_vec();
    let mut b = b.to_vec();
    let tiny = a.iter().fold(0.0f64, |m, v| m.max(v.abs())) * 1e-12;
    for col in 0..n {
        let pivot = (col..n)
            .max_by(|&i, &j| a[i * n + col].abs().total_cmp(&a[j * n + col].abs()))
            .expect("non-empty range");
        let p = a[pivot * n + col].abs();
        if p <= tiny || p.is_nan() {
            return None;
        }
        if pivot != col {
            for k in 0..n {
                a.swap(col * n + k, pivot * n + k);
            }
            b.swap(col, pivot);
        }
        for row in col + 1..n {
            let f = a[row * n + col] / a[col * n + col];
            if f != 0.0 {
                for k in col..n {
                    a[row * n + k] -= f * a[col * n + k];
                }
                b[row] -= f * b[col];
            }
        }
    }
    let mut x = vec![0.0; n];
    for row in (0..n).rev() {
        let s: f64 = (row + 1..n).map(|k| a[row * n + k] * x[k]).sum();
        x[row] = (b[row] - s) / a[row * n + row];
    }
    Some(x)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn solves_and_detects_singular() {
        // Needs a row swap: the first pivot is zero.
        let a = [0.0, 2.0, 1.0, 1.0, 1.0, 0.0, 2.0, 0.0, 3.0];
        let x_true = [1.0, -2.0, 3.0];
        let b: Vec<f64> = (0..3)
            .map(|r| (0..3).map(|c| a[r * 3 + c] * x_true[c]).sum())
            .collect();
        let x = solve(&a, &b).unwrap();
        for (x, t) in x.iter().zip(x_true) {
            assert!((x - t).abs() < 1e-12, "{x} vs {t}");
        }
        assert!(solve(&[1.0, 2.0, 2.0, 4.0], &[1.0, 2.0]).is_none());
    }
}
