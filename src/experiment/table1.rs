//! The paper's Table 1 (Jaderberg et al. 2015): CNN vs ST-CNN with affine, projective and
//! thin-plate-spline transformers on distorted MNIST (R, RTS, P, E), and CNN vs ST-CNN on
//! translated + cluttered MNIST (TC), trained here with one recipe and compared with the
//! paper's numbers.
//!
//! Every model is an ordinary training run in its own folder under the experiment folder, so an
//! interrupted experiment resumes where it stopped and every model can be inspected with
//! `stn eval` / `stn visualize`.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicBool;

use burn::tensor::Device;
use serde::Serialize;

use super::grid;
use crate::plots::{ErrorBar, table_figure};
use stn::atomic_file::write_atomic;
use stn::data::{Distortion, Source};
use stn::model::ModelConfig;
use stn::optim::SgdConfig;
use stn::run::{DataSpec, Progress, TrainConfig};
use stn::train::{NewRun, Observer, OpenError, TrainError};
use stn::transformer::TransformKind;

/// How much training each model gets.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Budget {
    /// 10 epochs per model: the whole table in about an hour on a 2-core CPU.
    Quick,
    /// 60 epochs per model, learning rate divided by 10 every 20 epochs: the paper's schedule
    /// (SGD with step decay) at a length a CPU can manage in a day.
    Full,
    /// 1 epoch per model on the first [`SMOKE_TRAIN`] training and [`SMOKE_TEST`] test images
    /// of each dataset: the whole pipeline (plan, training, reports) in a minute or two, for
    /// tests. Its errors mean nothing.
    Smoke,
}

/// Training images per dataset of the `smoke` budget.
pub const SMOKE_TRAIN: usize = 2000;
/// Test images per dataset of the `smoke` budget.
pub const SMOKE_TEST: usize = 500;

impl Budget {
    /// The budget named `s` ("quick", "full" or "smoke", case-insensitive).
    pub fn parse(s: &str) -> Option<Self> {
        match s.to_ascii_lowercase().as_str() {
            "quick" => Some(Self::Quick),
            "full" => Some(Self::Full),
            "smoke" => Some(Self::Smoke),
            _ => None,
        }
    }

    /// How many training and test images of each dataset the models see (`None`: all), the
    /// first ones of the generated dataset.
    pub fn data_limits(self) -> (Option<usize>, Option<usize>) {
        match self {
            Budget::Smoke => (Some(SMOKE_TRAIN), Some(SMOKE_TEST)),
            Budget::Quick | Budget::Full => (None, None),
        }
    }

    /// The training recipe of every model.
    pub fn recipe(self) -> TrainConfig {
        let (epochs, lr_step) = match self {
            Budget::Quick => (10, Some(7)),
            Budget::Full => (60, Some(20)),
            Budget::Smoke => (1, None),
        };
        TrainConfig {
            epochs,
            lr_step,
            sgd: SgdConfig {
                lr: 0.003,
                momentum: 0.9,
                weight_decay: 0.0,
                loc_lr_scale: 0.1,
            },
            log_interval: 0,
            ..TrainConfig::default()
        }
    }
}

/// One model of the table.
#[derive(Clone, Debug, PartialEq)]
pub struct Entry {
    /// The dataset.
    pub dataset: Distortion,
    /// Row label.
    pub label: &'static str,
    /// The architecture.
    pub model: ModelConfig,
}

/// The paper's Table 1 test errors (%), by row label and dataset, where it reports one.
pub fn paper_error(label: &str, dataset: Distortion) -> Option<f64> {
    use Distortion::*;
    let row: [Option<f64>; 5] = match label {
        "CNN" => [Some(1.2), Some(0.8), Some(1.5), Some(1.4), Some(3.5)],
        "ST-CNN affine" => [Some(0.7), Some(0.5), Some(0.8), Some(1.2), Some(1.7)],
        "ST-CNN projective" => [Some(0.8), Some(0.6), Some(0.8), Some(1.3), None],
        "ST-CNN TPS" => [Some(0.7), Some(0.5), Some(0.8), Some(1.1), None],
        _ => [None; 5],
    };
    let col = match dataset {
        R => 0,
        Rts => 1,
        P => 2,
        E => 3,
        Tc => 4,
    };
    row[col]
}

/// The models of the table: four per distorted dataset, and for TC the CNN, the affine ST-CNN,
/// and the affine ST-CNN padding with the background value instead of zero.
pub fn plan(datasets: &[Distortion]) -> Vec<Entry> {
    let mut out = Vec::new();
    for &d in datasets {
        let size = [d.size(), d.size()];
        let st = |kind, background| ModelConfig::new(size, Some(kind), d.st_size(), background);
        out.push(Entry {
            dataset: d,
            label: "CNN",
            model: ModelConfig::new(size, None, None, false),
        });
        out.push(Entry {
            dataset: d,
            label: "ST-CNN affine",
            model: st(TransformKind::Affine, false),
        });
        if d == Distortion::Tc {
            out.push(Entry {
                dataset: d,
                label: "ST-CNN affine, background padding",
                model: st(TransformKind::Affine, true),
            });
        } else {
            out.push(Entry {
                dataset: d,
                label: "ST-CNN projective",
                model: st(TransformKind::Projective, false),
            });
            out.push(Entry {
                dataset: d,
                label: "ST-CNN TPS",
                model: st(TransformKind::Tps { grid: 4 }, false),
            });
        }
    }
    out
}

/// The result of one model.
#[derive(Clone, Debug, Serialize)]
pub struct Cell {
    /// Dataset name.
    pub dataset: String,
    /// Row label.
    pub label: String,
    /// Test error in percent after the last epoch.
    pub test_error: f64,
    /// Epochs trained.
    pub epochs: usize,
    /// Training seconds summed over epochs.
    pub train_seconds: f64,
    /// The run folder.
    pub run: PathBuf,
}

/// Why the experiment stopped.
#[derive(Debug, thiserror::Error)]
pub enum ExperimentError {
    /// Data could not be loaded.
    #[error(transparent)]
    Data(#[from] stn::data::DataError),
    /// A run failed.
    #[error("{run}: {source}")]
    Train {
        /// The run folder.
        run: String,
        /// What failed.
        source: TrainError,
    },
    /// A run folder could not be opened (never replaced: see [`stn::train::open`]).
    #[error(transparent)]
    Open(#[from] OpenError),
    /// A file could not be written.
    #[error("{}: {source}", path.display())]
    Io {
        /// The path.
        path: PathBuf,
        /// The error.
        source: std::io::Error,
    },
    /// Stopped on request; the finished runs and the current run's last epoch are kept.
    #[error("interrupted; run the same command again to continue")]
    Interrupted,
    /// Cells that another process was training (its lock held, see [`grid`]): left alone.
    #[error(
        "{} run folder(s) were being trained by another process and were left alone ({}); \
         are two shards of different counts, or two experiments, writing this folder? Run \
         again when the other is done",
        runs.len(),
        runs.iter().map(|r| r.display().to_string()).collect::<Vec<_>>().join(", ")
    )]
    Busy {
        /// Their run folders.
        runs: Vec<PathBuf>,
    },
}

/// Options of [`run`].
pub struct Options<'a> {
    /// Training budget.
    pub budget: Budget,
    /// Folder of the 28x28 source digits.
    pub base: PathBuf,
    /// Experiment folder (one run folder per model inside).
    pub out: PathBuf,
    /// Datasets to run.
    pub datasets: Vec<Distortion>,
    /// Seed of the generated datasets.
    pub data_seed: u64,
    /// Seed of initialization, shuffling and dropout.
    pub seed: u64,
    /// Compute device.
    pub device: Device,
    /// Called with a message when a run starts or ends.
    pub log: &'a mut dyn FnMut(&str),
}

/// Trains (or resumes, or reuses) every model of the table and writes `table1.md`,
/// `table1.json` and one picture per dataset into the experiment folder: the whole grid as one
/// shard, then [`grid::collect`] (see [`grid`] for spreading the grid over machines).
pub fn run(
    opts: Options,
    observer: &mut dyn Observer,
    stop: &AtomicBool,
) -> Result<Vec<Cell>, ExperimentError> {
    grid::run_whole(opts, observer, stop)
}

/// One model of the table as a training run: what it trains and where.
#[derive(Clone, Debug)]
pub struct PlannedRun {
    /// The model.
    pub entry: Entry,
    /// Its run folder, in the experiment folder.
    pub dir: PathBuf,
    /// The network, the recipe and the data: the run the folder must hold.
    pub run: NewRun,
}

/// Every model of the table as a run, in the plan's order (dataset by dataset, see [`plan`]):
/// the cells of the grid that [`grid`] deals to shards.
pub fn planned_runs(opts: &Options) -> Vec<PlannedRun> {
    let recipe = TrainConfig {
        seed: opts.seed,
        ..opts.budget.recipe()
    };
    let (limit_train, limit_test) = opts.budget.data_limits();
    plan(&opts.datasets)
        .into_iter()
        .map(|entry| {
            let source = Source::Distorted {
                base: opts.base.clone(),
                kind: entry.dataset,
                seed: opts.data_seed,
            };
            let dir = opts.out.join(format!(
                "{}-{}{}",
                entry.dataset.name(),
                entry.model.name(),
                pad_suffix(&entry.model)
            ));
            let run = NewRun {
                model: entry.model.clone(),
                config: recipe.clone(),
                data: DataSpec {
                    limit_train,
                    limit_test,
                    ..DataSpec::new(source)
                },
            };
            PlannedRun { entry, dir, run }
        })
        .collect()
}

/// Whether the network of `planned` draws its dataset's picture of transformed test digits
/// (`<dataset>.png` in the experiment folder, see [`picture_path`]).
pub fn draws_picture(planned: &PlannedRun) -> bool {
    planned.entry.label == "ST-CNN affine"
}

/// The picture of transformed test digits of `dataset` in the experiment folder `out`.
pub fn picture_path(out: &Path, dataset: Distortion) -> PathBuf {
    out.join(format!("{}.png", dataset.name()))
}

impl Cell {
    /// The result of the run `planned` as far as `progress` (its run's) goes; `None` before its
    /// first epoch.
    pub fn of(planned: &PlannedRun, progress: &Progress) -> Option<Cell> {
        let m = progress.metrics.last()?;
        Some(Cell {
            dataset: planned.entry.dataset.name().to_string(),
            label: planned.entry.label.to_string(),
            test_error: 100.0 * (1.0 - m.test_accuracy),
            epochs: m.epoch,
            train_seconds: progress.metrics.iter().map(|m| m.train_seconds).sum(),
            run: planned.dir.clone(),
        })
    }
}

fn pad_suffix(m: &ModelConfig) -> &'static str {
    if m.sampler.pad_value.is_some() {
        "-bgpad"
    } else {
        ""
    }
}

/// Writes `table1.md` (ours beside the paper's), `table1.json` and `table1.png`.
pub fn write_reports(out: &Path, budget: Budget, cells: &[Cell]) -> Result<(), ExperimentError> {
    let md = markdown(budget, cells);
    let md_path = out.join("table1.md");
    write_atomic(&md_path, md.as_bytes()).map_err(|source| ExperimentError::Io {
        path: md_path.clone(),
        source,
    })?;
    let json_path = out.join("table1.json");
    let json =
        serde_json::to_string_pretty(&serde_json::json!({ "budget": budget, "cells": cells }))
            .expect("cells serialize");
    write_atomic(&json_path, json.as_bytes()).map_err(|source| ExperimentError::Io {
        path: json_path,
        source,
    })?;
    write_figure(out, budget, cells)
}

/// Writes `table1.png`: the errors as bars, ours beside the paper's.
fn write_figure(out: &Path, budget: Budget, cells: &[Cell]) -> Result<(), ExperimentError> {
    let bars: Vec<ErrorBar> = cells
        .iter()
        .map(|c| ErrorBar {
            dataset: c.dataset.to_uppercase(),
            model: c.label.clone(),
            ours: Some(c.test_error),
            paper: Distortion::parse(&c.dataset).and_then(|d| paper_error(&c.label, d)),
        })
        .collect();
    let title = format!(
        "Table 1: test error, ours ({budget:?} budget, {} epochs) and the paper's",
        budget.recipe().epochs
    );
    let path = out.join("table1.png");
    table_figure(&bars, &title)
        .map_err(std::io::Error::other)
        .and_then(|c| c.save_png(&path))
        .map_err(|source| ExperimentError::Io { path, source })
}

/// The table: one row per model, one column per dataset, "ours (paper)" test errors in %.
pub fn markdown(budget: Budget, cells: &[Cell]) -> String {
    let datasets: Vec<String> = Distortion::ALL
        .iter()
        .map(|d| d.name().to_string())
        .filter(|d| cells.iter().any(|c| &c.dataset == d))
        .collect();
    let mut labels: Vec<&str> = Vec::new();
    for c in cells {
        if !labels.contains(&c.label.as_str()) {
            labels.push(&c.label);
        }
    }
    let mut s = String::new();
    let _ = writeln!(
        s,
        "Test error (%), ours after the {budget:?} budget ({} epochs), paper's in parentheses.\n",
        budget.recipe().epochs
    );
    let _ = write!(s, "| model |");
    for d in &datasets {
        let _ = write!(s, " {} |", d.to_uppercase());
    }
    let _ = write!(s, "\n|---|");
    for _ in &datasets {
        let _ = write!(s, "---|");
    }
    s.push('\n');
    for label in labels {
        let _ = write!(s, "| {label} |");
        for d in &datasets {
            let cell = cells.iter().find(|c| c.label == label && &c.dataset == d);
            let kind = Distortion::parse(d).expect("dataset name");
            let paper = paper_error(label, kind).map_or(String::new(), |p| format!(" ({p})"));
            match cell {
                Some(c) => {
                    let _ = write!(s, " {:.2}{paper} |", c.test_error);
                }
                None => {
                    let _ = write!(s, " |");
                }
            }
        }
        s.push('\n');
    }
    s
}
