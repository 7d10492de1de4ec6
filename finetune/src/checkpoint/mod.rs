//! Checkpoint interchange: reference TF checkpoints, Hugging Face model
//! directories and our own weight files, all through one checked
//! representation ([`ModelWeights`]).

pub mod bundle;
pub mod convert;
pub mod hf;
pub mod names;
pub mod ours;
pub mod sstable;
pub mod tf;
pub mod weights;

pub use convert::{convert, read, write, Format, ReadReport};
pub use names::{param_specs, Architecture};
pub use weights::ModelWeights;
