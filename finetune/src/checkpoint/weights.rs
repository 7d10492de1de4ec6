//! A complete, checked set of model weights, independent of the file format
//! it came from: the config, the architecture, and exactly the tensors that
//! architecture has, under Hugging Face names, f32, PyTorch orientation.
//!
//! Every reader ends here and every writer starts here, so a converted
//! model is checked once against its config whatever the two formats are.

use anyhow::{bail, ensure, Context, Result};
use nezha_train::model::NezhaConfig;
use tch::{Kind, Tensor};

use super::names::{param_specs, Architecture, Part};

pub struct ModelWeights {
    pub config: NezhaConfig,
    pub architecture: Architecture,
    /// Label names in id order, when the source records them.
    pub labels: Option<Vec<String>>,
    /// The architecture's tensors in `param_specs` order.
    pub tensors: Vec<(String, Tensor)>,
}

/// Hugging Face buffers that are not weights: the relative-position table
/// (persistent in older transformers releases) and the id buffers.
fn is_hf_buffer(name: &str) -> bool {
    name.ends_with(".relative_positions_encoding.positions_encoding")
        || name.ends_with("embeddings.token_type_ids")
        || name.ends_with("embeddings.position_ids")
}

/// The architecture that Hugging Face-named tensors imply: the pretraining
/// heads, the QA head, or a classifier (over the pooled output when the file
/// has a pooler, as HF's sequence classifier does; per token otherwise).
pub fn detect_architecture(names: &[&str], origin: &str) -> Result<Architecture> {
    let has = |prefix: &str| names.iter().any(|n| n.starts_with(prefix));
    let heads = [
        ("cls.predictions.", "pretraining heads (cls.predictions.*)"),
        ("qa_outputs.", "a question-answering head (qa_outputs.*)"),
        ("classifier.", "a classifier (classifier.*)"),
    ];
    let found: Vec<&str> = heads
        .iter()
        .filter(|(p, _)| has(p))
        .map(|(_, d)| *d)
        .collect();
    ensure!(
        found.len() <= 1,
        "{origin} holds {}: say which architecture to read",
        found.join(" and ")
    );
    if has("cls.predictions.") {
        return Ok(Architecture::PreTraining);
    }
    if has("qa_outputs.") {
        return Ok(Architecture::QuestionAnswering);
    }
    if has("classifier.") {
        // The label count is checked against the tensor shapes later.
        return Ok(if has("nezha.pooler.") {
            Architecture::SequenceClassification { num_labels: 0 }
        } else {
            Architecture::TokenClassification { num_labels: 0 }
        });
    }
    bail!("{origin} has no head (cls.predictions.*, classifier.* or qa_outputs.*): cannot tell which model it holds")
}

/// Fills in a classifier's label count from its weight's shape.
fn with_num_labels(arch: Architecture, tensors: &[(String, Tensor)]) -> Architecture {
    let rows = || {
        tensors
            .iter()
            .find(|(n, _)| n == "classifier.weight")
            .map(|(_, t)| t.size()[0])
            .unwrap_or(0)
    };
    match arch {
        Architecture::SequenceClassification { num_labels: 0 } => {
            Architecture::SequenceClassification { num_labels: rows() }
        }
        Architecture::TokenClassification { num_labels: 0 } => {
            Architecture::TokenClassification { num_labels: rows() }
        }
        a => a,
    }
}

impl ModelWeights {
    /// Checks Hugging Face-named tensors against `config` and `architecture`
    /// (detected from the names when `None`). Hugging Face's tied duplicates
    /// (`cls.predictions.decoder.*`) must equal what they duplicate and are
    /// dropped, as are its buffers and a pooler the architecture lacks; any
    /// other unknown name, a missing tensor or a wrong shape is an error
    /// naming it. Returns the weights and the names dropped.
    pub fn from_hf_tensors(
        config: &NezhaConfig,
        architecture: Option<Architecture>,
        labels: Option<Vec<String>>,
        tensors: Vec<(String, Tensor)>,
        origin: &str,
    ) -> Result<(ModelWeights, Vec<String>)> {
        config
            .validate()
            .with_context(|| format!("config for {origin}"))?;
        let arch = match architecture {
            Some(a) => a,
            None => {
                let names: Vec<&str> = tensors.iter().map(|(n, _)| n.as_str()).collect();
                detect_architecture(&names, origin)?
            }
        };
        let arch = with_num_labels(arch, &tensors);
        let specs = param_specs(config, arch);
        let mut dropped = Vec::new();
        let mut mine: Vec<(String, Tensor)> = Vec::new();
        let mut ties = Vec::new();
        for (name, t) in tensors {
            if specs.iter().any(|s| s.hf == name) {
                mine.push((name, t));
            } else if name == "cls.predictions.decoder.weight"
                || name == "cls.predictions.decoder.bias"
            {
                ties.push((name, t));
            } else if is_hf_buffer(&name)
                || (!arch.has_pooler() && name.starts_with("nezha.pooler."))
            {
                dropped.push(name);
            } else {
                let hint = if name.contains("position_embeddings")
                    || name.contains("relative_positions_keys")
                {
                    " (absolute or trainable position embeddings: not NEZHA's functional relative positions)"
                } else if name.starts_with("nezha.encoder.layer.") {
                    " (more layers than the config's num_hidden_layers?)"
                } else {
                    ""
                };
                bail!(
                    "{origin}: tensor {name} is not part of a {} with this config{hint}",
                    arch.hf_class()
                );
            }
        }
        // Hugging Face ties the MLM decoder to the word embeddings and its
        // bias to cls.predictions.bias; a file where they differ is not NEZHA.
        for (name, t) in ties {
            let own = if name.ends_with("weight") {
                "nezha.embeddings.word_embeddings.weight"
            } else {
                "cls.predictions.bias"
            };
            let Some((_, o)) = mine.iter().find(|(n, _)| n == own) else {
                bail!("{origin}: {name} is present but {own}, which it is tied to, is not");
            };
            ensure!(
                o.size() == t.size() && o.equal(&t),
                "{origin}: {name} differs from {own}; NEZHA ties them"
            );
            dropped.push(name);
        }
        let mut ordered = Vec::with_capacity(specs.len());
        for spec in &specs {
            let Some(pos) = mine.iter().position(|(n, _)| *n == spec.hf) else {
                let what = match spec.part {
                    Part::TaskHead | Part::PreTrainingHeads => " (a head tensor)",
                    _ => "",
                };
                bail!(
                    "{origin}: tensor {} is missing{what}; a {} needs it",
                    spec.hf,
                    arch.hf_class()
                );
            };
            let (name, t) = mine.swap_remove(pos);
            ensure!(
                t.size() == spec.shape,
                "{origin}: tensor {name} has shape {:?}, the config needs {:?}",
                t.size(),
                spec.shape
            );
            ensure!(
                matches!(
                    t.kind(),
                    Kind::Float | Kind::Half | Kind::BFloat16 | Kind::Double
                ),
                "{origin}: tensor {name} has kind {:?}, expected floating point",
                t.kind()
            );
            ordered.push((name, t.to_kind(Kind::Float).contiguous()));
        }
        if let (Some(l), Some(k)) = (&labels, arch.num_labels()) {
            ensure!(
                l.len() as i64 == k,
                "{origin}: {} label names for a classifier with {k} outputs",
                l.len()
            );
        }
        Ok((
            ModelWeights {
                config: config.clone(),
                architecture: arch,
                labels,
                tensors: ordered,
            },
            dropped,
        ))
    }

    pub fn get(&self, name: &str) -> Option<&Tensor> {
        self.tensors.iter().find(|(n, _)| n == name).map(|(_, t)| t)
    }
}
