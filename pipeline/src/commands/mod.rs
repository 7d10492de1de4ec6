//! The subcommands that need no libtorch.

pub mod create_pretraining_data;
pub mod inspect;
pub mod vocab;
