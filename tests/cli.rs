//! The real `stn` binary on bad input and interrupted runs: clear one-line errors, the right
//! exit status, nothing saved lost, and exact resume.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use common::{stn, succeed};
use stn::checkpoint::Checkpoint;
use stn::data::idx;
use stn::data::mnist::FILE_NAMES;

fn mnist() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("data/mnist")
}

fn run(args: &[&str]) -> Output {
    stn().args(args).output().expect("stn runs")
}

/// Asserts the exit status, that stderr names `needle`, and that nothing panicked.
fn fails(out: &Output, code: i32, needle: &str) {
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(code), "exit status; stderr: {err}");
    assert!(err.contains(needle), "stderr lacks {needle:?}: {err}");
    assert!(
        !err.contains("panicked") && !err.contains("RUST_BACKTRACE"),
        "panic: {err}"
    );
}

/// A small valid dataset (20 train, 10 test 28x28 images) in a new folder.
fn small_data(dir: &Path) {
    let img = |n: usize| {
        idx::encode(
            &[n, 28, 28],
            &(0..n * 784).map(|i| (i % 251) as u8).collect::<Vec<_>>(),
        )
    };
    let lbl = |n: usize| idx::encode(&[n], &(0..n).map(|i| (i % 10) as u8).collect::<Vec<_>>());
    std::fs::write(dir.join(FILE_NAMES[0]), img(20)).unwrap();
    std::fs::write(dir.join(FILE_NAMES[1]), lbl(20)).unwrap();
    std::fs::write(dir.join(FILE_NAMES[2]), img(10)).unwrap();
    std::fs::write(dir.join(FILE_NAMES[3]), lbl(10)).unwrap();
}

#[test]
fn bad_flag_values_are_usage_errors() {
    let cases: [(&[&str], &str); 8] = [
        (
            &["train", "--batch-size", "0"],
            "--batch-size must be at least 1",
        ),
        (&["train", "--lr", "-0.1"], "--lr must be a positive number"),
        (&["train", "--lr", "nan"], "--lr must be a positive number"),
        (&["train", "--epochs", "0"], "--epochs must be at least 1"),
        (
            &["train", "--momentum", "1.5"],
            "--momentum must be in [0, 1)",
        ),
        (&["train", "--device", "tpu"], "invalid value 'tpu'"),
        (&["train", "--dataset", "svhn"], "unknown dataset 'svhn'"),
        (
            &["train", "--limit-train", "0", "--epochs", "1"],
            "--limit-train must be at least 1",
        ),
    ];
    for (args, needle) in cases {
        fails(&run(args), 2, needle);
    }
}

#[test]
fn devices_not_compiled_in_are_refused() {
    for dev in ["cuda", "wgpu"] {
        let out = run(&["eval", "--model", "nowhere.stn", "--device", dev]);
        if cfg!(feature = "cuda") && dev == "cuda" || cfg!(feature = "wgpu") && dev == "wgpu" {
            continue;
        }
        fails(
            &out,
            2,
            &format!("device {dev} is not compiled into this build"),
        );
    }
}

#[test]
fn bad_data_folders_are_reported() {
    let tmp = tempfile::tempdir().unwrap();
    let missing = tmp.path().join("missing");
    fails(
        &run(&[
            "train",
            "--data",
            missing.to_str().unwrap(),
            "--epochs",
            "1",
        ]),
        1,
        "does not exist",
    );

    let dir = tmp.path().join("d");
    std::fs::create_dir(&dir).unwrap();
    small_data(&dir);
    let d = dir.to_str().unwrap();

    // Labels out of range.
    std::fs::write(
        dir.join(FILE_NAMES[3]),
        idx::encode(&[10], &[0, 1, 2, 3, 4, 5, 6, 7, 8, 12]),
    )
    .unwrap();
    fails(
        &run(&["train", "--data", d, "--epochs", "1"]),
        1,
        "label 12 at index 9",
    );

    // Images and labels that differ in number.
    std::fs::write(dir.join(FILE_NAMES[3]), idx::encode(&[9], &[0; 9])).unwrap();
    fails(
        &run(&[
            "eval",
            "--model",
            "tests/fixtures/torch/tutorial_net.pt",
            "--data",
            d,
        ]),
        1,
        "has 10 images but",
    );

    // Truncated and corrupt gzip (of the right file: the header is fine, the values are not).
    small_data(&dir);
    std::fs::remove_file(dir.join(FILE_NAMES[0])).unwrap();
    let gz = std::fs::read(mnist().join(format!("{}.gz", FILE_NAMES[0]))).unwrap();
    let gz_path = dir.join(format!("{}.gz", FILE_NAMES[0]));
    std::fs::write(&gz_path, &gz[..gz.len() / 2]).unwrap();
    fails(
        &run(&["train", "--data", d, "--epochs", "1"]),
        1,
        "corrupt or truncated gzip",
    );
    let mut corrupt = gz.clone();
    for b in &mut corrupt[gz.len() / 2..gz.len() / 2 + 64] {
        *b ^= 0x5a;
    }
    std::fs::write(&gz_path, &corrupt).unwrap();
    fails(
        &run(&["train", "--data", d, "--epochs", "1"]),
        1,
        "corrupt or truncated gzip",
    );

    // Wrong magic.
    std::fs::remove_file(dir.join(format!("{}.gz", FILE_NAMES[0]))).unwrap();
    std::fs::write(dir.join(FILE_NAMES[0]), b"GIF89a not an idx file at all").unwrap();
    fails(
        &run(&["train", "--data", d, "--epochs", "1"]),
        1,
        "wrong magic number",
    );

    // A missing file.
    std::fs::remove_file(dir.join(FILE_NAMES[0])).unwrap();
    fails(
        &run(&["train", "--data", d, "--epochs", "1"]),
        1,
        "no train-images-idx3-ubyte.gz or train-images-idx3-ubyte",
    );
}

#[test]
fn bad_model_files_are_reported() {
    let tmp = tempfile::tempdir().unwrap();
    let p = |name: &str| tmp.path().join(name);

    std::fs::write(p("notes.txt"), "hello").unwrap();
    fails(
        &run(&["eval", "--model", p("notes.txt").to_str().unwrap()]),
        1,
        "not an stn checkpoint",
    );
    fails(
        &run(&["eval", "--model", p("absent.stn").to_str().unwrap()]),
        1,
        "file not found",
    );

    std::fs::write(
        p("garbage.pt"),
        b"PK\x03\x04 this is not a real zip archive",
    )
    .unwrap();
    fails(
        &run(&["eval", "--model", p("garbage.pt").to_str().unwrap()]),
        1,
        "not a readable PyTorch file",
    );

    // A real checkpoint, truncated, and with one byte flipped.
    let run_dir = p("run");
    let out = run(&[
        "train",
        "--epochs",
        "1",
        "--limit-train",
        "64",
        "--limit-test",
        "10",
        "--log-interval",
        "0",
        "--out",
        run_dir.to_str().unwrap(),
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let ckpt = std::fs::read(run_dir.join("checkpoint.stn")).unwrap();
    std::fs::write(p("short.stn"), &ckpt[..ckpt.len() - 100]).unwrap();
    fails(
        &run(&["eval", "--model", p("short.stn").to_str().unwrap()]),
        1,
        "truncated or corrupt",
    );
    let mut flipped = ckpt.clone();
    let mid = flipped.len() / 2;
    flipped[mid] ^= 1;
    std::fs::write(p("flipped.stn"), &flipped).unwrap();
    fails(
        &run(&["eval", "--model", p("flipped.stn").to_str().unwrap()]),
        1,
        "checksum mismatch",
    );

    // A checkpoint whose parameters belong to another architecture.
    let mut c = Checkpoint::load(&run_dir.join("checkpoint.stn")).unwrap();
    let fc1 = c.params.get_mut("fc1.weight").unwrap();
    fc1.shape = vec![50, 160];
    fc1.data.truncate(50 * 160);
    c.save(&p("other.stn")).unwrap();
    fails(
        &run(&["eval", "--model", p("other.stn").to_str().unwrap()]),
        1,
        "different architecture",
    );

    // Continuing into a folder that holds a run needs --resume.
    let out = run(&["train", "--epochs", "1", "--out", run_dir.to_str().unwrap()]);
    fails(&out, 2, "already holds a run");
}

#[test]
fn divergence_stops_with_a_clear_error_and_keeps_the_checkpoint() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("run");
    let out = run(&[
        "train",
        "--lr",
        "1e12",
        "--epochs",
        "3",
        "--limit-train",
        "640",
        "--limit-test",
        "10",
        "--log-interval",
        "0",
        "--out",
        dir.to_str().unwrap(),
    ]);
    fails(&out, 1, "training diverged");
    // The last good checkpoint (here: before the first epoch) is intact and loadable.
    let c = Checkpoint::load(&dir.join("checkpoint.stn")).expect("checkpoint intact");
    assert_eq!(c.progress.unwrap().epochs_done, 0);
}

fn wait_for(what: &str, timeout: Duration, mut ready: impl FnMut() -> bool) {
    let start = Instant::now();
    while !ready() {
        assert!(start.elapsed() < timeout, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn epochs_logged(dir: &Path) -> usize {
    std::fs::read_to_string(dir.join("metrics.jsonl"))
        .map(|s| s.lines().count())
        .unwrap_or(0)
}

fn train_args(dir: &Path, extra: &[&str]) -> Vec<String> {
    [
        "train",
        "--epochs",
        "3",
        "--seed",
        "5",
        "--limit-train",
        "12000",
        "--limit-test",
        "200",
        "--log-interval",
        "0",
    ]
    .iter()
    .chain(extra)
    .chain(&["--out"])
    .map(|s| s.to_string())
    .chain([dir.to_str().unwrap().to_string()])
    .collect()
}

/// SIGKILL in the middle of epoch 2, then `--resume`: the same final weights, momentum buffers
/// and generator states, bit for bit, as an uninterrupted run with the same seed; with plain
/// SGD (the tutorial's), and with momentum, weight decay and a learning rate that changes
/// every epoch.
#[test]
fn killed_run_resumes_to_identical_weights() {
    let recipes: [&[&str]; 2] = [
        &[],
        &[
            "--momentum",
            "0.9",
            "--weight-decay",
            "0.0005",
            "--lr-step",
            "1",
        ],
    ];
    for extra in recipes {
        killed_run_resumes(extra);
    }
}

fn killed_run_resumes(extra: &[&str]) {
    let tmp = tempfile::tempdir().unwrap();
    let (whole, killed) = (tmp.path().join("whole"), tmp.path().join("killed"));

    let out = stn().args(train_args(&whole, extra)).output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    let mut child = stn()
        .args(train_args(&killed, extra))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    wait_for("epoch 1", Duration::from_secs(300), || {
        epochs_logged(&killed) >= 1
    });
    std::thread::sleep(Duration::from_millis(300));
    child.kill().unwrap();
    child.wait().unwrap();
    assert!(
        epochs_logged(&killed) < 3,
        "the run finished before it could be killed"
    );

    succeed(stn().args(["train", "--resume", killed.to_str().unwrap()]));

    let a = Checkpoint::load(&whole.join("checkpoint.stn")).unwrap();
    let b = Checkpoint::load(&killed.join("checkpoint.stn")).unwrap();
    let bits = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
    let (pa, pb) = (a.progress.unwrap(), b.progress.unwrap());
    assert_eq!((pa.epochs_done, pb.epochs_done), (3, 3));
    for (name, t) in &a.params {
        assert_eq!(
            bits(&t.data),
            bits(&b.params[name].data),
            "{name} differs after resume ({extra:?})"
        );
    }
    let momentum = !extra.is_empty();
    assert_eq!(a.momentum.len(), if momentum { a.params.len() } else { 0 });
    assert_eq!(
        a.momentum.keys().collect::<Vec<_>>(),
        b.momentum.keys().collect::<Vec<_>>()
    );
    for (name, t) in &a.momentum {
        assert_eq!(
            bits(&t.data),
            bits(&b.momentum[name].data),
            "momentum of {name} differs after resume ({extra:?})"
        );
    }
    assert_eq!(pa.shuffle_rng, pb.shuffle_rng);
    assert_eq!(pa.dropout_rng, pb.dropout_rng);
    assert_eq!(pa.config, pb.config);
    for (x, y) in pa.metrics.iter().zip(&pb.metrics) {
        assert_eq!(
            (x.train_loss, x.test_loss, x.test_accuracy),
            (y.train_loss, y.test_loss, y.test_accuracy)
        );
    }
}

/// Ctrl-C mid-epoch: exit status 130, a message, and the last completed epoch's checkpoint.
#[cfg(unix)]
#[test]
fn interrupt_keeps_the_last_completed_epoch() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("run");
    let child = stn()
        .args(train_args(&dir, &[]))
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    wait_for("epoch 1", Duration::from_secs(300), || {
        epochs_logged(&dir) >= 1
    });
    std::thread::sleep(Duration::from_millis(200));
    let status = Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let out = child.wait_with_output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(130), "{err}");
    assert!(err.contains("continue with `stn train --resume"), "{err}");
    let c = Checkpoint::load(&dir.join("checkpoint.stn")).unwrap();
    let done = c.progress.unwrap().epochs_done;
    assert!((1..3).contains(&done), "epochs done: {done}");
    assert_eq!(epochs_logged(&dir), done);
}

/// `stn data` writes the four standard IDX files and a sample sheet; the same seed gives
/// byte-identical files, another seed different ones, and the output loads with `--data`.
#[test]
fn generated_datasets_are_reproducible_files() {
    let tmp = tempfile::tempdir().unwrap();
    let src = tmp.path().join("src");
    std::fs::create_dir(&src).unwrap();
    small_data(&src);
    let generate = |name: &str, seed: &str| {
        let out = tmp.path().join(name);
        let o = run(&[
            "data",
            "--dataset",
            "rts",
            "--seed",
            seed,
            "--data",
            src.to_str().unwrap(),
            "--out",
            out.to_str().unwrap(),
        ]);
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        out
    };
    let (a, b, c) = (generate("a", "3"), generate("b", "3"), generate("c", "4"));
    for name in FILE_NAMES {
        let (fa, fb, fc) = (
            std::fs::read(a.join(name)).unwrap(),
            std::fs::read(b.join(name)).unwrap(),
            std::fs::read(c.join(name)).unwrap(),
        );
        assert_eq!(fa, fb, "{name}: same seed, different bytes");
        if name.contains("images") {
            assert_ne!(fa, fc, "{name}: another seed, same bytes");
        }
    }
    assert!(a.join("sample.png").exists());
    let set = stn::data::mnist::load_dir(&a).unwrap();
    assert_eq!(
        (set.train.len(), set.train.rows, set.test.len()),
        (20, 42, 10)
    );
}

/// The co-localisation experiment end to end at its smoke effort: the encoder's run folder,
/// the per-class results beside the paper's, the figures; a second run reuses the encoder and
/// the finished classes, retrains a missing one to the same numbers; table1's grid flags are
/// refused.
#[test]
fn colocalisation_smoke_writes_its_table_and_figures() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("coloc");
    let json = tmp.path().join("colocalisation.json");
    let args = [
        "experiment",
        "colocalisation",
        "--budget",
        "smoke",
        "--out",
        out.to_str().unwrap(),
        "--json",
        json.to_str().unwrap(),
    ];
    let first = run(&args);
    assert!(
        first.status.success(),
        "{}",
        String::from_utf8_lossy(&first.stderr)
    );
    for file in [
        "colocalisation.md",
        "colocalisation.json",
        "t.png",
        "tc.png",
        "encoder/checkpoint.stn",
        "t-1.json",
        "tc-7.json",
    ] {
        assert!(out.join(file).is_file(), "{file} missing");
    }
    let results: Vec<serde_json::Value> =
        serde_json::from_slice(&std::fs::read(&json).unwrap()).unwrap();
    assert_eq!(results.len(), 4, "two classes, T and TC");
    for r in &results {
        let share = r["iou_above_half"].as_f64().unwrap();
        assert!((0.0..=100.0).contains(&share), "{r}");
        assert_eq!(r["images"], 100, "{r}");
        for loss in ["loss", "digit_box_loss"] {
            let v = r[loss].as_f64().unwrap_or_else(|| panic!("{loss} in {r}"));
            assert!(v.is_finite() && v >= 0.0, "{r}");
        }
    }
    let md = std::fs::read_to_string(out.join("colocalisation.md")).unwrap();
    assert_eq!(md.matches("\n| 1 |").count(), 1, "one row per class: {md}");
    // The second run resumes: the encoder and the finished classes are reused, the class
    // whose file is gone is trained again, to the same boxes.
    std::fs::remove_file(out.join("t-1.json")).unwrap();
    let second = run(&args);
    assert!(second.status.success());
    assert!(!String::from_utf8_lossy(&second.stdout).contains("training the encoder"));
    assert!(out.join("t-1.json").is_file());
    let again: Vec<serde_json::Value> =
        serde_json::from_slice(&std::fs::read(&json).unwrap()).unwrap();
    let shares = |v: &[serde_json::Value]| -> Vec<f64> {
        v.iter().map(|r| r["mean_iou"].as_f64().unwrap()).collect()
    };
    assert_eq!(shares(&results), shares(&again), "same seed, same boxes");
    fails(
        &run(&[
            "experiment",
            "colocalisation",
            "--shard",
            "0/2",
            "--out",
            out.to_str().unwrap(),
        ]),
        2,
        "--shard applies to the table1 and addition grids only",
    );
}

/// The committed docs/paper/colocalisation.json: per class (0-9) and variant (t, tc) the share
/// of canvases with IoU > 0.5, beside the paper's (100% on T, its 75-93% range on TC).
#[test]
fn committed_colocalisation_json_has_every_class_and_variant() {
    for file in ["colocalisation.json", "colocalisation-seed2.json"] {
        committed_colocalisation_json(file);
    }
}

fn committed_colocalisation_json(file: &str) {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("docs/paper")
        .join(file);
    let results: Vec<serde_json::Value> =
        serde_json::from_slice(&std::fs::read(&path).unwrap_or_else(|e| panic!("{file}: {e}")))
            .unwrap();
    let mut seen = std::collections::BTreeSet::new();
    for r in &results {
        let variant = r["variant"]
            .as_str()
            .unwrap_or_else(|| panic!("variant in {r}"));
        let class = r["class"]
            .as_u64()
            .unwrap_or_else(|| panic!("class in {r}"));
        let share = r["iou_above_half"].as_f64().unwrap();
        assert!((0.0..=100.0).contains(&share), "{r}");
        assert_eq!(r["images"], 100, "{r}");
        match variant {
            "t" => assert_eq!(r["paper"].as_f64(), Some(100.0), "{r}"),
            "tc" => assert_eq!(r["paper_range"], serde_json::json!([75.0, 93.0]), "{r}"),
            _ => panic!("variant {variant}"),
        }
        for loss in ["loss", "digit_box_loss"] {
            assert!(
                r[loss].as_f64().is_some_and(f64::is_finite),
                "{loss} in {r}"
            );
        }
        assert!(seen.insert((variant.to_string(), class)), "twice: {r}");
    }
    assert_eq!(seen.len(), 20, "{file}: every class of T and TC");
}
