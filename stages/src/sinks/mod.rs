//! Sinks: where the instances or batches of every worker end up.
//!
//! Each worker's last operator sends into its own bounded channel; a sink
//! consumes the workers' channels in turn ([`RoundRobin`]), so the merged
//! order is deterministic for a given worker count and a slow sink slows
//! every worker down instead of letting buffers grow.

mod check;
mod round_robin;
mod tfrecord;

pub use check::{check_batch, BatchCounter};
pub use round_robin::RoundRobin;
pub use tfrecord::{TfRecordSink, WriteSummary};
