//! The whole tutorial network against PyTorch: eval-mode log-probabilities, loss and every
//! parameter gradient (f32, relative error <= 1e-4), from the JSON state_dict and from the
//! torch.save'd .pt file.

mod common;

use burn::tensor::{DType, Device, Int, Tensor, TensorData};
use common::{NetFixture, assert_rel, fixtures_dir, load, tutorial_net, values};
use stn::model::state::gradients;
use stn::model::{Mode, nll_loss};

#[test]
fn forward_loss_and_gradients_match_pytorch() {
    stn::ops::kernels::for_each_isa(|isa| {
        eprintln!("path {isa}");
        let fx: NetFixture = load("tutorial_net.json");
        let device = Device::flex().autodiff();
        let net = tutorial_net(&fx.state(), &device);
        let x: Tensor<4> = fx.input.tensor(&device, DType::F32);

        let stn = net
            .transformer
            .as_ref()
            .expect("tutorial net has a transformer");
        let theta = stn.params(x.clone());
        assert_rel("theta", &values(theta), &fx.theta.data, 1e-4);

        let log_probs = net.forward(x, &mut Mode::Eval);
        assert_rel(
            "log_probs",
            &values(log_probs.clone()),
            &fx.log_probs.data,
            1e-4,
        );

        let n = fx.targets.len();
        let targets =
            Tensor::<1, Int>::from_data(TensorData::new(fx.targets.clone(), [n]), &device);
        let loss = nll_loss(log_probs, targets);
        let loss_value = values(loss.clone())[0];
        assert!(
            ((loss_value - fx.loss) / fx.loss).abs() <= 1e-4,
            "loss {loss_value} vs PyTorch {}",
            fx.loss
        );

        let grads = loss.backward();
        let ours = gradients(&net, &grads);
        assert_eq!(
            ours.keys().collect::<Vec<_>>(),
            fx.grads.keys().collect::<Vec<_>>(),
            "every parameter has a gradient"
        );
        for (name, want) in &fx.grads {
            let got: Vec<f64> = ours[name].data.iter().map(|&v| v as f64).collect();
            assert_eq!(ours[name].shape, want.shape, "{name} gradient shape");
            assert_rel(&format!("grad {name}"), &got, &want.data, 1e-4);
        }
    });
}

#[test]
fn torch_save_file_gives_the_same_log_probs() {
    stn::ops::kernels::for_each_isa(|isa| {
        eprintln!("path {isa}");
        let fx: NetFixture = load("tutorial_net.json");
        let device = Device::flex();
        let state = stn::torch_import::read_state_dict(&fixtures_dir().join("tutorial_net.pt"))
            .expect("tutorial_net.pt reads");
        assert_eq!(state.len(), fx.state_dict.len());
        let net = tutorial_net(&state, &device);
        let x: Tensor<4> = fx.input.tensor(&device, DType::F32);
        let log_probs = net.forward(x, &mut Mode::Eval);
        assert_rel(
            "log_probs from .pt",
            &values(log_probs),
            &fx.log_probs.data,
            1e-4,
        );
    });
}
