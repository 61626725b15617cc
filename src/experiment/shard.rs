//! Shards of an experiment grid: which of N machines trains which cells.
//!
//! A grid's cells, in the plan's fixed order, are dealt round-robin: cell `k` belongs to shard
//! `k % N`. Every cell is in exactly one shard, so N processes given the same plan and the
//! shards `0/N` to `N-1/N` train every cell once, each into its own run folder.
//!
//! A process learns its shard from `--shard I/N`, else from the scheduler's environment
//! ([`Shard::resolve`]):
//!
//! - a Slurm job array (`sbatch --array=MIN-MAX[:STEP]`): `SLURM_ARRAY_TASK_ID`,
//!   `SLURM_ARRAY_TASK_MIN`, `SLURM_ARRAY_TASK_STEP` and `SLURM_ARRAY_TASK_COUNT`; the index is
//!   `(ID - MIN) / STEP`, the count `COUNT`;
//! - a Kubernetes indexed Job (`completionMode: Indexed`): `JOB_COMPLETION_INDEX`, with the
//!   count from `STN_SHARD_COUNT`, which the manifest sets to the Job's `completions`
//!   (Kubernetes does not tell a pod how many completions its Job has).
//!
//! Without either, the process holds the whole grid (shard `0/1`).

use std::fmt;
use std::str::FromStr;

/// The Slurm array task's ID.
pub const SLURM_ID: &str = "SLURM_ARRAY_TASK_ID";
/// The smallest ID of the Slurm array.
pub const SLURM_MIN: &str = "SLURM_ARRAY_TASK_MIN";
/// The step between the Slurm array's IDs.
pub const SLURM_STEP: &str = "SLURM_ARRAY_TASK_STEP";
/// The number of tasks in the Slurm array.
pub const SLURM_COUNT: &str = "SLURM_ARRAY_TASK_COUNT";
/// The pod's index in a Kubernetes indexed Job.
pub const K8S_INDEX: &str = "JOB_COMPLETION_INDEX";
/// The number of shards beside [`K8S_INDEX`]: set it to the Job's `completions`.
pub const SHARD_COUNT: &str = "STN_SHARD_COUNT";

/// Shard `index` of `count` (0-based): the cells `k` with `k % count == index`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Shard {
    /// Which shard, `0..count`.
    pub index: usize,
    /// How many shards the grid is dealt to, at least 1.
    pub count: usize,
}

/// Where a process's shard came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Origin {
    /// The `--shard` flag.
    Flag,
    /// A Slurm job array's environment.
    Slurm,
    /// A Kubernetes indexed Job's environment.
    Kubernetes,
    /// None given: the whole grid.
    Whole,
}

impl fmt::Display for Origin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Origin::Flag => "--shard",
            Origin::Slurm => "the Slurm job array (SLURM_ARRAY_TASK_*)",
            Origin::Kubernetes => {
                "the Kubernetes indexed Job (JOB_COMPLETION_INDEX, STN_SHARD_COUNT)"
            }
            Origin::Whole => "no shard given: the whole grid",
        })
    }
}

/// Why a shard could not be read.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ShardError {
    /// `--shard`'s value is not of the form `I/N` with `I < N`.
    #[error("{why} (expected I/N with 0 <= I < N, e.g. 0/4)")]
    Flag {
        /// The text given.
        value: String,
        /// What is wrong with it.
        why: String,
    },
    /// A scheduler variable is missing, not a number, or inconsistent.
    #[error("{what}; pass --shard I/N to choose the shard yourself")]
    Env {
        /// What is wrong, naming the variables.
        what: String,
    },
}

impl Shard {
    /// The whole grid: one shard holding every cell.
    pub const WHOLE: Shard = Shard { index: 0, count: 1 };

    /// Shard `index` of `count`, if `index < count`.
    pub fn new(index: usize, count: usize) -> Option<Self> {
        (index < count).then_some(Self { index, count })
    }

    /// Whether this shard holds every cell.
    pub fn is_whole(self) -> bool {
        self.count == 1
    }

    /// Whether cell `k` (its position in the plan) belongs to this shard.
    pub fn owns(self, k: usize) -> bool {
        k % self.count == self.index
    }

    /// The shard that cell `k` belongs to.
    pub fn owner(k: usize, count: usize) -> usize {
        k % count
    }

    /// The positions (in the plan of `cells` cells) of this shard's cells.
    pub fn cells(self, cells: usize) -> Vec<usize> {
        (self.index..cells).step_by(self.count).collect()
    }

    /// The shard the flag names, else the one the environment (read through `var`) names,
    /// else the whole grid. Slurm's variables are read before Kubernetes'.
    pub fn resolve(
        flag: Option<Shard>,
        var: impl Fn(&str) -> Option<String>,
    ) -> Result<(Shard, Origin), ShardError> {
        if let Some(s) = flag {
            return Ok((s, Origin::Flag));
        }
        if let Some(s) = from_slurm(&var)? {
            return Ok((s, Origin::Slurm));
        }
        if let Some(s) = from_kubernetes(&var)? {
            return Ok((s, Origin::Kubernetes));
        }
        Ok((Shard::WHOLE, Origin::Whole))
    }

    /// [`Shard::resolve`] with this process's environment.
    pub fn resolve_env(flag: Option<Shard>) -> Result<(Shard, Origin), ShardError> {
        Self::resolve(flag, |k| std::env::var(k).ok())
    }
}

impl FromStr for Shard {
    type Err = ShardError;

    /// Reads `I/N`, e.g. `0/4`.
    fn from_str(s: &str) -> Result<Self, ShardError> {
        let err = |why: &str| ShardError::Flag {
            value: s.to_string(),
            why: why.to_string(),
        };
        let (i, n) = s.trim().split_once('/').ok_or_else(|| err("no '/'"))?;
        let i: usize = i
            .trim()
            .parse()
            .map_err(|_| err("the index I is not a whole number"))?;
        let n: usize = n
            .trim()
            .parse()
            .map_err(|_| err("the count N is not a whole number"))?;
        if n == 0 {
            return Err(err("the count N must be at least 1"));
        }
        Shard::new(i, n).ok_or_else(|| err("the index I must be less than the count N"))
    }
}

impl fmt::Display for Shard {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.index, self.count)
    }
}

/// The variable `name` as a whole number, `None` if unset (or empty).
fn number(var: &impl Fn(&str) -> Option<String>, name: &str) -> Result<Option<usize>, ShardError> {
    match var(name) {
        None => Ok(None),
        Some(v) if v.trim().is_empty() => Ok(None),
        Some(v) => v.trim().parse().map(Some).map_err(|_| ShardError::Env {
            what: format!("{name}={v:?} is not a whole number"),
        }),
    }
}

fn env_err(what: String) -> ShardError {
    ShardError::Env { what }
}

fn from_slurm(var: &impl Fn(&str) -> Option<String>) -> Result<Option<Shard>, ShardError> {
    let Some(id) = number(var, SLURM_ID)? else {
        return Ok(None);
    };
    let count = number(var, SLURM_COUNT)?.ok_or_else(|| {
        env_err(format!(
            "{SLURM_ID} is set but {SLURM_COUNT} is not (Slurm sets both in a job array)"
        ))
    })?;
    let min = number(var, SLURM_MIN)?.unwrap_or(0);
    let step = number(var, SLURM_STEP)?.unwrap_or(1).max(1);
    let offset = id
        .checked_sub(min)
        .ok_or_else(|| env_err(format!("{SLURM_ID}={id} is below {SLURM_MIN}={min}")))?;
    if offset % step != 0 {
        return Err(env_err(format!(
            "{SLURM_ID}={id} is not on the array's steps ({SLURM_MIN}={min}, {SLURM_STEP}={step}); \
             shard with a plain range such as --array=0-{}",
            count.max(1) - 1
        )));
    }
    let index = offset / step;
    Shard::new(index, count).map(Some).ok_or_else(|| {
        env_err(format!(
            "the Slurm array task is number {index} ({SLURM_ID}={id}, {SLURM_MIN}={min}, \
             {SLURM_STEP}={step}) but {SLURM_COUNT}={count}; shard with a plain range such as \
             --array=0-{}",
            count.max(1) - 1
        ))
    })
}

fn from_kubernetes(var: &impl Fn(&str) -> Option<String>) -> Result<Option<Shard>, ShardError> {
    let index = number(var, K8S_INDEX)?;
    let count = number(var, SHARD_COUNT)?;
    match (index, count) {
        (None, None) => Ok(None),
        (Some(_), None) => Err(env_err(format!(
            "{K8S_INDEX} is set (a Kubernetes indexed Job) but {SHARD_COUNT} is not: set it to \
             the Job's completions"
        ))),
        (None, Some(_)) => Err(env_err(format!(
            "{SHARD_COUNT} is set but no shard index ({K8S_INDEX} or {SLURM_ID})"
        ))),
        (Some(i), Some(n)) => Shard::new(i, n).map(Some).ok_or_else(|| {
            env_err(format!(
                "{K8S_INDEX}={i} is not below {SHARD_COUNT}={n} (set {SHARD_COUNT} to the \
                 Job's completions)"
            ))
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let pairs: Vec<(String, String)> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        move |k| pairs.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone())
    }

    fn shard(i: usize, n: usize) -> Shard {
        Shard::new(i, n).unwrap()
    }

    #[test]
    fn the_flag_reads_i_of_n() {
        assert_eq!("0/4".parse(), Ok(shard(0, 4)));
        assert_eq!("3/4".parse(), Ok(shard(3, 4)));
        assert_eq!(" 2 / 5 ".parse(), Ok(shard(2, 5)));
        assert_eq!("0/1".parse(), Ok(Shard::WHOLE));
        assert_eq!(shard(3, 4).to_string(), "3/4");
    }

    #[test]
    fn bad_flags_say_what_is_wrong() {
        for (value, why) in [
            ("4/4", "less than the count"),
            ("5/4", "less than the count"),
            ("0/0", "at least 1"),
            ("1", "no '/'"),
            ("", "no '/'"),
            ("-1/4", "index I is not a whole number"),
            ("a/4", "index I is not a whole number"),
            ("1/b", "count N is not a whole number"),
            ("1/2/3", "count N is not a whole number"),
            ("1.0/4", "index I is not a whole number"),
        ] {
            let e = value.parse::<Shard>().unwrap_err().to_string();
            assert!(e.contains(why), "{value:?}: {e}");
            assert!(e.contains("expected I/N"), "{value:?}: {e}");
        }
    }

    #[test]
    fn the_flag_wins_over_the_environment() {
        let vars = env(&[
            (SLURM_ID, "3"),
            (SLURM_COUNT, "4"),
            (K8S_INDEX, "1"),
            (SHARD_COUNT, "2"),
        ]);
        assert_eq!(
            Shard::resolve(Some(shard(1, 3)), &vars),
            Ok((shard(1, 3), Origin::Flag))
        );
        // Even over a broken environment: the flag is how to override it.
        let broken = env(&[(SLURM_ID, "x")]);
        assert_eq!(
            Shard::resolve(Some(shard(0, 2)), broken),
            Ok((shard(0, 2), Origin::Flag))
        );
    }

    #[test]
    fn no_flag_and_no_scheduler_is_the_whole_grid() {
        assert_eq!(
            Shard::resolve(None, env(&[])),
            Ok((Shard::WHOLE, Origin::Whole))
        );
        assert_eq!(
            Shard::resolve(None, env(&[(SLURM_ID, ""), (K8S_INDEX, " ")])),
            Ok((Shard::WHOLE, Origin::Whole))
        );
    }

    #[test]
    fn slurm_arrays_shard_by_task_id_less_the_minimum() {
        let slurm = |id: &str, min: Option<&str>, step: Option<&str>, count: &str| {
            let mut v = vec![(SLURM_ID, id), (SLURM_COUNT, count)];
            v.extend(min.map(|m| (SLURM_MIN, m)));
            v.extend(step.map(|s| (SLURM_STEP, s)));
            Shard::resolve(None, env(&v))
        };
        assert_eq!(
            slurm("2", Some("0"), None, "4"),
            Ok((shard(2, 4), Origin::Slurm))
        );
        assert_eq!(
            slurm("2", None, None, "4"),
            Ok((shard(2, 4), Origin::Slurm))
        );
        // --array=1-4
        assert_eq!(
            slurm("1", Some("1"), Some("1"), "4"),
            Ok((shard(0, 4), Origin::Slurm))
        );
        assert_eq!(
            slurm("4", Some("1"), Some("1"), "4"),
            Ok((shard(3, 4), Origin::Slurm))
        );
        // --array=10-40:10
        assert_eq!(
            slurm("30", Some("10"), Some("10"), "4"),
            Ok((shard(2, 4), Origin::Slurm))
        );
        // Slurm wins over Kubernetes' variables.
        let both = env(&[
            (SLURM_ID, "1"),
            (SLURM_COUNT, "2"),
            (K8S_INDEX, "0"),
            (SHARD_COUNT, "5"),
        ]);
        assert_eq!(Shard::resolve(None, both), Ok((shard(1, 2), Origin::Slurm)));
    }

    #[test]
    fn bad_slurm_variables_are_named() {
        let err =
            |pairs: &[(&str, &str)]| Shard::resolve(None, env(pairs)).unwrap_err().to_string();
        let e = err(&[(SLURM_ID, "1")]);
        assert!(e.contains("SLURM_ARRAY_TASK_COUNT is not"), "{e}");
        let e = err(&[(SLURM_ID, "one"), (SLURM_COUNT, "2")]);
        assert!(
            e.contains("SLURM_ARRAY_TASK_ID=\"one\" is not a whole number"),
            "{e}"
        );
        let e = err(&[(SLURM_ID, "1"), (SLURM_COUNT, "-2")]);
        assert!(e.contains("SLURM_ARRAY_TASK_COUNT=\"-2\""), "{e}");
        let e = err(&[(SLURM_ID, "0"), (SLURM_MIN, "1"), (SLURM_COUNT, "2")]);
        assert!(e.contains("below SLURM_ARRAY_TASK_MIN=1"), "{e}");
        // --array=0,1,5: count 3, and ID 5 is task number 5.
        let e = err(&[(SLURM_ID, "5"), (SLURM_MIN, "0"), (SLURM_COUNT, "3")]);
        assert!(e.contains("number 5") && e.contains("--array=0-2"), "{e}");
        let e = err(&[
            (SLURM_ID, "5"),
            (SLURM_MIN, "0"),
            (SLURM_STEP, "2"),
            (SLURM_COUNT, "3"),
        ]);
        assert!(e.contains("not on the array's steps"), "{e}");
        let e = err(&[(SLURM_ID, "0"), (SLURM_COUNT, "0")]);
        assert!(e.contains("SLURM_ARRAY_TASK_COUNT=0"), "{e}");
        assert!(e.contains("pass --shard I/N"), "{e}");
    }

    #[test]
    fn kubernetes_indexed_jobs_need_the_count() {
        assert_eq!(
            Shard::resolve(None, env(&[(K8S_INDEX, "3"), (SHARD_COUNT, "8")])),
            Ok((shard(3, 8), Origin::Kubernetes))
        );
        let err =
            |pairs: &[(&str, &str)]| Shard::resolve(None, env(pairs)).unwrap_err().to_string();
        let e = err(&[(K8S_INDEX, "3")]);
        assert!(e.contains("STN_SHARD_COUNT is not"), "{e}");
        let e = err(&[(SHARD_COUNT, "3")]);
        assert!(e.contains("no shard index"), "{e}");
        let e = err(&[(K8S_INDEX, "3"), (SHARD_COUNT, "3")]);
        assert!(
            e.contains("JOB_COMPLETION_INDEX=3 is not below STN_SHARD_COUNT=3"),
            "{e}"
        );
        let e = err(&[(K8S_INDEX, "3"), (SHARD_COUNT, "0")]);
        assert!(e.contains("not below STN_SHARD_COUNT=0"), "{e}");
        let e = err(&[(K8S_INDEX, "x"), (SHARD_COUNT, "3")]);
        assert!(e.contains("JOB_COMPLETION_INDEX=\"x\""), "{e}");
    }

    #[test]
    fn every_cell_is_in_exactly_one_shard() {
        for cells in [0, 1, 5, 19, 24, 100] {
            for count in 1..=25 {
                let mut seen = vec![0usize; cells];
                for index in 0..count {
                    let s = shard(index, count);
                    let mine = s.cells(cells);
                    assert!(mine.windows(2).all(|w| w[0] < w[1]), "in plan order");
                    for &k in &mine {
                        assert!(s.owns(k));
                        assert_eq!(Shard::owner(k, count), index);
                        seen[k] += 1;
                    }
                    assert_eq!(
                        mine.len(),
                        (0..cells).filter(|&k| s.owns(k)).count(),
                        "cells() lists what owns() says"
                    );
                    // Round-robin: the shards' sizes differ by at most one.
                    assert!(mine.len() == cells / count || mine.len() == cells.div_ceil(count));
                }
                assert!(
                    seen.iter().all(|&n| n == 1),
                    "{cells} cells, {count} shards"
                );
            }
        }
        assert_eq!(shard(1, 4).cells(10), vec![1, 5, 9]);
        assert_eq!(Shard::WHOLE.cells(3), vec![0, 1, 2]);
    }
}
