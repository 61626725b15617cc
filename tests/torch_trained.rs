//! A state_dict trained by PyTorch, evaluated by `stn eval` on the vendored MNIST test set,
//! gives the accuracy and loss PyTorch reported for it (accuracy within 2 test images).

mod common;

use common::{stn, succeed};

#[derive(serde::Deserialize)]
struct Reported {
    test_acc: f64,
    test_loss: f64,
}

#[test]
fn pytorch_trained_model_scores_what_pytorch_reported() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/trained");
    let reported: Reported = serde_json::from_str(
        &std::fs::read_to_string(dir.join("tutorial_torch_2ep.json")).unwrap(),
    )
    .unwrap();
    let out = succeed(
        stn()
            .args(["eval", "--json", "--model"])
            .arg(dir.join("tutorial_torch_2ep.pt")),
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let acc = v["test_accuracy"].as_f64().unwrap();
    let loss = v["test_loss"].as_f64().unwrap();
    assert!(
        (acc - reported.test_acc).abs() <= 0.0002,
        "accuracy {acc} vs PyTorch {}",
        reported.test_acc
    );
    // PyTorch printed the loss rounded to 4 decimals.
    assert!(
        (loss - reported.test_loss).abs() <= 6e-5,
        "loss {loss} vs PyTorch {}",
        reported.test_loss
    );
}
