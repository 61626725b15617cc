//! The console side of the commands: a progress bar per epoch, the tutorial's log lines,
//! Ctrl-C, and how errors are told (usage errors exit with status 2).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

use indicatif::{ProgressBar, ProgressStyle};

use stn::run::EpochMetrics;
use stn::train::Observer;

/// Prints the tutorial's log to stdout and draws a progress bar on stderr (when it is a
/// terminal).
pub struct Console {
    bar: Option<ProgressBar>,
    log_interval: usize,
    epoch_started: Instant,
    loss_sum: f64,
    loss_count: usize,
    /// Prints the per-epoch summary only (for experiment grids).
    pub quiet: bool,
    warned: bool,
}

impl Console {
    /// A console observer logging a line every `log_interval` batches (0: never).
    pub fn new(log_interval: usize) -> Self {
        Self {
            bar: None,
            log_interval,
            epoch_started: Instant::now(),
            loss_sum: 0.0,
            loss_count: 0,
            quiet: false,
            warned: false,
        }
    }

    fn println(&self, line: &str) {
        match &self.bar {
            Some(bar) => bar.suspend(|| println!("{line}")),
            None => println!("{line}"),
        }
    }
}

impl Observer for Console {
    fn epoch_start(&mut self, epoch: usize, batches: usize) {
        let bar = ProgressBar::new(batches as u64);
        bar.set_style(
            ProgressStyle::with_template(
                "epoch {prefix:>3} [{bar:30.cyan/blue}] {pos}/{len} batches {per_sec:>12} eta {eta:>4} {msg}",
            )
            .expect("valid template")
            .progress_chars("=> "),
        );
        bar.set_prefix(epoch.to_string());
        self.bar = Some(bar);
        self.epoch_started = Instant::now();
        self.loss_sum = 0.0;
        self.loss_count = 0;
    }

    fn batch(&mut self, epoch: usize, batch: usize, images_done: usize, images: usize, loss: f32) {
        self.loss_sum += loss as f64;
        self.loss_count += 1;
        if let Some(bar) = &self.bar {
            bar.inc(1);
            if batch.is_multiple_of(20) {
                bar.set_message(format!(
                    "loss {:.4}",
                    self.loss_sum / self.loss_count as f64
                ));
            }
        }
        if !self.quiet && self.log_interval > 0 && batch.is_multiple_of(self.log_interval) {
            let total = self.bar.as_ref().map_or(1, |b| b.length().unwrap_or(1)) as f64;
            // As the tutorial: the index of the batch's first image, and the share of batches.
            let batch_size = images_done / (batch + 1);
            self.println(&format!(
                "Train Epoch: {epoch} [{}/{images} ({:.0}%)]\tLoss: {loss:.6}",
                batch * batch_size,
                100.0 * batch as f64 / total
            ));
        }
    }

    fn warning(&mut self, message: &str) {
        // Said once: a picture that cannot be written fails the same way every epoch.
        if !self.warned {
            self.println(&format!("warning: {message} (training continues)"));
            self.warned = true;
        }
    }

    fn epoch_end(&mut self, m: &EpochMetrics, test_images: usize) {
        if let Some(bar) = self.bar.take() {
            bar.finish_and_clear();
        }
        let correct = (m.test_accuracy * test_images as f64).round() as usize;
        if self.quiet {
            println!(
                "epoch {:>3}: train loss {:.4}, test loss {:.4}, accuracy {:.2}% ({:.0} images/s)",
                m.epoch,
                m.train_loss,
                m.test_loss,
                100.0 * m.test_accuracy,
                m.images_per_second
            );
        } else {
            println!(
                "\nTest set: Average loss: {:.4}, Accuracy: {correct}/{test_images} ({:.0}%)  [epoch {} trained in {:.1} s, {:.0} images/s]\n",
                m.test_loss,
                100.0 * m.test_accuracy,
                m.epoch,
                m.train_seconds,
                m.images_per_second
            );
        }
    }
}

/// An error in the command line's values: exit status 2, like clap's own.
#[derive(Debug)]
pub struct UsageError(String);
impl std::fmt::Display for UsageError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}
impl std::error::Error for UsageError {}

/// A usage error (exit status 2) saying `msg`.
pub fn usage(msg: impl Into<String>) -> anyhow::Error {
    UsageError(msg.into()).into()
}

/// The error and its causes, each said once: a cause whose text its parent already quotes is
/// left out (the library's errors quote their sources; anyhow's contexts do not).
pub fn describe(e: &anyhow::Error) -> String {
    let mut text = e.to_string();
    for cause in e.chain().skip(1) {
        let cause = cause.to_string();
        if !text.contains(&cause) {
            text = format!("{text}: {cause}");
        }
    }
    text
}

/// Ctrl-C stops after the current batch; a second one exits at once (checkpoints are atomic).
pub fn interrupt_flag() -> Arc<AtomicBool> {
    let stop = Arc::new(AtomicBool::new(false));
    let flag = stop.clone();
    let _ = ctrlc::set_handler(move || {
        if flag.swap(true, Ordering::SeqCst) {
            eprintln!("\ninterrupted again: exiting now");
            std::process::exit(130);
        }
        eprintln!("\ninterrupt: stopping after this batch (Ctrl-C again to quit now)");
    });
    stop
}
