//! nezha's preprocessing pipeline, without libtorch: a `pipeline.toml`
//! ([`Spec`]) is resolved once into the settings that span sections
//! ([`resolve::Resolved`]), every stage and the sink are built from them
//! ([`Plan`]), and the plan runs as a timely dataflow ([`run`]) into its
//! sink. The [`registry`] holds the kinds a file can name, and [`cli`] is
//! the command line that the `nezha` binary and plugins' binaries share.

pub mod cli;
pub mod commands;
pub mod generation;
pub mod interrupt;
pub mod launcher;
pub mod plan;
pub mod progress;
pub mod rank_env;
pub mod registry;
pub mod resolve;
pub mod run;
pub mod sink;
pub mod sinks;
pub mod spec;

pub use plan::Plan;
pub use resolve::{Resolved, RunOptions};
pub use run::{start, start_held_out, start_pass, start_shard, Running, Shard, Tail};
pub use spec::Spec;
