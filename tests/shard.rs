//! `stn experiment table1` spread over shards, with the real binary: two shards (one named by
//! --shard, one by a Slurm job array's environment) and a collect give the same table and the
//! same weights as the unsharded experiment; a collect of an unfinished grid writes what is
//! finished and lists the rest; bad shards are usage errors. The smoke budget on the R dataset
//! made from 2000 + 500 vendored digits: about half a minute in all on 2 cores.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use stn::checkpoint::Checkpoint;
use stn::data::Source;
use stn::data::mnist::write_split;

/// The scheduler variables a shard reads: removed from every child, set only where a test
/// says so (the tests may themselves run inside a Slurm job).
const SCHEDULER_VARS: [&str; 6] = [
    "SLURM_ARRAY_TASK_ID",
    "SLURM_ARRAY_TASK_MIN",
    "SLURM_ARRAY_TASK_STEP",
    "SLURM_ARRAY_TASK_COUNT",
    "JOB_COMPLETION_INDEX",
    "STN_SHARD_COUNT",
];

/// The Table 1 grid on R made from `base`'s digits, at `budget`.
struct Grid {
    base: PathBuf,
    budget: &'static str,
}

impl Grid {
    /// `stn experiment table1` at the grid's budget on R into `out`, with `extra` flags and
    /// `env` variables.
    fn run(&self, out: &Path, extra: &[&str], env: &[(&str, &str)]) -> Output {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_stn"));
        cmd.current_dir(env!("CARGO_MANIFEST_DIR"))
            .args(["experiment", "table1", "--datasets", "r", "--budget"])
            .arg(self.budget)
            .arg("--data")
            .arg(&self.base)
            .arg("--out")
            .arg(out)
            .args(extra);
        for v in SCHEDULER_VARS {
            cmd.env_remove(v);
        }
        cmd.envs(env.iter().copied());
        cmd.output().expect("stn runs")
    }
}

fn text(out: &Output) -> (String, String) {
    (
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// Asserts success and returns stdout.
fn ok(out: Output) -> String {
    let (stdout, stderr) = text(&out);
    assert!(
        out.status.success(),
        "exit {:?}\nstdout:\n{stdout}\nstderr:\n{stderr}",
        out.status.code()
    );
    stdout
}

/// Asserts the exit status and that stderr says `needle`, without a panic.
fn fails(out: &Output, code: i32, needle: &str) {
    let (stdout, stderr) = text(out);
    assert_eq!(
        out.status.code(),
        Some(code),
        "stdout:\n{stdout}\nstderr:\n{stderr}"
    );
    assert!(stderr.contains(needle), "stderr lacks {needle:?}: {stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
}

/// The first 2000 training and 500 test digits of the vendored MNIST, as a folder.
fn small_base(dir: &Path) {
    base_of(dir, 2000, 500);
}

/// The first `train` training and `test` test digits of the vendored MNIST, as a folder.
fn base_of(dir: &Path, train: usize, test: usize) {
    let vendored = Path::new(env!("CARGO_MANIFEST_DIR")).join("data/mnist");
    let mut data = Source::Folder(vendored).load().expect("vendored MNIST");
    data.train.truncate(train);
    data.test.truncate(test);
    std::fs::create_dir_all(dir).unwrap();
    write_split(dir, &data.train, true).unwrap();
    write_split(dir, &data.test, false).unwrap();
}

/// table1.json without what may differ between two experiment folders: training times and
/// where the runs are (their folder names are kept).
fn table_without_timing(out: &Path) -> serde_json::Value {
    let text = std::fs::read_to_string(out.join("table1.json")).expect("table1.json");
    let mut v: serde_json::Value = serde_json::from_str(&text).unwrap();
    fn strip(v: &mut serde_json::Value) {
        match v {
            serde_json::Value::Object(m) => {
                m.remove("train_seconds");
                m.remove("seconds");
                if let Some(serde_json::Value::String(run)) = m.get_mut("run") {
                    *run = Path::new(run.as_str())
                        .file_name()
                        .unwrap()
                        .to_string_lossy()
                        .into_owned();
                }
                m.values_mut().for_each(strip);
            }
            serde_json::Value::Array(a) => a.iter_mut().for_each(strip),
            _ => {}
        }
    }
    strip(&mut v);
    v
}

/// How many cells a table1.json holds (a list of cells, or an object with one).
fn cells(table: &serde_json::Value) -> usize {
    let list = table.get("cells").unwrap_or(table);
    list.as_array().expect("a list of cells").len()
}

/// A run's checkpoint with its timing fields zeroed.
fn checkpoint_without_timing(run: &Path) -> Checkpoint {
    let mut c = Checkpoint::load(&run.join("checkpoint.stn")).unwrap();
    for m in &mut c.progress.as_mut().unwrap().metrics {
        m.train_seconds = 0.0;
        m.images_per_second = 0.0;
    }
    c
}

const RUNS: [&str; 4] = ["r-cnn", "r-st-affine", "r-st-projective", "r-st-tps16"];

#[test]
fn two_shards_and_a_collect_make_the_unsharded_table() {
    let tmp = tempfile::tempdir().unwrap();
    let grid = Grid {
        base: tmp.path().join("digits"),
        budget: "smoke",
    };
    small_base(&grid.base);
    let sharded = tmp.path().join("sharded");

    // The plan: four cells, none started.
    let list = ok(grid.run(&sharded, &["--list"], &[]));
    assert_eq!(list.lines().count(), 5, "{list}");
    assert_eq!(list.matches("not started").count(), 4, "{list}");
    for run in RUNS {
        assert!(list.contains(run), "{run} in {list}");
    }
    let list = ok(grid.run(&sharded, &["--list", "--shard", "1/2"], &[]));
    assert!(list.contains("\n1\t1/2\tr\tST-CNN affine\t"), "{list}");
    assert!(list.contains("\n3\t1/2\tr\tST-CNN TPS\t"), "{list}");
    assert_eq!(list.lines().count(), 3, "{list}");

    // Nothing finished: nothing to tabulate.
    let out = grid.run(&sharded, &["--collect"], &[]);
    fails(&out, 1, "no cell of the 4 planned is finished");
    assert_eq!(text(&out).0.matches(": not started").count(), 4);

    // Shard 0 of 2 by the flag: cells 0 and 2, no table.
    let s0 = ok(grid.run(&sharded, &["--shard", "0/2"], &[]));
    assert!(s0.contains("shard 0/2 (from --shard): 2 cells"), "{s0}");
    assert!(
        s0.contains("cell 0 R CNN") && s0.contains("cell 2 R ST-CNN projective"),
        "{s0}"
    );
    assert!(s0.contains("trained epochs 1..1"), "{s0}");
    assert!(!sharded.join("table1.json").exists());
    assert!(!sharded.join("r.png").exists(), "the picture is cell 1's");
    assert!(sharded.join("r-cnn/checkpoint.stn").exists());
    assert!(!sharded.join("r-st-affine").exists());

    // Half the grid: a table of two cells, the other two listed; --require-all fails.
    let half = ok(grid.run(&sharded, &["--collect"], &[]));
    assert!(half.contains("missing: 2 of the 4 cells"), "{half}");
    assert!(half.contains("cell 1 R ST-CNN affine"), "{half}");
    assert!(half.contains("from 2 of the 4 cells"), "{half}");
    let table = table_without_timing(&sharded);
    assert_eq!(cells(&table), 2, "{table}");
    let out = grid.run(&sharded, &["--collect", "--require-all"], &[]);
    fails(&out, 1, "--require-all: 2 of the 4 cells are not finished");
    assert!(sharded.join("table1.json").exists());

    // Shard 1 of 2 from a Slurm job array (--array=1-2: ID 2 is the second task).
    let slurm = [
        ("SLURM_ARRAY_TASK_ID", "2"),
        ("SLURM_ARRAY_TASK_MIN", "1"),
        ("SLURM_ARRAY_TASK_COUNT", "2"),
    ];
    let s1 = ok(grid.run(&sharded, &[], &slurm));
    assert!(s1.contains("shard 1/2 (from the Slurm job array"), "{s1}");
    assert!(
        s1.contains("cell 1 R ST-CNN affine") && s1.contains("cell 3 R ST-CNN TPS"),
        "{s1}"
    );
    assert!(sharded.join("r.png").exists());

    // Again: nothing left to train.
    let again = ok(grid.run(&sharded, &["--shard", "0/2"], &[]));
    assert_eq!(again.matches("already finished").count(), 2, "{again}");
    assert!(
        !again.contains("generating"),
        "no data for finished cells: {again}"
    );

    let full = ok(grid.run(&sharded, &["--collect", "--require-all"], &[]));
    assert!(!full.contains("missing"), "{full}");
    assert!(full.contains("from 4 of the 4 cells"), "{full}");
    let list = ok(grid.run(&sharded, &["--list"], &[]));
    assert_eq!(list.matches("\tfinished").count(), 4, "{list}");

    // The unsharded experiment in another folder: the same table, weights and picture.
    let whole = tmp.path().join("whole");
    let w = ok(grid.run(&whole, &[], &[]));
    assert!(w.contains("wrote"), "{w}");
    assert_eq!(table_without_timing(&sharded), table_without_timing(&whole));
    assert_eq!(
        std::fs::read(sharded.join("table1.md")).unwrap(),
        std::fs::read(whole.join("table1.md")).unwrap()
    );
    assert_eq!(
        std::fs::read(sharded.join("r.png")).unwrap(),
        std::fs::read(whole.join("r.png")).unwrap()
    );
    for run in RUNS {
        let (a, b) = (
            checkpoint_without_timing(&sharded.join(run)),
            checkpoint_without_timing(&whole.join(run)),
        );
        assert!(a == b, "{run}: the checkpoints differ beyond timing");
    }
}

/// Flags, environment variables, and what stderr must say.
type Case<'a> = (&'a [&'a str], &'a [(&'a str, &'a str)], &'a str);

/// The `cpu` budget: the paper's networks, seeds in the folder names, and training digits
/// distorted afresh every epoch (from the source digits, which a shard loads too): sharded
/// as unsharded. 30 epochs of 64 digits.
#[test]
fn fresh_distortions_shard_like_the_whole_grid() {
    let tmp = tempfile::tempdir().unwrap();
    let grid = Grid {
        base: tmp.path().join("digits"),
        budget: "cpu",
    };
    base_of(&grid.base, 64, 32);
    let (sharded, whole) = (tmp.path().join("sharded"), tmp.path().join("whole"));
    for shard in ["0/2", "1/2"] {
        ok(grid.run(&sharded, &["--shard", shard], &[]));
    }
    let c = ok(grid.run(&sharded, &["--collect", "--require-all"], &[]));
    assert!(c.contains("from 4 of the 4 cells"), "{c}");
    ok(grid.run(&whole, &[], &[]));
    assert_eq!(table_without_timing(&sharded), table_without_timing(&whole));
    for run in [
        "r-paper-cnn-seed1",
        "r-paper-st-cnn-affine-seed1",
        "r-paper-st-cnn-projective-seed1",
        "r-paper-st-cnn-tps16-seed1",
    ] {
        let (a, b) = (
            checkpoint_without_timing(&sharded.join(run)),
            checkpoint_without_timing(&whole.join(run)),
        );
        assert_eq!(a.progress.as_ref().unwrap().epochs_done, 30, "{run}");
        assert!(a == b, "{run}: the checkpoints differ beyond timing");
    }
}

#[test]
fn bad_shards_are_usage_errors() {
    let tmp = tempfile::tempdir().unwrap();
    let grid = Grid {
        base: tmp.path().join("digits"),
        budget: "smoke",
    };
    let out = tmp.path().join("out");
    let cases: [Case; 9] = [
        (
            &["--shard", "2/2"],
            &[],
            "the index I must be less than the count N",
        ),
        (&["--shard", "0/0"], &[], "the count N must be at least 1"),
        (&["--shard", "x"], &[], "expected I/N"),
        (&["--shard", "0/2", "--collect"], &[], "cannot be used with"),
        (&["--require-all"], &[], "--collect"),
        (
            &[],
            &[("JOB_COMPLETION_INDEX", "0")],
            "STN_SHARD_COUNT is not",
        ),
        (
            &[],
            &[("JOB_COMPLETION_INDEX", "2"), ("STN_SHARD_COUNT", "2")],
            "JOB_COMPLETION_INDEX=2 is not below STN_SHARD_COUNT=2",
        ),
        (
            &[],
            &[("SLURM_ARRAY_TASK_ID", "3")],
            "SLURM_ARRAY_TASK_COUNT is not",
        ),
        (
            &[],
            &[
                ("SLURM_ARRAY_TASK_ID", "7"),
                ("SLURM_ARRAY_TASK_COUNT", "4"),
            ],
            "--array=0-3",
        ),
    ];
    for (flags, env, needle) in cases {
        let o = grid.run(&out, flags, env);
        fails(&o, 2, needle);
    }
    assert!(!out.exists(), "nothing written by a bad command");
}

#[test]
fn a_cell_locked_by_another_process_is_left_alone() {
    let tmp = tempfile::tempdir().unwrap();
    let grid = Grid {
        base: tmp.path().join("digits"),
        budget: "smoke",
    };
    small_base(&grid.base);
    let out = tmp.path().join("out");
    // This process trains cell 2 (as far as the lock says).
    std::fs::create_dir_all(out.join(".locks")).unwrap();
    let held = std::fs::File::create(out.join(".locks/r-st-projective.lock")).unwrap();
    held.lock().unwrap();

    let o = grid.run(&out, &["--shard", "0/2"], &[]);
    fails(
        &o,
        1,
        "1 run folder(s) were being trained by another process",
    );
    let (stdout, stderr) = text(&o);
    assert!(stderr.contains("r-st-projective"), "{stderr}");
    assert!(
        stdout.contains("cell 2 R ST-CNN projective: being trained by another process"),
        "{stdout}"
    );
    assert!(
        out.join("r-cnn/checkpoint.stn").exists(),
        "the other cell is trained"
    );
    assert!(
        !out.join("r-st-projective").exists(),
        "the locked one is not touched"
    );

    held.unlock().unwrap();
    let again = ok(grid.run(&out, &["--shard", "0/2"], &[]));
    assert!(
        again.contains("cell 0 R CNN (") && again.contains("already finished"),
        "{again}"
    );
    assert!(
        again.contains("cell 2 R ST-CNN projective (") && again.contains("trained epochs 1..1"),
        "{again}"
    );
}

/// The committed docs/paper/table1.json is what the issue asks for: a list of cells with the
/// dataset, model and transform names, the errors (ours and the paper's), epochs, seconds
/// and budget, each cell once per budget and seed.
#[test]
fn committed_table1_json_has_the_published_schema() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/paper/table1.json");
    let cells: Vec<serde_json::Value> =
        serde_json::from_slice(&std::fs::read(&path).expect("docs/paper/table1.json")).unwrap();
    assert!(!cells.is_empty());
    let mut seen = std::collections::HashSet::new();
    for c in &cells {
        let s = |k: &str| {
            c[k].as_str()
                .unwrap_or_else(|| panic!("{k} in {c}"))
                .to_string()
        };
        let n = |k: &str| c[k].as_f64().unwrap_or_else(|| panic!("{k} in {c}"));
        assert!(
            ["r", "rts", "p", "e", "tc"].contains(&s("dataset").as_str()),
            "{c}"
        );
        assert!(
            ["cnn", "fcn", "st-cnn", "st-fcn"].contains(&s("model").as_str()),
            "{c}"
        );
        let transform = s("transform");
        assert!(
            ["none", "affine", "projective", "tps"].contains(&transform.as_str()),
            "{c}"
        );
        assert_eq!(transform == "none", !s("model").starts_with("st-"), "{c}");
        assert!(
            (0.0..=100.0).contains(&n("error")) && n("paper") > 0.0,
            "{c}"
        );
        assert!(n("epochs") >= 1.0 && n("seconds") > 0.0, "{c}");
        let key = (
            s("budget"),
            s("dataset"),
            s("model"),
            transform,
            c["seed"].to_string(),
        );
        assert!(seen.insert(key), "duplicate cell {c}");
    }
}
