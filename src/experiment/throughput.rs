//! Throughput of the real training, evaluation and op paths (`stn bench`).
//! They time the same code `stn train` runs, after a warm-up; ratios against PyTorch come from
//! `bench/compare.py`, which runs both in one go.
//!
//! On a GPU, work is queued and runs asynchronously: every timed part starts and ends with
//! [`Device::sync`], which waits until the device has finished everything queued, so the
//! seconds are the device's real time (the warm-up, which compiles the kernels, is timed
//! apart).

use std::path::Path;
use std::sync::atomic::AtomicBool;
use std::time::Instant;

use burn::module::Module;
use burn::tensor::{Device, Distribution, Tensor};
use serde::Serialize;

use stn::data::Dataset;
use stn::model::ModelConfig;
use stn::ops::{self, SampleOptions};
use stn::rng::Rng;
use stn::run::{DataSpec, TrainConfig};
use stn::train::{Silent, TrainError, Trainer, evaluate};

/// One benchmark's result.
#[derive(Clone, Debug, Serialize)]
pub struct BenchResult {
    /// What was measured.
    pub name: String,
    /// Images processed per second in the timed part.
    pub images_per_second: f64,
    /// Seconds timed.
    pub seconds: f64,
    /// Images timed.
    pub images: usize,
    /// Peak resident memory of the process so far (VmHWM), if the OS reports it.
    pub peak_rss_bytes: Option<u64>,
    /// Worker threads of the CPU kernels (rayon's global pool).
    pub threads: usize,
    /// The kernel path that ran: "portable", "avx2", "avx512" or "neon".
    pub kernel_path: &'static str,
    /// CPU time (all threads, user + system) of the timed part, where the OS reports it: on a
    /// machine shared with other work, wall time measures the neighbours as much as us.
    pub cpu_seconds: Option<f64>,
    /// The device, as burn names it (e.g. `Flex`, or the wgpu adapter).
    pub device: String,
    /// Seconds of the untimed warm-up (on a GPU: mostly compiling the kernels), synced.
    pub warmup_seconds: f64,
}

impl std::fmt::Display for BenchResult {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let rss = self
            .peak_rss_bytes
            .map_or("n/a".into(), |b| format!("{:.0} MB", b as f64 / 1e6));
        let cpu = self
            .cpu_seconds
            .map_or("n/a".into(), |c| format!("{c:.3} s"));
        write!(
            f,
            "{}: {:.0} images/s ({} images in {:.3} s, CPU {cpu}, {:.3} ms per 64; {} threads, {} kernels; warm-up {:.1} s; peak RSS {rss}; {})",
            self.name,
            self.images_per_second,
            self.images,
            self.seconds,
            64000.0 / self.images_per_second,
            self.threads,
            self.kernel_path,
            self.warmup_seconds,
            self.device,
        )
    }
}

/// The process's peak resident set size, from /proc/self/status (Linux).
pub fn peak_rss_bytes() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb * 1024)
}

/// CPU time of the process so far (all threads), where the OS reports it.
pub fn process_cpu_seconds() -> Option<f64> {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        let mut t = libc::timespec {
            tv_sec: 0,
            tv_nsec: 0,
        };
        // SAFETY: `t` is a valid timespec to write into.
        let ok = unsafe { libc::clock_gettime(libc::CLOCK_PROCESS_CPUTIME_ID, &mut t) } == 0;
        ok.then_some(t.tv_sec as f64 + t.tv_nsec as f64 * 1e-9)
    }
    #[cfg(not(all(target_os = "linux", target_env = "gnu")))]
    None
}

/// Wall clock and CPU time since a start.
struct Clock {
    wall: Instant,
    cpu: Option<f64>,
}

impl Clock {
    fn start() -> Self {
        Self {
            wall: Instant::now(),
            cpu: process_cpu_seconds(),
        }
    }
    /// (wall seconds, CPU seconds) since the start.
    fn elapsed(&self) -> (f64, Option<f64>) {
        let cpu = self.cpu.zip(process_cpu_seconds()).map(|(a, b)| b - a);
        (self.wall.elapsed().as_secs_f64(), cpu)
    }
}

fn result(
    name: &str,
    images: usize,
    (seconds, cpu_seconds): (f64, Option<f64>),
    device: &Device,
    warmup_seconds: f64,
) -> BenchResult {
    BenchResult {
        device: format!("{device:?}"),
        warmup_seconds,
        cpu_seconds,
        name: name.to_string(),
        images_per_second: images as f64 / seconds,
        seconds,
        images,
        peak_rss_bytes: peak_rss_bytes(),
        threads: rayon::current_num_threads(),
        kernel_path: stn::ops::kernels::isa().name(),
    }
}

/// Waits until `device` has run everything queued (a no-op on the CPU).
fn sync(device: &Device) {
    device
        .sync()
        .expect("stn bench: the device failed while running the benchmark");
}

/// Trains the network `model` for `warmup` then `batches` timed mini-batches of `batch_size`
/// (SGD lr 0.01), through [`Trainer::train_steps`], the path `stn train` uses; the result is
/// called `name`.
pub fn train(
    name: &str,
    model: &ModelConfig,
    data: &Dataset,
    batches: usize,
    warmup: usize,
    batch_size: usize,
    device: &Device,
) -> Result<BenchResult, TrainError> {
    let config = TrainConfig {
        batch_size,
        ..TrainConfig::default()
    };
    let spec = DataSpec::new(stn::data::Source::Folder(Path::new(".").to_path_buf()));
    let mut trainer = Trainer::new(model, config, spec, device, Path::new("."));
    let mut rng = Rng::new(7);
    let n = data.train.len();
    let order: Vec<usize> = (0..(warmup + batches) * batch_size)
        .map(|i| i % n)
        .collect();
    let stop = AtomicBool::new(false);
    let (warm, timed) = order.split_at(warmup * batch_size);
    let warm_start = Instant::now();
    trainer.train_steps(&data.train, warm, &mut rng, &mut Silent, &stop)?;
    sync(device);
    let warmup_seconds = warm_start.elapsed().as_secs_f64();
    let started = Clock::start();
    trainer.train_steps(&data.train, timed, &mut rng, &mut Silent, &stop)?;
    sync(device);
    let elapsed = started.elapsed();
    Ok(result(name, timed.len(), elapsed, device, warmup_seconds))
}

/// Evaluates the tutorial network on the whole test set (after one warm-up pass over
/// `warmup` images) with [`evaluate`], the path `stn eval` uses.
pub fn eval(data: &Dataset, batch_size: usize, device: &Device) -> BenchResult {
    let net = stn::model::Net::new(&ModelConfig::tutorial(), 1, device).valid();
    let mut warm = data.test.clone();
    warm.truncate(batch_size.min(data.test.len()));
    let warm_start = Instant::now();
    evaluate(&net, &warm, batch_size);
    sync(device);
    let warmup_seconds = warm_start.elapsed().as_secs_f64();
    let started = Clock::start();
    evaluate(&net, &data.test, batch_size);
    sync(device);
    let elapsed = started.elapsed();
    result("eval", data.test.len(), elapsed, device, warmup_seconds)
}

/// affine_grid + bilinear grid_sample, forward and backward (gradients to the input and
/// theta), on an [n, c, h, w] input: the transformer's share of a training step. `fused`
/// times [`ops::affine_sample`] (the same computation in one op) instead of the two ops.
pub fn ops(shape: [usize; 4], iterations: usize, fused: bool, device: &Device) -> BenchResult {
    let [n, c, h, w] = shape;
    let device = device.clone().autodiff();
    let x = Tensor::<4>::random([n, c, h, w], Distribution::Normal(0.0, 1.0), &device);
    let theta0 = Tensor::<3>::from_floats([[[0.9, 0.1, 0.05], [-0.1, 1.1, -0.05]]], &device);
    let step = || {
        let x = x.clone().require_grad();
        let theta = theta0.clone().expand([n, 2, 3]).require_grad();
        let out = if fused {
            ops::affine_sample(x.clone(), theta.clone(), [h, w], SampleOptions::default())
        } else {
            let grid = ops::affine_grid(theta.clone(), h, w, false);
            ops::grid_sample(x.clone(), grid, SampleOptions::default())
        };
        // Seeded with ones of out's shape, as the PyTorch peer's autograd.grad(out, .., ones).
        let grads = out.backward();
        let gx = x.grad(&grads).expect("input gradient");
        let gt = theta.grad(&grads).expect("theta gradient");
        let _: f32 = (gx.sum() + gt.sum()).into_scalar();
    };
    let warm_start = Instant::now();
    for _ in 0..iterations.div_ceil(10) {
        step();
    }
    sync(&device);
    let warmup_seconds = warm_start.elapsed().as_secs_f64();
    let started = Clock::start();
    for _ in 0..iterations {
        step();
    }
    sync(&device);
    let elapsed = started.elapsed();
    let name = if fused { "ops fused" } else { "ops" };
    result(
        &format!("{name} {n}x{c}x{h}x{w}"),
        n * iterations,
        elapsed,
        &device,
        warmup_seconds,
    )
}
