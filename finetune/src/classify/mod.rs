//! Sentence and sentence-pair classification (`run_classifier.py`): the
//! data readers, the encoding, and the fine-tuning loop.

pub mod data;
pub mod features;
pub mod train;

pub use data::{read_jsonl, read_lines, read_tsv, split, Example, Layout, Part, Split, TsvColumns};
pub use features::{Encoder, Features, LabelMap};
pub use train::{evaluate, fine_tune, EpochReport, Outcome, Scores};
