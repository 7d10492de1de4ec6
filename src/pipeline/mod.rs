//! The preprocessing dataflow as `pipeline.toml` describes it: reading the
//! file into a [`Plan`], and running the plan on timely workers.

mod plan;
mod run;
mod train_section;

pub use plan::{Plan, RunOptions, SinkPlan};
pub use run::{start, start_shard, Running, Shard, Tail};
pub use train_section::{TrainInput, TrainSource};
