//! The `stn` command line: parses arguments ([`flags`]), calls the library, prints the results.

mod console;
mod flags;
mod training;

use std::process::ExitCode;

use anyhow::{Context, Result};
use clap::Parser;

use console::{Console, describe, interrupt_flag, usage};
use flags::{
    BenchArgs, BenchNet, BenchWhat, Cli, Command, DataCmdArgs, EvalArgs, ExperimentArgs,
    ExperimentWhich, PredictArgs, ServeArgs, VisualizeArgs,
};
use stn::data::{Distortion, vendored_mnist_dir};
use stn::device::DeviceKind;
use stn::model::ModelConfig;
use stn::run::DataSpec;
use stn::train;
use stn_cli::experiment::shard::{Origin, Shard};
use stn_cli::experiment::{grid, table1, throughput};
use stn_cli::predict::{Predictor, classify_files};

fn main() -> ExitCode {
    stn::alloc::retain_freed_memory();
    let result = run(Cli::parse().command);
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {}", describe(&e));
            if e.downcast_ref::<console::UsageError>().is_some() {
                ExitCode::from(2)
            } else {
                ExitCode::FAILURE
            }
        }
    }
}

/// Runs a command. Every command but `serve` runs on a worker of the kernels' thread pool
/// (sized first where the command says how), so that the kernels' parallel loops start there
/// (`run_on_pool`); the server's request threads hand their batches to the pool from outside.
fn run(command: Command) -> Result<ExitCode> {
    let cpu = match &command {
        Command::Train(a) => Some(&a.cpu),
        Command::Bench(a) => Some(&a.cpu),
        _ => None,
    };
    if let Some(cpu) = cpu {
        cpu.apply()?;
    }
    if matches!(command, Command::Serve(_)) {
        return run_here(command);
    }
    stn::ops::kernels::run_on_pool(move || run_here(command))
}

/// Runs a command on this thread.
fn run_here(command: Command) -> Result<ExitCode> {
    match command {
        Command::Train(a) => training::train(a),
        Command::Eval(a) => eval(a),
        Command::Visualize(a) => visualize(a),
        Command::Bench(a) => bench(a),
        Command::Data(a) => data(a),
        Command::Experiment(a) => experiment(a),
        Command::Predict(a) => predict(a),
        Command::Serve(a) => serve(a),
    }
}

fn device(kind: DeviceKind) -> Result<burn::tensor::Device> {
    kind.device().map_err(usage)
}

/// A saved model and the test data to show it: the flags' data, else the model's own.
fn model_and_data(
    model: &std::path::Path,
    data: &flags::DataArgs,
    kind: DeviceKind,
) -> Result<(stn::model::Net, stn::data::Dataset)> {
    let device = device(kind)?;
    let (net, recorded) = stn::load::load(model, &device)?;
    let spec = data.eval_spec(recorded);
    spec.validate().map_err(usage)?;
    let data = spec.load()?;
    net.config
        .check_images(data.test.channels, [data.test.rows, data.test.cols])?;
    Ok((net, data))
}

fn eval(a: EvalArgs) -> Result<ExitCode> {
    if a.batch_size == 0 {
        return Err(usage("--batch-size must be at least 1"));
    }
    let (net, data) = model_and_data(&a.model, &a.data, a.device)?;
    let (loss, correct) = train::evaluate(&net, &data.test, a.batch_size);
    let n = data.test.len();
    let accuracy = correct as f64 / n as f64;
    if a.json {
        let json = serde_json::json!({
            "test_loss": loss, "test_accuracy": accuracy, "correct": correct, "images": n,
        });
        println!("{json}");
    } else {
        println!(
            "Test set: Average loss: {loss:.4}, Accuracy: {correct}/{n} ({:.2}%)",
            100.0 * accuracy
        );
    }
    Ok(ExitCode::SUCCESS)
}

fn visualize(a: VisualizeArgs) -> Result<ExitCode> {
    if a.count == 0 {
        return Err(usage("--count must be at least 1"));
    }
    let (net, data) = model_and_data(&a.model, &a.data, a.device)?;
    stn_cli::report::transformed_digits(&net, &data.test, a.count)
        .save_png(&a.out)
        .with_context(|| format!("cannot write {}", a.out.display()))?;
    println!("wrote {}", a.out.display());
    Ok(ExitCode::SUCCESS)
}

fn bench(a: BenchArgs) -> Result<ExitCode> {
    if a.batches == 0 || a.batch_size == Some(0) {
        return Err(usage("--batches and --batch-size must be at least 1"));
    }
    let device = device(a.device)?;
    stn::ops::profile::enable(a.profile);
    let load = || {
        let spec = DataSpec {
            limit_test: a.data.limit_test,
            ..DataSpec::new(a.data.source())
        };
        spec.validate().map_err(usage)?;
        anyhow::Ok(spec.load()?)
    };
    let results = match a.what {
        BenchWhat::Train => {
            let batch_size = a.batch_size.unwrap_or(64);
            let (name, model) = match a.net {
                BenchNet::Tutorial => ("train", ModelConfig::tutorial()),
                BenchNet::PaperCnn => ("train paper-cnn", table1::paper_model("CNN")),
                BenchNet::PaperStCnn => {
                    ("train paper-st-cnn", table1::paper_model("ST-CNN affine"))
                }
            };
            vec![throughput::train(
                name,
                &model,
                &load()?,
                a.batches,
                a.warmup,
                batch_size,
                &device,
            )?]
        }
        BenchWhat::Eval => vec![throughput::eval(
            &load()?,
            a.batch_size.unwrap_or(1000),
            &device,
        )],
        BenchWhat::Ops => [[64, 1, 28, 28], [32, 3, 64, 64]]
            .into_iter()
            .flat_map(|shape| {
                [false, true].map(|fused| throughput::ops(shape, a.batches, fused, &device))
            })
            .collect(),
    };
    if a.profile {
        print!("{}", stn::ops::profile::summary());
    }
    for r in results {
        if a.json {
            println!("{}", serde_json::to_string(&r)?);
        } else {
            println!("{r}");
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn data(a: DataCmdArgs) -> Result<ExitCode> {
    let source = a
        .dataset
        .source(a.data.unwrap_or_else(vendored_mnist_dir), a.seed);
    println!("generating {}", source.describe());
    let data = source.load()?;
    std::fs::create_dir_all(&a.out)
        .with_context(|| format!("cannot create {}", a.out.display()))?;
    for (set, train) in [(&data.train, true), (&data.test, false)] {
        stn::data::mnist::write_split(&a.out, set, train)
            .with_context(|| format!("cannot write into {}", a.out.display()))?;
    }
    let sheet = a.out.join("sample.png");
    let title = format!(
        "{}: {} (seed {})",
        a.dataset.name().to_uppercase(),
        a.dataset.describe(),
        a.seed
    );
    stn_cli::report::sample_sheet(&data.train, 64 / data.train.channels.pow(2), &title)
        .save_png(&sheet)
        .with_context(|| format!("cannot write {}", sheet.display()))?;
    let channels = match data.train.channels {
        1 => String::new(),
        c => format!("{c}-channel "),
    };
    println!(
        "wrote {} train and {} test {channels}{}x{} images to {} (IDX files and sample.png)",
        data.train.len(),
        data.test.len(),
        data.train.rows,
        data.train.cols,
        a.out.display()
    );
    Ok(ExitCode::SUCCESS)
}

fn experiment(a: ExperimentArgs) -> Result<ExitCode> {
    let experiment = match a.which {
        ExperimentWhich::Colocalisation => return colocalisation(a),
        ExperimentWhich::Table1 => table1::Experiment::Table1,
        ExperimentWhich::Addition => table1::Experiment::Addition,
    };
    let budget = a.budget.unwrap_or(match experiment {
        table1::Experiment::Table1 => table1::Budget::Quick,
        table1::Experiment::Addition => table1::Budget::Cpu,
    });
    if !experiment.budgets().contains(&budget) {
        let names: Vec<&str> = experiment.budgets().iter().map(|b| b.name()).collect();
        return Err(usage(format!(
            "the {} experiment has no {} budget: expected {}",
            experiment.name(),
            budget.name(),
            names.join(", ")
        )));
    }
    if experiment != table1::Experiment::Table1 && !a.datasets.is_empty() {
        return Err(usage(format!(
            "--datasets chooses Table 1's columns; the {} experiment has one dataset",
            experiment.name()
        )));
    }
    let out = a
        .out
        .clone()
        .unwrap_or_else(|| std::path::PathBuf::from("runs").join(experiment.name()));
    let device = device(a.device)?;
    let datasets = if a.datasets.is_empty() {
        Distortion::ALL.to_vec()
    } else {
        a.datasets.clone()
    };
    // A collect reads every cell, whatever shard the environment names.
    let (shard, origin) = if a.collect {
        (Shard::WHOLE, Origin::Whole)
    } else {
        Shard::resolve_env(a.shard).map_err(|e| usage(e.to_string()))?
    };
    let stop = interrupt_flag();
    let mut console = Console::new(0);
    console.quiet = true;
    let mut log = |m: &str| println!("{m}");
    let mut opts = table1::Options {
        experiment,
        budget,
        base: a.data.unwrap_or_else(vendored_mnist_dir),
        out: out.clone(),
        datasets,
        data_seed: a.data_seed,
        seed: a.seed,
        device,
        log: &mut log,
    };
    if a.list {
        list_cells(&opts, shard);
        return Ok(ExitCode::SUCCESS);
    }
    if a.collect {
        return collect(&mut opts, a.require_all, a.json.as_deref());
    }
    let result = if shard.is_whole() {
        table1::run(opts, &mut console, &stop).map(Some)
    } else {
        if let Some(path) = &a.json {
            println!(
                "note: a shard merges nothing into {}: the collect does",
                path.display()
            );
        }
        grid::train_shard(&mut opts, shard, &mut console, &stop).map(|cells| {
            shard_summary(shard, origin, &cells, experiment.name());
            None
        })
    };
    match result {
        Ok(Some(cells)) => {
            if let Some(path) = &a.json {
                table1::publish(path, &cells)?;
                println!("merged {} results into {}", cells.len(), path.display());
            }
            println!("\n{}", table1::markdown(experiment, budget, &cells));
            let name = experiment.name();
            println!(
                "wrote {}/{name}.md, {name}.json, {name}.png and the pictures of transformed \
                 test images",
                out.display()
            );
            Ok(ExitCode::SUCCESS)
        }
        Ok(None) => Ok(ExitCode::SUCCESS),
        Err(table1::ExperimentError::Interrupted) => {
            eprintln!(
                "stopped; finished runs are kept in {}; run the same command again to continue",
                out.display()
            );
            Ok(ExitCode::from(130))
        }
        Err(e) => Err(e.into()),
    }
}

/// `--list`: the planned cells (of `shard`) and where each stands.
fn list_cells(opts: &table1::Options, shard: Shard) {
    let planned = table1::planned_runs(opts);
    println!("cell\tshard\tdataset\tmodel\trun\tstate");
    for s in grid::survey(&planned) {
        if !shard.owns(s.index) {
            continue;
        }
        println!(
            "{}\t{}/{}\t{}\t{}\t{}\t{}",
            s.index,
            Shard::owner(s.index, shard.count),
            shard.count,
            s.planned.entry.dataset.name(),
            s.planned.entry.label,
            s.planned.dir.display(),
            s.state.describe()
        );
    }
}

/// `--collect`: the tables from the finished cells, and the list of the others.
fn collect(
    opts: &mut table1::Options,
    require_all: bool,
    json: Option<&std::path::Path>,
) -> Result<ExitCode> {
    let c = grid::collect(opts)?;
    if c.wrote {
        println!(
            "{}",
            table1::markdown(opts.experiment, opts.budget, &c.cells)
        );
        if let Some(path) = json {
            table1::publish(path, &c.cells)?;
            println!("merged {} results into {}", c.cells.len(), path.display());
        }
    }
    if !c.missing.is_empty() {
        println!(
            "missing: {} of the {} cells are not finished:",
            c.missing.len(),
            c.planned
        );
        for s in &c.missing {
            println!(
                "  cell {} {} {} ({}): {}",
                s.index,
                s.planned.entry.dataset.name().to_uppercase(),
                s.planned.entry.label,
                s.planned.dir.display(),
                s.state.describe()
            );
        }
    }
    if !c.wrote {
        anyhow::bail!(
            "no cell of the {} planned is finished in {}: no table written",
            c.planned,
            opts.out.display()
        );
    }
    let name = opts.experiment.name();
    println!(
        "wrote {}/{name}.md, {name}.json and {name}.png from {} of the {} cells",
        opts.out.display(),
        c.cells.len(),
        c.planned
    );
    if require_all && !c.missing.is_empty() {
        anyhow::bail!(
            "--require-all: {} of the {} cells are not finished (listed above)",
            c.missing.len(),
            c.planned
        );
    }
    Ok(ExitCode::SUCCESS)
}

/// What a shard did, cell by cell.
fn shard_summary(shard: Shard, origin: Origin, cells: &[grid::ShardCell], name: &str) {
    println!(
        "\nshard {shard} (from {origin}): {} cell{}",
        cells.len(),
        if cells.len() == 1 { "" } else { "s" }
    );
    for c in cells {
        let what = match c.trained {
            grid::Trained::Epochs { first, last } => format!("trained epochs {first}..{last}"),
            grid::Trained::AlreadyFinished => "already finished".to_string(),
        };
        println!(
            "  cell {} {} {} ({}): {what}",
            c.index,
            c.planned.entry.dataset.name().to_uppercase(),
            c.planned.entry.label,
            c.planned.dir.display()
        );
    }
    println!(
        "a shard writes no table: when every shard is done, run the same command with \
         --collect (and without --shard) for {name}.md, {name}.json and {name}.png"
    );
}

fn predict(a: PredictArgs) -> Result<ExitCode> {
    let predictor = Predictor::load(&a.model, &device(a.device)?)?;
    // Unreadable pictures are reported by name and skipped; the others are still classified.
    let failures = classify_files(&predictor, &a.images, a.out.as_deref(), |r| match &r {
        stn_cli::predict::FileResult::Failed { .. } => eprintln!("error: {}", r.text()),
        _ if a.json => println!("{}", r.json()),
        _ => println!("{}", r.text()),
    })?;
    Ok(ExitCode::from(u8::from(failures > 0)))
}

fn serve(a: ServeArgs) -> Result<ExitCode> {
    let opts = a.options().map_err(usage)?;
    let predictor = Predictor::load(&a.model, &device(a.device)?)?;
    let name = predictor.name();
    stn_cli::serve::serve(predictor, &opts, |addr| {
        // Tests and scripts read the address from this line (with --port 0, the port chosen).
        println!("serving {name} ({}) on http://{addr}", opts.model_label);
        let _ = std::io::Write::flush(&mut std::io::stdout());
        stn_cli::serve::startup_notes(&opts, addr)
            .iter()
            .for_each(|n| eprintln!("{n}"));
    })?;
    Ok(ExitCode::SUCCESS)
}

fn colocalisation(a: ExperimentArgs) -> Result<ExitCode> {
    use stn_cli::experiment::colocalisation::{self as coloc, Effort};
    let effort = match a.budget {
        None => Effort::Full,
        Some(table1::Budget::Smoke) => Effort::Smoke,
        Some(b) => {
            return Err(usage(format!(
                "co-localisation has one budget (the default) and smoke; got --budget {}",
                b.name()
            )));
        }
    };
    let grid_only = [
        ("--shard", a.shard.is_some()),
        ("--collect", a.collect),
        ("--require-all", a.require_all),
        ("--list", a.list),
        ("--datasets", !a.datasets.is_empty()),
    ];
    if let Some((flag, _)) = grid_only.iter().find(|(_, given)| *given) {
        return Err(usage(format!(
            "{flag} applies to the table1 and addition grids only"
        )));
    }
    let stop = interrupt_flag();
    let mut console = Console::new(0);
    console.quiet = true;
    let mut log = |m: &str| println!("{m}");
    let out = a
        .out
        .clone()
        .unwrap_or_else(|| std::path::PathBuf::from("runs/colocalisation"));
    let opts = coloc::Options {
        effort,
        base: a.data.unwrap_or_else(vendored_mnist_dir),
        out: out.clone(),
        data_seed: a.data_seed,
        seed: a.seed,
        device: device(a.device)?,
        log: &mut log,
    };
    match coloc::run(opts, &mut console, &stop) {
        Ok(results) => {
            if let Some(path) = &a.json {
                let json = serde_json::to_string_pretty(&results)? + "\n";
                stn::atomic_file::write_atomic(path, json.as_bytes())
                    .with_context(|| format!("cannot write {}", path.display()))?;
            }
            println!("\n{}", coloc::markdown(&results));
            println!(
                "wrote {}/colocalisation.md, colocalisation.json, t.png and tc.png",
                out.display()
            );
            Ok(ExitCode::SUCCESS)
        }
        Err(coloc::CoLocalisationError::Interrupted) => {
            eprintln!("stopped; run the same command again to continue");
            Ok(ExitCode::from(130))
        }
        Err(e) => Err(e.into()),
    }
}
