//! The `stn` command line: a thin layer that parses arguments and calls the library.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use anyhow::{Context, Result, bail};
use clap::{Args, Parser, Subcommand};

use burn::module::Module;
use stn::checkpoint::Checkpoint;
use stn::data::{Dataset, Source};
use stn::device::DeviceKind;
use stn::model::ModelConfig;
use stn::model::io::{load_net, model_path};
use stn::optim::SgdConfig;
use stn::progress::Console;
use stn::train::{self, CHECKPOINT_FILE, DataSpec, METRICS_FILE, Outcome, TrainConfig, Trainer};

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
    /// Folder with the four MNIST-format files (.gz or raw), e.g. Fashion-MNIST.
    /// [default: the vendored data/mnist]
    #[arg(long, value_name = "DIR")]
    data: Option<PathBuf>,
    /// Use only the first N test images.
    #[arg(long, value_name = "N")]
    limit_test: Option<usize>,
}

#[derive(Args)]
struct TrainArgs {
    /// Total number of epochs (with --resume: extends or shortens the run).
    #[arg(long, default_value_t = 20)]
    epochs: usize,
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
    /// L2 weight decay.
    #[arg(
        long,
        default_value_t = 0.0,
        allow_negative_numbers = true,
        conflicts_with = "resume"
    )]
    weight_decay: f64,
    /// Seed for initialization, shuffling and dropout.
    #[arg(long, default_value_t = 1, conflicts_with = "resume")]
    seed: u64,
    #[command(flatten)]
    data: DataArgs,
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
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Train(a) => cmd_train(a),
        Command::Eval(a) => cmd_eval(a),
        Command::Visualize(a) => cmd_visualize(a),
        Command::Bench(a) => cmd_bench(a),
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

fn load_data(
    dir: Option<PathBuf>,
    limit_train: Option<usize>,
    limit_test: Option<usize>,
) -> Result<(DataSpec, Dataset)> {
    let spec = DataSpec {
        source: Source::Folder(dir.unwrap_or_else(default_data_dir)),
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
            let path = model_path(dir);
            let ckpt = Checkpoint::load(&path)?;
            let progress = ckpt.progress.clone().with_context(|| {
                format!("{}: holds no training progress to resume", path.display())
            })?;
            let mut spec = progress.data.clone();
            if let Some(d) = a.data.data.clone() {
                // The data may have moved; the files must still be the same set.
                spec.source = Source::Folder(d);
            }
            let data = load_spec(&spec)?;
            let out = path
                .parent()
                .map(Path::to_path_buf)
                .unwrap_or_else(|| PathBuf::from("."));
            let mut trainer = Trainer::resume(ckpt, &path, &device, &out)?;
            trainer.set_epochs(a.epochs);
            println!(
                "resuming {} after epoch {} of {}",
                out.display(),
                progress.epochs_done,
                a.epochs
            );
            (trainer, data, out)
        }
        None => {
            let config = TrainConfig {
                epochs: a.epochs,
                batch_size: a.batch_size,
                eval_batch_size: a.eval_batch_size,
                sgd: SgdConfig {
                    lr: a.lr,
                    momentum: a.momentum,
                    weight_decay: a.weight_decay,
                },
                seed: a.seed,
                log_interval: a.log_interval,
            };
            config.validate().map_err(usage)?;
            let model = ModelConfig::tutorial();
            let (spec, data) = load_data(a.data.data.clone(), a.limit_train, a.data.limit_test)?;
            if data.train.rows != model.input_size[0] || data.train.cols != model.input_size[1] {
                bail!(
                    "{}: images are {}x{}, the tutorial network takes {}x{}",
                    spec.source.describe(),
                    data.train.rows,
                    data.train.cols,
                    model.input_size[0],
                    model.input_size[1]
                );
            }
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
                "training the tutorial STN on {} ({} train / {} test images), device {}, {} epochs, batch {}, lr {}, seed {} -> {}",
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
    if a.eval_batch_size == 0 {
        return Err(usage("--eval-batch-size must be at least 1"));
    }
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
    let net = load_net(&a.model, &device)?;
    let (_, data) = load_data(a.data.data, None, a.data.limit_test)?;
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
    let net = load_net(&a.model, &device)?;
    let (_, data) = load_data(a.data.data, None, a.data.limit_test)?;
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
            let (_, data) = load_data(a.data.data, None, a.data.limit_test)?;
            vec![stn::bench::train(&data, a.batches, a.warmup, a.batch_size.unwrap_or(64), &device)?]
        }
        BenchWhat::Eval => {
            let (_, data) = load_data(a.data.data, None, a.data.limit_test)?;
            vec![stn::bench::eval(&data, a.batch_size.unwrap_or(1000), &device)]
        }
        BenchWhat::Ops => [[64, 1, 28, 28], [32, 3, 64, 64]]
            .into_iter()
            .map(|shape| stn::bench::ops(shape, a.batches, &device))
            .collect(),
    };
    if a.profile {
        let rows = stn::ops::profile::report();
        let total: f64 = rows.iter().map(|r| r.2).sum();
        println!("fused kernel time (timed part and warm-up), {total:.3} s in all:");
        for (name, calls, secs) in rows {
            println!("  {:>8.3} ms/call {:>6} calls {:>7.3} s  {name}", 1e3 * secs / calls as f64, calls, secs);
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
                r.peak_rss_bytes.map_or("n/a".into(), |b| format!("{:.0} MB", b as f64 / 1e6))
            );
        }
    }
    Ok(ExitCode::SUCCESS)
}

