//! nezha: NEZHA pretraining data, training and fine-tuning as one streaming
//! Rust program. The pipeline (without libtorch) is the `nezha-pipeline`
//! crate; this crate adds what needs libtorch: the trainer as a sink
//! ([`train_sink`], reading `[train]` with [`train_section`]), the rank
//! side of multi-process runs ([`rank_join`]) and weight conversion.

pub mod allocator;
pub mod convert;
pub mod eval;
pub mod eval_section;
pub mod fill_mask;
pub mod pretrained;
pub mod rank_join;
pub mod stream_size;
pub mod tfrecord_batches;
pub mod train_section;
pub mod train_sink;

/// Adds the trainer's sink (`[sink] kind = "train"` with its `[train]`
/// section) to a registry.
pub fn register(r: &mut nezha_pipeline::registry::Registry) {
    train_sink::register(r);
}
