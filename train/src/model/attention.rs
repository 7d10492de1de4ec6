//! Multi-head self-attention with functional relative positions (spec §1.3),
//! followed by its output projection and post-LN residual (spec §1.4).

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

    /// `[B, L, H]` → `[B, N, L, d]`; heads are contiguous column blocks.
    fn split_heads(&self, x: &Tensor) -> Tensor {
        let (b, l) = (x.size()[0], x.size()[1]);
        x.view([b, l, self.heads, self.head_size])
            .permute([0, 2, 1, 3])
    }

    /// `x`: `[B, L, H]`; `mask_add`: `[B, 1, 1, L]` f32 (0 or −10000);
    /// `rel`: `[L, L, d]` shared relative table. Returns the context `[B, L, H]`.
    pub fn forward(&self, x: &Tensor, mask_add: &Tensor, rel: &Tensor, mode: Mode) -> Tensor {
        let (b, l) = (x.size()[0], x.size()[1]);
        let (n, d) = (self.heads, self.head_size);
        let rel = rel.to_kind(mode.compute);
        let q = self.split_heads(&self.query.forward(x, mode));
        let k = self.split_heads(&self.key.forward(x, mode));
        let v = self.split_heads(&self.value.forward(x, mode));

        // Q·R per query row i: [L, B·N, d] @ [L, d, L] → [L, B·N, L].
        let q_rows = q.permute([2, 0, 1, 3]).reshape([l, b * n, d]);
        let key_rel = q_rows
            .bmm(&rel.transpose(1, 2))
            .view([l, b, n, l])
            .permute([1, 2, 0, 3]);
        // The relative term joins before the 1/√d scaling, as in the code.
        let scores = (q.matmul(&k.transpose(-1, -2)) + key_rel).to_kind(Kind::Float)
            * (1.0 / (d as f64).sqrt())
            + mask_add;
        // One dropout mask, used for both the value and the relative products.
        let probs = scores
            .softmax(-1, Kind::Float)
            .dropout(self.dropout, mode.train)
            .to_kind(mode.compute);

        let probs_rows = probs.permute([2, 0, 1, 3]).reshape([l, b * n, l]);
        let value_rel = probs_rows
            .bmm(&rel)
            .view([l, b, n, d])
            .permute([1, 2, 0, 3]);
        (probs.matmul(&v) + value_rel)
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
