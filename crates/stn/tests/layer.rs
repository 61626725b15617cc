//! The burn-style layer: `SpatialTransformerConfig` + `init` / `init_with`.

use burn::module::Module;
use burn::tensor::{Device, Distribution, Tensor};
use stn::ops::{Interpolation, Padding, SampleOptions};
use stn::transformer::{Localize, SpatialTransformerConfig, TransformKind};

fn max_abs(a: Tensor<4>, b: Tensor<4>) -> f32 {
    (a - b).abs().max().into_scalar::<f32>()
}

#[test]
fn every_kind_starts_at_the_identity() {
    let device = Device::flex();
    let x = Tensor::<4>::random([3, 2, 28, 28], Distribution::Default, &device);
    for kind in [
        TransformKind::Affine,
        TransformKind::Attention,
        TransformKind::Projective,
        TransformKind::Tps { grid: 3 },
        TransformKind::Tps { grid: 4 },
    ] {
        let st = SpatialTransformerConfig::new(2, [28, 28])
            .with_transform(kind)
            .init(&device);
        let params = st.params(x.clone());
        assert_eq!(params.dims(), [3, kind.num_params()], "{kind:?}");
        // Bilinear sampling at the pixel centres gives the input back (to rounding).
        let d = max_abs(st.forward(x.clone()), x.clone());
        assert!(
            d < 1e-5,
            "{kind:?}: the new transformer moves the input by {d}"
        );
    }
}

#[test]
fn options_reach_the_sampler() {
    let device = Device::flex();
    let sampling = SampleOptions::new(Interpolation::Bicubic, Padding::Border, true);
    let st = SpatialTransformerConfig::new(1, [28, 28])
        .with_output_size(Some([14, 10]))
        .with_sampling(sampling)
        .with_pad_value(Some(-0.5))
        .with_hidden(8)
        .init(&device);
    assert_eq!(st.sampler.options, sampling);
    assert_eq!(st.sampler.pad_value, Some(-0.5));
    assert_eq!(st.fc_loc.fc1.weight.dims(), [8, 90]);
    let x = Tensor::<4>::random([2, 1, 28, 28], Distribution::Default, &device);
    assert_eq!(st.forward(x).dims(), [2, 1, 14, 10]);
}

#[test]
fn burn_seeding_makes_the_same_layer() {
    let device = Device::flex();
    let make = || {
        device.seed(42);
        let st = SpatialTransformerConfig::new(1, [28, 28]).init(&device);
        st.localization
            .conv1
            .weight
            .val()
            .into_data()
            .try_into_vec::<f32>()
            .expect("f32 values")
    };
    assert_eq!(make(), make());
    device.seed(43);
    let other = SpatialTransformerConfig::new(1, [28, 28])
        .init(&device)
        .localization
        .conv1
        .weight
        .val()
        .into_data()
        .try_into_vec::<f32>()
        .expect("f32 values");
    assert_ne!(make(), other);
}

/// A localization network of the user's: mean and max of each channel.
#[derive(Module, Debug)]
struct Stats {
    scale: burn::module::Param<Tensor<1>>,
}

impl Localize for Stats {
    fn localize(&self, x: Tensor<4>) -> Tensor<2> {
        let flat = x.flatten::<3>(2, 3);
        let mean = flat.clone().mean_dim(2).squeeze_dim::<2>(2);
        let max = flat.max_dim(2).squeeze_dim::<2>(2);
        Tensor::cat(vec![mean, max], 1) * self.scale.val().unsqueeze::<2>()
    }
}

#[test]
fn own_localization_network_trains_end_to_end() {
    let device = Device::flex().autodiff();
    let stats = Stats {
        scale: burn::module::Param::from_tensor(Tensor::ones([1], &device)),
    };
    // 3 channels -> 6 features; an attention transformer (scale and translation).
    let st = SpatialTransformerConfig::new(3, [16, 16])
        .with_transform(TransformKind::Attention)
        .init_with(stats, 6, &device);
    let x = Tensor::<4>::random([4, 3, 16, 16], Distribution::Default, &device);
    let y = st.forward(x.clone());
    assert!(max_abs(y.clone(), x) < 1e-5);
    // Gradients reach the user's module and the regression head's identity layer.
    let grads = y.powf_scalar(2.0).sum().backward();
    assert!(st.localization.scale.grad(&grads).is_some());
    assert!(st.fc_loc.fc2.weight.grad(&grads).is_some());
    assert!(st.fc_loc.fc1.weight.grad(&grads).is_some());
}

#[test]
fn configurations_that_make_no_network_are_refused() {
    let config = SpatialTransformerConfig::new(1, [28, 28]);
    assert!(config.check(90).is_ok());
    let too_small = SpatialTransformerConfig::new(1, [12, 12]);
    let e = too_small.check(stn::transformer::Localization::features([12, 12]));
    assert!(e.unwrap_err().contains("no features from 12x12"));
    let e = SpatialTransformerConfig::new(0, [28, 28])
        .check(90)
        .unwrap_err();
    assert!(e.contains("channel"), "{e}");
    let tps1 = config
        .clone()
        .with_transform(TransformKind::Tps { grid: 1 });
    assert!(tps1.check(90).unwrap_err().contains("2x2"));
    let empty = config.clone().with_output_size(Some([0, 4]));
    assert!(empty.check(90).unwrap_err().contains("empty"));
    let no_hidden = config.with_hidden(0);
    assert!(no_hidden.check(90).unwrap_err().contains("hidden"));
    // init panics with the same message.
    let panic = std::panic::catch_unwind(|| {
        SpatialTransformerConfig::new(1, [12, 12]).init(&Device::flex());
    })
    .unwrap_err();
    let message = panic.downcast_ref::<String>().cloned().unwrap_or_default();
    assert!(message.contains("no features"), "{message}");
}

#[test]
fn config_round_trips_through_json() {
    use burn::config::Config;
    let config = SpatialTransformerConfig::new(1, [42, 42])
        .with_transform(TransformKind::Tps { grid: 4 })
        .with_output_size(Some([21, 21]));
    let dir = std::env::temp_dir().join(format!("stn-layer-config-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("st.json");
    config.save(&path).unwrap();
    let back = SpatialTransformerConfig::load(&path).unwrap();
    assert_eq!(back.transform, TransformKind::Tps { grid: 4 });
    assert_eq!(back.output_size, Some([21, 21]));
    std::fs::remove_dir_all(dir).ok();
}
