//! Model weights as safetensors under Hugging Face `NezhaForPreTraining`
//! names. Files written by Hugging Face load too: its tied duplicates and
//! buffers are recognised and checked or skipped; anything else unknown is an
//! error, since silently ignoring a tensor hides a wrong model.

use std::collections::HashMap;
use std::path::Path;

use anyhow::{bail, Context, Result};
use tch::Tensor;

use super::pretraining::NezhaForPreTraining;
use crate::tensorfile;

/// Metadata key holding the model config as JSON.
pub const CONFIG_KEY: &str = "nezha_config";

/// Hugging Face names that are not parameters of ours.
fn is_hf_buffer(name: &str) -> bool {
    name.ends_with(".relative_positions_encoding.positions_encoding")
        || name == "nezha.embeddings.token_type_ids"
        || name == "nezha.embeddings.position_ids"
}

/// Writes the weights atomically, with the config in the metadata.
pub fn save(model: &NezhaForPreTraining, path: &Path) -> Result<()> {
    let mut meta = HashMap::new();
    // Hugging Face's loader requires this key.
    meta.insert("format".to_string(), "pt".to_string());
    meta.insert(
        CONFIG_KEY.to_string(),
        serde_json::to_string(&model.config)?,
    );
    tensorfile::save(path, model.params.named(), meta)
}

/// Loads weights from `path` into `model`.
pub fn load(model: &mut NezhaForPreTraining, path: &Path) -> Result<()> {
    let file = tensorfile::load(path)?;
    if let Some(json) = file.metadata.get(CONFIG_KEY) {
        let saved: super::config::NezhaConfig = serde_json::from_str(json)
            .with_context(|| format!("{}: unreadable {CONFIG_KEY} metadata", path.display()))?;
        if let Some(diff) = config_difference(&saved, &model.config) {
            bail!(
                "{} was saved from another model config: {diff}",
                path.display()
            );
        }
    }
    load_tensors(model, file.tensors)
        .with_context(|| format!("loading weights from {}", path.display()))
}

/// Loads named tensors, resolving Hugging Face's tied duplicates.
pub fn load_tensors(model: &mut NezhaForPreTraining, tensors: Vec<(String, Tensor)>) -> Result<()> {
    let mut mine = Vec::with_capacity(tensors.len());
    let mut decoder_weight = None;
    let mut decoder_bias = None;
    for (name, t) in tensors {
        match name.as_str() {
            "cls.predictions.decoder.weight" => decoder_weight = Some(t),
            "cls.predictions.decoder.bias" => decoder_bias = Some(t),
            n if is_hf_buffer(n) => {}
            _ => mine.push((name, t)),
        }
    }
    let has = |mine: &[(String, Tensor)], n: &str| mine.iter().any(|(m, _)| m == n);
    if let Some(bias) = decoder_bias {
        if !has(&mine, "cls.predictions.bias") {
            mine.push(("cls.predictions.bias".to_string(), bias));
        } else {
            let own = &mine
                .iter()
                .find(|(m, _)| m == "cls.predictions.bias")
                .unwrap()
                .1;
            if !own.equal(&bias) {
                bail!("cls.predictions.decoder.bias differs from cls.predictions.bias; NEZHA ties them");
            }
        }
    }
    if let Some(w) = decoder_weight {
        let Some((_, emb)) = mine
            .iter()
            .find(|(m, _)| m == "nezha.embeddings.word_embeddings.weight")
        else {
            bail!("cls.predictions.decoder.weight given without nezha.embeddings.word_embeddings.weight");
        };
        if !emb.equal(&w) {
            bail!(
                "cls.predictions.decoder.weight differs from the word embeddings; NEZHA ties them"
            );
        }
    }
    let unknown = model.params.load(&mine)?;
    if !unknown.is_empty() {
        let hint = if unknown
            .iter()
            .any(|n| n.contains("position_embeddings") || n.contains("relative_positions_keys"))
        {
            " (absolute or trainable position embeddings: not a functional-relative-position NEZHA)"
        } else {
            ""
        };
        bail!(
            "tensors that are not parameters of this model: {}{hint}",
            unknown.join(", ")
        );
    }
    Ok(())
}

/// The first fields that differ between two configs, for error messages.
pub fn config_difference(
    a: &super::config::NezhaConfig,
    b: &super::config::NezhaConfig,
) -> Option<String> {
    let (va, vb) = (serde_json::to_value(a).ok()?, serde_json::to_value(b).ok()?);
    let (oa, ob) = (va.as_object()?, vb.as_object()?);
    let diffs: Vec<String> = oa
        .iter()
        .filter(|(k, v)| ob.get(*k) != Some(v))
        .map(|(k, v)| {
            format!(
                "{k} = {v} in the file, {} here",
                ob.get(k).cloned().unwrap_or_default()
            )
        })
        .collect();
    (!diffs.is_empty()).then(|| diffs.join(", "))
}
