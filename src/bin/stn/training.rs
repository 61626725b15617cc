//! `stn train`: a new run or a resumed one, on the console, with the run folder's pictures.

use std::process::ExitCode;

use anyhow::Result;

use crate::console::{Console, interrupt_flag, usage};
use crate::device;
use crate::flags::{NetArg, PadArg, TrainArgs};
use stn::data::Source;
use stn::model::ModelConfig;
use stn::run::{
    CHECKPOINT_FILE, CURVES_FILE, EPOCHS_FILE, METRICS_FILE, PICTURE_FILE, default_run_dir,
};
use stn::train::{self, NewRun, Open, OpenError, Opened, Outcome};
use stn_cli::experiment::table1::{Family, paper_network};
use stn_cli::pictures::WithPictures;

/// Trains as the flags say: a new run into `--out` (or a fresh `runs/train-<time>`), or the
/// run `--resume` names, continued exactly.
pub fn train(a: TrainArgs) -> Result<ExitCode> {
    let device = device(a.device)?;
    if a.epochs == Some(0) {
        return Err(usage("--epochs must be at least 1"));
    }
    let (out, how, data) = match &a.resume {
        Some(dir) => {
            if a.data.dataset.is_some() {
                return Err(usage(
                    "--dataset cannot change when resuming: a run continues on its own data",
                ));
            }
            let how = Open::Resume {
                epochs: a.epochs,
                data_dir: a.data.data.clone(),
            };
            (dir.clone(), how, None)
        }
        None => {
            let config = a.config();
            config.validate().map_err(usage)?;
            let spec = a.data_spec();
            spec.validate().map_err(usage)?;
            let data = spec.load()?;
            let classes = match spec.source {
                Source::Addition { .. } => stn::data::addition::CLASSES,
                _ => 10,
            };
            let model = ModelConfig::new(
                [data.train.rows, data.train.cols],
                a.transform(),
                a.st_size(),
                a.model.pad == PadArg::Background,
            )
            .with_channels(data.train.channels)
            .with_classes(classes);
            let model = match a.model.net {
                NetArg::Tutorial => model,
                NetArg::PaperCnn => paper_network(model, Family::Cnn),
                NetArg::PaperFcn => paper_network(model, Family::Fcn),
            };
            model
                .validate()
                .map_err(|e| usage(format!("{}: {e}", spec.source.describe())))?;
            let out = a.out.clone().unwrap_or_else(default_run_dir);
            let run = NewRun {
                model,
                config,
                data: spec,
            };
            (out, Open::New(run), Some(data))
        }
    };
    let (mut trainer, opened) = train::open(&out, how, &device).map_err(|e| match e {
        OpenError::Exists(_) => usage(e.to_string()),
        e => e.into(),
    })?;
    let progress = trainer.progress().clone();
    let data = match data {
        Some(data) => data,
        None => progress.data.load()?,
    };
    match opened {
        Opened::Resumed { epochs_done } => println!(
            "resuming {} after epoch {epochs_done} of {}",
            out.display(),
            progress.config.epochs
        ),
        Opened::Started => println!(
            "training {} ({} parameters) on {} ({} train / {} test images), device {}, {} epochs, batch {}, lr {}, seed {} -> {}",
            trainer.net.config.name(),
            trainer.net.config.parameter_count(),
            progress.data.source.describe(),
            data.train.len(),
            data.test.len(),
            a.device.name(),
            progress.config.epochs,
            progress.config.batch_size,
            progress.config.sgd.lr,
            progress.config.seed,
            out.display()
        ),
    }
    let stop = interrupt_flag();
    let mut console = Console::new(progress.config.log_interval);
    let mut observer = WithPictures::new(&out, &data.test, progress.epochs_done, &mut console);
    if let Outcome::Interrupted { epochs_done } = trainer.run(&data, &mut observer, &stop)? {
        eprintln!(
            "stopped: the checkpoint after epoch {epochs_done} is kept in {}; continue with `stn train --resume {}`",
            out.display(),
            out.display()
        );
        return Ok(ExitCode::from(130));
    }
    if let Some(m) = trainer.progress().metrics.last() {
        println!(
            "done: test accuracy {:.2}% after {} epochs; {} holds {CHECKPOINT_FILE}, {METRICS_FILE}, {PICTURE_FILE}, {CURVES_FILE} and {EPOCHS_FILE}",
            100.0 * m.test_accuracy,
            m.epoch,
            out.display()
        );
    }
    Ok(ExitCode::SUCCESS)
}
