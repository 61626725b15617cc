//! Initialization and dropout against PyTorch's distributions.
//!
//! PyTorch initializes every `nn.Conv2d` and `nn.Linear` weight with kaiming_uniform(a = sqrt(5))
//! and every bias uniformly, both U(-b, b) with b = 1 / sqrt(fan_in); the tutorial sets the last
//! localization layer to zero weight and the identity as bias. `init_stats.json` (made by
//! make_fixtures.py) records PyTorch's bounds and its empirical moments over 200 initializations;
//! ours are tested against both, with statistical tests whose false-alarm rate is negligible
//! (|z| < 6, Kolmogorov-Smirnov at the 0.1% level) for a fixed set of seeds.
//!
//! Dropout: PyTorch zeroes each value (or, for Dropout2d, each channel) with probability p and
//! scales the rest by 1 / (1 - p).

mod common;

use std::collections::BTreeMap;

use burn::tensor::{Device, Tensor, TensorData};
use serde::Deserialize;
use stn::model::dropout::{dropout, dropout2d};
use stn::model::state::state_dict;
use stn::model::{Mode, ModelConfig, Net};
use stn::rng::Rng;

#[derive(Deserialize)]
struct InitStats {
    params: BTreeMap<String, ParamStats>,
    dropout: Option<DropoutStats>,
}

#[derive(Deserialize)]
struct ParamStats {
    shape: Vec<usize>,
    #[serde(default)]
    bound: Option<f64>,
    #[serde(default)]
    constant: Option<Vec<f64>>,
    #[serde(default)]
    mean: Option<f64>,
    #[serde(default)]
    variance: Option<f64>,
}

#[derive(Deserialize)]
struct DropoutStats {
    #[serde(default)]
    values: Vec<f64>,
}

const SEEDS: u64 = 40;

/// Every parameter's values over `SEEDS` initializations of the tutorial network.
fn pooled() -> BTreeMap<String, (Vec<usize>, Vec<f64>)> {
    let device = Device::flex();
    let mut out: BTreeMap<String, (Vec<usize>, Vec<f64>)> = BTreeMap::new();
    for seed in 1..=SEEDS {
        let net = Net::new(&ModelConfig::tutorial(), seed, &device);
        for (name, t) in state_dict(&net) {
            let entry = out
                .entry(name)
                .or_insert_with(|| (t.shape.clone(), Vec::new()));
            entry.1.extend(t.data.iter().map(|&v| v as f64));
        }
    }
    out
}

fn fan_in(shape: &[usize]) -> usize {
    shape[1..].iter().product()
}

/// The tutorial's PyTorch bound for a parameter: 1/sqrt(fan_in of its layer's weight).
fn torch_bound(name: &str, shapes: &BTreeMap<String, (Vec<usize>, Vec<f64>)>) -> f64 {
    let layer = name.rsplit_once('.').unwrap().0;
    let weight = &shapes[&format!("{layer}.weight")].0;
    1.0 / (fan_in(weight) as f64).sqrt()
}

/// Kolmogorov-Smirnov distance between the sample and U(-b, b).
fn ks_uniform(values: &[f64], b: f64) -> f64 {
    let mut v = values.to_vec();
    v.sort_by(f64::total_cmp);
    let n = v.len() as f64;
    v.iter()
        .enumerate()
        .map(|(i, &x)| {
            let cdf = ((x + b) / (2.0 * b)).clamp(0.0, 1.0);
            (cdf - i as f64 / n)
                .abs()
                .max((cdf - (i + 1) as f64 / n).abs())
        })
        .fold(0.0, f64::max)
}

#[test]
fn initialization_follows_pytorch_distributions() {
    let pooled = pooled();
    let torch: Option<InitStats> = common::fixtures_dir()
        .join("init_stats.json")
        .exists()
        .then(|| common::load("init_stats.json"));
    match &torch {
        Some(t) => assert_eq!(
            t.params.keys().collect::<Vec<_>>(),
            pooled.keys().collect::<Vec<_>>(),
            "the same parameters as PyTorch's network"
        ),
        None => eprintln!("init_stats.json absent: checking against PyTorch's formulas only"),
    }
    for (name, (shape, values)) in &pooled {
        let reference = torch.as_ref().map(|t| &t.params[name]);
        if let Some(r) = reference {
            assert_eq!(&r.shape, shape, "{name}: shape");
        }
        if name.starts_with("fc_loc.2.") {
            // Zero weight, identity bias: the same for every seed.
            let one = &values[..values.len() / SEEDS as usize];
            let want: Vec<f64> = if name.ends_with("weight") {
                vec![0.0; one.len()]
            } else {
                vec![1.0, 0.0, 0.0, 0.0, 1.0, 0.0]
            };
            assert_eq!(one, &want[..], "{name}");
            if let Some(c) = reference.and_then(|r| r.constant.as_ref()) {
                assert_eq!(one, &c[..], "{name}: PyTorch's constant");
            }
            continue;
        }
        let b = torch_bound(name, &pooled);
        if let Some(tb) = reference.and_then(|r| r.bound) {
            assert!(
                (b - tb).abs() <= 1e-12 * tb,
                "{name}: bound {b} vs PyTorch's {tb}"
            );
        }
        let n = values.len() as f64;
        let max = values.iter().fold(0.0f64, |m, v| m.max(v.abs()));
        assert!(
            max <= b * (1.0 + 1e-6),
            "{name}: |value| {max} beyond the bound {b}"
        );
        let mean = values.iter().sum::<f64>() / n;
        let second = values.iter().map(|v| v * v).sum::<f64>() / n;
        // U(-b, b): mean 0 (sd b / sqrt(3n)), E[x^2] = b^2/3 (sd b^2 sqrt(4 / (45 n))).
        let z_mean = mean / (b / (3.0 * n).sqrt());
        let z_var = (second - b * b / 3.0) / (b * b * (4.0 / (45.0 * n)).sqrt());
        let ks = ks_uniform(values, b);
        let ks_limit = 1.95 / n.sqrt();
        eprintln!(
            "{name}: n {n}, bound {b:.5}, max {max:.5}, z(mean) {z_mean:+.2}, z(var) {z_var:+.2}, KS {ks:.4} (limit {ks_limit:.4})"
        );
        assert!(
            z_mean.abs() < 6.0,
            "{name}: mean {mean} is off (z {z_mean})"
        );
        assert!(
            z_var.abs() < 6.0,
            "{name}: variance {second} is off (z {z_var})"
        );
        assert!(ks < ks_limit, "{name}: not uniform on [-b, b] (KS {ks})");
        assert!(
            max > b * (1.0 - 20.0 / n),
            "{name}: values do not reach the bound"
        );
        // PyTorch's own sample moments (over 200 initializations, 5x our sample) agree with
        // ours: two-sample z-tests.
        if let (Some(m), Some(v)) = (
            reference.and_then(|r| r.mean),
            reference.and_then(|r| r.variance),
        ) {
            let nt = n * 200.0 / SEEDS as f64;
            let sd_mean = (b * b / (3.0 * n) + b * b / (3.0 * nt)).sqrt();
            let sd_var = b * b * (4.0 / (45.0 * n) + 4.0 / (45.0 * nt)).sqrt();
            let var = second - mean * mean;
            let (zm, zv) = ((mean - m) / sd_mean, (var - v) / sd_var);
            eprintln!("{name}: vs PyTorch's moments: z(mean) {zm:+.2}, z(var) {zv:+.2}");
            assert!(zm.abs() < 6.0, "{name}: mean {mean} vs PyTorch's {m}");
            assert!(zv.abs() < 6.0, "{name}: variance {var} vs PyTorch's {v}");
        }
    }
}

#[test]
fn dropout_keeps_half_and_doubles_what_it_keeps() {
    let device = Device::flex();
    let torch: Option<InitStats> = common::fixtures_dir()
        .join("init_stats.json")
        .exists()
        .then(|| common::load("init_stats.json"));
    let allowed: Vec<f64> = torch
        .and_then(|t| t.dropout)
        .map(|d| d.values)
        .filter(|v| !v.is_empty())
        .unwrap_or_else(|| vec![0.0, 2.0]);
    assert_eq!(allowed, [0.0, 2.0], "PyTorch's dropout values for p = 0.5");
    let mut rng = Rng::new(11);
    let (mut kept, mut total) = (0usize, 0usize);
    for _ in 0..50 {
        let ones = Tensor::<2>::ones([64, 50], &device);
        let y: Vec<f32> = dropout(ones, 0.5, &mut Mode::Train(&mut rng))
            .into_data()
            .try_to_vec::<f32>()
            .unwrap();
        assert!(
            y.iter().all(|&v| v == 0.0 || v == 2.0),
            "values other than 0 and 2"
        );
        kept += y.iter().filter(|&&v| v == 2.0).count();
        total += y.len();

        let maps = Tensor::<4>::ones([64, 20, 4, 4], &device);
        let y: Vec<f32> = dropout2d(maps, 0.5, &mut Mode::Train(&mut rng))
            .into_data()
            .try_to_vec::<f32>()
            .unwrap();
        for channel in y.chunks(16) {
            assert!(
                channel.iter().all(|&v| v == channel[0])
                    && (channel[0] == 0.0 || channel[0] == 2.0),
                "Dropout2d must drop whole channels"
            );
            kept += (channel[0] == 2.0) as usize;
            total += 1;
        }
    }
    let rate = kept as f64 / total as f64;
    let z = (rate - 0.5) / (0.25 / total as f64).sqrt();
    eprintln!("keep rate {rate:.4} over {total} draws (z {z:+.2})");
    assert!(z.abs() < 6.0, "keep rate {rate}");
    // Evaluation is the identity.
    let x = Tensor::<2>::from_data(TensorData::new(vec![1.0f32, -2.0, 3.0], [1, 3]), &device);
    let y: Vec<f32> = dropout(x, 0.5, &mut Mode::Eval)
        .into_data()
        .try_to_vec::<f32>()
        .unwrap();
    assert_eq!(y, [1.0, -2.0, 3.0]);
}
