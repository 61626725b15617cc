//! Training and evaluation: the tutorial's loop (SGD on shuffled mini-batches, test loss and
//! accuracy after every epoch), with a checkpoint at the end of every epoch and exact resume.
//!
//! A plain loop rather than burn-train's `Learner`: every random draw (shuffling, dropout)
//! comes from our own generators whose state is checkpointed, so an interrupted run resumes to
//! the same weights bit for bit, and nothing runs between steps that the step does not need.

mod evaluate;
mod run_folder;
mod step;
mod trainer;

pub use evaluate::evaluate;
pub use run_folder::{NewRun, Open, OpenError, Opened, open};
pub use step::{
    Batch, Dropout, InputHook, Step, batch_tensors, data_parallel_step, data_parallel_step_on,
};
pub use trainer::{Observer, Outcome, Silent, TrainError, Trainer};
