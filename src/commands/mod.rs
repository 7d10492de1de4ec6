//! The subcommands of the `nezha` binary.

pub mod convert;
pub mod create_pretraining_data;
pub mod inspect;
pub mod launch;
pub mod run;
pub mod train;
pub mod vocab;
