//! One inference thread that gathers concurrent requests into batches.
//!
//! Every request's digit goes through a channel to a single worker thread, which takes all
//! digits waiting (up to [`MAX_BATCH`]) and classifies them in one forward pass. Under load this
//! amortizes the per-call overhead over the batch, and the CPU kernels (which split a batch
//! across cores themselves) are never run by many threads at once, which would oversubscribe
//! the cores. A lone request is classified at once, without waiting for company.

use std::sync::mpsc;

use tokio::sync::oneshot;

use crate::predict::{Digit, Prediction, Predictor};

/// Most digits classified in one forward pass.
pub const MAX_BATCH: usize = 32;

struct Job {
    digit: Digit,
    reply: oneshot::Sender<Prediction>,
}

/// A handle to the inference thread; cheap to clone, one per request handler.
#[derive(Clone)]
pub struct Batcher {
    jobs: mpsc::Sender<Job>,
}

/// The inference thread gave no answer (a forward pass panicked: a bug).
#[derive(Debug, thiserror::Error)]
#[error("inference failed")]
pub struct WorkerGone;

impl Batcher {
    /// Starts the inference thread for `predictor`.
    pub fn start(predictor: Predictor) -> std::io::Result<Self> {
        let (jobs, rx) = mpsc::channel::<Job>();
        std::thread::Builder::new()
            .name("stn-inference".into())
            .spawn(move || {
                // Blocks until a job comes; ends when every sender is dropped.
                while let Ok(first) = rx.recv() {
                    let mut batch = vec![first];
                    while batch.len() < MAX_BATCH {
                        match rx.try_recv() {
                            Ok(job) => batch.push(job),
                            Err(_) => break,
                        }
                    }
                    let (digits, replies): (Vec<Digit>, Vec<_>) =
                        batch.into_iter().map(|j| (j.digit, j.reply)).unzip();
                    // A panic in a forward pass would be a bug; it fails this batch's requests
                    // (their replies are dropped: an error answer) but not the server.
                    let preds = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                        predictor.predict(&digits)
                    }));
                    for (pred, reply) in preds.unwrap_or_default().into_iter().zip(replies) {
                        // The client may have gone; nothing to do then.
                        let _ = reply.send(pred);
                    }
                }
            })?;
        Ok(Self { jobs })
    }

    /// Classifies one digit, batched with whatever else is waiting.
    pub async fn predict(&self, digit: Digit) -> Result<Prediction, WorkerGone> {
        let (reply, answer) = oneshot::channel();
        self.jobs
            .send(Job { digit, reply })
            .map_err(|_| WorkerGone)?;
        answer.await.map_err(|_| WorkerGone)
    }
}
