//! Multi-head self-attention with functional relative positions (the
//! reference's `modeling.py` `attention_layer` with
//! `use_relative_position`), followed by its output projection and post-LN
//! residual (`transformer_model`'s `attention/output` scope). The formulas
//! are in `docs/notes/model.md`.

use tch::{Kind, Tensor};

use super::blocks::{LayerNorm, Linear, Mode};
use super::config::NezhaConfig;
use super::params::ParamStore;

pub struct SelfAttention {
    pub query: Linear,
    pub key: Linear,
    pub value: Linear,
    heads: i64,
    head_size: i64,
    dropout: f64,
}

impl SelfAttention {
    pub fn new(ps: &mut ParamStore, prefix: &str, cfg: &NezhaConfig) -> SelfAttention {
        let (h, std) = (cfg.hidden_size, cfg.initializer_range);
        SelfAttention {
            query: Linear::new(ps, &format!("{prefix}.query"), h, h, std),
            key: Linear::new(ps, &format!("{prefix}.key"), h, h, std),
            value: Linear::new(ps, &format!("{prefix}.value"), h, h, std),
            heads: cfg.num_attention_heads,
            head_size: cfg.head_size(),
            dropout: cfg.attention_probs_dropout_prob,
        }
    }

    /// `x`: `[B, L, H]`; `mask_add`: `[B, 1, 1, L]` f32 (0 or −10000);
    /// `rel`: `[L, L, d]` shared relative table. Returns the context `[B, L, H]`.
    ///
    /// Everything runs in `mode.compute`: on a GPU in bf16 the scores never
    /// exist in f32 (softmax accumulates in f32 internally), which halves
    /// the traffic of the score-sized tensors, the largest of a layer.
    pub fn forward(&self, x: &Tensor, mask_add: &Tensor, rel: &Tensor, mode: Mode) -> Tensor {
        let (b, l) = (x.size()[0], x.size()[1]);
        let (n, d) = (self.heads, self.head_size);
        let c = mode.compute;
        let rel = rel.to_kind(c);
        // Q, K and V from one product: [B, L, 3, N, d], heads being
        // contiguous column blocks of each.
        let weight = Tensor::cat(
            &[&self.query.weight, &self.key.weight, &self.value.weight],
            0,
        );
        let bias = Tensor::cat(&[&self.query.bias, &self.key.bias, &self.value.bias], 0);
        let qkv = x
            .to_kind(c)
            .linear(&weight.to_kind(c), Some(bias.to_kind(c)))
            .view([b, l, 3, n, d]);
        // Per (batch, head): [B·N, L, d], and Kᵀ as [B·N, d, L].
        let heads = |i: i64| qkv.select(2, i).permute([0, 2, 1, 3]);
        let q = heads(0).reshape([b * n, l, d]);
        let k_t = heads(1).transpose(-1, -2).reshape([b * n, d, l]);
        let v = heads(2).reshape([b * n, l, d]);

        // Q·R per query row i: [L, B·N, d] @ [L, d, L] → [L, B·N, L].
        let q_rows = q.view([b * n, l, d]).transpose(0, 1).contiguous();
        let key_rel = q_rows.bmm(&rel.transpose(1, 2));
        // (Q·Kᵀ + Q·R)/√d: the relative term joins before the scaling, as
        // in the code; one batched product adds it.
        let scale = 1.0 / (d as f64).sqrt();
        let mut scores = key_rel
            .transpose(0, 1)
            .baddbmm(&q, &k_t, scale, scale)
            .view([b, n, l, l]);
        let _ = scores
            .f_add_(&mask_add.to_kind(c))
            .expect("adding the attention mask");
        // One dropout mask, used for both the value and the relative products.
        let probs = scores
            .softmax(-1, c)
            .dropout(self.dropout, mode.train)
            .view([b * n, l, l]);

        // P·R per query row, then P·V added in the same batched product.
        let probs_rows = probs.transpose(0, 1).contiguous();
        let value_rel = probs_rows.bmm(&rel);
        value_rel
            .transpose(0, 1)
            .baddbmm(&probs, &v, 1.0, 1.0)
            .view([b, n, l, d])
            .permute([0, 2, 1, 3])
            .reshape([b, l, n * d])
    }
}

/// `LN(dropout(Dense(ctx)) + x)`.
pub struct SelfOutput {
    pub dense: Linear,
    pub layer_norm: LayerNorm,
    dropout: f64,
}

impl SelfOutput {
    pub fn new(ps: &mut ParamStore, prefix: &str, cfg: &NezhaConfig) -> SelfOutput {
        let h = cfg.hidden_size;
        SelfOutput {
            dense: Linear::new(ps, &format!("{prefix}.dense"), h, h, cfg.initializer_range),
            layer_norm: LayerNorm::new(ps, &format!("{prefix}.LayerNorm"), h, cfg.layer_norm_eps),
            dropout: cfg.hidden_dropout_prob,
        }
    }

    pub fn forward(&self, ctx: &Tensor, residual: &Tensor, mode: Mode) -> Tensor {
        let h = self
            .dense
            .forward(ctx, mode)
            .dropout(self.dropout, mode.train);
        self.layer_norm
            .forward(&(h.to_kind(Kind::Float) + residual))
    }
}

/// Self-attention plus its output block (`….attention.{self,output}`).
pub struct Attention {
    pub self_attention: SelfAttention,
    pub output: SelfOutput,
}

impl Attention {
    pub fn new(ps: &mut ParamStore, prefix: &str, cfg: &NezhaConfig) -> Attention {
        Attention {
            self_attention: SelfAttention::new(ps, &format!("{prefix}.self"), cfg),
            output: SelfOutput::new(ps, &format!("{prefix}.output"), cfg),
        }
    }

    pub fn forward(&self, x: &Tensor, mask_add: &Tensor, rel: &Tensor, mode: Mode) -> Tensor {
        let ctx = self.self_attention.forward(x, mask_add, rel, mode);
        self.output.forward(&ctx, x, mode)
    }
}
