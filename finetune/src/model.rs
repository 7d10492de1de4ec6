//! NEZHA with a fine-tuning head: the [`NezhaModel`] backbone from
//! `nezha-train` (embeddings, encoder, and the pooler when the head reads it)
//! plus one task head, all in one parameter store under Hugging Face's names.
//!
//! Weights load from any [`ModelWeights`]: those of the same architecture
//! restore everything, others (a pretraining checkpoint, above all) provide
//! the encoder and the head starts from the TF initialisation. Tensors the
//! model has no place for (a pretraining checkpoint's MLM and NSP heads, a
//! pooler the head does not read) are left out, as Hugging Face's
//! `from_pretrained` does, and listed in the [`LoadReport`].

use anyhow::{bail, ensure, Result};
use nezha_train::model::params::ParamStore;
use nezha_train::model::{Mode, NezhaConfig, NezhaModel};
use tch::{Device, Tensor};

use crate::checkpoint::names::{param_specs, Part};
use crate::checkpoint::{Architecture, ModelWeights};
use crate::heads::{SequenceClassifier, SpanHead, TokenClassifier};

pub enum Head {
    Sequence(SequenceClassifier),
    Token(TokenClassifier),
    Span(SpanHead),
}

/// A head's logits, all f32.
pub enum HeadOutput {
    /// `[B, K]`
    Sequence(Tensor),
    /// `[B, L, K]`
    Token(Tensor),
    /// start, end: `[B, L]` each
    Span(Tensor, Tensor),
}

/// What [`NezhaForFinetuning::load`] took from the weights.
#[derive(Clone, Debug, PartialEq)]
pub struct LoadReport {
    /// The head came from the weights (same architecture).
    pub head_loaded: bool,
    /// Parameters the task uses that kept their fresh initialisation.
    pub fresh: Vec<String>,
    /// Tensors of the weights the model does not use: a pretraining
    /// checkpoint's MLM and NSP heads, a pooler the head does not read, or
    /// another architecture's task head.
    pub unused: Vec<String>,
}

pub struct NezhaForFinetuning {
    pub architecture: Architecture,
    /// Embeddings, encoder, and the pooler if the architecture has one.
    pub backbone: NezhaModel,
    /// Every parameter, in `param_specs` order: the backbone's (`nezha.*`)
    /// then the head's (`classifier.*` or `qa_outputs.*`).
    pub params: ParamStore,
    pub head: Head,
}

impl NezhaForFinetuning {
    /// A fresh model with TF initialisation drawn from libtorch's global
    /// generator (seed it with `tch::manual_seed` first).
    pub fn new(
        config: &NezhaConfig,
        architecture: Architecture,
        device: Device,
    ) -> Result<NezhaForFinetuning> {
        if architecture == Architecture::PreTraining {
            bail!("NezhaForFinetuning needs a task architecture, not pretraining");
        }
        let mut ps = ParamStore::new(device);
        let backbone = NezhaModel::new(&mut ps, "nezha", config, architecture.has_pooler())?;
        let (h, std) = (config.hidden_size, config.initializer_range);
        let head = match architecture {
            Architecture::SequenceClassification { num_labels } => {
                ensure!(
                    num_labels >= 2,
                    "a classifier needs at least 2 labels, got {num_labels}"
                );
                Head::Sequence(SequenceClassifier::new(&mut ps, h, num_labels, std))
            }
            Architecture::TokenClassification { num_labels } => {
                ensure!(
                    num_labels >= 2,
                    "a tagger needs at least 2 labels, got {num_labels}"
                );
                Head::Token(TokenClassifier::new(&mut ps, h, num_labels, std))
            }
            Architecture::QuestionAnswering => Head::Span(SpanHead::new(&mut ps, h, std)),
            Architecture::PreTraining => unreachable!("refused above"),
        };
        Ok(NezhaForFinetuning {
            architecture,
            backbone,
            params: ps,
            head,
        })
    }

    pub fn config(&self) -> &NezhaConfig {
        &self.backbone.config
    }

    pub fn device(&self) -> Device {
        self.params.device()
    }

    /// The parameters this task trains: all of the model's (the encoder, the
    /// pooler if the head reads it, and the head), as handles sharing storage
    /// and gradients with the model's.
    pub fn trainable(&self) -> Vec<(String, Tensor)> {
        self.params.handles()
    }

    /// Copies weights in. The encoder must be there; the pooler and head are
    /// taken when present (the head only from weights of the same
    /// architecture) and otherwise keep their initialisation (listed in the
    /// report's `fresh`). Tensors the model has no place for are left out and
    /// listed in the report's `unused`. The configs must be equal.
    pub fn load(&mut self, w: &ModelWeights) -> Result<LoadReport> {
        if let Some(diff) = nezha_train::model::weights::config_difference(&w.config, self.config())
        {
            bail!("weights are for another model config: {diff}");
        }
        let same_head = w.architecture == self.architecture;
        if !same_head && w.architecture.hf_class() == self.architecture.hf_class() {
            bail!(
                "weights have a {} head with {:?} labels, the model {:?}",
                w.architecture.hf_class(),
                w.architecture.num_labels(),
                self.architecture.num_labels()
            );
        }
        let specs = param_specs(self.config(), self.architecture);
        let is_head = |n: &str| specs.iter().any(|s| s.hf == n && s.part == Part::TaskHead);
        // Another architecture's head may share our head's names
        // (`classifier.*` of a tagger and of a sentence classifier): never
        // take a head from weights of another architecture.
        let wanted = |n: &str| same_head || !is_head(n);
        let mut fresh = Vec::new();
        // ParamStore::load wants every parameter: fill the ones the weights
        // lack with their current values.
        let source: Vec<(String, Tensor)> = self
            .params
            .named()
            .iter()
            .map(|(n, t)| match w.get(n).filter(|_| wanted(n)) {
                Some(src) => (n.clone(), src.shallow_clone()),
                None => {
                    fresh.push(n.clone());
                    (n.clone(), t.detach().copy())
                }
            })
            .collect();
        let unused: Vec<String> = w
            .tensors
            .iter()
            .map(|(n, _)| n)
            .filter(|n| self.params.get(n).is_none() || !wanted(n))
            .cloned()
            .collect();
        let extra = self.params.load(&source)?;
        debug_assert!(extra.is_empty(), "source holds only our parameters");
        Ok(LoadReport {
            head_loaded: same_head,
            fresh,
            unused,
        })
    }

    /// The model's weights under its architecture (for saving), on the CPU.
    pub fn weights(&self, labels: Option<Vec<String>>) -> Result<ModelWeights> {
        let all: Vec<(String, Tensor)> = self
            .params
            .named()
            .iter()
            .map(|(n, t)| (n.clone(), t.detach().to_device(Device::Cpu).copy()))
            .collect();
        let (w, _) = ModelWeights::from_hf_tensors(
            self.config(),
            Some(self.architecture),
            labels,
            all,
            "the fine-tuned model",
        )?;
        Ok(w)
    }

    /// Runs the encoder and the head. `span_mask` applies to the QA head
    /// only (see [`SpanHead::forward`]).
    pub fn forward(
        &self,
        input_ids: &Tensor,
        input_mask: &Tensor,
        segment_ids: &Tensor,
        span_mask: Option<&Tensor>,
        mode: Mode,
    ) -> HeadOutput {
        let seq = self
            .backbone
            .encode(input_ids, input_mask, segment_ids, mode);
        match &self.head {
            Head::Sequence(h) => {
                let pooled = self
                    .backbone
                    .pool(&seq, mode)
                    .expect("a sequence classifier's backbone has a pooler");
                HeadOutput::Sequence(h.forward(&pooled, mode))
            }
            Head::Token(h) => HeadOutput::Token(h.forward(&seq, mode)),
            Head::Span(h) => {
                let (s, e) = h.forward(&seq, span_mask, mode);
                HeadOutput::Span(s, e)
            }
        }
    }
}
