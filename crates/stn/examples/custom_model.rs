//! A spatial transformer in front of a classifier of your own, built from burn's modules and
//! trained with burn's optimizer: how to use `stn` as a layer in a burn model.
//!
//! ```text
//! cargo run --release --example custom_model                      # Flex (CPU)
//! cargo run --release -p stn --example custom_model --features wgpu -- --device wgpu
//! ```
//!
//! The transformer here is the paper's "attention" kind (scale + translation) with a
//! localization network of our own (one strided convolution and average pooling): anything
//! that implements [`Localize`] can take the tutorial's localization network's place.

use std::process::ExitCode;

use burn::module::Module;
use burn::nn::conv::{Conv2d, Conv2dConfig};
use burn::nn::loss::CrossEntropyLossConfig;
use burn::nn::pool::{AdaptiveAvgPool2d, AdaptiveAvgPool2dConfig, MaxPool2d, MaxPool2dConfig};
use burn::nn::{Linear, LinearConfig};
use burn::optim::{AdamConfig, GradientsParams};
use burn::tensor::activation::relu;
use burn::tensor::{Device, Int, Tensor};
use stn::data::mnist::{MEAN, STD, load_dir, normalization_lut};
use stn::data::{ImageSet, vendored_mnist_dir};
use stn::rng::Rng;
use stn::train::batch_tensors;
use stn::transformer::{Localize, SpatialTransformer, SpatialTransformerConfig, TransformKind};

/// Our own localization network: a strided 5x5 convolution, ReLU, 4x4 average pooling.
#[derive(Module, Debug)]
struct SmallLocalization {
    conv: Conv2d,
    pool: AdaptiveAvgPool2d,
}

impl SmallLocalization {
    const FEATURES: usize = 16 * 4 * 4;

    fn new(device: &Device) -> Self {
        Self {
            conv: Conv2dConfig::new([1, 16], [5, 5])
                .with_stride([2, 2])
                .init(device),
            pool: AdaptiveAvgPool2dConfig::new([4, 4]).init(),
        }
    }
}

impl Localize for SmallLocalization {
    fn localize(&self, x: Tensor<4>) -> Tensor<2> {
        self.pool.forward(relu(self.conv.forward(x))).flatten(1, 3)
    }
}

/// The classifier: the spatial transformer, then two convolutions and two linear layers.
#[derive(Module, Debug)]
struct Model {
    stn: SpatialTransformer<SmallLocalization>,
    conv1: Conv2d,
    conv2: Conv2d,
    pool: MaxPool2d,
    fc1: Linear,
    fc2: Linear,
}

impl Model {
    fn new(device: &Device) -> Self {
        // The transformer looks at the 28x28 digit and samples a 28x28 view of it; its
        // regression head starts at the identity, so training starts from the plain CNN.
        let stn = SpatialTransformerConfig::new(1, [28, 28])
            .with_transform(TransformKind::Attention)
            .init_with(
                SmallLocalization::new(device),
                SmallLocalization::FEATURES,
                device,
            );
        Self {
            stn,
            conv1: Conv2dConfig::new([1, 16], [3, 3]).init(device),
            conv2: Conv2dConfig::new([16, 32], [3, 3]).init(device),
            pool: MaxPool2dConfig::new([2, 2]).with_strides([2, 2]).init(),
            fc1: LinearConfig::new(32 * 5 * 5, 64).init(device),
            fc2: LinearConfig::new(64, 10).init(device),
        }
    }

    /// Images [N, 1, 28, 28] -> logits [N, 10].
    fn forward(&self, x: Tensor<4>) -> Tensor<2> {
        let x = self.stn.forward(x);
        let x = self.pool.forward(relu(self.conv1.forward(x)));
        let x = self.pool.forward(relu(self.conv2.forward(x)));
        self.fc2.forward(relu(self.fc1.forward(x.flatten(1, 3))))
    }
}

fn device(args: &[String]) -> Result<Device, String> {
    match args
        .iter()
        .position(|a| a == "--device")
        .map(|i| args.get(i + 1))
    {
        None => Ok(Device::flex()),
        Some(Some(d)) if d == "cpu" => Ok(Device::flex()),
        #[cfg(feature = "wgpu")]
        Some(Some(d)) if d == "wgpu" => Ok(Device::wgpu(burn::tensor::DeviceKind::DefaultDevice)),
        Some(other) => Err(format!(
            "--device {}: not in this build (cpu; wgpu with --features wgpu)",
            other.map_or("(missing)", |s| s.as_str())
        )),
    }
}

/// Images at `idx` of `set`, normalized, as tensors.
fn batch(set: &ImageSet, idx: &[usize], device: &Device) -> (Tensor<4>, Tensor<1, Int>) {
    let lut = normalization_lut(MEAN, STD);
    let (mut images, mut labels) = (Vec::new(), Vec::new());
    set.gather(idx, &lut, &mut images, &mut labels);
    batch_tensors(set, images, labels, device)
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().collect();
    let steps = match args.iter().position(|a| a == "--steps") {
        Some(i) => match args.get(i + 1).and_then(|s| s.parse::<usize>().ok()) {
            Some(n) => n,
            None => {
                eprintln!("error: --steps needs a number");
                return ExitCode::from(2);
            }
        },
        None => 300,
    };
    let device = match device(&args) {
        Ok(d) => d,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(2);
        }
    };
    let data = match load_dir(&vendored_mnist_dir()) {
        Ok(d) => d,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::FAILURE;
        }
    };

    // burn's seeding drives burn's initializers, the transformer's included.
    device.seed(7);
    let train_device = device.clone().autodiff();
    let mut model = Model::new(&train_device);
    let mut optim = AdamConfig::new().init();
    let loss_fn = CrossEntropyLossConfig::new().init(&train_device);
    let mut rng = Rng::new(7);
    let order = rng.permutation(data.train.len());
    for (step, idx) in order.chunks(64).take(steps).enumerate() {
        let (x, y) = batch(&data.train, idx, &train_device);
        let loss = loss_fn.forward(model.forward(x), y);
        if step % 50 == 0 {
            println!(
                "step {step:>4}: loss {:.4}",
                loss.clone().into_scalar::<f32>()
            );
        }
        let grads = GradientsParams::from_grads(loss.backward(), &model);
        model = optim.step(1e-3, model, grads);
    }

    // Evaluate without autodiff on 2000 test digits.
    let model = model.valid();
    let n = 2000.min(data.test.len());
    let idx: Vec<usize> = (0..n).collect();
    let mut correct = 0i64;
    for chunk in idx.chunks(500) {
        let (x, y) = batch(&data.test, chunk, &device);
        let hits = model
            .forward(x)
            .argmax(1)
            .flatten::<1>(0, 1)
            .equal(y)
            .int()
            .sum();
        correct += hits.into_scalar::<i64>();
    }
    println!(
        "after {steps} steps: test accuracy {:.2}% on {n} digits",
        100.0 * correct as f64 / n as f64
    );
    // The transformer's view of the first test digit: scale and translation.
    let (x, _) = batch(&data.test, &[0], &device);
    let params = model
        .stn
        .params(x)
        .into_data()
        .try_into_vec::<f32>()
        .unwrap_or_default();
    println!("attention parameters (scale, tx, ty) of test digit 0: {params:?}");
    ExitCode::SUCCESS
}
