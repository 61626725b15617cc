//! The IDX reader and dataset loader on bad input: precise errors, never a panic.

use std::io::Write;
use std::path::Path;

use flate2::Compression;
use flate2::write::GzEncoder;
use stn::data::idx::{self, IdxError, IdxFormatError};
use stn::data::mnist::{self, DataError, FILE_NAMES};

fn gz(bytes: &[u8]) -> Vec<u8> {
    let mut e = GzEncoder::new(Vec::new(), Compression::default());
    e.write_all(bytes).unwrap();
    e.finish().unwrap()
}

fn images(n: usize, rows: usize, cols: usize) -> Vec<u8> {
    idx::encode(&[n, rows, cols], &vec![7u8; n * rows * cols])
}

fn labels(values: &[u8]) -> Vec<u8> {
    idx::encode(&[values.len()], values)
}

/// Writes a complete valid dataset (3 train, 2 test images of 28x28) into `dir`.
fn write_valid(dir: &Path) {
    std::fs::write(
        dir.join(format!("{}.gz", FILE_NAMES[0])),
        gz(&images(3, 28, 28)),
    )
    .unwrap();
    std::fs::write(
        dir.join(format!("{}.gz", FILE_NAMES[1])),
        gz(&labels(&[1, 2, 3])),
    )
    .unwrap();
    std::fs::write(dir.join(FILE_NAMES[2]), images(2, 28, 28)).unwrap();
    std::fs::write(dir.join(FILE_NAMES[3]), labels(&[9, 0])).unwrap();
}

#[test]
fn valid_files_load_gzipped_or_raw() {
    let dir = tempfile::tempdir().unwrap();
    write_valid(dir.path());
    let d = mnist::load_dir(dir.path()).unwrap();
    assert_eq!(
        (d.train.len(), d.test.len(), d.train.rows, d.train.cols),
        (3, 2, 28, 28)
    );
    assert_eq!(d.test.labels, vec![9, 0]);
}

#[test]
fn parse_rejects_every_malformed_header() {
    let good = images(2, 3, 4);
    assert!(idx::parse(&good, 3).is_ok());
    let cases: Vec<(Vec<u8>, IdxFormatError)> = vec![
        (vec![0, 0], IdxFormatError::ShortHeader { len: 2 }),
        (
            [&[1u8, 2, 3, 4][..], &good[4..]].concat(),
            IdxFormatError::Magic {
                found: [1, 2, 3, 4],
            },
        ),
        (
            labels(&[1, 2]),
            IdxFormatError::Dimensions {
                found: 1,
                expected: 3,
            },
        ),
        (
            good[..10].to_vec(),
            IdxFormatError::ShortDims {
                dims: 3,
                need: 16,
                len: 10,
            },
        ),
        (
            good[..good.len() - 5].to_vec(),
            IdxFormatError::Truncated {
                dims: vec![2, 3, 4],
                expected: 24,
                found: 19,
            },
        ),
        (
            [&good[..], &[0u8, 0]].concat(),
            IdxFormatError::Trailing {
                dims: vec![2, 3, 4],
                extra: Some(2),
            },
        ),
    ];
    for (bytes, want) in cases {
        assert_eq!(idx::parse(&bytes, 3).unwrap_err(), want);
    }
    // Dimensions whose product overflows.
    let huge = idx::encode(
        &[u32::MAX as usize, u32::MAX as usize, u32::MAX as usize],
        &[],
    );
    assert!(matches!(
        idx::parse(&huge, 3),
        Err(IdxFormatError::TooLarge { .. }) | Err(IdxFormatError::Truncated { .. })
    ));
}

fn replace(dir: &Path, index: usize, bytes: Vec<u8>) {
    for name in [
        format!("{}.gz", FILE_NAMES[index]),
        FILE_NAMES[index].to_string(),
    ] {
        let _ = std::fs::remove_file(dir.join(name));
    }
    std::fs::write(dir.join(FILE_NAMES[index]), bytes).unwrap();
}

fn load_err(dir: &Path) -> String {
    let e = mnist::load_dir(dir).unwrap_err();
    e.to_string()
}

#[test]
fn missing_folder_and_missing_file() {
    let dir = tempfile::tempdir().unwrap();
    let e = mnist::load_dir(&dir.path().join("nope")).unwrap_err();
    assert!(matches!(e, DataError::NoFolder(_)), "{e}");
    assert!(e.to_string().contains("does not exist"));

    write_valid(dir.path());
    std::fs::remove_file(dir.path().join(FILE_NAMES[3])).unwrap();
    let msg = load_err(dir.path());
    assert!(
        msg.contains("no t10k-labels-idx1-ubyte.gz or t10k-labels-idx1-ubyte"),
        "{msg}"
    );

    let file = dir.path().join("file");
    std::fs::write(&file, b"x").unwrap();
    assert!(matches!(
        mnist::load_dir(&file),
        Err(DataError::NotAFolder(_))
    ));
}

#[test]
fn truncated_file_names_the_file_and_the_sizes() {
    let dir = tempfile::tempdir().unwrap();
    write_valid(dir.path());
    let mut bytes = images(3, 28, 28);
    bytes.truncate(100);
    replace(dir.path(), 0, bytes);
    let msg = load_err(dir.path());
    assert!(
        msg.contains("train-images-idx3-ubyte") && msg.contains("truncated"),
        "{msg}"
    );
    assert!(msg.contains("2352") && msg.contains("84"), "{msg}");
}

#[test]
fn wrong_magic_is_reported() {
    let dir = tempfile::tempdir().unwrap();
    write_valid(dir.path());
    replace(
        dir.path(),
        2,
        b"\x89PNG\r\n\x1a\n rest of a picture".to_vec(),
    );
    let msg = load_err(dir.path());
    assert!(
        msg.contains("t10k-images-idx3-ubyte") && msg.contains("wrong magic number"),
        "{msg}"
    );
}

#[test]
fn count_mismatch_names_both_files() {
    let dir = tempfile::tempdir().unwrap();
    write_valid(dir.path());
    replace(dir.path(), 1, labels(&[1, 2]));
    let msg = load_err(dir.path());
    assert!(
        msg.contains("has 3 images but") && msg.contains("has 2 labels"),
        "{msg}"
    );
}

#[test]
fn labels_out_of_range_are_rejected() {
    let dir = tempfile::tempdir().unwrap();
    write_valid(dir.path());
    replace(dir.path(), 3, labels(&[9, 10]));
    let msg = load_err(dir.path());
    assert!(msg.contains("label 10 at index 1"), "{msg}");
}

#[test]
fn corrupt_and_truncated_gzip_are_reported() {
    let dir = tempfile::tempdir().unwrap();
    write_valid(dir.path());
    let good = gz(&images(3, 28, 28));
    let path = dir.path().join(format!("{}.gz", FILE_NAMES[0]));

    std::fs::write(&path, &good[..good.len() / 2]).unwrap();
    let msg = load_err(dir.path());
    assert!(msg.contains("corrupt or truncated gzip"), "{msg}");

    let mut bad = good.clone();
    let mid = bad.len() / 2;
    bad[mid] ^= 0xff;
    bad[mid + 1] ^= 0x55;
    std::fs::write(&path, &bad).unwrap();
    let e = mnist::load_dir(dir.path()).unwrap_err();
    assert!(
        matches!(
            e,
            DataError::Idx(IdxError::Gzip { .. }) | DataError::Idx(IdxError::Format { .. })
        ),
        "{e}"
    );
}

#[test]
fn empty_images_are_rejected() {
    let dir = tempfile::tempdir().unwrap();
    write_valid(dir.path());
    replace(dir.path(), 0, idx::encode(&[0, 28, 28], &[]));
    replace(dir.path(), 1, labels(&[]));
    let msg = load_err(dir.path());
    assert!(msg.contains("no usable images"), "{msg}");
}
