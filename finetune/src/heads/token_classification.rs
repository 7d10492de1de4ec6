//! Sequence labelling (`run_classifier_ner.py`): a classifier applied to the
//! dropped-out sequence output at every position.
//!
//! Two losses, because the references disagree: Hugging Face averages the
//! cross-entropy over positions whose label is not −100; the TF reference
//! *sums* it over all B·L positions, padding (label 0) included.

use nezha_train::model::blocks::{Linear, Mode};
use nezha_train::model::params::ParamStore;
use tch::{Kind, Tensor};

use super::CLASSIFIER_DROPOUT;

/// Hugging Face's (and PyTorch's) "no label here" value.
pub const IGNORE_LABEL: i64 = -100;

pub struct TokenClassifier {
    /// `classifier.{weight [K, H], bias [K]}` (TF: `output_weights`, `output_bias`).
    pub dense: Linear,
}

impl TokenClassifier {
    pub fn new(ps: &mut ParamStore, hidden: i64, num_labels: i64, std: f64) -> TokenClassifier {
        TokenClassifier {
            dense: Linear::new(ps, "classifier", hidden, num_labels, std),
        }
    }

    /// `seq` `[B, L, H]` → logits `[B, L, K]` f32.
    pub fn forward(&self, seq: &Tensor, mode: Mode) -> Tensor {
        self.dense
            .forward(&seq.dropout(CLASSIFIER_DROPOUT, mode.train), mode)
            .to_kind(Kind::Float)
    }
}

/// Per-position negative log-likelihood `[B·L]`, 0 where the label is
/// [`IGNORE_LABEL`], and the mask of counted positions.
fn token_nll(logits: &Tensor, labels: &Tensor) -> (Tensor, Tensor) {
    let k = *logits.size().last().expect("logits have a label dimension");
    let logp = logits.reshape([-1, k]).log_softmax(-1, Kind::Float);
    let labels = labels.reshape([-1]);
    let keep = labels.ne(IGNORE_LABEL);
    let safe = labels.where_scalarother(&keep, 0);
    let nll = -logp.gather(1, &safe.unsqueeze(1), false).squeeze_dim(1);
    let keep = keep.to_kind(Kind::Float);
    (nll * &keep, keep)
}

/// Hugging Face's loss: mean cross-entropy over positions labelled other
/// than −100 (NaN if there are none, as in PyTorch).
pub fn token_loss_mean(logits: &Tensor, labels: &Tensor) -> Tensor {
    let (nll, keep) = token_nll(logits, labels);
    nll.sum(Kind::Float) / keep.sum(Kind::Float)
}

/// The TF reference's loss: cross-entropy summed over every position.
pub fn token_loss_sum(logits: &Tensor, labels: &Tensor) -> Tensor {
    token_nll(logits, labels).0.sum(Kind::Float)
}
