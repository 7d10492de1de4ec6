//! Where a pipeline's stream ends: the trait every `[sink]` kind
//! implements, built-in (`tfrecord`, `check`) or registered by another
//! crate (the trainer's `train`, a test's own).

use crate::plan::Plan;
use crate::registry::Settings;
use crate::resolve::RunOptions;

/// What a sink takes from the dataflow.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Consumes {
    /// Masked instances, one at a time (TFRecord files).
    Instances,
    /// Batches as `[batching]` makes them (the trainer).
    Batches,
    /// Nothing: the sink reads its own input (the trainer reading TFRecord
    /// files), so the pipeline needs no `[ingest]`.
    Nothing,
}

/// A configured sink. Its builder checked every setting; `run` starts the
/// plan's dataflow (with [`crate::run::start`] or
/// [`crate::run::start_shard`]) and consumes it.
pub trait Sink: Send + Sync {
    fn consumes(&self) -> Consumes;

    /// Runs the whole pipeline into this sink.
    fn run(&self, plan: &Plan, options: &RunOptions) -> anyhow::Result<()>;

    /// The fraction of documents (chosen by their text,
    /// `nezha_stages::holdout`) the sink holds out of the main stream for
    /// evaluation; [`crate::run::start_held_out`] streams them.
    fn holdout(&self) -> Option<f64> {
        None
    }

    /// The sections the sink read besides `[sink]`, as resolved, for
    /// `nezha run --print-plan`.
    fn owned_settings(&self) -> Vec<(&'static str, Settings)> {
        Vec::new()
    }
}
