//! nezha: NEZHA pretraining data, training and fine-tuning as one streaming
//! Rust program. The binary's subcommands live in [`commands`]; the
//! preprocessing dataflow in [`pipeline`] and the `nezha-stages` crate.

pub mod commands;
pub mod pipeline;
pub mod progress;
