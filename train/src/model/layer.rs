//! One post-LN transformer layer (the reference's `modeling.py`
//! `transformer_model`, one `layer_N` scope; `docs/notes/model.md`):
//! `a = LN(dropout(Dense_H(ctx)) + x)`; `y = LN(dropout(Dense_H(gelu(Dense_I(a)))) + a)`.

use tch::{Kind, Tensor};

use super::attention::Attention;
use super::blocks::{LayerNorm, Linear, Mode};
use super::config::{Activation, NezhaConfig};
use super::params::ParamStore;

pub struct Layer {
    pub attention: Attention,
    pub intermediate: Linear,
    pub output: Linear,
    pub output_layer_norm: LayerNorm,
    act: Activation,
    dropout: f64,
}

impl Layer {
    pub fn new(ps: &mut ParamStore, prefix: &str, cfg: &NezhaConfig) -> Layer {
        let (h, i, std) = (
            cfg.hidden_size,
            cfg.intermediate_size,
            cfg.initializer_range,
        );
        Layer {
            attention: Attention::new(ps, &format!("{prefix}.attention"), cfg),
            intermediate: Linear::new(ps, &format!("{prefix}.intermediate.dense"), h, i, std),
            output: Linear::new(ps, &format!("{prefix}.output.dense"), i, h, std),
            output_layer_norm: LayerNorm::new(
                ps,
                &format!("{prefix}.output.LayerNorm"),
                h,
                cfg.layer_norm_eps,
            ),
            act: cfg.hidden_act,
            dropout: cfg.hidden_dropout_prob,
        }
    }

    pub fn forward(&self, x: &Tensor, mask_add: &Tensor, rel: &Tensor, mode: Mode) -> Tensor {
        let a = self.attention.forward(x, mask_add, rel, mode);
        // No dropout after the activation, only before the residual add.
        let h = self
            .intermediate
            .forward(&a, mode)
            .gelu(self.act.torch_approximate());
        let y = self
            .output
            .forward(&h, mode)
            .dropout(self.dropout, mode.train);
        self.output_layer_norm
            .forward(&(y.to_kind(Kind::Float) + a))
    }
}
