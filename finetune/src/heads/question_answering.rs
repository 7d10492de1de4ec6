//! Reading comprehension (`run_squad.py`): start and end logits from one
//! dense layer `[2, H]` over the sequence output, no dropout.
//!
//! The TF reference adds `(1 − span_mask)·−10000` so that only `[CLS]` and
//! context tokens can be chosen; Hugging Face adds nothing. Both are here:
//! the mask is optional.

use nezha_train::model::blocks::{Linear, Mode};
use nezha_train::model::params::ParamStore;
use tch::{Kind, Tensor};

/// The additive constant for positions outside the answer span mask.
pub const SPAN_MASK_ADD: f64 = -10000.0;

pub struct SpanHead {
    /// `qa_outputs.{weight [2, H], bias [2]}` (TF: `cls/squad/output_*`).
    pub dense: Linear,
}

impl SpanHead {
    pub fn new(ps: &mut ParamStore, hidden: i64, std: f64) -> SpanHead {
        SpanHead {
            dense: Linear::new(ps, "qa_outputs", hidden, 2, std),
        }
    }

    /// `seq` `[B, L, H]` → `(start, end)` logits, each `[B, L]` f32.
    /// `span_mask` `[B, L]` (1 = may hold the answer), if given, pushes the
    /// other positions down by 10000 as the TF reference does.
    pub fn forward(
        &self,
        seq: &Tensor,
        span_mask: Option<&Tensor>,
        mode: Mode,
    ) -> (Tensor, Tensor) {
        let logits = self.dense.forward(seq, mode).to_kind(Kind::Float);
        let (start, end) = (logits.select(2, 0), logits.select(2, 1));
        match span_mask {
            None => (start, end),
            Some(m) => {
                let m = m.to_kind(Kind::Float);
                let add = (m.ones_like() - m) * SPAN_MASK_ADD;
                (start + &add, end + add)
            }
        }
    }
}

/// Hugging Face's loss: positions are clamped to `[0, L]`, position `L`
/// (outside the window) is ignored, and the start and end mean
/// cross-entropies are averaged. With every position inside the window this
/// is the TF reference's `(start_loss + end_loss) / 2`.
pub fn span_loss(start: &Tensor, end: &Tensor, start_pos: &Tensor, end_pos: &Tensor) -> Tensor {
    let len = start.size()[1];
    let ce = |logits: &Tensor, pos: &Tensor| {
        let pos = pos.reshape([-1]).clamp(0, len);
        let keep = pos.ne(len);
        let safe = pos.where_scalarother(&keep, 0);
        let logp = logits.log_softmax(-1, Kind::Float);
        let nll = -logp.gather(1, &safe.unsqueeze(1), false).squeeze_dim(1);
        let keep = keep.to_kind(Kind::Float);
        (nll * &keep).sum(Kind::Float) / keep.sum(Kind::Float)
    };
    (ce(start, start_pos) + ce(end, end_pos)) / 2.0
}
