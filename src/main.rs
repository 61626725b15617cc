//! The `stn` command line: a thin layer that parses arguments and calls the library.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use anyhow::{Context, Result, bail};
use clap::{Args, Parser, Subcommand};

use burn::module::Module;
use stn::checkpoint::Checkpoint;
use stn::data::{Dataset, Distortion, Source};
use stn::device::DeviceKind;
use stn::model::ModelConfig;
use stn::model::io::{load, model_path};
use stn::optim::SgdConfig;
use stn::progress::Console;
use stn::train::{self, CHECKPOINT_FILE, DataSpec, METRICS_FILE, Outcome, TrainConfig, Trainer};
use stn::transformer::TransformKind;

#[derive(Parser)]
#[command(name = "stn", version, about = "Spatial transformer networks on burn", long_about = None)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Train a network (the PyTorch tutorial's recipe by default) and write a run folder.
    Train(TrainArgs),
    /// Test loss and accuracy of a saved model (stn checkpoint, run folder, or PyTorch .pt).
    Eval(EvalArgs),
    /// Picture of test digits beside their transformed versions.
    Visualize(VisualizeArgs),
    /// Throughput of the real training / evaluation / op paths (see bench/compare.py).
    Bench(BenchArgs),
    /// Generate one of the paper's distorted MNIST datasets as IDX files plus a sample sheet.
    Data(DataCmdArgs),
    /// Reproduce the paper's experiments.
    Experiment(ExperimentArgs),
}

#[derive(Args)]
struct DataCmdArgs {
    /// Which dataset: r, rts, p, e or tc.
    #[arg(long, value_name = "NAME", value_parser = parse_distortion)]
    dataset: Distortion,
    /// Generator seed (the same seed gives byte-identical files).
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Folder to write the four IDX files and sample.png into.
    #[arg(long, value_name = "DIR")]
    out: PathBuf,
    /// Folder of the 28x28 source digits [default: the vendored data/mnist].
    #[arg(long, value_name = "DIR")]
    data: Option<PathBuf>,
}

fn parse_distortion(s: &str) -> Result<Distortion, String> {
    Distortion::parse(s)
        .ok_or_else(|| format!("unknown dataset '{s}': expected r, rts, p, e or tc"))
}

#[derive(Args)]
struct ExperimentArgs {
    /// Which experiment (table1: CNN vs ST-CNN on distorted MNIST).
    #[arg(value_enum)]
    which: ExperimentWhich,
    /// Training budget per model.
    #[arg(long, value_enum, default_value_t = stn::experiment::Budget::Quick)]
    budget: stn::experiment::Budget,
    /// Experiment folder; running again continues where it stopped.
    #[arg(long, value_name = "DIR", default_value = "runs/table1")]
    out: PathBuf,
    /// Only these datasets (comma-separated) [default: r,rts,p,e,tc].
    #[arg(long, value_name = "LIST", value_delimiter = ',', value_parser = parse_distortion)]
    datasets: Vec<Distortion>,
    /// Seed of the generated datasets.
    #[arg(long, default_value_t = 1)]
    data_seed: u64,
    /// Seed of initialization, shuffling and dropout.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Folder of the 28x28 source digits [default: the vendored data/mnist].
    #[arg(long, value_name = "DIR")]
    data: Option<PathBuf>,
    /// Compute device.
    #[arg(long, value_enum, default_value_t = DeviceKind::Cpu)]
    device: DeviceKind,
}

#[derive(Clone, Copy, clap::ValueEnum)]
enum ExperimentWhich {
    /// The paper's Table 1.
    Table1,
}

#[derive(Args)]
struct BenchArgs {
    /// What to time.
    #[arg(value_enum)]
    what: BenchWhat,
    /// Timed mini-batches (train) or iterations per shape (ops).
    #[arg(long, default_value_t = 200)]
    batches: usize,
    /// Untimed warm-up mini-batches (train).
    #[arg(long, default_value_t = 20)]
    warmup: usize,
    /// Mini-batch size (train) or evaluation batch size (eval).
    #[arg(long)]
    batch_size: Option<usize>,
    /// Print one JSON object per measurement.
    #[arg(long)]
    json: bool,
    /// Also print the time spent in each fused kernel (by op and shape) during the timed part.
    #[arg(long)]
    profile: bool,
    #[command(flatten)]
    data: DataArgs,
    /// Compute device.
    #[arg(long, value_enum, default_value_t = DeviceKind::Cpu)]
    device: DeviceKind,
}

#[derive(Clone, Copy, clap::ValueEnum)]
enum BenchWhat {
    /// Training steps of the tutorial network (forward, backward, SGD update).
    Train,
    /// Evaluation of the tutorial network on the test set.
    Eval,
    /// affine_grid + grid_sample forward and backward on [64,1,28,28] and [32,3,64,64].
    Ops,
}

#[derive(Args)]
struct DataArgs {
    /// Folder with the four MNIST-format files (.gz or raw), e.g. Fashion-MNIST; for a
    /// distorted --dataset, the digits it is made from. [default: the vendored data/mnist]
    #[arg(long, value_name = "DIR")]
    data: Option<PathBuf>,
    /// The data as is (mnist), or one of the paper's distorted variants generated from it:
    /// r (rotated), rts (rotated, translated, scaled; 42x42), p (projective), e (elastic),
    /// tc (translated + cluttered; 60x60).
    #[arg(long, value_name = "NAME", value_parser = parse_dataset)]
    dataset: Option<DatasetArg>,
    /// Seed of the distorted dataset.
    #[arg(long, default_value_t = 1)]
    data_seed: u64,
    /// Use only the first N test images.
    #[arg(long, value_name = "N")]
    limit_test: Option<usize>,
}

/// `--dataset`: the data as is (None) or a distortion of it.
#[derive(Clone, Copy, Debug)]
struct DatasetArg(Option<Distortion>);

fn parse_dataset(s: &str) -> Result<DatasetArg, String> {
    if s.eq_ignore_ascii_case("mnist") {
        return Ok(DatasetArg(None));
    }
    Distortion::parse(s)
        .map(|d| DatasetArg(Some(d)))
        .ok_or_else(|| format!("unknown dataset '{s}': expected mnist, r, rts, p, e or tc"))
}

/// `--transform`: a transformer family, or None for the plain CNN.
#[derive(Clone, Copy, Debug)]
struct TransformArg(Option<TransformKind>);

fn parse_transform(s: &str) -> Result<TransformArg, String> {
    let kind = match s.to_ascii_lowercase().as_str() {
        "affine" => Some(TransformKind::Affine),
        "attention" => Some(TransformKind::Attention),
        "projective" => Some(TransformKind::Projective),
        "tps" => Some(TransformKind::Tps { grid: 4 }),
        "none" => None,
        _ => {
            return Err(format!(
                "unknown transform '{s}': expected affine, attention, projective, tps or none"
            ));
        }
    };
    Ok(TransformArg(kind))
}

#[derive(Args)]
struct ModelArgs {
    /// The spatial transformer: affine (the tutorial's), attention (scale + translation),
    /// projective, tps (thin-plate spline), or none (the plain CNN baseline).
    #[arg(long, value_name = "KIND", default_value = "affine", value_parser = parse_transform, conflicts_with = "resume")]
    transform: TransformArg,
    /// Control points per side of the thin-plate spline (4: the paper's 16 points).
    #[arg(long, default_value_t = 4, conflicts_with = "resume")]
    tps_grid: usize,
    /// Side of the transformer's output [default: the input's; 21 for rts, 30 for tc].
    #[arg(long, value_name = "N", conflicts_with = "resume")]
    st_size: Option<usize>,
    /// What the sampler reads outside the image: zeros (PyTorch's) or background (the
    /// normalized value of a black pixel, which avoids a visible frame).
    #[arg(long, value_enum, default_value_t = PadArg::Zeros, conflicts_with = "resume")]
    pad: PadArg,
}

#[derive(Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum PadArg {
    /// Zero, as PyTorch.
    Zeros,
    /// The normalized background value.
    Background,
}

#[derive(Args)]
struct TrainArgs {
    /// Total number of epochs [default: 20; with --resume: the run's own, or this to extend it].
    #[arg(long)]
    epochs: Option<usize>,
    /// Mini-batch size.
    #[arg(long, default_value_t = 64, conflicts_with = "resume")]
    batch_size: usize,
    /// Learning rate.
    #[arg(
        long,
        default_value_t = 0.01,
        allow_negative_numbers = true,
        conflicts_with = "resume"
    )]
    lr: f64,
    /// SGD momentum (the tutorial uses none).
    #[arg(
        long,
        default_value_t = 0.0,
        allow_negative_numbers = true,
        conflicts_with = "resume"
    )]
    momentum: f64,
    /// Learning-rate multiplier of the localization network (e.g. 0.1 for harder data).
    #[arg(long, default_value_t = 1.0, conflicts_with = "resume")]
    loc_lr_scale: f64,
    /// L2 weight decay.
    #[arg(
        long,
        default_value_t = 0.0,
        allow_negative_numbers = true,
        conflicts_with = "resume"
    )]
    weight_decay: f64,
    /// Divide the learning rate by 10 every N epochs [default: constant, as the tutorial].
    #[arg(long, value_name = "N", conflicts_with = "resume")]
    lr_step: Option<usize>,
    /// Seed for initialization, shuffling and dropout.
    #[arg(long, default_value_t = 1, conflicts_with = "resume")]
    seed: u64,
    #[command(flatten)]
    data: DataArgs,
    #[command(flatten)]
    model: ModelArgs,
    /// Use only the first N training images.
    #[arg(long, value_name = "N", conflicts_with = "resume")]
    limit_train: Option<usize>,
    /// Run folder for the checkpoint, metrics.jsonl and stn.png. [default: runs/train-<time>]
    #[arg(long, value_name = "DIR", conflicts_with = "resume")]
    out: Option<PathBuf>,
    /// Continue the run in this folder from its last completed epoch.
    #[arg(long, value_name = "DIR")]
    resume: Option<PathBuf>,
    /// Compute device.
    #[arg(long, value_enum, default_value_t = DeviceKind::Cpu)]
    device: DeviceKind,
    /// Evaluation batch size.
    #[arg(long, default_value_t = 1000)]
    eval_batch_size: usize,
    /// Print the tutorial's log line every N batches (0: never).
    #[arg(long, default_value_t = 500)]
    log_interval: usize,
}

#[derive(Args)]
struct EvalArgs {
    /// stn checkpoint, run folder, or the tutorial's PyTorch state_dict (.pt/.pth).
    #[arg(long, value_name = "PATH")]
    model: PathBuf,
    #[command(flatten)]
    data: DataArgs,
    /// Print one JSON object instead of text.
    #[arg(long)]
    json: bool,
    /// Compute device.
    #[arg(long, value_enum, default_value_t = DeviceKind::Cpu)]
    device: DeviceKind,
    /// Evaluation batch size.
    #[arg(long, default_value_t = 1000)]
    batch_size: usize,
}

#[derive(Args)]
struct VisualizeArgs {
    /// stn checkpoint, run folder, or the tutorial's PyTorch state_dict (.pt/.pth).
    #[arg(long, value_name = "PATH")]
    model: PathBuf,
    /// PNG file to write.
    #[arg(long, value_name = "FILE.png")]
    out: PathBuf,
    #[command(flatten)]
    data: DataArgs,
    /// Number of test images shown.
    #[arg(long, default_value_t = 64)]
    count: usize,
    /// Compute device.
    #[arg(long, value_enum, default_value_t = DeviceKind::Cpu)]
    device: DeviceKind,
}

/// An error in the command line's values: exit status 2, like clap's own.
#[derive(Debug)]
struct UsageError(String);
impl std::fmt::Display for UsageError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}
impl std::error::Error for UsageError {}

fn usage(msg: impl Into<String>) -> anyhow::Error {
    UsageError(msg.into()).into()
}

fn main() -> ExitCode {
    stn::alloc::retain_freed_memory();
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Train(a) => cmd_train(a),
        Command::Eval(a) => cmd_eval(a),
        Command::Visualize(a) => cmd_visualize(a),
        Command::Bench(a) => cmd_bench(a),
        Command::Data(a) => cmd_data(a),
        Command::Experiment(a) => cmd_experiment(a),
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            if e.downcast_ref::<UsageError>().is_some() {
                ExitCode::from(2)
            } else {
                ExitCode::FAILURE
            }
        }
    }
}

/// The vendored MNIST: ./data/mnist when run from the repository, else the source tree's copy.
fn default_data_dir() -> PathBuf {
    let local = PathBuf::from("data/mnist");
    if local.is_dir() {
        local
    } else {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("data/mnist")
    }
}

fn device(kind: DeviceKind) -> Result<burn::tensor::Device> {
    kind.device().map_err(usage)
}

/// The data the flags name: a folder as is, or a distorted dataset generated from it.
fn source(a: &DataArgs) -> Source {
    let dir = a.data.clone().unwrap_or_else(default_data_dir);
    match a.dataset.and_then(|d| d.0) {
        None => Source::Folder(dir),
        Some(kind) => Source::Distorted {
            base: dir,
            kind,
            seed: a.data_seed,
        },
    }
}

/// The data for evaluating a model: the flags if they name any, else what the model was
/// trained on (when recorded), else the vendored MNIST.
fn eval_source(a: &DataArgs, recorded: Option<DataSpec>) -> Source {
    match (a.data.is_some() || a.dataset.is_some(), recorded) {
        (false, Some(spec)) => spec.source,
        _ => source(a),
    }
}

fn load_data(
    source: Source,
    limit_train: Option<usize>,
    limit_test: Option<usize>,
) -> Result<(DataSpec, Dataset)> {
    let spec = DataSpec {
        source,
        limit_train,
        limit_test,
    };
    let data = load_spec(&spec)?;
    Ok((spec, data))
}

fn load_spec(spec: &DataSpec) -> Result<Dataset> {
    for (flag, limit) in [
        ("--limit-train", spec.limit_train),
        ("--limit-test", spec.limit_test),
    ] {
        if limit == Some(0) {
            return Err(usage(format!("{flag} must be at least 1")));
        }
    }
    let mut data = spec.source.load()?;
    if let Some(n) = spec.limit_train {
        data.train.truncate(n);
    }
    if let Some(n) = spec.limit_test {
        data.test.truncate(n);
    }
    Ok(data)
}

/// A folder name that sorts by start time: runs/train-YYYYMMDD-HHMMSS (UTC).
fn default_run_dir() -> PathBuf {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let (days, rem) = (secs / 86_400, secs % 86_400);
    // Civil date from days since 1970-01-01 (Howard Hinnant's algorithm).
    let z = days as i64 + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    PathBuf::from(format!(
        "runs/train-{y:04}{m:02}{d:02}-{:02}{:02}{:02}",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    ))
}

fn interrupt_flag() -> Arc<AtomicBool> {
    let stop = Arc::new(AtomicBool::new(false));
    let flag = stop.clone();
    // A second Ctrl-C exits at once; the last checkpoint is intact either way (atomic writes).
    let _ = ctrlc::set_handler(move || {
        if flag.swap(true, Ordering::SeqCst) {
            eprintln!("\ninterrupted again: exiting now");
            std::process::exit(130);
        }
        eprintln!("\ninterrupt: stopping after this batch (Ctrl-C again to quit now)");
    });
    stop
}

fn cmd_train(a: TrainArgs) -> Result<ExitCode> {
    let device = device(a.device)?;
    let (mut trainer, data, out) = match &a.resume {
        Some(dir) => {
            if a.data.dataset.is_some() {
                return Err(usage(
                    "--dataset cannot change when resuming: a run continues on its own data",
                ));
            }
            let path = model_path(dir);
            let ckpt = Checkpoint::load(&path)?;
            let progress = ckpt.progress.clone().with_context(|| {
                format!("{}: holds no training progress to resume", path.display())
            })?;
            let mut spec = progress.data.clone();
            if let Some(d) = a.data.data.clone() {
                // The data may have moved; the files must still be the same set.
                match &mut spec.source {
                    Source::Folder(dir) | Source::Distorted { base: dir, .. } => *dir = d,
                }
            }
            let data = load_spec(&spec)?;
            let out = path
                .parent()
                .map(Path::to_path_buf)
                .unwrap_or_else(|| PathBuf::from("."));
            let mut trainer = Trainer::resume(ckpt, &path, &device, &out)?;
            let epochs = a.epochs.unwrap_or(progress.config.epochs);
            if epochs == 0 {
                return Err(usage("--epochs must be at least 1"));
            }
            trainer.set_epochs(epochs);
            println!(
                "resuming {} after epoch {} of {}",
                out.display(),
                progress.epochs_done,
                epochs
            );
            (trainer, data, out)
        }
        None => {
            let config = TrainConfig {
                epochs: a.epochs.unwrap_or(20),
                batch_size: a.batch_size,
                eval_batch_size: a.eval_batch_size,
                sgd: SgdConfig {
                    lr: a.lr,
                    momentum: a.momentum,
                    weight_decay: a.weight_decay,
                    loc_lr_scale: a.loc_lr_scale,
                },
                seed: a.seed,
                log_interval: a.log_interval,
                lr_step: a.lr_step,
            };
            config.validate().map_err(usage)?;
            let src = source(&a.data);
            let st_size =
                a.model
                    .st_size
                    .or(a.data.dataset.and_then(|d| d.0).and_then(|d| d.st_size()));
            let transform = match a.model.transform.0 {
                Some(TransformKind::Tps { .. }) => Some(TransformKind::Tps {
                    grid: a.model.tps_grid,
                }),
                t => t,
            };
            let (spec, data) = load_data(src, a.limit_train, a.data.limit_test)?;
            let model = ModelConfig::new(
                [data.train.rows, data.train.cols],
                transform,
                st_size,
                a.model.pad == PadArg::Background,
            );
            model
                .validate()
                .map_err(|e| usage(format!("{}: {e}", spec.source.describe())))?;
            let out = a.out.clone().unwrap_or_else(default_run_dir);
            if out.join(CHECKPOINT_FILE).exists() {
                return Err(usage(format!(
                    "{} already holds a run; continue it with `stn train --resume {}` or choose another --out",
                    out.display(),
                    out.display()
                )));
            }
            std::fs::create_dir_all(&out)
                .with_context(|| format!("cannot create run folder {}", out.display()))?;
            println!(
                "training {} on {} ({} train / {} test images), device {}, {} epochs, batch {}, lr {}, seed {} -> {}",
                model.name(),
                spec.source.describe(),
                data.train.len(),
                data.test.len(),
                a.device.name(),
                config.epochs,
                config.batch_size,
                config.sgd.lr,
                config.seed,
                out.display()
            );
            let trainer = Trainer::new(&model, config, spec, &device, &out);
            // Epoch 0 is checkpointed too, so a run killed in its first epoch can resume.
            trainer.save()?;
            (trainer, data, out)
        }
    };
    let stop = interrupt_flag();
    let mut console = Console::new(trainer.progress().config.log_interval);
    match trainer.run(&data, &mut console, &stop)? {
        Outcome::Interrupted { epochs_done } => {
            eprintln!(
                "stopped: the checkpoint after epoch {epochs_done} is kept in {}; continue with `stn train --resume {}`",
                out.display(),
                out.display()
            );
            return Ok(ExitCode::from(130));
        }
        Outcome::Completed => {}
    }
    let picture = out.join("stn.png");
    let net = trainer.net.valid();
    stn::report::stn_figure(&net, &data.test, 64)
        .save_png(&picture)
        .with_context(|| format!("cannot write {}", picture.display()))?;
    if let Some(m) = trainer.progress().metrics.last() {
        println!(
            "done: test accuracy {:.2}% after {} epochs; {} holds {CHECKPOINT_FILE}, {METRICS_FILE} and stn.png",
            100.0 * m.test_accuracy,
            m.epoch,
            out.display()
        );
    }
    Ok(ExitCode::SUCCESS)
}

fn cmd_eval(a: EvalArgs) -> Result<ExitCode> {
    if a.batch_size == 0 {
        return Err(usage("--batch-size must be at least 1"));
    }
    let device = device(a.device)?;
    let (net, recorded) = load(&a.model, &device)?;
    let (_, data) = load_data(eval_source(&a.data, recorded), None, a.data.limit_test)?;
    check_size(&net.config, &data)?;
    let (loss, correct) = train::evaluate(&net, &data.test, a.batch_size);
    let n = data.test.len();
    if a.json {
        println!(
            "{}",
            serde_json::json!({
                "test_loss": loss,
                "test_accuracy": correct as f64 / n as f64,
                "correct": correct,
                "images": n,
            })
        );
    } else {
        println!(
            "Test set: Average loss: {loss:.4}, Accuracy: {correct}/{n} ({:.2}%)",
            100.0 * correct as f64 / n as f64
        );
    }
    Ok(ExitCode::SUCCESS)
}

fn check_size(model: &ModelConfig, data: &Dataset) -> Result<()> {
    if [data.test.rows, data.test.cols] != model.input_size {
        bail!(
            "the model takes {}x{} images but the data has {}x{}",
            model.input_size[0],
            model.input_size[1],
            data.test.rows,
            data.test.cols
        );
    }
    Ok(())
}

fn cmd_visualize(a: VisualizeArgs) -> Result<ExitCode> {
    if a.count == 0 {
        return Err(usage("--count must be at least 1"));
    }
    let device = device(a.device)?;
    let (net, recorded) = load(&a.model, &device)?;
    let (_, data) = load_data(eval_source(&a.data, recorded), None, a.data.limit_test)?;
    check_size(&net.config, &data)?;
    stn::report::stn_figure(&net, &data.test, a.count)
        .save_png(&a.out)
        .with_context(|| format!("cannot write {}", a.out.display()))?;
    println!("wrote {}", a.out.display());
    Ok(ExitCode::SUCCESS)
}

fn cmd_bench(a: BenchArgs) -> Result<ExitCode> {
    if a.batches == 0 || a.batch_size == Some(0) {
        return Err(usage("--batches and --batch-size must be at least 1"));
    }
    let device = device(a.device)?;
    stn::ops::profile::enable(a.profile);
    let results = match a.what {
        BenchWhat::Train => {
            let (_, data) = load_data(source(&a.data), None, a.data.limit_test)?;
            vec![stn::bench::train(
                &data,
                a.batches,
                a.warmup,
                a.batch_size.unwrap_or(64),
                &device,
            )?]
        }
        BenchWhat::Eval => {
            let (_, data) = load_data(source(&a.data), None, a.data.limit_test)?;
            vec![stn::bench::eval(
                &data,
                a.batch_size.unwrap_or(1000),
                &device,
            )]
        }
        BenchWhat::Ops => [[64, 1, 28, 28], [32, 3, 64, 64]]
            .into_iter()
            .flat_map(|shape| {
                [false, true].map(|fused| stn::bench::ops(shape, a.batches, fused, &device))
            })
            .collect(),
    };
    if a.profile {
        let rows = stn::ops::profile::report();
        let total: f64 = rows.iter().map(|r| r.2).sum();
        println!("fused kernel time (timed part and warm-up), {total:.3} s in all:");
        for (name, calls, secs) in rows {
            println!(
                "  {:>8.3} ms/call {:>6} calls {:>7.3} s  {name}",
                1e3 * secs / calls as f64,
                calls,
                secs
            );
        }
    }
    for r in results {
        if a.json {
            println!("{}", serde_json::to_string(&r)?);
        } else {
            println!(
                "{}: {:.0} images/s ({} images in {:.3} s, {:.3} ms per 64; {} threads; peak RSS {})",
                r.name,
                r.images_per_second,
                r.images,
                r.seconds,
                64000.0 / r.images_per_second,
                r.threads,
                r.peak_rss_bytes
                    .map_or("n/a".into(), |b| format!("{:.0} MB", b as f64 / 1e6))
            );
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn cmd_data(a: DataCmdArgs) -> Result<ExitCode> {
    let source = Source::Distorted {
        base: a.data.unwrap_or_else(default_data_dir),
        kind: a.dataset,
        seed: a.seed,
    };
    println!("generating {}", source.describe());
    let data = source.load()?;
    std::fs::create_dir_all(&a.out)
        .with_context(|| format!("cannot create {}", a.out.display()))?;
    for (set, train) in [(&data.train, true), (&data.test, false)] {
        stn::data::mnist::write_split(&a.out, set, train)
            .with_context(|| format!("cannot write into {}", a.out.display()))?;
    }
    let sheet = a.out.join("sample.png");
    stn::report::sample_sheet(
        &data.train,
        64,
        &format!(
            "{}: {} (seed {})",
            a.dataset.name().to_uppercase(),
            a.dataset.describe(),
            a.seed
        ),
    )
    .save_png(&sheet)
    .with_context(|| format!("cannot write {}", sheet.display()))?;
    println!(
        "wrote {} train and {} test {}x{} images to {} (IDX files and sample.png)",
        data.train.len(),
        data.test.len(),
        data.train.rows,
        data.train.cols,
        a.out.display()
    );
    Ok(ExitCode::SUCCESS)
}

fn cmd_experiment(a: ExperimentArgs) -> Result<ExitCode> {
    let ExperimentWhich::Table1 = a.which;
    let device = device(a.device)?;
    let datasets = if a.datasets.is_empty() {
        Distortion::ALL.to_vec()
    } else {
        a.datasets.clone()
    };
    let stop = interrupt_flag();
    let mut console = Console::new(0);
    console.quiet = true;
    let mut log = |m: &str| println!("{m}");
    let opts = stn::experiment::Options {
        budget: a.budget,
        base: a.data.unwrap_or_else(default_data_dir),
        out: a.out.clone(),
        datasets,
        data_seed: a.data_seed,
        seed: a.seed,
        device,
        log: &mut log,
    };
    match stn::experiment::run(opts, &mut console, &stop) {
        Ok(cells) => {
            println!("\n{}", stn::experiment::markdown(a.budget, &cells));
            println!(
                "wrote {}/table1.md, table1.json and one picture per dataset",
                a.out.display()
            );
            Ok(ExitCode::SUCCESS)
        }
        Err(stn::experiment::ExperimentError::Interrupted) => {
            eprintln!(
                "stopped; finished runs are kept in {}; run the same command again to continue",
                a.out.display()
            );
            Ok(ExitCode::from(130))
        }
        Err(e) => Err(e.into()),
    }
}
