//! The preprocessing dataflow as `pipeline.toml` describes it: reading the
//! file into a [`Plan`], and running the plan on timely workers.

mod plan;
mod run;

pub use plan::{Plan, SinkPlan};
pub use run::{start, Running, Tail};
