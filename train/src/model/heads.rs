//! The pretraining heads (the reference's `run_pretraining.py`
//! `get_masked_lm_output` and `get_next_sentence_output`; see
//! `docs/notes/model.md`): masked-LM over the masked positions only,
//! decoding through the tied word embeddings, and next-sentence prediction
//! over the pooled output.

use tch::{Kind, Tensor};

use super::blocks::{LayerNorm, Linear, Mode};
use super::config::{Activation, NezhaConfig};
use super::params::{Init, ParamStore};

/// `logits = LN(gelu(Dense_H(seq_at_positions))) · W_wordᵀ + output_bias`.
pub struct MlmHead {
    pub transform: Linear,
    pub layer_norm: LayerNorm,
    /// `[vocab]`, its own bias (the decoder weight is the word embeddings).
    pub bias: Tensor,
    act: Activation,
}

impl MlmHead {
    pub fn new(ps: &mut ParamStore, prefix: &str, cfg: &NezhaConfig) -> MlmHead {
        let h = cfg.hidden_size;
        MlmHead {
            transform: Linear::new(
                ps,
                &format!("{prefix}.transform.dense"),
                h,
                h,
                cfg.initializer_range,
            ),
            layer_norm: LayerNorm::new(
                ps,
                &format!("{prefix}.transform.LayerNorm"),
                h,
                cfg.layer_norm_eps,
            ),
            bias: ps.add(&format!("{prefix}.bias"), &[cfg.vocab_size], Init::Zeros),
            act: cfg.hidden_act,
        }
    }

    /// `seq` `[B, L, H]`, `positions` `[B, P]` → logits `[B·P, V]` f32.
    /// Only the B·P gathered rows go through the head, as in TF, which is
    /// where most of the head's cost would otherwise be.
    pub fn forward(
        &self,
        seq: &Tensor,
        positions: &Tensor,
        word_embeddings: &Tensor,
        mode: Mode,
    ) -> Tensor {
        let (b, l, h) = (seq.size()[0], seq.size()[1], seq.size()[2]);
        let offsets = Tensor::arange(b, (Kind::Int64, seq.device())).unsqueeze(1) * l;
        let flat = (positions + offsets).reshape([-1]);
        let rows = seq.reshape([b * l, h]).index_select(0, &flat);
        let t = self
            .transform
            .forward(&rows, mode)
            .gelu(self.act.torch_approximate());
        let t = self.layer_norm.forward(&t);
        let c = mode.compute;
        t.to_kind(c)
            .matmul(&word_embeddings.to_kind(c).transpose(0, 1))
            .to_kind(Kind::Float)
            + &self.bias
    }
}

/// `logits = pooled · Wᵀ + b`, `W` `[2, H]`; label 0 = IsNext, 1 = random.
pub struct NspHead {
    pub dense: Linear,
}

impl NspHead {
    pub fn new(ps: &mut ParamStore, prefix: &str, cfg: &NezhaConfig) -> NspHead {
        NspHead {
            dense: Linear::new(ps, prefix, cfg.hidden_size, 2, cfg.initializer_range),
        }
    }

    /// `[B, H]` → `[B, 2]` f32.
    pub fn forward(&self, pooled: &Tensor, mode: Mode) -> Tensor {
        self.dense.forward(pooled, mode).to_kind(Kind::Float)
    }
}
