//! Hostile and inconsistent input that used to abort, lose progress or repeat itself: edited
//! checkpoints, data folders whose splits disagree, experiments over unreadable runs, gzip
//! bombs. Each gets a clear one-line error (said once), the right exit status, and nothing
//! saved is lost.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use stn::checkpoint::Checkpoint;
use stn::data::idx::{self, IdxError, IdxFormatError};
use stn::data::mnist::FILE_NAMES;
use stn::transformer::TransformKind;

fn run(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_stn"))
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .args(args)
        .output()
        .expect("stn runs")
}

/// Asserts the exit status, that stderr says `needle` exactly once, and that nothing panicked
/// or aborted.
fn fails_once(out: &Output, code: i32, needle: &str) {
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(code), "exit status; stderr: {err}");
    assert_eq!(
        err.matches(needle).count(),
        1,
        "stderr should say {needle:?} once: {err}"
    );
    for bad in ["panicked", "RUST_BACKTRACE", "memory allocation", "abort"] {
        assert!(!err.contains(bad), "{bad}: {err}");
    }
}

/// A small dataset: `n_train` and `n_test` images of the given sides.
fn data_dir(dir: &Path, n_train: usize, train_side: usize, n_test: usize, test_side: usize) {
    std::fs::create_dir_all(dir).unwrap();
    let img = |n: usize, side: usize| {
        let pixels: Vec<u8> = (0..n * side * side).map(|i| (i * 7 % 251) as u8).collect();
        idx::encode(&[n, side, side], &pixels)
    };
    let lbl = |n: usize| idx::encode(&[n], &(0..n).map(|i| (i % 10) as u8).collect::<Vec<_>>());
    std::fs::write(dir.join(FILE_NAMES[0]), img(n_train, train_side)).unwrap();
    std::fs::write(dir.join(FILE_NAMES[1]), lbl(n_train)).unwrap();
    std::fs::write(dir.join(FILE_NAMES[2]), img(n_test, test_side)).unwrap();
    std::fs::write(dir.join(FILE_NAMES[3]), lbl(n_test)).unwrap();
}

/// A one-epoch run on 64 vendored images, returning its folder.
fn small_run(root: &Path, name: &str, extra: &[&str]) -> PathBuf {
    let dir = root.join(name);
    let mut args = vec![
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
        dir.to_str().unwrap(),
    ];
    args.extend_from_slice(extra);
    let out = run(&args);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    dir
}

/// Saves `edit(checkpoint)` (with a valid checksum) as `name` and returns its path.
fn edited(root: &Path, run: &Path, name: &str, edit: impl FnOnce(&mut Checkpoint)) -> PathBuf {
    let mut c = Checkpoint::load(&run.join("checkpoint.stn")).unwrap();
    edit(&mut c);
    let path = root.join(name);
    c.save(&path).unwrap();
    path
}

#[test]
fn edited_checkpoints_are_errors_not_allocations() {
    let tmp = tempfile::tempdir().unwrap();
    let run_dir = small_run(tmp.path(), "run", &["--momentum", "0.9"]);

    // Sizes that would make the network allocate terabytes, checksum recomputed.
    type Edit = Box<dyn FnOnce(&mut Checkpoint)>;
    let cases: Vec<(&str, Edit, &str)> = vec![
        (
            "huge-input.stn",
            Box::new(|c| c.model.input_size = [1 << 20, 1 << 20]),
            "image sides above 4096 pixels are not supported",
        ),
        (
            "huge-classes.stn",
            Box::new(|c| c.model.classes = 1 << 40),
            "classes: between 1 and 1000 are supported",
        ),
        (
            "huge-tps.stn",
            Box::new(|c| c.model.transform = Some(TransformKind::Tps { grid: 1 << 30 })),
            "at most 32x32 are supported",
        ),
        (
            "huge-output.stn",
            Box::new(|c| c.model.sampler.output_size = Some([1 << 31, 1 << 31])),
            "image sides above 4096 pixels are not supported",
        ),
        // In bounds, but not what the parameters were made for: caught by the shapes, before
        // the network is built.
        (
            "other-size.stn",
            Box::new(|c| c.model.input_size = [4000, 4000]),
            "the file holds a different architecture",
        ),
    ];
    for (name, edit, needle) in cases {
        let path = edited(tmp.path(), &run_dir, name, edit);
        fails_once(
            &run(&["eval", "--model", path.to_str().unwrap()]),
            1,
            needle,
        );
        // The same file as a run to resume.
        let dir = tmp.path().join(format!("resume-{name}"));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::copy(&path, dir.join("checkpoint.stn")).unwrap();
        let before = std::fs::read(dir.join("checkpoint.stn")).unwrap();
        let out = run(&["train", "--resume", dir.to_str().unwrap()]);
        fails_once(&out, 1, needle);
        assert_eq!(
            std::fs::read(dir.join("checkpoint.stn")).unwrap(),
            before,
            "the checkpoint must stay as it was"
        );
    }

    // Momentum buffers that belong to no parameter.
    let path = edited(tmp.path(), &run_dir, "odd-momentum.stn", |c| {
        let m = c.momentum.get_mut("fc1.weight").unwrap();
        m.shape = vec![7];
        m.data.truncate(7);
    });
    let dir = tmp.path().join("resume-odd-momentum");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::copy(&path, dir.join("checkpoint.stn")).unwrap();
    fails_once(
        &run(&["train", "--resume", dir.to_str().unwrap()]),
        1,
        "momentum buffer fc1.weight [7] matches no parameter",
    );
}

#[test]
fn errors_say_each_thing_once() {
    let tmp = tempfile::tempdir().unwrap();
    let run_dir = small_run(tmp.path(), "run", &[]);
    let path = edited(tmp.path(), &run_dir, "other.stn", |c| {
        c.params.remove("fc2.bias");
    });
    fails_once(
        &run(&["eval", "--model", path.to_str().unwrap()]),
        1,
        "parameter fc2.bias is missing: the file holds a different architecture",
    );
    // An IDX file of the wrong rank.
    let data = tmp.path().join("data");
    data_dir(&data, 20, 28, 10, 28);
    std::fs::copy(data.join(FILE_NAMES[1]), data.join(FILE_NAMES[0])).unwrap();
    fails_once(
        &run(&["train", "--data", data.to_str().unwrap(), "--epochs", "1"]),
        1,
        "has 1 dimensions, expected 3",
    );
}

#[test]
fn splits_of_different_sizes_are_refused_before_training() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    data_dir(&data, 20, 28, 10, 32);
    let out_dir = tmp.path().join("run");
    let out = run(&[
        "train",
        "--data",
        data.to_str().unwrap(),
        "--epochs",
        "1",
        "--out",
        out_dir.to_str().unwrap(),
    ]);
    fails_once(
        &out,
        1,
        "the training images are 28x28 but the test images 32x32",
    );
    assert!(
        !out_dir.exists(),
        "no run folder for a run that cannot start"
    );
}

#[test]
fn experiments_never_replace_a_run_they_cannot_continue() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("digits");
    data_dir(&data, 20, 28, 10, 28);
    let out = tmp.path().join("table");
    let cell = out.join("r-cnn");
    std::fs::create_dir_all(&cell).unwrap();
    let experiment = || {
        run(&[
            "experiment",
            "table1",
            "--datasets",
            "r",
            "--data",
            data.to_str().unwrap(),
            "--out",
            out.to_str().unwrap(),
        ])
    };

    // An unreadable checkpoint: an error, and the file is left alone.
    std::fs::write(cell.join("checkpoint.stn"), b"STN-CKPT but then nothing").unwrap();
    fails_once(&experiment(), 1, "truncated or corrupt");
    assert_eq!(
        std::fs::read(cell.join("checkpoint.stn")).unwrap(),
        b"STN-CKPT but then nothing"
    );

    // A readable run of another recipe (here: the tutorial's): refused, kept.
    let other = small_run(tmp.path(), "other", &[]);
    std::fs::copy(other.join("checkpoint.stn"), cell.join("checkpoint.stn")).unwrap();
    let before = std::fs::read(cell.join("checkpoint.stn")).unwrap();
    let out = experiment();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(
        err.contains("holds a run of another") && err.contains("it is kept"),
        "{err}"
    );
    assert_eq!(std::fs::read(cell.join("checkpoint.stn")).unwrap(), before);
}

/// A gzip stream of `header` followed by `zeros` zero bytes, compressed hard.
fn gzip(header: &[u8], zeros: usize) -> Vec<u8> {
    let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
    enc.write_all(header).unwrap();
    let chunk = vec![0u8; 1 << 20];
    let mut left = zeros;
    while left > 0 {
        let n = left.min(chunk.len());
        enc.write_all(&chunk[..n]).unwrap();
        left -= n;
    }
    enc.finish().unwrap()
}

#[test]
fn gzip_bombs_are_bounded_by_the_declared_size() {
    let tmp = tempfile::tempdir().unwrap();
    let path = tmp.path().join("bomb.gz");

    // 10 images declared, 256 MB of zeros behind them: read as far as the declared size and
    // one byte more, then only counted.
    let header = &idx::encode(&[10, 28, 28], &[])[..];
    std::fs::write(&path, gzip(header, 10 * 784 + (256 << 20))).unwrap();
    assert!(std::fs::metadata(&path).unwrap().len() < 1 << 20, "a bomb");
    let started = Instant::now();
    let err = idx::read(&path, 3).unwrap_err();
    assert!(started.elapsed() < Duration::from_secs(30));
    match err {
        IdxError::Format {
            source: IdxFormatError::Trailing { extra, .. },
            ..
        } => assert_eq!(extra, Some(256 << 20)),
        e => panic!("expected trailing bytes, got {e}"),
    }

    // A header that promises more than the reader accepts: refused before reading on.
    let header = &idx::encode(&[60_000, 300, 300], &[])[..];
    std::fs::write(&path, gzip(header, 1 << 20)).unwrap();
    let err = idx::read(&path, 3).unwrap_err();
    assert!(
        matches!(
            err,
            IdxError::Format {
                source: IdxFormatError::TooLarge { .. },
                ..
            }
        ),
        "{err}"
    );
    assert!(err.to_string().contains("promise more than"), "{err}");
}
