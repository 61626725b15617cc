//! Input files that are not what they seem (issue 21): devices, FIFOs, files far too large,
//! gzip bombs and PyTorch files whose storages disagree with their pickle. Each is refused at
//! once with one line on stderr naming the file, exit status 1 and no panic.

mod common;

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use common::stn;
use stn::data::idx;
use stn::data::mnist::{self, FILE_NAMES};

/// The PyTorch-trained tutorial network.
fn model() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/trained/tutorial_torch_2ep.pt")
}

/// Runs `stn args`, killing it after `limit` (a hang is a failure, not a stuck test).
fn run_within(args: &[&str], limit: Duration) -> Output {
    let mut child = stn()
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("stn starts");
    let started = Instant::now();
    while child.try_wait().unwrap().is_none() {
        if started.elapsed() > limit {
            child.kill().unwrap();
            let out = child.wait_with_output().unwrap();
            panic!(
                "stn {args:?} still running after {limit:?}; stderr: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    child.wait_with_output().unwrap()
}

/// Generous for a loaded machine; a hang or a read of /dev/zero would take far longer.
const QUICK: Duration = Duration::from_secs(30);

/// Asserts exit status 1 and one line on stderr holding `needle`, without a panic.
fn refused(out: &Output, needle: &str) {
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "exit status; stderr: {err}");
    assert!(err.contains(needle), "stderr lacks {needle:?}: {err}");
    assert_eq!(err.lines().count(), 1, "one line: {err}");
    assert!(err.starts_with("error: "), "{err}");
    assert!(!err.contains("panicked"), "{err}");
}

fn mkfifo(path: &Path) {
    let ok = Command::new("mkfifo").arg(path).status().unwrap().success();
    assert!(ok, "mkfifo {}", path.display());
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

#[test]
fn predict_refuses_devices_without_reading_them() {
    let m = model();
    let started = Instant::now();
    let out = run_within(&["predict", "--model", s(&m), "/dev/zero"], QUICK);
    refused(&out, "/dev/zero: not a regular file (a character device)");
    eprintln!("predict /dev/zero refused in {:?}", started.elapsed());
    // Standard input is no exception: no command documents reading it.
    let out = run_within(&["predict", "--model", s(&m), "/dev/stdin"], QUICK);
    refused(&out, "/dev/stdin: not a regular file");
}

#[test]
fn fifos_are_refused_at_once() {
    let tmp = tempfile::tempdir().unwrap();
    let fifo = tmp.path().join("digit.png");
    mkfifo(&fifo);
    let m = model();
    let out = run_within(&["predict", "--model", s(&m), s(&fifo)], QUICK);
    refused(&out, "digit.png: not a regular file (a FIFO)");

    // As the model, whatever its name says it is.
    for name in ["fifo.pt", "fifo.stn", "fifo"] {
        let fifo = tmp.path().join(name);
        mkfifo(&fifo);
        let needle = format!("{name}: not a regular file (a FIFO)");
        for command in ["eval", "predict", "serve"] {
            let mut args = vec![command, "--model", s(&fifo)];
            match command {
                "predict" => args.push("/dev/null"),
                "serve" => args.extend(["--port", "0"]),
                _ => {}
            }
            refused(&run_within(&args, QUICK), &needle);
        }
    }

    // A run folder whose checkpoint is a FIFO, continued or evaluated.
    let run = tmp.path().join("run");
    std::fs::create_dir(&run).unwrap();
    mkfifo(&run.join("checkpoint.stn"));
    let out = run_within(&["train", "--resume", s(&run)], QUICK);
    refused(&out, "checkpoint.stn: not a regular file (a FIFO)");
    let out = run_within(&["eval", "--model", s(&run)], QUICK);
    refused(&out, "checkpoint.stn: not a regular file (a FIFO)");

    // A data folder with a FIFO for a file.
    let data = tmp.path().join("data");
    std::fs::create_dir(&data).unwrap();
    small_data(&data);
    std::fs::remove_file(data.join(FILE_NAMES[2])).unwrap();
    mkfifo(&data.join(FILE_NAMES[2]));
    let out = run_within(&["eval", "--model", s(&m), "--data", s(&data)], QUICK);
    refused(&out, "t10k-images-idx3-ubyte: not a regular file (a FIFO)");
}

/// A sparse file of `len` bytes: as large as it says, without the disk space.
fn sparse(path: &Path, len: u64) {
    std::fs::File::create(path).unwrap().set_len(len).unwrap();
}

#[test]
fn files_over_their_limit_are_refused_before_reading() {
    let tmp = tempfile::tempdir().unwrap();
    let m = model();
    let big = tmp.path().join("big.png");
    sparse(&big, (16 << 20) + 1);
    let out = run_within(&["predict", "--model", s(&m), s(&big)], QUICK);
    refused(&out, "big.png: 16 MiB is over the 16 MiB limit for images");

    for name in ["huge.pt", "huge.stn"] {
        let huge = tmp.path().join(name);
        sparse(&huge, 3 << 30);
        let out = run_within(&["eval", "--model", s(&huge)], QUICK);
        refused(
            &out,
            &format!("{name}: 3 GiB is over the 1 GiB limit for model files"),
        );
    }

    let data = tmp.path().join("data");
    std::fs::create_dir(&data).unwrap();
    small_data(&data);
    sparse(&data.join(FILE_NAMES[0]), 1 << 30);
    let err = mnist::load_dir(&data).unwrap_err().to_string();
    assert!(
        err.ends_with("train-images-idx3-ubyte: 1 GiB is over the 512 MiB limit for IDX files"),
        "{err}"
    );
}

/// A small valid dataset (20 train, 10 test 28x28 images).
fn small_data(dir: &Path) {
    let img = |n: usize| idx::encode(&[n, 28, 28], &vec![9u8; n * 784]);
    let lbl = |n: usize| idx::encode(&[n], &(0..n).map(|i| (i % 10) as u8).collect::<Vec<_>>());
    std::fs::write(dir.join(FILE_NAMES[0]), img(20)).unwrap();
    std::fs::write(dir.join(FILE_NAMES[1]), lbl(20)).unwrap();
    std::fs::write(dir.join(FILE_NAMES[2]), img(10)).unwrap();
    std::fs::write(dir.join(FILE_NAMES[3]), lbl(10)).unwrap();
}

#[test]
fn gzip_bombs_promising_more_than_any_dataset_are_refused() {
    // 1,300 images of 1000x1000 (1.3 GB) promised, 8 MiB of zeros behind them in 8 KB.
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path();
    small_data(data);
    let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
    enc.write_all(&idx::encode(&[1300, 1000, 1000], &[]))
        .unwrap();
    enc.write_all(&vec![0u8; 8 << 20]).unwrap();
    let bomb = enc.finish().unwrap();
    std::fs::remove_file(data.join(FILE_NAMES[0])).unwrap();
    std::fs::write(data.join(format!("{}.gz", FILE_NAMES[0])), bomb).unwrap();
    let m = model();
    let out = run_within(&["eval", "--model", s(&m), "--data", s(data)], QUICK);
    refused(&out, "promise more than 536870912 bytes");
}

// ---- PyTorch files whose storages disagree with their pickle ----

fn crc32(bytes: &[u8]) -> u32 {
    let mut crc = !0u32;
    for &b in bytes {
        crc ^= u32::from(b);
        for _ in 0..8 {
            crc = (crc >> 1) ^ (0xEDB8_8320 & (crc & 1).wrapping_neg());
        }
    }
    !crc
}

/// A ZIP archive of stored (uncompressed) entries, as torch.save writes.
fn stored_zip(entries: &[(&str, &[u8])]) -> Vec<u8> {
    let mut out = Vec::new();
    let mut central = Vec::new();
    for (name, data) in entries {
        let offset = out.len() as u32;
        let crc = crc32(data);
        let mut common = Vec::new();
        common.extend(20u16.to_le_bytes()); // version needed
        common.extend(0u16.to_le_bytes()); // flags
        common.extend(0u16.to_le_bytes()); // stored
        common.extend(0u32.to_le_bytes()); // time and date
        common.extend(crc.to_le_bytes());
        common.extend((data.len() as u32).to_le_bytes());
        common.extend((data.len() as u32).to_le_bytes());
        common.extend((name.len() as u16).to_le_bytes());
        common.extend(0u16.to_le_bytes()); // extra
        out.extend(b"PK\x03\x04");
        out.extend(&common);
        out.extend(name.as_bytes());
        out.extend(*data);
        central.extend(b"PK\x01\x02");
        central.extend(20u16.to_le_bytes()); // version made by
        central.extend(&common);
        central.extend([0u8; 6]); // comment length, disk, internal attributes
        central.extend(0u32.to_le_bytes()); // external attributes
        central.extend(offset.to_le_bytes());
        central.extend(name.as_bytes());
    }
    let dir_offset = out.len() as u32;
    out.extend(&central);
    out.extend(b"PK\x05\x06");
    out.extend([0u8; 4]);
    out.extend((entries.len() as u16).to_le_bytes());
    out.extend((entries.len() as u16).to_le_bytes());
    out.extend((central.len() as u32).to_le_bytes());
    out.extend(dir_offset.to_le_bytes());
    out.extend(0u16.to_le_bytes());
    out
}

/// The pickle of `OrderedDict(w=tensor)`: a float32 tensor of `elements` values at the start
/// of storage '0', which declares `declared` elements.
fn state_dict_pickle(declared: u8, elements: u8) -> Vec<u8> {
    let mut p = b"\x80\x02ccollections\nOrderedDict\nq\x00)Rq\x01(X\x01\x00\x00\x00w".to_vec();
    p.extend(b"ctorch._utils\n_rebuild_tensor_v2\nq\x02((X\x07\x00\x00\x00storage");
    p.extend(b"ctorch\nFloatStorage\nX\x01\x00\x00\x000X\x03\x00\x00\x00cpuK");
    p.push(declared);
    p.extend(b"tQK\x00K");
    p.push(elements);
    p.extend(b"\x85K\x01\x85\x89h\x00)RtRu.");
    p
}

fn torch_file(path: &Path, declared: u8, elements: u8, stored: usize) {
    let pickle = state_dict_pickle(declared, elements);
    let data: Vec<u8> = (0..stored).map(|i| i as u8).collect();
    let zip = stored_zip(&[
        ("archive/data.pkl", &pickle),
        ("archive/byteorder", b"little"),
        ("archive/data/0", &data),
        ("archive/version", b"3\n"),
    ]);
    std::fs::write(path, zip).unwrap();
}

#[test]
fn torch_storages_must_hold_what_they_declare() {
    let tmp = tempfile::tempdir().unwrap();
    let path = tmp.path().join("w.pt");

    // Consistent: the storage check passes.
    torch_file(&path, 4, 4, 16);
    let state = stn::torch_import::read_state_dict(&path).unwrap();
    assert_eq!(state["w"].shape, [4]);

    // More bytes than declared: 4 elements (16 bytes) declared, 20 stored.
    torch_file(&path, 4, 4, 20);
    let err = stn::torch_import::read_state_dict(&path)
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("storage '0' declares 16 bytes but holds 20"),
        "{err}"
    );

    // Fewer bytes than declared, though enough for the tensor: 8 declared, 4 used, 4 stored.
    torch_file(&path, 8, 4, 16);
    let err = stn::torch_import::read_state_dict(&path)
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("storage '0' declares 32 bytes but holds 16"),
        "{err}"
    );

    // Through the command: one line, exit status 1.
    torch_file(&path, 4, 4, 20);
    let out = run_within(&["eval", "--model", s(&path)], QUICK);
    refused(&out, "w.pt: storage '0' declares 16 bytes but holds 20");
}
