//! The reference's fine-tuning heads (`create_model` of NEZHA-TensorFlow's
//! `run_classifier.py`, `run_classifier_ner.py` and `run_squad.py`, at the
//! commit `docs/notes/model.md` names), each a single dense layer on the
//! encoder: over the pooled `[CLS]` output for sentence classification, over
//! every position for sequence labelling and reading comprehension.

pub mod classification;
pub mod question_answering;
pub mod token_classification;

pub use classification::SequenceClassifier;
pub use question_answering::SpanHead;
pub use token_classification::TokenClassifier;

/// The dropout the reference applies before its classifiers
/// (`run_classifier.py`: `keep_prob=0.9`); Hugging Face's `classifier_dropout`
/// default is the same 0.1.
pub const CLASSIFIER_DROPOUT: f64 = 0.1;
