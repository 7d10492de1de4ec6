//! Sentence and sentence-pair classification (`run_classifier.py`): the
//! data readers, the encoding, the fine-tuning loop, prediction and the
//! command's run.

pub mod data;
pub mod features;
pub mod predict;
pub mod run;
pub mod train;

pub use data::{
    read_jsonl, read_lines, read_tsv, require_labels, split, Example, Layout, Part, Split,
    TsvColumns,
};
pub use features::{Encoder, Features, Inputs, LabelMap};
pub use train::{evaluate, fine_tune, EpochReport, Outcome, Scores};
