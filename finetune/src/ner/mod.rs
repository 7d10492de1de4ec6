//! Sequence labelling (`run_classifier_ner.py`): the reader for
//! character-level BIO/BMES files with span checks, the encoding with the
//! reference's `X` pieces, the reference's token-level metric, and the
//! fine-tuning loop scored by exact entity spans.

pub mod data;
pub mod features;
pub mod run;
pub mod token_metric;
pub mod train;

pub use data::{
    read_predictions, read_tagged, write_predictions, Scheme, Sentence, SpanIssue, TaggedFile,
};
pub use features::{char_tags, TagEncoder, TagFeatures, TagMap, SPECIAL_TAGS};
pub use token_metric::{token_scores, TokenScores};
pub use train::{evaluate, fine_tune, predict, NerEpochReport, NerOutcome, NerScores};
