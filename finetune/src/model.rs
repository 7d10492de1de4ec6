//! NEZHA with a fine-tuning head: the pretraining model's encoder (and
//! pooler) from `nezha-train`, plus one task head in its own parameter store.
//!
//! The backbone is the whole `NezhaForPreTraining` so that its encoder is
//! reused exactly; its MLM and NSP heads are simply never run and never
//! trained. Weights load from any [`ModelWeights`]: those of the same
//! architecture restore everything, others (a pretraining checkpoint, above
//! all) provide the encoder and the head starts from the TF initialisation.

use anyhow::{bail, ensure, Result};
use nezha_train::model::params::ParamStore;
use nezha_train::model::{Mode, NezhaConfig, NezhaForPreTraining};
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
}

pub struct NezhaForFinetuning {
    pub architecture: Architecture,
    pub backbone: NezhaForPreTraining,
    pub head_params: ParamStore,
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
        let backbone = NezhaForPreTraining::new(config, device)?;
        let mut ps = ParamStore::new(device);
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
            Architecture::PreTraining => {
                bail!("NezhaForFinetuning needs a task architecture, not pretraining")
            }
        };
        Ok(NezhaForFinetuning {
            architecture,
            backbone,
            head_params: ps,
            head,
        })
    }

    pub fn config(&self) -> &NezhaConfig {
        &self.backbone.config
    }

    pub fn device(&self) -> Device {
        self.backbone.device()
    }

    /// The parameters this task trains: the encoder, the pooler if the head
    /// reads it, and the head. Never the unused pretraining heads.
    pub fn trainable(&self) -> Vec<(String, Tensor)> {
        let specs = param_specs(self.config(), self.architecture);
        let mut out: Vec<(String, Tensor)> = self
            .backbone
            .params
            .named()
            .iter()
            .filter(|(n, _)| specs.iter().any(|s| s.hf == *n))
            .map(|(n, t)| (n.clone(), t.shallow_clone()))
            .collect();
        out.extend(
            self.head_params
                .named()
                .iter()
                .map(|(n, t)| (n.clone(), t.shallow_clone())),
        );
        out
    }

    /// Copies weights in. The encoder must be there; the pooler and head are
    /// taken when present and otherwise keep their initialisation (listed in
    /// the report). The configs must be equal.
    pub fn load(&mut self, w: &ModelWeights) -> Result<LoadReport> {
        if let Some(diff) = nezha_train::model::weights::config_difference(&w.config, self.config())
        {
            bail!("weights are for another model config: {diff}");
        }
        let specs = param_specs(self.config(), self.architecture);
        let same_head = w.architecture == self.architecture;
        if !same_head && w.architecture.hf_class() == self.architecture.hf_class() {
            bail!(
                "weights have a {} head with {:?} labels, the model {:?}",
                w.architecture.hf_class(),
                w.architecture.num_labels(),
                self.architecture.num_labels()
            );
        }
        let mut fresh = Vec::new();
        // ParamStore::load wants every parameter: fill the ones the weights
        // lack with their current values.
        let source: Vec<(String, Tensor)> = self
            .backbone
            .params
            .named()
            .iter()
            .map(|(n, t)| match w.get(n) {
                Some(src) => (n.clone(), src.shallow_clone()),
                None => {
                    if specs.iter().any(|s| s.hf == *n) {
                        fresh.push(n.clone());
                    }
                    (n.clone(), t.detach().copy())
                }
            })
            .collect();
        self.backbone.params.load(&source)?;
        if same_head {
            let head: Vec<(String, Tensor)> = specs
                .iter()
                .filter(|s| s.part == Part::TaskHead)
                .map(|s| (s.hf.clone(), w.get(&s.hf).unwrap().shallow_clone()))
                .collect();
            self.head_params.load(&head)?;
        } else {
            fresh.extend(self.head_params.named().iter().map(|(n, _)| n.clone()));
        }
        Ok(LoadReport {
            head_loaded: same_head,
            fresh,
        })
    }

    /// The model's weights under its architecture (for saving).
    pub fn weights(&self, labels: Option<Vec<String>>) -> Result<ModelWeights> {
        let specs = param_specs(self.config(), self.architecture);
        let all: Vec<(String, Tensor)> = self
            .backbone
            .params
            .named()
            .iter()
            .chain(self.head_params.named())
            .map(|(n, t)| (n.clone(), t.detach().copy()))
            .collect();
        let (w, _) = ModelWeights::from_hf_tensors(
            self.config(),
            Some(self.architecture),
            labels,
            all.into_iter()
                .filter(|(n, _)| specs.iter().any(|s| s.hf == *n))
                .collect(),
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
                let pooled = self.backbone.pooler.forward(&seq, mode);
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
