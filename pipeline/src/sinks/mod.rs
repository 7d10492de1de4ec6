//! The sinks that ship without the trainer.

mod check;
mod tfrecord;

pub use check::{check_batches, CheckSink};
pub use tfrecord::{print_write_summary, write_tfrecords, TfRecordOutput};

use crate::registry::Registry;

pub fn register(r: &mut Registry) {
    r.sink.add("tfrecord", &[], tfrecord::build);
    r.sink.add("check", &[], check::build);
}
