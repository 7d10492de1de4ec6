//! The stages of the nezha preprocessing dataflow.
//!
//! The pipeline reads text, splits it into sentences, tokenizes it with
//! WordPiece, cuts documents into next-sentence instances, masks them and
//! batches them for the trainer (or writes them as TFRecords). Every step is a
//! [`Stage`]: a plain, testable value that turns one item into zero or more
//! items. [`operator`] wraps any stage as a timely-dataflow operator; the
//! `nezha-pipeline` crate's registry picks the implementation of each step
//! by name, as `pipeline.toml` asks, and composes them.

pub mod atomic_file;
pub mod batch;
pub mod command;
pub mod data;
pub mod dedup;
pub mod error;
pub mod gather;
pub mod holdout;
pub mod ingest;
pub mod instances;
pub mod masking;
pub mod operator;
pub mod params;
pub mod pyrandom;
pub mod segment;
pub mod sentences;
pub mod sinks;
pub mod stage;
pub mod tfrecord;
pub mod vocab;
pub mod wordpiece;

pub use batch::Batch;
pub use data::{Document, Instance, TokenizedDocument};
pub use stage::Stage;
pub use vocab::Vocab;
