//! The TF reference's pretraining losses (`run_pretraining.py`
//! `get_masked_lm_output` and `get_next_sentence_output`; see
//! `docs/notes/model.md`) and the accuracies reported as metrics.

use tch::{Kind, Tensor};

use super::inputs::PreTrainingInputs;
use super::pretraining::PreTrainingOutput;

/// Scalar f32 tensors; `total` carries the graph for backward.
pub struct PreTrainingLoss {
    /// `mlm + nsp`
    pub total: Tensor,
    /// `Σ(w·nll) / (Σw + 1e-5)`
    pub mlm: Tensor,
    /// `mean(nll)`
    pub nsp: Tensor,
    /// weighted fraction of masked tokens predicted right (0 if no weight)
    pub mlm_accuracy: Tensor,
    /// fraction of next-sentence labels predicted right
    pub nsp_accuracy: Tensor,
}

pub fn pretraining_loss(out: &PreTrainingOutput, inputs: &PreTrainingInputs) -> PreTrainingLoss {
    let ids = inputs.masked_lm_ids.reshape([-1]);
    let w = inputs.masked_lm_weights.reshape([-1]);
    let logp = out.mlm_logits.log_softmax(-1, Kind::Float);
    let nll = -logp.gather(1, &ids.unsqueeze(1), false).squeeze_dim(1);
    let w_sum = w.sum(Kind::Float);
    let mlm = (&w * nll).sum(Kind::Float) / (&w_sum + 1e-5);

    let labels = inputs.next_sentence_labels.reshape([-1]);
    let nsp_logp = out.nsp_logits.log_softmax(-1, Kind::Float);
    let nsp = -nsp_logp
        .gather(1, &labels.unsqueeze(1), false)
        .mean(Kind::Float);

    let (mlm_accuracy, nsp_accuracy) = tch::no_grad(|| {
        let hit = out
            .mlm_logits
            .argmax(-1, false)
            .eq_tensor(&ids)
            .to_kind(Kind::Float);
        let mlm_acc = (hit * &w).sum(Kind::Float) / w_sum.clamp_min(f64::MIN_POSITIVE);
        let nsp_acc = out
            .nsp_logits
            .argmax(-1, false)
            .eq_tensor(&labels)
            .to_kind(Kind::Float)
            .mean(Kind::Float);
        (mlm_acc, nsp_acc)
    });
    PreTrainingLoss {
        total: &mlm + &nsp,
        mlm,
        nsp,
        mlm_accuracy,
        nsp_accuracy,
    }
}
