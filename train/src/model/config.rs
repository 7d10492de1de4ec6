//! Model hyper-parameters, in the reference `bert_config.json` format plus
//! `max_relative_position`.

use std::path::Path;

use anyhow::{bail, Context, Result};
use serde::{Deserialize, Serialize};

/// The feed-forward activation.
///
/// `gelu` is the tanh approximation because that is what the TF reference
/// (whose `bert_config.json` says "gelu") computes; Hugging Face and
/// NEZHA-PyTorch mean the exact erf form by "gelu", which is `gelu_erf` here.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Activation {
    #[serde(rename = "gelu", alias = "gelu_new", alias = "gelu_pytorch_tanh")]
    GeluTanh,
    #[serde(rename = "gelu_erf")]
    GeluErf,
}

impl Activation {
    /// The `approximate` argument of libtorch's `gelu`.
    pub fn torch_approximate(self) -> &'static str {
        match self {
            Activation::GeluTanh => "tanh",
            Activation::GeluErf => "none",
        }
    }
}

fn default_max_relative_position() -> i64 {
    // TF hardcodes 64 and ignores the config; the released configs say 64.
    64
}

fn default_layer_norm_eps() -> f64 {
    1e-12
}

/// A NEZHA configuration. Field names and meanings follow `bert_config.json`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NezhaConfig {
    pub vocab_size: i64,
    pub hidden_size: i64,
    pub num_hidden_layers: i64,
    pub num_attention_heads: i64,
    pub intermediate_size: i64,
    pub hidden_act: Activation,
    pub hidden_dropout_prob: f64,
    pub attention_probs_dropout_prob: f64,
    /// Kept for format compatibility; NEZHA has no absolute position table.
    pub max_position_embeddings: i64,
    pub type_vocab_size: i64,
    pub initializer_range: f64,
    #[serde(default = "default_max_relative_position")]
    pub max_relative_position: i64,
    #[serde(default = "default_layer_norm_eps")]
    pub layer_norm_eps: f64,
    /// Present in the released base config; relative positions are always used.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub use_relative_position: Option<bool>,
}

impl NezhaConfig {
    /// Small enough to train on a laptop CPU; used by tests and the demo.
    pub fn tiny() -> NezhaConfig {
        NezhaConfig {
            hidden_size: 128,
            num_hidden_layers: 2,
            num_attention_heads: 2,
            intermediate_size: 512,
            ..NezhaConfig::base()
        }
    }

    /// NEZHA-base: the reference's `nezha/bert_config.json`, with the
    /// `max_relative_position` of 64 that `modeling.py` `attention_layer`
    /// hard-codes (`docs/notes/model.md`).
    pub fn base() -> NezhaConfig {
        NezhaConfig {
            vocab_size: 21128,
            hidden_size: 768,
            num_hidden_layers: 12,
            num_attention_heads: 12,
            intermediate_size: 3072,
            hidden_act: Activation::GeluTanh,
            hidden_dropout_prob: 0.1,
            attention_probs_dropout_prob: 0.1,
            max_position_embeddings: 512,
            type_vocab_size: 2,
            initializer_range: 0.02,
            max_relative_position: 64,
            layer_norm_eps: 1e-12,
            use_relative_position: None,
        }
    }

    /// NEZHA-large: base with 1024 hidden, 24 layers, 16 heads and 4096
    /// intermediate (`docs/notes/model.md`).
    pub fn large() -> NezhaConfig {
        NezhaConfig {
            hidden_size: 1024,
            num_hidden_layers: 24,
            num_attention_heads: 16,
            intermediate_size: 4096,
            ..NezhaConfig::base()
        }
    }

    /// `tiny`, `base` or `large`.
    pub fn preset(name: &str) -> Result<NezhaConfig> {
        match name {
            "tiny" => Ok(NezhaConfig::tiny()),
            "base" => Ok(NezhaConfig::base()),
            "large" => Ok(NezhaConfig::large()),
            other => bail!("unknown model preset {other:?}: expected tiny, base or large"),
        }
    }

    /// Reads and validates a `bert_config.json`-style file.
    pub fn from_json_file(path: &Path) -> Result<NezhaConfig> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("reading model config {}", path.display()))?;
        let cfg: NezhaConfig = serde_json::from_str(&text)
            .with_context(|| format!("parsing model config {}", path.display()))?;
        cfg.validate()
            .with_context(|| format!("invalid model config {}", path.display()))?;
        Ok(cfg)
    }

    pub fn head_size(&self) -> i64 {
        self.hidden_size / self.num_attention_heads
    }

    /// Checks the invariants the modules rely on.
    pub fn validate(&self) -> Result<()> {
        let positive = [
            ("vocab_size", self.vocab_size),
            ("hidden_size", self.hidden_size),
            ("num_hidden_layers", self.num_hidden_layers),
            ("num_attention_heads", self.num_attention_heads),
            ("intermediate_size", self.intermediate_size),
            ("type_vocab_size", self.type_vocab_size),
            ("max_relative_position", self.max_relative_position),
        ];
        for (name, v) in positive {
            if v <= 0 {
                bail!("{name} must be positive, got {v}");
            }
        }
        if self.hidden_size % self.num_attention_heads != 0 {
            bail!(
                "hidden_size {} is not a multiple of num_attention_heads {}",
                self.hidden_size,
                self.num_attention_heads
            );
        }
        // The sinusoid table interleaves sin/cos pairs over the head dimension.
        if self.head_size() % 2 != 0 {
            bail!(
                "head size {} must be even for the sinusoid table",
                self.head_size()
            );
        }
        for (name, p) in [
            ("hidden_dropout_prob", self.hidden_dropout_prob),
            (
                "attention_probs_dropout_prob",
                self.attention_probs_dropout_prob,
            ),
        ] {
            if !(0.0..1.0).contains(&p) {
                bail!("{name} must be in [0, 1), got {p}");
            }
        }
        if self.use_relative_position == Some(false) {
            bail!("use_relative_position = false (absolute positions) is not NEZHA and is not supported");
        }
        Ok(())
    }
}
