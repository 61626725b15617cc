//! An experiment (Table 1, MNIST addition) as a grid of cells spread over machines: each process trains its shard's cells
//! ([`train_shard`]), then one process reads every cell's run folder and writes the tables
//! ([`collect`]).
//!
//! The cells are the models of [`planned_runs`], in the plan's fixed order, dealt
//! round-robin to shards (see [`Shard`]). Every cell is an ordinary training run in its own
//! folder of the shared experiment folder, opened as [`train::open`] opens it: resumed where it
//! stopped, never replaced. A shard generates only the datasets its cells need, trains its
//! cells, draws a dataset's picture if it holds the cell that draws it
//! ([`PlannedRun::draws_picture`]), and writes no table: [`collect`] does, from whatever cells are
//! finished (every epoch of the budget done), and says which are not. The unsharded experiment
//! ([`run_whole`]) is the whole grid as one shard, then [`collect`].
//!
//! While a process trains a cell it holds an exclusive lock on
//! `<experiment>/.locks/<run folder>.lock`; a process that finds the lock taken leaves the
//! cell alone and fails at the end ([`ExperimentError::Busy`]), so overlapping shards (two
//! arrays on the same folder, a shard count changed half way) never write one run folder at
//! once. File systems without locks only lose this safety net.

use std::borrow::Cow;
use std::fs::{File, OpenOptions, TryLockError};
use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicBool;

use burn::module::Module;

use super::shard::Shard;
use super::table1::GridData;
use super::table1::{
    Cell, ExperimentError, FreshDistortions, Options, PlannedRun, picture_path, planned_runs,
    write_reports,
};
use crate::pictures::WithPictures;
use stn::checkpoint::Checkpoint;
use stn::data::Dataset;
use stn::run::CHECKPOINT_FILE;
use stn::train::{self, Observer, Open, Outcome, Trainer};

/// The data of the dataset being trained: as generated (and limited), and for budgets that
/// distort the training digits afresh every epoch, the source digits to redraw them from.
struct Data {
    dataset: GridData,
    data: Dataset,
    fresh: Option<FreshDistortions>,
}

/// Folder of the cells' lock files, in the experiment folder.
pub const LOCKS_DIR: &str = ".locks";

/// Test digits in a dataset's picture.
const PICTURE_DIGITS: usize = 64;

/// What [`train_shard`] did with one of its cells.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Trained {
    /// Trained epochs `first..=last` now.
    Epochs {
        /// The first epoch trained now (from 1).
        first: usize,
        /// The last epoch, the budget's.
        last: usize,
    },
    /// Already finished before: nothing to train.
    AlreadyFinished,
}

/// One of a shard's cells after [`train_shard`].
#[derive(Clone, Debug)]
pub struct ShardCell {
    /// Position in the plan (cell `k` of the grid).
    pub index: usize,
    /// The run.
    pub planned: PlannedRun,
    /// What was done.
    pub trained: Trained,
}

/// Where a planned cell's run folder stands, read without training ([`survey`]).
#[derive(Clone, Debug, PartialEq)]
pub enum State {
    /// Every epoch of the budget done.
    Finished,
    /// Started, not finished.
    Partial {
        /// Epochs done.
        done: usize,
        /// Epochs of the budget.
        epochs: usize,
    },
    /// No checkpoint in the run folder (or no folder).
    NotStarted,
    /// The folder holds a run of another architecture, recipe or data (e.g. another budget
    /// or other flags): it is not this cell's and is left alone.
    Different(&'static str),
    /// The checkpoint cannot be read.
    Unreadable(String),
}

impl State {
    /// A few words for listings.
    pub fn describe(&self) -> String {
        match self {
            State::Finished => "finished".into(),
            State::Partial { done, epochs } => format!("partial ({done} of {epochs} epochs)"),
            State::NotStarted => "not started".into(),
            State::Different(what) => format!("holds a run of another {what}"),
            State::Unreadable(e) => format!("unreadable ({e})"),
        }
    }
}

/// One planned cell and where it stands.
#[derive(Clone, Debug)]
pub struct CellState {
    /// Position in the plan (cell `k` of the grid).
    pub index: usize,
    /// The run.
    pub planned: PlannedRun,
    /// Where its folder stands.
    pub state: State,
    /// Its result, where [`State::Finished`].
    pub cell: Option<Cell>,
}

/// What [`collect`] found.
#[derive(Clone, Debug)]
pub struct Collected {
    /// The finished cells, in plan order: what the tables show.
    pub cells: Vec<Cell>,
    /// The cells not finished, in plan order.
    pub missing: Vec<CellState>,
    /// Every planned cell.
    pub planned: usize,
    /// Whether the tables were written (there was at least one finished cell).
    pub wrote: bool,
}

/// Trains (resumes, or leaves as they are if finished) the cells of `shard` into their run
/// folders under `opts.out`, generating only the datasets they need, and draws the pictures
/// of the datasets whose picture cell it holds. Writes no table (see [`collect`]).
///
/// Cells whose lock another process holds are left alone; after the others are done this
/// fails with [`ExperimentError::Busy`].
pub fn train_shard(
    opts: &mut Options,
    shard: Shard,
    observer: &mut dyn Observer,
    stop: &AtomicBool,
) -> Result<Vec<ShardCell>, ExperimentError> {
    let planned = planned_runs(opts);
    create_dir(&opts.out)?;
    let mine = shard.cells(planned.len());
    if !shard.is_whole() {
        (opts.log)(&format!(
            "shard {shard}: cells {} of the {} planned",
            list(&mine),
            planned.len()
        ));
    }
    let mut done = Vec::new();
    let mut busy = Vec::new();
    // Plan order is dataset by dataset: one dataset's cells are neighbours in `mine`.
    let mut data: Option<Data> = None;
    for &k in &mine {
        let p = &planned[k];
        if data.as_ref().is_some_and(|d| d.dataset != p.entry.dataset) {
            data = None;
        }
        let Some(_lock) = lock(&opts.out, p, opts.log)? else {
            (opts.log)(&format!(
                "cell {k} {} {}: being trained by another process ({}); left alone",
                p.entry.dataset.name().to_uppercase(),
                p.entry.label,
                lock_path(&opts.out, p).display()
            ));
            busy.push(p.dir.clone());
            continue;
        };
        let (mut trainer, _) = train::open(&p.dir, Open::ResumeOrNew(p.run.clone()), &opts.device)?;
        let first = trainer.progress().epochs_done + 1;
        let last = p.run.config.epochs;
        let trained = if first <= last {
            let data = dataset(&mut data, p, (&opts.base, opts.data_seed), opts.log)?;
            train_cell(k, p, &mut trainer, data, observer, stop, opts.log)?;
            Trained::Epochs { first, last }
        } else {
            Trained::AlreadyFinished
        };
        if let Some(cell) = Cell::of(p, trainer.progress()) {
            (opts.log)(&format!(
                "{} {} (seed {}): test error {:.2}% after {} epochs",
                p.entry.dataset.name().to_uppercase(),
                p.entry.label,
                p.entry.seed,
                cell.error,
                cell.epochs
            ));
        }
        let picture = picture_path(&opts.out, p.entry.dataset);
        if p.draws_picture && (trained != Trained::AlreadyFinished || !picture.exists()) {
            let test = &dataset(&mut data, p, (&opts.base, opts.data_seed), opts.log)?
                .data
                .test;
            // Several channels are drawn as a tile each: fewer images keep the picture as wide.
            let count = PICTURE_DIGITS / test.channels.pow(2);
            crate::report::transformed_digits(&trainer.net.valid(), test, count)
                .save_png(&picture)
                .map_err(|source| ExperimentError::Io {
                    path: picture,
                    source,
                })?;
        }
        done.push(ShardCell {
            index: k,
            planned: p.clone(),
            trained,
        });
    }
    if busy.is_empty() {
        Ok(done)
    } else {
        Err(ExperimentError::Busy { runs: busy })
    }
}

/// The data of `p`'s dataset, generated on first need (one dataset at a time is kept);
/// `base` is the folder of the source digits, `data_seed` the datasets' seed.
fn dataset<'d>(
    data: &'d mut Option<Data>,
    p: &PlannedRun,
    (base, data_seed): (&Path, u64),
    log: &mut dyn FnMut(&str),
) -> Result<&'d Data, ExperimentError> {
    if data.is_none() {
        log(&format!("generating {}", p.run.data.source.describe()));
        let generated = p.run.data.load()?;
        let fresh = if p.budget.fresh_distortions() {
            Some(FreshDistortions {
                base: stn::data::mnist::load_dir(base)?.train,
                kind: p.entry.dataset,
                seed: data_seed,
            })
        } else {
            None
        };
        *data = Some(Data {
            dataset: p.entry.dataset,
            data: generated,
            fresh,
        });
    }
    Ok(data.as_ref().expect("just loaded"))
}

fn train_cell(
    k: usize,
    p: &PlannedRun,
    trainer: &mut Trainer,
    data: &Data,
    observer: &mut dyn Observer,
    stop: &AtomicBool,
    log: &mut dyn FnMut(&str),
) -> Result<(), ExperimentError> {
    let done = trainer.progress().epochs_done;
    log(&format!(
        "cell {k} {} {} ({}, {} parameters, seed {}): epochs {}..{} -> {}",
        p.entry.dataset.name().to_uppercase(),
        p.entry.label,
        p.entry.model.name(),
        p.entry.model.parameter_count(),
        p.entry.seed,
        done + 1,
        p.run.config.epochs,
        p.dir.display()
    ));
    let mut observer = WithPictures::new(&p.dir, &data.data.test, done, observer);
    // Epoch e's training images: the generated ones, or (fresh distortions) redrawn.
    let train = |epoch: usize| match &data.fresh {
        Some(f) => f.epoch(epoch, &data.data.train),
        None => Cow::Borrowed(&data.data.train),
    };
    match trainer
        .run_with(&train, &data.data.test, &mut observer, stop)
        .map_err(|source| ExperimentError::Train {
            run: p.dir.display().to_string(),
            source,
        })? {
        Outcome::Completed => Ok(()),
        Outcome::Interrupted { .. } => Err(ExperimentError::Interrupted),
    }
}

/// Where every planned cell of `planned` stands, read from the run folders (checkpoints only:
/// nothing is trained, generated or written).
pub fn survey(planned: &[PlannedRun]) -> Vec<CellState> {
    planned
        .iter()
        .enumerate()
        .map(|(index, p)| {
            let (state, cell) = read_state(p);
            CellState {
                index,
                planned: p.clone(),
                state,
                cell,
            }
        })
        .collect()
}

fn read_state(p: &PlannedRun) -> (State, Option<Cell>) {
    let path = p.dir.join(CHECKPOINT_FILE);
    if !path.exists() {
        return (State::NotStarted, None);
    }
    let checkpoint = match Checkpoint::load(&path) {
        Ok(c) => c,
        Err(e) => return (State::Unreadable(e.to_string()), None),
    };
    let Some(progress) = checkpoint.progress else {
        return (
            State::Unreadable("a bare model, not a training run".into()),
            None,
        );
    };
    // The same test as resuming (train::open with ResumeOrNew): a folder counts for this cell
    // only if it holds this very run.
    let different = if checkpoint.model != p.run.model {
        Some("architecture")
    } else if progress.config != p.run.config {
        Some("recipe")
    } else if progress.data != p.run.data {
        Some("data")
    } else {
        None
    };
    if let Some(what) = different {
        return (State::Different(what), None);
    }
    let epochs = p.run.config.epochs;
    if progress.epochs_done < epochs {
        return (
            State::Partial {
                done: progress.epochs_done,
                epochs,
            },
            None,
        );
    }
    match Cell::of(p, &progress) {
        Some(cell) => (State::Finished, Some(cell)),
        None => (State::Unreadable("no metrics".into()), None),
    }
}

/// Reads every planned cell's run folder and, if at least one cell is finished, writes
/// `<experiment>.md`, `.json` and `.png` (`table1.*`, `addition.*`) from the finished ones (atomically: a
/// concurrent reader sees an old table or the new one). Trains nothing; unfinished cells are
/// listed in [`Collected::missing`] and left out of the tables.
pub fn collect(opts: &mut Options) -> Result<Collected, ExperimentError> {
    let planned = planned_runs(opts);
    let states = survey(&planned);
    let mut cells = Vec::new();
    let mut missing = Vec::new();
    for s in states {
        match &s.cell {
            Some(c) => cells.push(c.clone()),
            None => missing.push(s),
        }
    }
    let wrote = !cells.is_empty();
    if wrote {
        create_dir(&opts.out)?;
        write_reports(&opts.out, opts.experiment, opts.budget, &cells)?;
    }
    Ok(Collected {
        cells,
        missing,
        planned: planned.len(),
        wrote,
    })
}

/// The unsharded experiment: every cell as one shard ([`train_shard`] with
/// [`Shard::WHOLE`]), then [`collect`]. Returns the table's cells.
pub fn run_whole(
    mut opts: Options,
    observer: &mut dyn Observer,
    stop: &AtomicBool,
) -> Result<Vec<Cell>, ExperimentError> {
    train_shard(&mut opts, Shard::WHOLE, observer, stop)?;
    Ok(collect(&mut opts)?.cells)
}

/// The lock file of `p`'s cell.
pub fn lock_path(out: &Path, p: &PlannedRun) -> PathBuf {
    let name = p
        .dir
        .file_name()
        .map_or_else(|| std::ffi::OsString::from("run"), |n| n.to_os_string());
    let mut file = name;
    file.push(".lock");
    out.join(LOCKS_DIR).join(file)
}

/// Takes the cell's lock: `Ok(None)` if another process holds it. Where the file system has no
/// locks, a note is logged and the cell is trained unlocked.
fn lock(
    out: &Path,
    p: &PlannedRun,
    log: &mut dyn FnMut(&str),
) -> Result<Option<Option<File>>, ExperimentError> {
    let path = lock_path(out, p);
    create_dir(path.parent().expect("in the locks folder"))?;
    let file = OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .map_err(|source| ExperimentError::Io {
            path: path.clone(),
            source,
        })?;
    match file.try_lock() {
        Ok(()) => Ok(Some(Some(file))),
        Err(TryLockError::WouldBlock) => Ok(None),
        Err(TryLockError::Error(e)) => {
            log(&format!(
                "note: cannot lock {} ({e}); training without the lock",
                path.display()
            ));
            Ok(Some(None))
        }
    }
}

fn create_dir(dir: &Path) -> Result<(), ExperimentError> {
    std::fs::create_dir_all(dir).map_err(|source| ExperimentError::Io {
        path: dir.to_path_buf(),
        source,
    })
}

/// "1, 5, 9" (or "none").
fn list(cells: &[usize]) -> String {
    if cells.is_empty() {
        return "none".into();
    }
    cells
        .iter()
        .map(|k| k.to_string())
        .collect::<Vec<_>>()
        .join(", ")
}
