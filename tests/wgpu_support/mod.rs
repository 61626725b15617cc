//! Helpers of the wgpu tests (`tests/wgpu_*.rs`): the device, PyTorch fixtures (numbers or the
//! strings "NaN", "Infinity", "-Infinity"), and a comparison that sees NaN and infinity.
#![allow(dead_code)]

use std::path::{Path, PathBuf};

use burn::tensor::{DType, Device, Tensor, TensorData};
use serde::Deserialize;
use serde::de::DeserializeOwned;

/// The wgpu device (a software Vulkan device such as llvmpipe is fine).
pub fn wgpu() -> Device {
    stn::device::DeviceKind::Wgpu
        .device()
        .expect("built with --features wgpu")
}

/// The fixture folder: `STN_TORCH_FIXTURES` if set, else the vendored copy.
pub fn fixtures_dir() -> PathBuf {
    match std::env::var_os("STN_TORCH_FIXTURES") {
        Some(dir) => PathBuf::from(dir),
        None => PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/torch"),
    }
}

/// The fixture file `name` (e.g. "grid_sample.json") of the fixture folder, parsed, with its
/// name. Only the named file: special-value fixture sets (grid_sample_special.json, PyTorch's
/// CPU NaN/inf rules) are the CPU kernels' business, not the GPU kernels'.
pub fn load<T: DeserializeOwned>(name: &str) -> (String, T) {
    let path = fixtures_dir().join(name);
    (name_of(&path), load_path(&path))
}

fn name_of(p: &Path) -> String {
    p.file_name().unwrap().to_string_lossy().into_owned()
}

fn load_path<T: DeserializeOwned>(path: &Path) -> T {
    let text = std::fs::read_to_string(path)
        .unwrap_or_else(|e| panic!("cannot read fixture {}: {e}", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("bad fixture {}: {e}", path.display()))
}

/// A tensor as the fixtures store it.
#[derive(Debug, Clone, Deserialize)]
pub struct Fx {
    pub shape: Vec<usize>,
    #[serde(deserialize_with = "fixture_numbers")]
    pub data: Vec<f64>,
}

/// A fixture number: a JSON number, or a string standing for a non-finite value.
#[derive(Deserialize)]
#[serde(untagged)]
enum FixtureNumber {
    Number(f64),
    Text(String),
}

fn fixture_numbers<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Vec<f64>, D::Error> {
    let raw = Vec::<FixtureNumber>::deserialize(d)?;
    raw.into_iter()
        .map(|v| match v {
            FixtureNumber::Number(x) => Ok(x),
            FixtureNumber::Text(t) => match t.as_str() {
                "NaN" => Ok(f64::NAN),
                "Infinity" => Ok(f64::INFINITY),
                "-Infinity" => Ok(f64::NEG_INFINITY),
                other => Err(serde::de::Error::custom(format!("not a number: {other:?}"))),
            },
        })
        .collect()
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

/// The values of a tensor as f64 (a read from the device: for checking results only).
pub fn values<const D: usize>(t: Tensor<D>) -> Vec<f64> {
    t.into_data().convert::<f64>().try_to_vec::<f64>().unwrap()
}

/// Largest |got - want| over the finite pairs, or an error naming the first index where a
/// non-finite value does not meet its like (NaN with NaN, +inf with +inf, -inf with -inf).
pub fn max_abs_diff(got: &[f64], want: &[f64]) -> Result<f64, String> {
    if got.len() != want.len() {
        return Err(format!("{} values, expected {}", got.len(), want.len()));
    }
    let mut max = 0.0f64;
    for (i, (&a, &b)) in got.iter().zip(want).enumerate() {
        if a.is_finite() && b.is_finite() {
            max = max.max((a - b).abs());
        } else if !(a.is_nan() && b.is_nan() || a == b) {
            return Err(format!("at index {i}: got {a}, expected {b}"));
        }
    }
    Ok(max)
}

/// Asserts |got - want| <= tol * (largest finite |want|) everywhere, and that non-finite
/// values agree exactly (a NaN or infinity on one side only fails).
pub fn assert_rel(what: &str, got: &[f64], want: &[f64], tol: f64) {
    let scale = want
        .iter()
        .filter(|v| v.is_finite())
        .fold(0.0f64, |m, v| m.max(v.abs()))
        .max(1e-30);
    let d = max_abs_diff(got, want).unwrap_or_else(|e| panic!("{what}: {e}"));
    eprintln!("{what}: relative error {:.2e}", d / scale);
    assert!(
        d <= tol * scale,
        "{what}: relative error {:e} > {tol:e}",
        d / scale
    );
}

/// The bits of a tensor's f32 values: for bit-exact comparisons.
pub fn bits<const D: usize>(t: Tensor<D>) -> Vec<u32> {
    t.into_data()
        .try_to_vec::<f32>()
        .unwrap()
        .into_iter()
        .map(f32::to_bits)
        .collect()
}

#[test]
fn wgpu_support_comparison_sees_non_finite_values() {
    let nan = f64::NAN;
    assert!(max_abs_diff(&[nan, 1.0], &[nan, 1.0]).is_ok());
    assert!(max_abs_diff(&[f64::INFINITY], &[f64::INFINITY]).is_ok());
    assert!(max_abs_diff(&[nan], &[0.0]).is_err());
    assert!(max_abs_diff(&[0.0], &[nan]).is_err());
    assert!(max_abs_diff(&[f64::INFINITY], &[1e300]).is_err());
    assert!(max_abs_diff(&[f64::NEG_INFINITY], &[f64::INFINITY]).is_err());
    let fx: Fx =
        serde_json::from_str(r#"{"shape":[4],"data":[1.5,"NaN","Infinity","-Infinity"]}"#).unwrap();
    assert_eq!(fx.data[0], 1.5);
    assert!(fx.data[1].is_nan());
    assert_eq!(fx.data[2], f64::INFINITY);
    assert_eq!(fx.data[3], f64::NEG_INFINITY);
}
