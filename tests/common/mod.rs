//! Helpers shared by the integration tests: PyTorch fixtures and tolerance checks.
#![allow(dead_code)]

use std::path::PathBuf;

use burn::tensor::{DType, Device, Tensor, TensorData};
use serde::Deserialize;
use serde::de::DeserializeOwned;
use stn::ops::{Interpolation, Padding, SampleOptions};

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

/// A tensor as the fixtures store it. Non-finite values are the strings "NaN", "Infinity" and
/// "-Infinity" (JSON has no numbers for them).
#[derive(Debug, Clone, Deserialize)]
pub struct Fx {
    pub shape: Vec<usize>,
    #[serde(deserialize_with = "fixture_numbers")]
    pub data: Vec<f64>,
}

/// A fixture number: a JSON number, or one of the strings that stand for a non-finite value.
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

/// The values of a tensor as f64.
pub fn values<const D: usize>(t: Tensor<D>) -> Vec<f64> {
    t.into_data().convert::<f64>().try_to_vec::<f64>().unwrap()
}

/// The largest absolute difference between finite values at the same index, after checking
/// that the lengths agree and that every non-finite value meets its like: NaN where the
/// reference has NaN, +inf where it has +inf, -inf where it has -inf. Anything else (a NaN or
/// an infinity on one side only) is an error naming the first such index.
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

fn check(what: &str, got: &[f64], want: &[f64]) -> f64 {
    max_abs_diff(got, want).unwrap_or_else(|e| panic!("{what}: {e}"))
}

/// Asserts max |got - want| <= tol over finite values, and that non-finite values agree.
pub fn assert_abs(what: &str, got: &[f64], want: &[f64], tol: f64) {
    let d = check(what, got, want);
    eprintln!("{what}: max abs error {d:.2e}");
    assert!(d <= tol, "{what}: max abs error {d:e} > {tol:e}");
}

/// Asserts max |got - want| <= tol * max |want| (relative to the tensor's scale, its largest
/// finite magnitude), and that non-finite values agree.
pub fn assert_rel(what: &str, got: &[f64], want: &[f64], tol: f64) {
    let scale = want
        .iter()
        .filter(|v| v.is_finite())
        .fold(0.0f64, |m, v| m.max(v.abs()))
        .max(1e-30);
    let d = check(what, got, want);
    eprintln!("{what}: relative error {:.2e}", d / scale);
    assert!(
        d <= tol * scale,
        "{what}: relative error {:e} > {tol:e}",
        d / scale
    );
}

/// grid_sample.json: PyTorch's grid_sample in every mode, padding and align_corners.
#[derive(Deserialize)]
pub struct GridSampleFile {
    pub cases: Vec<GridSampleCase>,
}

/// One grid_sample case: inputs, upstream gradient, PyTorch's outputs and gradients (no grid
/// gradient in nearest mode).
#[derive(Deserialize)]
pub struct GridSampleCase {
    pub mode: String,
    pub padding_mode: String,
    pub align_corners: bool,
    pub input: Fx,
    pub grid: Fx,
    pub grad_output: Fx,
    pub output: Fx,
    pub grad_input: Fx,
    pub grad_grid: Option<Fx>,
}

impl GridSampleCase {
    /// The case's sampling options.
    pub fn options(&self) -> SampleOptions {
        sample_options(&self.mode, &self.padding_mode, self.align_corners)
    }
}

/// affine_grid.json: PyTorch's affine_grid in both conventions.
#[derive(Deserialize)]
pub struct AffineGridFile {
    pub cases: Vec<AffineGridCase>,
}

/// One affine_grid case: theta, the output size, PyTorch's grid and theta gradient.
#[derive(Deserialize)]
pub struct AffineGridCase {
    pub align_corners: bool,
    pub size: Vec<usize>,
    pub theta: Fx,
    pub grid: Fx,
    pub grad_grid: Fx,
    pub grad_theta: Fx,
}

/// Sampling options from PyTorch's names ("bilinear", "zeros", ...).
pub fn sample_options(mode: &str, padding: &str, align_corners: bool) -> SampleOptions {
    let mode = match mode {
        "bilinear" => Interpolation::Bilinear,
        "nearest" => Interpolation::Nearest,
        "bicubic" => Interpolation::Bicubic,
        other => panic!("unknown mode {other}"),
    };
    let padding = match padding {
        "zeros" => Padding::Zeros,
        "border" => Padding::Border,
        "reflection" => Padding::Reflection,
        other => panic!("unknown padding {other}"),
    };
    SampleOptions::new(mode, padding, align_corners)
}

/// `tutorial_net.json`: the tutorial network's state_dict, an input batch with its targets,
/// and PyTorch's log-probabilities, loss, theta and parameter gradients for it.
#[derive(Deserialize)]
pub struct NetFixture {
    pub state_dict: std::collections::BTreeMap<String, Fx>,
    pub input: Fx,
    pub targets: Vec<i64>,
    pub log_probs: Fx,
    pub loss: f64,
    pub theta: Fx,
    pub grads: std::collections::BTreeMap<String, Fx>,
}

impl NetFixture {
    /// The fixture's state_dict in f32.
    pub fn state(&self) -> stn::model::state::StateDict {
        self.state_dict
            .iter()
            .map(|(k, v)| {
                let t = stn::model::state::StateTensor {
                    shape: v.shape.clone(),
                    data: v.data.iter().map(|&x| x as f32).collect(),
                };
                (k.clone(), t)
            })
            .collect()
    }
}

/// The tutorial network on `device` with `state`'s weights.
pub fn tutorial_net(state: &stn::model::state::StateDict, device: &Device) -> stn::model::Net {
    let net = stn::model::Net::new(&stn::model::ModelConfig::tutorial(), 0, device);
    stn::model::state::load_state_dict(net, state)
        .expect("fixture state_dict fits the tutorial network")
}

/// The `stn` binary, run from the repository root.
pub fn stn() -> std::process::Command {
    let mut c = std::process::Command::new(env!("CARGO_BIN_EXE_stn"));
    c.current_dir(env!("CARGO_MANIFEST_DIR"));
    c
}

/// Runs `cmd` and returns its output, failing the test with its stderr unless it succeeded.
pub fn succeed(cmd: &mut std::process::Command) -> std::process::Output {
    let out = cmd.output().expect("the command starts");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    out
}
