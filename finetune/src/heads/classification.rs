//! Sentence (pair) classification (`run_classifier.py` `create_model`):
//! `logits = dropout(pooled) · output_weightsᵀ + output_bias`, mean
//! cross-entropy. Hugging Face's `NezhaForSequenceClassification` computes
//! the same with `classifier` `[K, H]`.

use nezha_train::model::blocks::{Linear, Mode};
use nezha_train::model::params::ParamStore;
use tch::{Kind, Tensor};

use super::CLASSIFIER_DROPOUT;

pub struct SequenceClassifier {
    /// `classifier.{weight [K, H], bias [K]}`.
    pub dense: Linear,
}

impl SequenceClassifier {
    pub fn new(ps: &mut ParamStore, hidden: i64, num_labels: i64, std: f64) -> SequenceClassifier {
        SequenceClassifier {
            dense: Linear::new(ps, "classifier", hidden, num_labels, std),
        }
    }

    /// `pooled` `[B, H]` → logits `[B, K]` f32.
    pub fn forward(&self, pooled: &Tensor, mode: Mode) -> Tensor {
        self.dense
            .forward(&pooled.dropout(CLASSIFIER_DROPOUT, mode.train), mode)
            .to_kind(Kind::Float)
    }
}

/// Mean cross-entropy of `logits` `[B, K]` against `labels` `[B]` int64.
pub fn classification_loss(logits: &Tensor, labels: &Tensor) -> Tensor {
    let logp = logits.log_softmax(-1, Kind::Float);
    -logp
        .gather(1, &labels.reshape([-1, 1]), false)
        .mean(Kind::Float)
}
