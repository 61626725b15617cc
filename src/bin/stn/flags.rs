//! The command line's arguments: their definitions, parsing, and the translation of flag values
//! into the library's types.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

use crate::console::usage;

use stn::data::{Distortion, Source, vendored_mnist_dir};
use stn::device::DeviceKind;
use stn::optim::SgdConfig;
use stn::run::{DataSpec, TrainConfig};
use stn::transformer::TransformKind;
use stn_cli::experiment::shard::Shard;
use stn_cli::experiment::table1::{Budget, GridData};

#[derive(Parser)]
#[command(name = "stn", version, about = "Spatial transformer networks on burn", long_about = None)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand)]
pub enum Command {
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
    /// Classify pictures of digits (PNG/JPEG, any size and colours) with a trained model.
    Predict(PredictArgs),
    /// A web page to draw digits and watch the transformer, and a JSON API.
    Serve(ServeArgs),
}

#[derive(Args)]
pub struct PredictArgs {
    /// stn checkpoint, run folder, or the tutorial's PyTorch state_dict (.pt/.pth).
    #[arg(long, value_name = "PATH")]
    pub model: PathBuf,
    /// Print one JSON object per image: {"file", "class", "probabilities", "theta"}.
    #[arg(long)]
    pub json: bool,
    /// Write, per image, a PNG of the network's 28x28 input beside the transformer's output.
    #[arg(long, value_name = "DIR")]
    pub out: Option<PathBuf>,
    /// Compute device.
    #[arg(long, value_name = "cpu|cuda|wgpu", default_value = "cpu", value_parser = parse_device)]
    pub device: DeviceKind,
    /// Pictures of digits (PNG or JPEG; any size, colours, dark on light or light on dark).
    #[arg(value_name = "IMAGE", required = true)]
    pub images: Vec<PathBuf>,
}

#[derive(Args)]
pub struct ServeArgs {
    /// stn checkpoint, run folder, or the tutorial's PyTorch state_dict (.pt/.pth).
    #[arg(long, value_name = "PATH")]
    pub model: PathBuf,
    /// Port to listen on (0: any free port; the address is printed).
    #[arg(long, default_value_t = 8080)]
    pub port: u16,
    /// Address to listen on (0.0.0.0 for every interface: a warning is printed).
    #[arg(long, default_value = "127.0.0.1")]
    pub host: String,
    /// Largest accepted upload, in megabytes (MiB).
    #[arg(long, value_name = "MB", default_value_t = 5.0)]
    pub max_body_mb: f64,
    /// Compute device.
    #[arg(long, value_name = "cpu|cuda|wgpu", default_value = "cpu", value_parser = parse_device)]
    pub device: DeviceKind,
    /// Seconds a client has to send a request's headers, from connecting or from the previous
    /// answer (so also the idle timeout); then the connection is closed.
    #[arg(long, value_name = "SECS", default_value_t = 10.0)]
    pub header_timeout: f64,
    /// Seconds a client has to send a request body (then 408), or may leave an answer unread.
    #[arg(long, value_name = "SECS", default_value_t = 30.0)]
    pub body_timeout: f64,
    /// Most connections open at once (one more gets 503 and is closed).
    #[arg(long, value_name = "N", default_value_t = stn_cli::serve::DEFAULT_MAX_CONNECTIONS)]
    pub max_connections: usize,
    /// Most prediction requests in flight at once (one more gets 503 at once).
    #[arg(long, value_name = "N", default_value_t = stn_cli::serve::DEFAULT_MAX_INFLIGHT)]
    pub max_inflight: usize,
    /// Also answer requests with this Host name (repeatable; '*': any Host). localhost,
    /// 127.0.0.1, [::1] and --host are always answered.
    #[arg(long, value_name = "NAME")]
    pub allow_host: Vec<String>,
    /// Require `Authorization: Bearer TOKEN` on the API (the page: open /?token=TOKEN once).
    /// Default: the STN_SERVE_TOKEN environment variable, if set (keeps it out of `ps`).
    #[arg(long, value_name = "TOKEN")]
    pub token: Option<String>,
}

impl ServeArgs {
    /// The server's options, or what is wrong with the flags.
    pub fn options(&self) -> Result<stn_cli::serve::ServeOptions, String> {
        use stn_cli::serve::{ServeOptions, TOKEN_ENV, guard::valid_token};
        if !(self.max_body_mb.is_finite() && self.max_body_mb > 0.0 && self.max_body_mb <= 1024.0) {
            return Err(format!(
                "--max-body-mb must be in (0, 1024], got {}",
                self.max_body_mb
            ));
        }
        let secs = |flag: &str, v: f64| {
            if v.is_finite() && (0.1..=3600.0).contains(&v) {
                Ok(std::time::Duration::from_secs_f64(v))
            } else {
                Err(format!("--{flag} must be in [0.1, 3600] seconds, got {v}"))
            }
        };
        if self.max_connections == 0 || self.max_inflight == 0 {
            return Err("--max-connections and --max-inflight must be at least 1".into());
        }
        let token = match &self.token {
            Some(t) => Some(t.clone()),
            None => std::env::var(TOKEN_ENV).ok().filter(|t| !t.is_empty()),
        };
        if token.as_deref().is_some_and(|t| !valid_token(t)) {
            return Err(format!(
                "the token (--token or {TOKEN_ENV}) must be 8 to 256 letters, digits or -._~"
            ));
        }
        let label = self.model.file_name().map_or_else(
            || self.model.display().to_string(),
            |n| n.to_string_lossy().into_owned(),
        );
        Ok(ServeOptions {
            max_body: (self.max_body_mb * 1024.0 * 1024.0) as usize,
            header_timeout: secs("header-timeout", self.header_timeout)?,
            body_timeout: secs("body-timeout", self.body_timeout)?,
            max_connections: self.max_connections,
            max_inflight: self.max_inflight,
            allowed_hosts: self.allow_host.clone(),
            token,
            ..ServeOptions::new(&self.host, self.port, &label)
        })
    }
}

#[derive(Args)]
pub struct DataCmdArgs {
    /// Which dataset: r, rts, p, e, tc, or addition (the MNIST addition pairs: two 42x42
    /// channels per image, written as a 4-D IDX file [n, 2, 42, 42]).
    #[arg(long, value_name = "NAME", value_parser = parse_grid_data)]
    pub dataset: GridData,
    /// Generator seed (the same seed gives byte-identical files).
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Folder to write the four IDX files and sample.png into.
    #[arg(long, value_name = "DIR")]
    pub out: PathBuf,
    /// Folder of the 28x28 source digits [default: the vendored data/mnist].
    #[arg(long, value_name = "DIR")]
    pub data: Option<PathBuf>,
}

pub fn parse_grid_data(s: &str) -> Result<GridData, String> {
    GridData::parse(s)
        .ok_or_else(|| format!("unknown dataset '{s}': expected r, rts, p, e, tc or addition"))
}

pub fn parse_distortion(s: &str) -> Result<Distortion, String> {
    Distortion::parse(s)
        .ok_or_else(|| format!("unknown dataset '{s}': expected r, rts, p, e or tc"))
}

#[derive(Args)]
pub struct ExperimentArgs {
    /// Which experiment (table1: CNN vs ST-CNN on distorted MNIST; addition: FCN, CNN, ST-FCN
    /// and 2xST-FCN on the MNIST addition pairs).
    #[arg(value_enum)]
    pub which: ExperimentWhich,
    /// Training budget: quick / full (the tutorial's network, 10 / 60 epochs), cpu (the
    /// paper's networks, about 2 hours on 2 cores), paper (the paper's 150k iterations, 3 seeds),
    /// smoke (quick's models, 1 epoch on 2000 images per dataset: for tests). The addition
    /// experiment trains the paper's networks only: cpu, paper or smoke [default: its cpu].
    #[arg(long, value_name = "quick|full|cpu|paper|smoke", value_parser = parse_budget)]
    pub budget: Option<Budget>,
    /// Also merge the results into this JSON list (e.g. docs/paper/table1.json), replacing
    /// the entries of the same budget (a shard ignores it: the collect merges).
    #[arg(long, value_name = "FILE")]
    pub json: Option<PathBuf>,
    /// Experiment folder; running again continues where it stopped [default:
    /// runs/<experiment>].
    #[arg(long, value_name = "DIR")]
    pub out: Option<PathBuf>,
    /// Train only shard I of N (from 0): the cells k with k % N == I, in the plan's order
    /// (see --list). Without it, from a Slurm job array (SLURM_ARRAY_TASK_ID, _MIN, _COUNT) or
    /// a Kubernetes indexed Job (JOB_COMPLETION_INDEX with STN_SHARD_COUNT), else all cells. A
    /// shard writes no table: run --collect when all are done (docs/cluster.md).
    #[arg(long, value_name = "I/N", value_parser = parse_shard)]
    pub shard: Option<Shard>,
    /// Train nothing: read every cell's run folder and write the tables from the finished
    /// cells, listing the others (exit status 0 if a table was written).
    #[arg(long, conflicts_with_all = ["shard", "list"])]
    pub collect: bool,
    /// With --collect: exit with status 1 if a cell is not finished (the tables of the
    /// finished ones are still written).
    #[arg(long, requires = "collect")]
    pub require_all: bool,
    /// Train nothing: list the cells (of --shard's shard if given) with their run folders and
    /// how far each is.
    #[arg(long)]
    pub list: bool,
    /// Only these datasets (comma-separated) [default: r,rts,p,e,tc]; table1 only.
    #[arg(long, value_name = "LIST", value_delimiter = ',', value_parser = parse_distortion)]
    pub datasets: Vec<Distortion>,
    /// Seed of the generated datasets.
    #[arg(long, default_value_t = 1)]
    pub data_seed: u64,
    /// Seed of initialization, shuffling and dropout.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Folder of the 28x28 source digits [default: the vendored data/mnist].
    #[arg(long, value_name = "DIR")]
    pub data: Option<PathBuf>,
    /// Compute device.
    #[arg(long, value_name = "cpu|cuda|wgpu", default_value = "cpu", value_parser = parse_device)]
    pub device: DeviceKind,
}

#[derive(Clone, Copy, clap::ValueEnum)]
pub enum ExperimentWhich {
    /// The paper's Table 1.
    Table1,
    /// The paper's MNIST addition experiment (appendix A).
    Addition,
    /// The paper's co-localisation (T and TC, every class); `--budget smoke` shortens it.
    Colocalisation,
}

#[derive(Args)]
pub struct BenchArgs {
    /// What to time.
    #[arg(value_enum)]
    pub what: BenchWhat,
    /// Timed mini-batches (train) or iterations per shape (ops).
    #[arg(long, default_value_t = 200)]
    pub batches: usize,
    /// Untimed warm-up mini-batches (train).
    #[arg(long, default_value_t = 20)]
    pub warmup: usize,
    /// Mini-batch size (train) or evaluation batch size (eval).
    #[arg(long)]
    pub batch_size: Option<usize>,
    /// The network trained (train): the tutorial's, or the paper's CNN or affine ST-CNN on
    /// 28x28 digits, as the `cpu` and `paper` budgets of `stn experiment table1` build them.
    #[arg(long, value_enum, default_value = "tutorial")]
    pub net: BenchNet,
    /// Print one JSON object per measurement.
    #[arg(long)]
    pub json: bool,
    /// Also print the time spent in each fused kernel (by op and shape) during the timed part.
    #[arg(long)]
    pub profile: bool,
    #[command(flatten)]
    pub cpu: CpuArgs,
    #[command(flatten)]
    pub data: DataArgs,
    /// Compute device.
    #[arg(long, value_name = "cpu|cuda|wgpu", default_value = "cpu", value_parser = parse_device)]
    pub device: DeviceKind,
}

#[derive(Clone, Copy, clap::ValueEnum)]
pub enum BenchNet {
    /// The PyTorch tutorial's STN + CNN.
    Tutorial,
    /// The paper's CNN (conv 9x9 16 -> conv 7x7 32 -> linear).
    PaperCnn,
    /// The paper's affine ST-CNN, with as many parameters as its CNN.
    PaperStCnn,
}

#[derive(Clone, Copy, clap::ValueEnum)]
pub enum BenchWhat {
    /// Training steps of the tutorial network (forward, backward, SGD update).
    Train,
    /// Evaluation of the tutorial network on the test set.
    Eval,
    /// affine_grid + grid_sample forward and backward on [64,1,28,28] and [32,3,64,64].
    Ops,
}

#[derive(Args)]
pub struct DataArgs {
    /// Folder with the four MNIST-format files (.gz or raw), e.g. Fashion-MNIST; for a
    /// distorted --dataset, the digits it is made from. [default: the vendored data/mnist]
    #[arg(long, value_name = "DIR")]
    pub data: Option<PathBuf>,
    /// The data as is (mnist), or one of the paper's distorted variants generated from it:
    /// r (rotated), rts (rotated, translated, scaled; 42x42), p (projective), e (elastic),
    /// tc (translated + cluttered; 60x60), addition (two RTS digits in two 42x42 channels,
    /// labelled with their sum: 19 classes).
    #[arg(long, value_name = "NAME", value_parser = parse_dataset)]
    pub dataset: Option<DatasetArg>,
    /// Seed of the distorted dataset.
    #[arg(long, default_value_t = 1)]
    pub data_seed: u64,
    /// Use only the first N test images.
    #[arg(long, value_name = "N")]
    pub limit_test: Option<usize>,
}

/// `--dataset`: the data as is (None) or a distortion of it.
#[derive(Clone, Copy, Debug)]
pub struct DatasetArg(pub Option<GridData>);

pub fn parse_dataset(s: &str) -> Result<DatasetArg, String> {
    if s.eq_ignore_ascii_case("mnist") {
        return Ok(DatasetArg(None));
    }
    GridData::parse(s)
        .map(|d| DatasetArg(Some(d)))
        .ok_or_else(|| {
            format!("unknown dataset '{s}': expected mnist, r, rts, p, e, tc or addition")
        })
}

/// `--transform`: a transformer family, or None for the plain CNN.
#[derive(Clone, Copy, Debug)]
pub struct TransformArg(pub Option<TransformKind>);

pub fn parse_transform(s: &str) -> Result<TransformArg, String> {
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
pub struct ModelArgs {
    /// The network around the transformer: tutorial (the PyTorch tutorial's, with dropout),
    /// paper-cnn (the paper's CNN, conv 9x9 16 -> conv 7x7 32 -> linear; with a transformer,
    /// an ST-CNN as wide as keeps the plain CNN's parameter count) or paper-fcn (the paper's
    /// FCN, two hidden layers; as wide as keeps the paper CNN's parameter count, with or
    /// without a transformer). The parameter count is printed.
    #[arg(long, value_enum, default_value_t = NetArg::Tutorial, conflicts_with = "resume")]
    pub net: NetArg,
    /// The spatial transformer: affine (the tutorial's), attention (scale + translation),
    /// projective, tps (thin-plate spline), or none (the plain CNN baseline).
    #[arg(long, value_name = "KIND", default_value = "affine", value_parser = parse_transform, conflicts_with = "resume")]
    pub transform: TransformArg,
    /// Control points per side of the thin-plate spline (4: the paper's 16 points).
    #[arg(long, default_value_t = 4, conflicts_with = "resume")]
    pub tps_grid: usize,
    /// Side of the transformer's output [default: the input's; 21 for rts, 30 for tc].
    #[arg(long, value_name = "N", conflicts_with = "resume")]
    pub st_size: Option<usize>,
    /// What the sampler reads outside the image: zeros (PyTorch's) or background (the
    /// normalized value of a black pixel, which avoids a visible frame).
    #[arg(long, value_enum, default_value_t = PadArg::Zeros, conflicts_with = "resume")]
    pub pad: PadArg,
}

#[derive(Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum NetArg {
    /// The PyTorch tutorial's network.
    Tutorial,
    /// The paper's CNN / ST-CNN.
    PaperCnn,
    /// The paper's FCN / ST-FCN.
    PaperFcn,
}

#[derive(Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum PadArg {
    /// Zero, as PyTorch.
    Zeros,
    /// The normalized background value.
    Background,
}

#[derive(Args)]
pub struct TrainArgs {
    /// Total number of epochs [default: 20; with --resume: the run's own, or this to extend it].
    #[arg(long)]
    pub epochs: Option<usize>,
    /// Mini-batch size.
    #[arg(long, default_value_t = 64, conflicts_with = "resume")]
    pub batch_size: usize,
    /// Learning rate.
    #[arg(
        long,
        default_value_t = 0.01,
        allow_negative_numbers = true,
        conflicts_with = "resume"
    )]
    pub lr: f64,
    /// SGD momentum (the tutorial uses none).
    #[arg(
        long,
        default_value_t = 0.0,
        allow_negative_numbers = true,
        conflicts_with = "resume"
    )]
    pub momentum: f64,
    /// Learning-rate multiplier of the localization network (e.g. 0.1 for harder data).
    #[arg(long, default_value_t = 1.0, conflicts_with = "resume")]
    pub loc_lr_scale: f64,
    /// L2 weight decay.
    #[arg(
        long,
        default_value_t = 0.0,
        allow_negative_numbers = true,
        conflicts_with = "resume"
    )]
    pub weight_decay: f64,
    /// Divide the learning rate by 10 every N epochs [default: constant, as the tutorial].
    #[arg(long, value_name = "N", conflicts_with = "resume")]
    pub lr_step: Option<usize>,
    /// Seed for initialization, shuffling and dropout.
    #[arg(long, default_value_t = 1, conflicts_with = "resume")]
    pub seed: u64,
    #[command(flatten)]
    pub data: DataArgs,
    #[command(flatten)]
    pub model: ModelArgs,
    /// Use only the first N training images.
    #[arg(long, value_name = "N", conflicts_with = "resume")]
    pub limit_train: Option<usize>,
    /// Run folder for the checkpoint, metrics.jsonl and the pictures (stn.png, curves.png,
    /// stn-epochs.png). [default: runs/train-<time>]
    #[arg(long, value_name = "DIR", conflicts_with = "resume")]
    pub out: Option<PathBuf>,
    /// Continue the run in this folder from its last completed epoch.
    #[arg(long, value_name = "DIR")]
    pub resume: Option<PathBuf>,
    /// Compute device.
    #[arg(long, value_name = "cpu|cuda|wgpu", default_value = "cpu", value_parser = parse_device)]
    pub device: DeviceKind,
    /// Evaluation batch size.
    #[arg(long, default_value_t = 1000)]
    pub eval_batch_size: usize,
    /// Print the tutorial's log line every N batches (0: never).
    #[arg(long, default_value_t = 500)]
    pub log_interval: usize,
    #[command(flatten)]
    pub cpu: CpuArgs,
}

/// How the CPU kernels run.
#[derive(Args)]
pub struct CpuArgs {
    /// Worker threads of the CPU kernels (rayon's global pool) [default: all cores].
    #[arg(long, value_name = "N")]
    pub threads: Option<usize>,
    /// Kernel path: portable, avx2, avx512 or neon [default: STN_ISA, else the best this CPU
    /// has].
    #[arg(long, value_name = "PATH", value_parser = parse_isa)]
    pub isa: Option<stn::ops::kernels::Isa>,
}

impl CpuArgs {
    /// Sizes rayon's global pool and chooses the kernel path, before any kernel runs.
    pub fn apply(&self) -> anyhow::Result<()> {
        if let Some(n) = self.threads {
            if n == 0 {
                return Err(usage("--threads must be at least 1"));
            }
            rayon::ThreadPoolBuilder::new()
                .num_threads(n)
                .build_global()
                .map_err(|e| anyhow::anyhow!("cannot start {n} threads: {e}"))?;
        }
        if let Some(isa) = self.isa {
            stn::ops::kernels::set_isa(isa).map_err(|why| usage(format!("--isa {isa}: {why}")))?;
        }
        Ok(())
    }
}

pub fn parse_isa(s: &str) -> Result<stn::ops::kernels::Isa, String> {
    stn::ops::kernels::Isa::parse(s).ok_or_else(|| {
        format!("unknown kernel path '{s}': expected portable, avx2, avx512 or neon")
    })
}

#[derive(Args)]
pub struct EvalArgs {
    /// stn checkpoint, run folder, or the tutorial's PyTorch state_dict (.pt/.pth).
    #[arg(long, value_name = "PATH")]
    pub model: PathBuf,
    #[command(flatten)]
    pub data: DataArgs,
    /// Print one JSON object instead of text.
    #[arg(long)]
    pub json: bool,
    /// Compute device.
    #[arg(long, value_name = "cpu|cuda|wgpu", default_value = "cpu", value_parser = parse_device)]
    pub device: DeviceKind,
    /// Evaluation batch size.
    #[arg(long, default_value_t = 1000)]
    pub batch_size: usize,
}

#[derive(Args)]
pub struct VisualizeArgs {
    /// stn checkpoint, run folder, or the tutorial's PyTorch state_dict (.pt/.pth).
    #[arg(long, value_name = "PATH")]
    pub model: PathBuf,
    /// PNG file to write.
    #[arg(long, value_name = "FILE.png")]
    pub out: PathBuf,
    #[command(flatten)]
    pub data: DataArgs,
    /// Number of test images shown.
    #[arg(long, default_value_t = 64)]
    pub count: usize,
    /// Compute device.
    #[arg(long, value_name = "cpu|cuda|wgpu", default_value = "cpu", value_parser = parse_device)]
    pub device: DeviceKind,
}

fn parse_device(s: &str) -> Result<DeviceKind, String> {
    DeviceKind::parse(s).ok_or_else(|| format!("unknown device '{s}': expected cpu, cuda or wgpu"))
}

fn parse_budget(s: &str) -> Result<Budget, String> {
    Budget::parse(s)
        .ok_or_else(|| format!("unknown budget '{s}': expected quick, full, cpu, paper or smoke"))
}

fn parse_shard(s: &str) -> Result<Shard, String> {
    s.parse()
        .map_err(|e: stn_cli::experiment::shard::ShardError| e.to_string())
}

impl DataArgs {
    /// The data the flags name: a folder as is, or a distorted dataset generated from it.
    pub fn source(&self) -> Source {
        let dir = self.data.clone().unwrap_or_else(vendored_mnist_dir);
        match self.dataset.and_then(|d| d.0) {
            None => Source::Folder(dir),
            Some(data) => data.source(dir, self.data_seed),
        }
    }

    /// The data for evaluating a model: the flags if they name any, else what the model was
    /// trained on (when recorded), else the vendored MNIST.
    pub fn eval_spec(&self, recorded: Option<DataSpec>) -> DataSpec {
        let source = match (self.data.is_some() || self.dataset.is_some(), recorded) {
            (false, Some(spec)) => spec.source,
            _ => self.source(),
        };
        DataSpec {
            limit_test: self.limit_test,
            ..DataSpec::new(source)
        }
    }
}

impl TrainArgs {
    /// The recipe of a new run.
    pub fn config(&self) -> TrainConfig {
        TrainConfig {
            epochs: self.epochs.unwrap_or(20),
            batch_size: self.batch_size,
            eval_batch_size: self.eval_batch_size,
            sgd: SgdConfig {
                lr: self.lr,
                momentum: self.momentum,
                weight_decay: self.weight_decay,
                loc_lr_scale: self.loc_lr_scale,
            },
            seed: self.seed,
            log_interval: self.log_interval,
            lr_step: self.lr_step,
        }
    }

    /// The data of a new run.
    pub fn data_spec(&self) -> DataSpec {
        DataSpec {
            source: self.data.source(),
            limit_train: self.limit_train,
            limit_test: self.data.limit_test,
        }
    }

    /// The transformer family (`None`: the plain CNN).
    pub fn transform(&self) -> Option<TransformKind> {
        match self.model.transform.0 {
            Some(TransformKind::Tps { .. }) => Some(TransformKind::Tps {
                grid: self.model.tps_grid,
            }),
            t => t,
        }
    }

    /// The sampler's output side: the flag, else the dataset's own (21 for RTS, 30 for TC).
    pub fn st_size(&self) -> Option<usize> {
        self.model
            .st_size
            .or(self.data.dataset.and_then(|d| d.0).and_then(|d| match d {
                GridData::Distorted(d) => d.st_size(),
                GridData::Addition => Distortion::Rts.st_size(),
            }))
    }
}
