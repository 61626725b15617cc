//! The MNIST addition experiment: its pairs (reproducible per seed, labelled with the sums,
//! made of the split's own digits), its networks (two channels in, a 2xST network's two
//! transformers side by side, saved and loaded by name), `stn data --dataset addition`, and
//! `stn experiment addition` (budgets, sharding, the committed docs/paper/addition.json).

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use burn::tensor::{Device, Tensor, TensorData};
use stn::data::addition::{CHANNELS, CLASSES, SIZE, addition_set, pair};
use stn::data::mnist::write_split;
use stn::data::{ImageSet, Source};
use stn::model::state::{load_state_dict, state_dict};
use stn::model::{Arch, Mode, ModelConfig, Net};
use stn::transformer::TransformKind;

/// The first `train` training and `test` test digits of the vendored MNIST.
fn digits(train: usize, test: usize) -> (ImageSet, ImageSet) {
    let vendored = Path::new(env!("CARGO_MANIFEST_DIR")).join("data/mnist");
    let mut data = Source::Folder(vendored).load().expect("vendored MNIST");
    data.train.truncate(train);
    data.test.truncate(test);
    (data.train, data.test)
}

/// The same digits as a folder.
fn digits_folder(dir: &Path, train: usize, test: usize) {
    let (tr, te) = digits(train, test);
    std::fs::create_dir_all(dir).unwrap();
    write_split(dir, &tr, true).unwrap();
    write_split(dir, &te, false).unwrap();
}

#[test]
fn pairs_are_reproducible_and_labelled_with_their_sums() {
    let (train, _) = digits(300, 10);
    let a = addition_set(&train, 7, "train", None);
    assert_eq!(a, addition_set(&train, 7, "train", None));
    assert_eq!(
        (a.channels, a.rows, a.cols, a.len()),
        (CHANNELS, SIZE, SIZE, 300)
    );
    assert_ne!(a.images, addition_set(&train, 8, "train", None).images);
    assert_ne!(a.images, addition_set(&train, 7, "test", None).images);
    // The first pairs do not depend on how many are made.
    let few = addition_set(&train, 7, "train", Some(40));
    assert_eq!(few.images, a.images[..40 * a.pixels()]);
    let mut partners = std::collections::HashSet::new();
    for i in 0..a.len() {
        let p = pair(&train, 7, "train", i);
        assert_eq!(p.image, a.image(i), "pair {i}");
        assert_ne!(p.partner, i);
        assert_eq!(a.labels[i], train.labels[i] + train.labels[p.partner]);
        assert!((a.labels[i] as usize) < CLASSES);
        partners.insert(p.partner);
        // Each channel holds a digit: some ink in both.
        let (c0, c1) = p.image.split_at(SIZE * SIZE);
        assert!(c0.iter().any(|&v| v > 128) && c1.iter().any(|&v| v > 128));
    }
    // Partners are drawn, not a fixed offset.
    assert!(partners.len() > 150, "{}", partners.len());
}

/// A 2xST-FCN and a 2-channel CNN: log-probabilities of the 19 sums, the transformers' outputs
/// side by side (4 channels at the sampler's size), every parameter trained, and the second
/// transformer saved under its own names and loaded back exactly.
#[test]
fn two_transformer_networks_run_and_round_trip() {
    let device = Device::flex().autodiff();
    let config = ModelConfig::new([SIZE, SIZE], Some(TransformKind::Affine), Some(21), false)
        .with_channels(CHANNELS)
        .with_classes(CLASSES)
        .with_transformers(2)
        .with_arch(Arch::Fcn { hidden: 24 });
    config.validate().unwrap();
    let net = Net::new(&config, 3, &device);
    let n = 5;
    let x: Vec<f32> = (0..n * CHANNELS * SIZE * SIZE)
        .map(|i| ((i * 7919) % 255) as f32 / 255.0)
        .collect();
    let x = Tensor::<4>::from_data(TensorData::new(x, [n, CHANNELS, SIZE, SIZE]), &device);
    let (log_probs, params) = net.forward_with_params(x.clone(), &mut Mode::Eval);
    assert_eq!(log_probs.dims(), [n, CLASSES]);
    assert_eq!(params.unwrap().dims(), [n, 12]);
    assert_eq!(net.transform(x.clone()).dims(), [n, 4, 21, 21]);

    // Every parameter gets a gradient, the second transformer's included.
    let grads = log_probs.sum().backward();
    let named = stn::model::state::gradients(&net, &grads);
    let shapes = config.parameter_shapes();
    assert_eq!(named.len(), shapes.len());
    assert!(shapes.keys().any(|k| k.starts_with("st2.")), "{shapes:?}");
    assert_eq!(config.parameter_count(), {
        let s = state_dict(&net);
        s.values().map(|t| t.data.len()).sum::<usize>()
    });

    // Saved and loaded by name (into a network of another seed): the same outputs.
    let state = state_dict(&net);
    let loaded = load_state_dict(Net::new(&config, 99, &device), &state).unwrap();
    let values = |t: Tensor<2>| {
        t.into_data()
            .convert::<f32>()
            .try_into_vec::<f32>()
            .unwrap()
    };
    assert_eq!(
        values(net.forward(x.clone(), &mut Mode::Eval)),
        values(loaded.forward(x.clone(), &mut Mode::Eval))
    );
    let other = Net::new(&config, 99, &device);
    assert_ne!(
        values(net.forward(x.clone(), &mut Mode::Eval)),
        values(other.forward(x, &mut Mode::Eval))
    );

    // Two-channel input of the wrong channel count: a clear error, not a panic.
    let err = config.check_images(1, [SIZE, SIZE]).unwrap_err();
    assert!(err.to_string().contains("2x42x42"), "{err}");
}

fn stn(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_stn"))
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .args(args)
        .env_remove("SLURM_ARRAY_TASK_ID")
        .env_remove("JOB_COMPLETION_INDEX")
        .output()
        .expect("stn runs")
}

fn ok(out: Output) -> String {
    let (o, e) = (
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    );
    assert!(out.status.success(), "stdout:\n{o}\nstderr:\n{e}");
    o
}

fn fails(out: Output, code: i32, needle: &str) {
    let e = String::from_utf8_lossy(&out.stderr).into_owned();
    assert_eq!(out.status.code(), Some(code), "{e}");
    assert!(e.contains(needle), "stderr lacks {needle:?}: {e}");
    assert!(!e.contains("panicked"), "{e}");
}

fn path(p: &Path) -> &str {
    p.to_str().unwrap()
}

#[test]
fn stn_data_writes_the_pairs_byte_identically_per_seed() {
    let tmp = tempfile::tempdir().unwrap();
    let base = tmp.path().join("digits");
    digits_folder(&base, 200, 50);
    let write = |out: &PathBuf, seed: &str| {
        let o = ok(stn(&[
            "data",
            "--dataset",
            "addition",
            "--seed",
            seed,
            "--data",
            path(&base),
            "--out",
            path(out),
        ]));
        assert!(o.contains("200 train and 50 test 2-channel 42x42"), "{o}");
    };
    let (a, b, c) = (
        tmp.path().join("a"),
        tmp.path().join("b"),
        tmp.path().join("c"),
    );
    write(&a, "3");
    write(&b, "3");
    write(&c, "4");
    let read = |dir: &PathBuf, f: &str| std::fs::read(dir.join(f)).unwrap();
    let images = "train-images-idx3-ubyte";
    assert_eq!(read(&a, images), read(&b, images));
    assert_eq!(
        read(&a, "t10k-labels-idx1-ubyte"),
        read(&b, "t10k-labels-idx1-ubyte")
    );
    assert_ne!(read(&a, images), read(&c, images));
    // A 4-D IDX array of unsigned bytes: [200, 2, 42, 42].
    let bytes = read(&a, images);
    assert_eq!(&bytes[..4], &[0, 0, 8, 4]);
    let dims: Vec<u32> = (0..4)
        .map(|k| u32::from_be_bytes(bytes[4 + 4 * k..8 + 4 * k].try_into().unwrap()))
        .collect();
    assert_eq!(dims, [200, 2, 42, 42]);
    // The same pairs as the library makes.
    let (train, _) = digits(200, 50);
    assert_eq!(
        bytes[20..],
        addition_set(&train, 3, "train", None).images[..]
    );
    assert!(a.join("sample.png").exists());
}

#[test]
fn experiment_flags_that_do_not_apply_are_usage_errors() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("x");
    for budget in ["quick", "full"] {
        fails(
            stn(&[
                "experiment",
                "addition",
                "--budget",
                budget,
                "--out",
                path(&out),
            ]),
            2,
            &format!("has no {budget} budget"),
        );
    }
    fails(
        stn(&[
            "experiment",
            "addition",
            "--datasets",
            "r",
            "--out",
            path(&out),
        ]),
        2,
        "one dataset",
    );
    assert!(!out.exists());
}

/// The committed docs/paper/addition.json: a list of {model, transform, error, paper, epochs,
/// seconds, budget} objects, each model once per budget and seed, every model of the
/// experiment present for each budget.
#[test]
fn committed_addition_json_has_the_published_schema() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/paper/addition.json");
    let cells: Vec<serde_json::Value> =
        serde_json::from_slice(&std::fs::read(&path).expect("docs/paper/addition.json")).unwrap();
    assert!(!cells.is_empty());
    let mut seen = std::collections::HashSet::new();
    for c in &cells {
        let s = |k: &str| {
            c[k].as_str()
                .unwrap_or_else(|| panic!("{k} in {c}"))
                .to_string()
        };
        let n = |k: &str| c[k].as_f64().unwrap_or_else(|| panic!("{k} in {c}"));
        let model = s("model");
        assert!(
            ["fcn", "cnn", "st-fcn", "2xst-fcn"].contains(&model.as_str()),
            "{c}"
        );
        let transform = s("transform");
        assert!(
            ["none", "affine", "projective", "tps"].contains(&transform.as_str()),
            "{c}"
        );
        assert_eq!(transform == "none", !model.contains("st-"), "{c}");
        assert!(
            (0.0..=100.0).contains(&n("error")) && n("paper") > 0.0,
            "{c}"
        );
        assert!(n("epochs") >= 1.0 && n("seconds") > 0.0, "{c}");
        let key = (s("budget"), model, transform, c["seed"].to_string());
        assert!(seen.insert(key), "duplicate cell {c}");
    }
    for budget in seen
        .iter()
        .map(|k| k.0.clone())
        .collect::<std::collections::HashSet<_>>()
    {
        let models = seen.iter().filter(|k| k.0 == budget).count();
        assert!(
            models % 6 == 0,
            "{budget}: {models} cells, not whole seeds of 6 models"
        );
    }
}

/// addition.json without what differs between two experiment folders (times, run paths).
fn table_without_timing(out: &Path) -> Vec<serde_json::Value> {
    let text = std::fs::read_to_string(out.join("addition.json")).expect("addition.json");
    let mut cells: Vec<serde_json::Value> = serde_json::from_str(&text).unwrap();
    for c in &mut cells {
        let m = c.as_object_mut().unwrap();
        m.remove("seconds");
        let run = m["run"].as_str().unwrap().to_string();
        let name = Path::new(&run).file_name().unwrap().to_string_lossy();
        m.insert("run".into(), name.into_owned().into());
    }
    cells
}

/// The smoke budget (the six models, 1 epoch on 2000 + 500 pairs) sharded in two and collected
/// gives the unsharded experiment's table; the pictures are drawn; `--list` names the cells.
#[test]
fn sharded_addition_collects_to_the_unsharded_table() {
    let tmp = tempfile::tempdir().unwrap();
    let base = tmp.path().join("digits");
    digits_folder(&base, 2000, 500);
    let (sharded, whole) = (tmp.path().join("sharded"), tmp.path().join("whole"));
    let run = |out: &Path, extra: &[&str]| {
        let mut args = vec![
            "experiment",
            "addition",
            "--budget",
            "smoke",
            "--data",
            path(&base),
            "--out",
            path(out),
        ];
        args.extend_from_slice(extra);
        stn(&args)
    };
    let list = ok(run(&sharded, &["--list"]));
    assert_eq!(list.matches("not started").count(), 6, "{list}");
    assert!(
        list.contains("addition-paper-2xst-fcn-tps16-seed1"),
        "{list}"
    );
    for shard in ["0/2", "1/2"] {
        let o = ok(run(&sharded, &["--shard", shard]));
        assert!(o.contains("--collect"), "{o}");
    }
    assert!(!sharded.join("addition.json").exists());
    let c = ok(run(&sharded, &["--collect", "--require-all"]));
    assert!(c.contains("from 6 of the 6 cells"), "{c}");
    let w = ok(run(&whole, &[]));
    assert!(w.contains("| 2xST-FCN affine |"), "{w}");
    assert_eq!(table_without_timing(&sharded), table_without_timing(&whole));
    let cells = table_without_timing(&whole);
    let models: Vec<(&str, &str)> = cells
        .iter()
        .map(|c| {
            (
                c["model"].as_str().unwrap(),
                c["transform"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        models,
        [
            ("fcn", "none"),
            ("cnn", "none"),
            ("st-fcn", "affine"),
            ("2xst-fcn", "affine"),
            ("2xst-fcn", "projective"),
            ("2xst-fcn", "tps")
        ]
    );
    for out in [&sharded, &whole] {
        for f in ["addition.md", "addition.png", "addition-transformers.png"] {
            assert!(out.join(f).exists(), "{}", out.join(f).display());
        }
    }
    // A trained 2xST-FCN: `stn eval` reads its own data back; `stn predict`, which shows
    // one-digit pictures, refuses it plainly.
    let model = whole.join("addition-paper-2xst-fcn-affine-seed1");
    let e = ok(stn(&["eval", "--model", path(&model)]));
    assert!(e.contains("Accuracy: ") && e.contains("/500 "), "{e}");
    fails(
        stn(&[
            "predict",
            "--model",
            path(&model),
            path(&whole.join("addition.png")),
        ]),
        1,
        "2-channel images",
    );
}

/// `stn train --net`: the paper's networks on any dataset, their parameter counts printed;
/// the addition pairs get two input channels and 19 classes.
#[test]
fn train_builds_the_paper_networks() {
    let tmp = tempfile::tempdir().unwrap();
    let base = tmp.path().join("digits");
    digits_folder(&base, 300, 100);
    let train = |net: &str, dataset: &str, out: &str| {
        let out = tmp.path().join(out);
        let o = ok(stn(&[
            "train",
            "--net",
            net,
            "--dataset",
            dataset,
            "--data",
            path(&base),
            "--epochs",
            "1",
            "--out",
            path(&out),
        ]));
        let count: usize = o
            .split(" parameters)")
            .next()
            .and_then(|s| s.rsplit('(').next())
            .and_then(|s| s.parse().ok())
            .unwrap_or_else(|| panic!("no parameter count in {o}"));
        let c = stn::checkpoint::Checkpoint::load(&out.join("checkpoint.stn")).unwrap();
        assert_eq!(c.model.parameter_count(), count);
        (o, c.model)
    };
    let (o, cnn) = train("paper-cnn", "r", "cnn");
    assert!(o.contains("training paper-st-cnn-affine ("), "{o}");
    assert!(matches!(cnn.arch, Arch::Cnn { .. }));
    let (o, fcn) = train("paper-fcn", "addition", "fcn");
    assert!(o.contains("training paper-st-fcn-affine ("), "{o}");
    assert_eq!((fcn.channels, fcn.classes), (2, 19));
    assert!(matches!(fcn.arch, Arch::Fcn { .. }));
}
