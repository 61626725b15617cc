//! `stn predict` on files: read, classify in batches, describe each result (a line of text or
//! of JSON), and optionally write a picture of what the network saw. A file that cannot be
//! read or holds no digit is reported by name; the others are still classified. Files are read
//! through [`stn::read_limited`]: regular files of at most [`read_limited::IMAGE`] (16 MiB)
//! only, so a FIFO or `/dev/zero` is refused at once.

use std::collections::HashSet;
use std::path::{Path, PathBuf};

use serde::Serialize;
use stn::read_limited;

use super::{Digit, Gray, Prediction, Predictor, Theta, digit_from_bytes};
use crate::report::{Canvas, titled_panels};

/// Images classified per forward pass.
const BATCH: usize = 64;
/// Enlargement of the 28x28 pictures written into the `out` folder.
const SCALE: usize = 8;

/// One file's outcome, in the order of the files given.
#[derive(Debug)]
pub enum FileResult<'a> {
    /// The file was classified.
    Classified {
        /// The file.
        file: &'a Path,
        /// What the network made of it.
        prediction: Prediction,
    },
    /// The file could not be classified, or its picture not written.
    Failed {
        /// The file.
        file: &'a Path,
        /// Why, in words.
        error: String,
    },
}

impl FileResult<'_> {
    /// The text `stn predict` prints: `FILE: 7 (98.1%), then 1 (1.2%), 9 (0.3%)` or, for a
    /// failure, `FILE: why`.
    pub fn text(&self) -> String {
        match self {
            Self::Classified { file, prediction } => {
                let pct = |(c, q): (usize, f32)| format!("{c} ({:.1}%)", 100.0 * q);
                let ranked = prediction.ranked();
                let rest: Vec<String> = ranked.iter().skip(1).take(2).map(|&r| pct(r)).collect();
                format!(
                    "{}: {}, then {}",
                    file.display(),
                    pct(ranked[0]),
                    rest.join(", ")
                )
            }
            Self::Failed { file, error } => format!("{}: {error}", file.display()),
        }
    }

    /// One line of `stn predict --json`: `{"file", "class", "probabilities", "theta"}`, or
    /// `{"file", "error"}` for a failure.
    pub fn json(&self) -> String {
        #[derive(Serialize)]
        struct Line<'a> {
            file: String,
            class: usize,
            probabilities: &'a [f32],
            theta: Option<&'a Theta>,
        }
        match self {
            Self::Classified { file, prediction } => serde_json::to_string(&Line {
                file: file.display().to_string(),
                class: prediction.class,
                probabilities: &prediction.probabilities,
                theta: prediction.theta.as_ref(),
            }),
            Self::Failed { file, error } => serde_json::to_string(&serde_json::json!({
                "file": file.display().to_string(), "error": error,
            })),
        }
        .expect("plain values serialize")
    }
}

/// Classifies every file of `files` with `predictor`, calling `report` once per file in
/// order; with `out`, also writes there, per file, a PNG of the network's input beside the
/// transformer's output (`<stem>.png`, `<stem>-2.png` when two files share a stem). Returns
/// the number of failures.
pub fn classify_files<'a>(
    predictor: &Predictor,
    files: &'a [PathBuf],
    out: Option<&Path>,
    mut report: impl FnMut(FileResult<'a>),
) -> std::io::Result<usize> {
    if let Some(dir) = out {
        std::fs::create_dir_all(dir).map_err(|e| {
            std::io::Error::new(e.kind(), format!("cannot create {}: {e}", dir.display()))
        })?;
    }
    let mut failures = 0;
    let mut names = HashSet::new();
    for chunk in files.chunks(BATCH) {
        // Read and prepare the chunk, keeping the files' order for the report.
        let digits: Vec<Result<Digit, String>> = chunk
            .iter()
            .map(|path| {
                read_limited::read(path, read_limited::IMAGE)
                    .map_err(|e| e.reason())
                    .and_then(|bytes| digit_from_bytes(&bytes).map_err(|e| e.to_string()))
            })
            .collect();
        let good: Vec<Digit> = digits
            .iter()
            .filter_map(|d| d.as_ref().ok())
            .cloned()
            .collect();
        let mut predictions = predictor.predict(&good).into_iter();
        for (file, digit) in chunk.iter().zip(digits) {
            // One prediction per good digit, in order.
            let result = match digit.map(|_| predictions.next()) {
                Err(error) => FileResult::Failed { file, error },
                Ok(None) => FileResult::Failed {
                    file,
                    error: "the network gave no answer".into(),
                },
                Ok(Some(prediction)) => {
                    let picture = out.map(|dir| dir.join(picture_name(file, &mut names)));
                    match picture.map(|p| write_picture(&prediction, &p)) {
                        Some(Err(error)) => FileResult::Failed { file, error },
                        _ => FileResult::Classified { file, prediction },
                    }
                }
            };
            failures += matches!(result, FileResult::Failed { .. }) as usize;
            report(result);
        }
    }
    Ok(failures)
}

fn write_picture(p: &Prediction, path: &Path) -> Result<(), String> {
    titled_panels(&[
        ("input", &gray_canvas(&p.input).scaled(SCALE)),
        ("transformed", &gray_canvas(&p.transformed).scaled(SCALE)),
    ])
    .save_png(path)
    .map_err(|e| format!("cannot write {}: {e}", path.display()))
}

/// "<stem>.png" for `path`, with "-2", "-3" ... when two inputs share a stem.
fn picture_name(path: &Path, taken: &mut HashSet<String>) -> String {
    let stem = path
        .file_stem()
        .map_or("image".into(), |s| s.to_string_lossy().into_owned());
    let mut name = format!("{stem}.png");
    let mut k = 2;
    while !taken.insert(name.clone()) {
        name = format!("{stem}-{k}.png");
        k += 1;
    }
    name
}

fn gray_canvas(g: &Gray) -> Canvas {
    let mut c = Canvas::new(g.width, g.height, [0, 0, 0]);
    for (i, &v) in g.pixels.iter().enumerate() {
        let b = (v.clamp(0.0, 1.0) * 255.0).round() as u8;
        c.set(i % g.width, i / g.width, [b, b, b]);
    }
    c
}
