//! `x = Dropout(LN(word_emb[input_ids] + token_type_emb[segment_ids]))`
//! (the reference's `modeling.py` `embedding_lookup`, then
//! `embedding_postprocessor` with `use_position_embeddings` off; see
//! `docs/notes/model.md`). There is no absolute position embedding:
//! positions enter only through the relative encoding inside attention.

use tch::Tensor;

use super::blocks::{LayerNorm, Mode};
use super::config::NezhaConfig;
use super::params::{Init, ParamStore};

pub struct Embeddings {
    /// `[vocab, hidden]`; also the MLM decoder (tied).
    pub word_embeddings: Tensor,
    /// `[type_vocab, hidden]`
    pub token_type_embeddings: Tensor,
    pub layer_norm: LayerNorm,
    dropout: f64,
}

impl Embeddings {
    pub fn new(ps: &mut ParamStore, prefix: &str, cfg: &NezhaConfig) -> Embeddings {
        let std = cfg.initializer_range;
        Embeddings {
            word_embeddings: ps.add(
                &format!("{prefix}.word_embeddings.weight"),
                &[cfg.vocab_size, cfg.hidden_size],
                Init::TruncatedNormal(std),
            ),
            token_type_embeddings: ps.add(
                &format!("{prefix}.token_type_embeddings.weight"),
                &[cfg.type_vocab_size, cfg.hidden_size],
                Init::TruncatedNormal(std),
            ),
            layer_norm: LayerNorm::new(
                ps,
                &format!("{prefix}.LayerNorm"),
                cfg.hidden_size,
                cfg.layer_norm_eps,
            ),
            dropout: cfg.hidden_dropout_prob,
        }
    }

    /// `input_ids`, `segment_ids`: `[B, L]` int64 → `[B, L, H]` f32.
    pub fn forward(&self, input_ids: &Tensor, segment_ids: &Tensor, mode: Mode) -> Tensor {
        let words = Tensor::embedding(&self.word_embeddings, input_ids, -1, false, false);
        let types = Tensor::embedding(&self.token_type_embeddings, segment_ids, -1, false, false);
        self.layer_norm
            .forward(&(words + types))
            .dropout(self.dropout, mode.train)
    }
}
