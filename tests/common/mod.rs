//! Helpers shared by the integration tests: PyTorch fixtures and tolerance checks.
#![allow(dead_code)]

use std::path::PathBuf;

use burn::tensor::{DType, Device, Tensor, TensorData};
use serde::Deserialize;
use serde::de::DeserializeOwned;

/// The fixture folder: `STN_TORCH_FIXTURES` if set, else the vendored copy.
pub fn fixtures_dir() -> PathBuf {
    match std::env::var_os("STN_TORCH_FIXTURES") {
        Some(dir) => PathBuf::from(dir),
        None => PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/torch"),
    }
}

/// Reads and parses one fixture file.
pub fn load<T: DeserializeOwned>(name: &str) -> T {
    let path = fixtures_dir().join(name);
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("cannot read fixture {}: {e}", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("bad fixture {}: {e}", path.display()))
}

/// A tensor as the fixtures store it.
#[derive(Debug, Clone, Deserialize)]
pub struct Fx {
    pub shape: Vec<usize>,
    pub data: Vec<f64>,
}

impl Fx {
    /// As a tensor of `dtype` on `device`.
    pub fn tensor<const D: usize>(&self, device: &Device, dtype: DType) -> Tensor<D> {
        assert_eq!(self.shape.len(), D, "fixture rank");
        Tensor::from_data(
            TensorData::new(self.data.clone(), self.shape.clone()),
            (device, dtype),
        )
    }
}

/// The values of a tensor as f64.
pub fn values<const D: usize>(t: Tensor<D>) -> Vec<f64> {
    t.into_data().convert::<f64>().try_to_vec::<f64>().unwrap()
}

/// Largest absolute difference, after checking lengths.
pub fn max_abs_diff(got: &[f64], want: &[f64]) -> f64 {
    assert_eq!(got.len(), want.len(), "lengths differ");
    got.iter()
        .zip(want)
        .map(|(a, b)| {
            if a.is_nan() && b.is_nan() {
                0.0
            } else {
                (a - b).abs()
            }
        })
        .fold(0.0, f64::max)
}

/// Asserts max |got - want| <= tol.
pub fn assert_abs(what: &str, got: &[f64], want: &[f64], tol: f64) {
    let d = max_abs_diff(got, want);
    eprintln!("{what}: max abs error {d:.2e}");
    assert!(d <= tol, "{what}: max abs error {d:e} > {tol:e}");
}

/// Asserts max |got - want| <= tol * max |want| (relative to the tensor's scale).
pub fn assert_rel(what: &str, got: &[f64], want: &[f64], tol: f64) {
    let scale = want.iter().fold(0.0f64, |m, v| m.max(v.abs())).max(1e-30);
    let d = max_abs_diff(got, want);
    eprintln!("{what}: relative error {:.2e}", d / scale);
    assert!(
        d <= tol * scale,
        "{what}: relative error {:e} > {tol:e}",
        d / scale
    );
}
