//! Next-sentence instances: cutting tokenized documents into
//! `[CLS] A [SEP] B [SEP]` pairs.
//!
//! [`document`] is the reference's per-document algorithm
//! (`create_instances_from_document`), generic over the random source and
//! over where random next segments come from ([`pool`]). Two stages drive
//! it: [`reference`] reproduces the reference script draw for draw (all
//! documents in memory, one `random.Random`, masking fused in), and
//! [`streaming`] runs in bounded memory for corpora of any size.
//! [`dynamic`] masks as instances leave, and gives the same stream on any
//! number of workers.

mod document;
mod dynamic;
mod pool;
mod reference;
mod shuffle_buffer;
mod streaming;

pub use document::{create_instances_from_document, DocumentInstances, InstanceParams};
pub use dynamic::{mask_dynamically, owner, DynamicInstances, DynamicParams};
pub use pool::DocumentPool;
pub use reference::{ReferenceInstances, ReferenceParams};
pub use shuffle_buffer::ShuffleBuffer;
pub use streaming::{
    StreamingInstances, StreamingParams, DEFAULT_RESERVOIR_DOCS, DEFAULT_SHUFFLE_BUFFER,
};
