//! Which tensors a NEZHA model has, under the reference TF names (the
//! variable scopes of NEZHA-TensorFlow's `modeling.py` `BertModel`, of
//! `run_pretraining.py`'s heads and of the fine-tuning scripts'
//! `create_model`) and Hugging Face's (what transformers'
//! `load_tf_weights_in_nezha` maps them to), with their shapes for a given
//! config. `docs/notes/model.md` names both sources at fixed commits and
//! the renaming rule.
//!
//! The table is built from the config rather than by rewriting names with
//! rules, so that a checkpoint is matched against exactly the variables the
//! config implies: an extra layer, a missing variable or a wrong shape is
//! found by name, and nothing outside the table can slip into the model.

use anyhow::{bail, Result};
use nezha_train::model::NezhaConfig;
use serde::{Deserialize, Serialize};

/// The model a set of weights belongs to, as Hugging Face's class names it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Architecture {
    /// Encoder, pooler, masked-LM and next-sentence heads.
    PreTraining,
    /// Encoder, pooler and `classifier` `[K, H]` over the pooled output.
    SequenceClassification { num_labels: i64 },
    /// Encoder and `classifier` `[K, H]` over every position (no pooler).
    TokenClassification { num_labels: i64 },
    /// Encoder and `qa_outputs` `[2, H]` (start, end) over every position.
    QuestionAnswering,
}

impl Architecture {
    /// The Hugging Face class (`config.json` `architectures`).
    pub fn hf_class(&self) -> &'static str {
        match self {
            Architecture::PreTraining => "NezhaForPreTraining",
            Architecture::SequenceClassification { .. } => "NezhaForSequenceClassification",
            Architecture::TokenClassification { .. } => "NezhaForTokenClassification",
            Architecture::QuestionAnswering => "NezhaForQuestionAnswering",
        }
    }

    /// The inverse of [`Architecture::hf_class`]; `num_labels` is needed for
    /// the classifiers.
    pub fn from_hf_class(class: &str, num_labels: i64) -> Result<Architecture> {
        Ok(match class {
            "NezhaForPreTraining" => Architecture::PreTraining,
            "NezhaForSequenceClassification" => Architecture::SequenceClassification { num_labels },
            "NezhaForTokenClassification" => Architecture::TokenClassification { num_labels },
            "NezhaForQuestionAnswering" => Architecture::QuestionAnswering,
            other => bail!(
                "architecture {other:?} is not supported: expected NezhaForPreTraining, \
                 NezhaForSequenceClassification, NezhaForTokenClassification or \
                 NezhaForQuestionAnswering"
            ),
        })
    }

    pub fn has_pooler(&self) -> bool {
        matches!(
            self,
            Architecture::PreTraining | Architecture::SequenceClassification { .. }
        )
    }

    pub fn num_labels(&self) -> Option<i64> {
        match *self {
            Architecture::SequenceClassification { num_labels }
            | Architecture::TokenClassification { num_labels } => Some(num_labels),
            _ => None,
        }
    }
}

/// What part of the model a tensor belongs to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Part {
    Encoder,
    Pooler,
    /// `cls.predictions.*` and `cls.seq_relationship.*`.
    PreTrainingHeads,
    /// `classifier.*` or `qa_outputs.*`.
    TaskHead,
}

/// One tensor of the model.
#[derive(Clone, Debug, PartialEq)]
pub struct ParamSpec {
    /// Hugging Face state-dict name.
    pub hf: String,
    /// Reference TF variable name.
    pub tf: String,
    /// Shape in Hugging Face (PyTorch) orientation.
    pub shape: Vec<i64>,
    /// A TF `kernel` `[in, out]`, stored transposed by PyTorch.
    pub transpose: bool,
    /// Its first dimension is the vocabulary (may be padded in TF).
    pub vocab_rows: bool,
    pub part: Part,
}

impl ParamSpec {
    /// The shape as the TF checkpoint stores it.
    pub fn tf_shape(&self) -> Vec<i64> {
        if self.transpose {
            self.shape.iter().rev().copied().collect()
        } else {
            self.shape.clone()
        }
    }
}

struct Specs {
    out: Vec<ParamSpec>,
    part: Part,
}

impl Specs {
    fn push(&mut self, hf: String, tf: String, shape: &[i64], transpose: bool, vocab_rows: bool) {
        self.out.push(ParamSpec {
            hf,
            tf,
            shape: shape.to_vec(),
            transpose,
            vocab_rows,
            part: self.part,
        });
    }

    /// A TF dense layer (`kernel` `[in, out]`, `bias`) = PyTorch `Linear`.
    fn dense(&mut self, hf: &str, tf: &str, d_in: i64, d_out: i64) {
        self.push(
            format!("{hf}.weight"),
            format!("{tf}/kernel"),
            &[d_out, d_in],
            true,
            false,
        );
        self.push(
            format!("{hf}.bias"),
            format!("{tf}/bias"),
            &[d_out],
            false,
            false,
        );
    }

    /// TF `gamma`/`beta` = PyTorch `weight`/`bias`.
    fn layer_norm(&mut self, hf: &str, tf: &str, dim: i64) {
        self.push(
            format!("{hf}.weight"),
            format!("{tf}/gamma"),
            &[dim],
            false,
            false,
        );
        self.push(
            format!("{hf}.bias"),
            format!("{tf}/beta"),
            &[dim],
            false,
            false,
        );
    }
}

/// Every tensor of `arch` under `cfg`, in the order our model creates its
/// parameters (embeddings, layers, pooler, heads).
pub fn param_specs(cfg: &NezhaConfig, arch: Architecture) -> Vec<ParamSpec> {
    let (h, i, v) = (cfg.hidden_size, cfg.intermediate_size, cfg.vocab_size);
    let mut s = Specs {
        out: Vec::new(),
        part: Part::Encoder,
    };
    let (e, te) = ("nezha.embeddings", "bert/embeddings");
    s.push(
        format!("{e}.word_embeddings.weight"),
        format!("{te}/word_embeddings"),
        &[v, h],
        false,
        true,
    );
    s.push(
        format!("{e}.token_type_embeddings.weight"),
        format!("{te}/token_type_embeddings"),
        &[cfg.type_vocab_size, h],
        false,
        false,
    );
    s.layer_norm(&format!("{e}.LayerNorm"), &format!("{te}/LayerNorm"), h);
    for l in 0..cfg.num_hidden_layers {
        let (p, tp) = (
            format!("nezha.encoder.layer.{l}"),
            format!("bert/encoder/layer_{l}"),
        );
        for m in ["query", "key", "value"] {
            s.dense(
                &format!("{p}.attention.self.{m}"),
                &format!("{tp}/attention/self/{m}"),
                h,
                h,
            );
        }
        s.dense(
            &format!("{p}.attention.output.dense"),
            &format!("{tp}/attention/output/dense"),
            h,
            h,
        );
        s.layer_norm(
            &format!("{p}.attention.output.LayerNorm"),
            &format!("{tp}/attention/output/LayerNorm"),
            h,
        );
        s.dense(
            &format!("{p}.intermediate.dense"),
            &format!("{tp}/intermediate/dense"),
            h,
            i,
        );
        s.dense(
            &format!("{p}.output.dense"),
            &format!("{tp}/output/dense"),
            i,
            h,
        );
        s.layer_norm(
            &format!("{p}.output.LayerNorm"),
            &format!("{tp}/output/LayerNorm"),
            h,
        );
    }
    if arch.has_pooler() {
        s.part = Part::Pooler;
        s.dense("nezha.pooler.dense", "bert/pooler/dense", h, h);
    }
    match arch {
        Architecture::PreTraining => {
            s.part = Part::PreTrainingHeads;
            s.dense(
                "cls.predictions.transform.dense",
                "cls/predictions/transform/dense",
                h,
                h,
            );
            s.layer_norm(
                "cls.predictions.transform.LayerNorm",
                "cls/predictions/transform/LayerNorm",
                h,
            );
            s.push(
                "cls.predictions.bias".into(),
                "cls/predictions/output_bias".into(),
                &[v],
                false,
                true,
            );
            // `output_weights` is stored [out, in] already: not transposed.
            s.push(
                "cls.seq_relationship.weight".into(),
                "cls/seq_relationship/output_weights".into(),
                &[2, h],
                false,
                false,
            );
            s.push(
                "cls.seq_relationship.bias".into(),
                "cls/seq_relationship/output_bias".into(),
                &[2],
                false,
                false,
            );
        }
        Architecture::SequenceClassification { num_labels }
        | Architecture::TokenClassification { num_labels } => {
            s.part = Part::TaskHead;
            s.push(
                "classifier.weight".into(),
                "output_weights".into(),
                &[num_labels, h],
                false,
                false,
            );
            s.push(
                "classifier.bias".into(),
                "output_bias".into(),
                &[num_labels],
                false,
                false,
            );
        }
        Architecture::QuestionAnswering => {
            s.part = Part::TaskHead;
            s.push(
                "qa_outputs.weight".into(),
                "cls/squad/output_weights".into(),
                &[2, h],
                false,
                false,
            );
            s.push(
                "qa_outputs.bias".into(),
                "cls/squad/output_bias".into(),
                &[2],
                false,
                false,
            );
        }
    }
    s.out
}

/// The pooler's two tensors, for architectures that lack one but whose TF
/// checkpoints carry it (the reference's `BertModel` always builds it).
pub fn pooler_specs(cfg: &NezhaConfig) -> Vec<ParamSpec> {
    param_specs(cfg, Architecture::PreTraining)
        .into_iter()
        .filter(|p| p.part == Part::Pooler)
        .collect()
}
