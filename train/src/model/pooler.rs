//! `pooled = tanh(Dense_H(seq[:, 0]))`: the `[CLS]` summary the NSP and
//! classification heads read.

use tch::{Kind, Tensor};

use super::blocks::{Linear, Mode};
use super::config::NezhaConfig;
use super::params::ParamStore;

pub struct Pooler {
    pub dense: Linear,
}

impl Pooler {
    pub fn new(ps: &mut ParamStore, prefix: &str, cfg: &NezhaConfig) -> Pooler {
        let h = cfg.hidden_size;
        Pooler {
            dense: Linear::new(ps, &format!("{prefix}.dense"), h, h, cfg.initializer_range),
        }
    }

    /// `[B, L, H]` → `[B, H]` f32.
    pub fn forward(&self, seq: &Tensor, mode: Mode) -> Tensor {
        self.dense
            .forward(&seq.select(1, 0), mode)
            .to_kind(Kind::Float)
            .tanh()
    }
}
