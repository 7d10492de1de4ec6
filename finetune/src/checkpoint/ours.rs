//! This project's weight files: one safetensors file under Hugging Face
//! names with the model config in its metadata (what `nezha train` writes as
//! `model.safetensors`, alone or in a checkpoint directory), plus the
//! architecture and label names for fine-tuned models.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use nezha_stages::atomic_file;
use nezha_train::model::weights::{config_difference, CONFIG_KEY};
use nezha_train::model::NezhaConfig;
use nezha_train::tensorfile;

use super::names::Architecture;
use super::weights::ModelWeights;

/// Metadata key of the architecture JSON; absent means pretraining.
pub const ARCHITECTURE_KEY: &str = "nezha_architecture";
/// Metadata key of the label names (JSON list, id order).
pub const LABELS_KEY: &str = "nezha_labels";
pub const WEIGHTS_FILE: &str = "model.safetensors";

/// `path` itself, or its `model.safetensors` if it is a directory (such as a
/// training checkpoint `step-NNNNNNNN/`).
fn weights_path(path: &Path) -> PathBuf {
    if path.is_dir() {
        path.join(WEIGHTS_FILE)
    } else {
        path.to_path_buf()
    }
}

/// Reads our weights file. The config comes from the file's metadata;
/// `config`, if given, must agree with it, and is required when the file has
/// none.
pub fn read(
    path: &Path,
    config: Option<&NezhaConfig>,
    architecture: Option<Architecture>,
) -> Result<(ModelWeights, Vec<String>)> {
    let path = weights_path(path);
    let origin = path.display().to_string();
    let file = tensorfile::load(&path)?;
    let meta = &file.metadata;
    let saved = match meta.get(CONFIG_KEY) {
        Some(json) => Some(
            serde_json::from_str::<NezhaConfig>(json)
                .with_context(|| format!("{origin}: unreadable {CONFIG_KEY} metadata"))?,
        ),
        None => None,
    };
    let cfg = match (saved, config) {
        (Some(s), Some(c)) => {
            if let Some(diff) = config_difference(&s, c) {
                bail!("{origin} was saved with another model config: {diff}");
            }
            s
        }
        (Some(s), None) => s,
        (None, Some(c)) => c.clone(),
        (None, None) => bail!("{origin} has no {CONFIG_KEY} metadata: give the model config"),
    };
    let saved_arch = match meta.get(ARCHITECTURE_KEY) {
        Some(json) => serde_json::from_str::<Architecture>(json)
            .with_context(|| format!("{origin}: unreadable {ARCHITECTURE_KEY} metadata"))?,
        None => Architecture::PreTraining,
    };
    let labels = match meta.get(LABELS_KEY) {
        Some(json) => Some(
            serde_json::from_str::<Vec<String>>(json)
                .with_context(|| format!("{origin}: unreadable {LABELS_KEY} metadata"))?,
        ),
        None => None,
    };
    ModelWeights::from_hf_tensors(
        &cfg,
        Some(architecture.unwrap_or(saved_arch)),
        labels,
        file.tensors,
        &origin,
    )
}

/// Writes `w` to `path` (a file name) atomically.
pub fn write(path: &Path, w: &ModelWeights) -> Result<()> {
    let mut meta = HashMap::new();
    meta.insert("format".to_string(), "pt".to_string());
    meta.insert(CONFIG_KEY.to_string(), serde_json::to_string(&w.config)?);
    if w.architecture != Architecture::PreTraining {
        meta.insert(
            ARCHITECTURE_KEY.to_string(),
            serde_json::to_string(&w.architecture)?,
        );
    }
    if let Some(labels) = &w.labels {
        meta.insert(LABELS_KEY.to_string(), serde_json::to_string(labels)?);
    }
    write_safetensors(path, &w.tensors, meta)
}

/// Writes a safetensors file complete or not at all
/// ([`nezha_stages::atomic_file`]).
pub(crate) fn write_safetensors(
    path: &Path,
    tensors: &[(String, tch::Tensor)],
    metadata: HashMap<String, String>,
) -> Result<()> {
    let bytes = tensorfile::to_bytes(tensors, metadata)
        .with_context(|| format!("serialising {}", path.display()))?;
    Ok(atomic_file::write_file(path, &bytes)?)
}
