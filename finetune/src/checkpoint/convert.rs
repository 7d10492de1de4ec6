//! `nezha convert`: weights from any of the three formats to any other.

use std::path::Path;
use std::str::FromStr;

use anyhow::{bail, Context, Result};
use nezha_train::model::weights::config_difference;
use nezha_train::model::NezhaConfig;

use super::names::Architecture;
use super::weights::ModelWeights;
use super::{hf, ours, tf};

/// A weights format.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    /// A reference TF checkpoint: `<prefix>.index` + `<prefix>.data-*`.
    Tf,
    /// A Hugging Face model directory: `config.json` + `model.safetensors`.
    HuggingFace,
    /// Ours: one safetensors file (or a training checkpoint directory
    /// holding `model.safetensors`) with the config in its metadata.
    Nezha,
}

impl Format {
    /// The format of `path` when not given: a directory with a config.json
    /// is Hugging Face's, a prefix with a `.index` beside it TF's, anything
    /// else ours.
    pub fn guess(path: &std::path::Path) -> Format {
        if path.is_dir() && path.join("config.json").exists() {
            Format::HuggingFace
        } else if std::path::PathBuf::from(format!("{}.index", path.display())).exists() {
            Format::Tf
        } else {
            Format::Nezha
        }
    }
}

impl FromStr for Format {
    type Err = anyhow::Error;

    fn from_str(s: &str) -> Result<Format> {
        Ok(match s {
            "tf" | "tensorflow" => Format::Tf,
            "hf" | "huggingface" => Format::HuggingFace,
            "nezha" => Format::Nezha,
            other => bail!("unknown weights format {other:?}: expected tf, hf or nezha"),
        })
    }
}

/// What a read left out or adjusted.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ReadReport {
    /// Tensors or variables present in the input and not carried over
    /// (optimizer slots, `global_step`, tied duplicates, buffers, …).
    pub skipped: Vec<String>,
    /// `(rows in the input, vocab_size)` when a padded vocabulary was sliced.
    pub vocab_padding: Option<(i64, i64)>,
    /// A TF checkpoint's `global_step`.
    pub global_step: Option<i64>,
}

/// The config next to a TF checkpoint, as the reference's model directories
/// ship it (`bert_config.json` beside `model.ckpt`).
fn tf_config_beside(prefix: &Path) -> Result<NezhaConfig> {
    let dir = prefix.parent().unwrap_or(Path::new("."));
    let path = dir.join("bert_config.json");
    if !path.exists() {
        bail!(
            "a TF checkpoint carries no model config, and there is no {} beside {}: give the config",
            path.display(),
            prefix.display()
        );
    }
    NezhaConfig::from_json_file(&path)
}

/// Reads weights in `format`. `config` is required for TF checkpoints unless
/// a `bert_config.json` sits beside them; for the other formats it is read
/// from the input and, if also given, must agree. `architecture` overrides
/// the detected one.
pub fn read(
    path: &Path,
    format: Format,
    config: Option<&NezhaConfig>,
    architecture: Option<Architecture>,
) -> Result<(ModelWeights, ReadReport)> {
    match format {
        Format::Tf => {
            let cfg = match config {
                Some(c) => c.clone(),
                None => tf_config_beside(path)?,
            };
            let (w, r) = tf::read(path, &cfg, architecture)?;
            Ok((
                w,
                ReadReport {
                    skipped: r.skipped,
                    vocab_padding: r.vocab_padding,
                    global_step: r.global_step,
                },
            ))
        }
        Format::HuggingFace => {
            let (w, skipped) = hf::read(path, architecture)?;
            if let Some(c) = config {
                if let Some(diff) = config_difference(&w.config, c) {
                    bail!(
                        "{}: its config.json differs from the given config: {diff}",
                        path.display()
                    );
                }
            }
            Ok((
                w,
                ReadReport {
                    skipped,
                    ..ReadReport::default()
                },
            ))
        }
        Format::Nezha => {
            let (w, skipped) = ours::read(path, config, architecture)?;
            Ok((
                w,
                ReadReport {
                    skipped,
                    ..ReadReport::default()
                },
            ))
        }
    }
}

/// Writes weights in `format` (for TF, `path` is the checkpoint prefix).
pub fn write(path: &Path, format: Format, w: &ModelWeights) -> Result<()> {
    match format {
        Format::Tf => tf::write(path, w, None),
        Format::HuggingFace => hf::write(path, w),
        Format::Nezha => ours::write(path, w),
    }
}

/// Converts `input` to `output`. See [`read`] for `config` and
/// `architecture`.
pub fn convert(
    input: &Path,
    input_format: Format,
    output: &Path,
    output_format: Format,
    config: Option<&NezhaConfig>,
    architecture: Option<Architecture>,
) -> Result<ReadReport> {
    let (w, report) = read(input, input_format, config, architecture)
        .with_context(|| format!("reading {}", input.display()))?;
    write(output, output_format, &w).with_context(|| format!("writing {}", output.display()))?;
    Ok(report)
}
