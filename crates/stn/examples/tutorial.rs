//! The PyTorch tutorial "Spatial Transformer Networks", end to end, through the `stn` library
//! alone: the tutorial's network (an affine spatial transformer in front of a small CNN),
//! trained on MNIST with SGD (lr 0.01, batch 64), its test line after every epoch, and the
//! tutorial's picture of test digits beside their transformed versions.
//!
//! ```text
//! cargo run --release --example tutorial -- --epochs 1
//! cargo run --release --example tutorial -- --epochs 20 --seed 2 --data data/mnist --picture stn.png
//! ```
//!
//! The picture goes to `runs/tutorial-example/stn.png` unless `--picture` says otherwise.
//!
//! Same generators and the same step as `stn train`, so it reproduces `stn train --seed S`
//! epoch for epoch; `stn train` adds checkpoints, exact resume and the run folder's pictures.

use std::path::PathBuf;
use std::process::ExitCode;

use burn::module::Module;
use burn::tensor::{Device, Tensor, TensorData};
use stn::data::mnist::{MEAN, STD, load_dir, normalization_lut};
use stn::data::{ImageSet, vendored_mnist_dir};
use stn::model::{ModelConfig, Net};
use stn::optim::{Sgd, SgdConfig};
use stn::rng::Rng;
use stn::train::{Dropout, data_parallel_step, evaluate};

/// The tutorial's settings, from the command line.
struct Args {
    epochs: usize,
    seed: u64,
    data: PathBuf,
    picture: Option<PathBuf>,
}

fn parse_args() -> Result<Args, String> {
    let mut args = Args {
        epochs: 20,
        seed: 1,
        data: vendored_mnist_dir(),
        picture: Some(PathBuf::from("runs/tutorial-example/stn.png")),
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let mut value = || it.next().ok_or(format!("{flag} needs a value"));
        match flag.as_str() {
            "--epochs" => args.epochs = value()?.parse().map_err(|e| format!("--epochs: {e}"))?,
            "--seed" => args.seed = value()?.parse().map_err(|e| format!("--seed: {e}"))?,
            "--data" => args.data = value()?.into(),
            "--picture" => args.picture = Some(value()?.into()),
            "--no-picture" => args.picture = None,
            _ => {
                return Err(format!(
                    "unknown argument {flag} (flags: --epochs N, --seed S, --data DIR, --picture FILE, --no-picture)"
                ));
            }
        }
    }
    Ok(args)
}

fn main() -> ExitCode {
    // Training reuses the same buffers every step: keep freed memory instead of page-faulting it
    // back in (a no-op off glibc).
    stn::alloc::retain_freed_memory();
    let args = match parse_args() {
        Ok(args) => args,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(2);
        }
    };
    // The CPU kernels' parallel loops start best from a worker of their thread pool.
    match stn::ops::kernels::run_on_pool(|| run(&args)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

fn run(args: &Args) -> Result<(), String> {
    // Training needs gradients: burn's Flex CPU backend under autodiff.
    let device = Device::flex().autodiff();
    let data = load_dir(&args.data).map_err(|e| e.to_string())?;

    // The tutorial's network, initialized as PyTorch would from our own generator.
    let mut net = Net::new(&ModelConfig::tutorial(), args.seed, &device);
    let mut sgd = Sgd::new();
    let sgd_config = SgdConfig::plain(0.01);
    let mut shuffle_rng = Rng::derive(args.seed, "shuffle");
    let mut dropout_rng = Rng::derive(args.seed, "dropout");
    let lut = normalization_lut(MEAN, STD);
    let batch_size = 64;

    for epoch in 1..=args.epochs {
        // train(epoch): one SGD step per shuffled mini-batch.
        let order = shuffle_rng.permutation(data.train.len());
        let batches = order.len().div_ceil(batch_size);
        for (b, idx) in order.chunks(batch_size).enumerate() {
            let step = data_parallel_step(
                &net,
                &data.train,
                idx,
                &lut,
                Dropout::Drawn(&mut dropout_rng),
                &device,
            );
            net = sgd.step(&sgd_config, net, &step.grads);
            if b % 500 == 0 {
                println!(
                    "Train Epoch: {epoch} [{}/{} ({:.0}%)]\tLoss: {:.6}",
                    b * batch_size,
                    order.len(),
                    100.0 * b as f64 / batches as f64,
                    step.loss
                );
            }
        }
        // test(): the network in eval mode (no dropout, no autodiff).
        let (loss, correct) = evaluate(&net.valid(), &data.test, 1000);
        println!(
            "\nTest set: Average loss: {loss:.4}, Accuracy: {correct}/{} ({:.0}%)\n",
            data.test.len(),
            100.0 * correct as f64 / data.test.len() as f64
        );
    }

    if let Some(path) = &args.picture {
        visualize_stn(&net.valid(), &data.test, path)?;
        println!(
            "{} shows test digits beside their transformed versions",
            path.display()
        );
    }
    Ok(())
}

/// The tutorial's `visualize_stn()`: a grid of 64 test digits ("Dataset Images") beside the
/// same digits after the spatial transformer ("Transformed Images"), as one grey PNG.
fn visualize_stn(net: &Net, test: &ImageSet, path: &PathBuf) -> Result<(), String> {
    let count = 64.min(test.len());
    let (side, pad, cols) = (test.rows, 2, 8);
    let lut = normalization_lut(MEAN, STD);
    let idx: Vec<usize> = (0..count).collect();
    let (mut images, mut labels) = (Vec::new(), Vec::new());
    test.gather(&idx, &lut, &mut images, &mut labels);
    let device = net.device();
    let x = Tensor::<4>::from_data(
        TensorData::new(images.clone(), [count, 1, side, side]),
        &device,
    );
    let transformed: Vec<f32> = net
        .transform(x)
        .into_data()
        .try_into_vec::<f32>()
        .map_err(|e| format!("{e:?}"))?;

    let rows = count.div_ceil(cols);
    let grid_w = cols * (side + pad) + pad;
    let grid_h = rows * (side + pad) + pad;
    let mut picture = image::GrayImage::new((2 * grid_w + 8) as u32, grid_h as u32);
    for (panel, values) in [&images, &transformed].into_iter().enumerate() {
        for i in 0..count {
            let (r, c) = (i / cols, i % cols);
            for y in 0..side {
                for x in 0..side {
                    let v = values[i * side * side + y * side + x] * STD + MEAN;
                    let px = panel * (grid_w + 8) + pad + c * (side + pad) + x;
                    let py = pad + r * (side + pad) + y;
                    let grey = (v.clamp(0.0, 1.0) * 255.0).round() as u8;
                    picture.put_pixel(px as u32, py as u32, image::Luma([grey]));
                }
            }
        }
    }
    // Twice the size, each pixel a 2x2 block, to be seen without zooming.
    let (w, h) = picture.dimensions();
    let picture = image::imageops::resize(&picture, 2 * w, 2 * h, image::imageops::Nearest);
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir)
            .map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    }
    picture
        .save(path)
        .map_err(|e| format!("cannot write {}: {e}", path.display()))
}
