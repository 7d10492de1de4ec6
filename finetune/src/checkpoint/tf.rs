//! Reference TF checkpoints (variables named as NEZHA-TensorFlow creates
//! them; see [`super::names`] and `docs/notes/model.md`) to and from
//! [`ModelWeights`].
//!
//! Reading matches the checkpoint against the exact variable list the config
//! implies. Optimizer slots (`<var>/lamb_m|lamb_v|adam_m|adam_v`),
//! `global_step`, loss-scale and other bookkeeping variables outside `bert/`
//! and `cls/` are skipped and listed. Anything else that is not in the list
//! is refused by name: it means the checkpoint is a different model (more
//! layers, absolute positions, a trainable relative table). Hugging Face's
//! loader, by contrast, skips only `adam_*` and `global_step` and can copy a
//! square `lamb_m` slot over its kernel.

use std::path::Path;

use anyhow::{bail, ensure, Context, Result};
use nezha_train::model::NezhaConfig;
use tch::{Kind, Tensor};

use super::bundle::{self, Bundle};
use super::names::{param_specs, pooler_specs, Architecture, ParamSpec, Part};
use super::weights::ModelWeights;

/// What reading a checkpoint left out or adjusted.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct TfReadReport {
    /// Variables present but not loaded (optimizer slots, `global_step`,
    /// loss scale, another head, a pooler the architecture lacks).
    pub skipped: Vec<String>,
    /// `(rows in the checkpoint, config vocab_size)` when the vocabulary was
    /// padded and has been sliced.
    pub vocab_padding: Option<(i64, i64)>,
    /// The checkpoint's `global_step`, if it has one.
    pub global_step: Option<i64>,
}

const SLOT_SUFFIXES: [&str; 4] = ["/lamb_m", "/lamb_v", "/adam_m", "/adam_v"];

/// Optimizer state and bookkeeping: never model weights.
fn is_non_model(name: &str) -> bool {
    SLOT_SUFFIXES.iter().any(|s| name.ends_with(s))
        || name == "global_step"
        || (!name.starts_with("bert/")
            && !name.starts_with("cls/")
            && name != "output_weights"
            && name != "output_bias")
}

/// Whether `rows` is `vocab` padded for hardware alignment: rounded up to a
/// multiple of 8, 16, …, 128 (Ascend's 21136 is 21128 rounded up to 16).
/// Anything else is a different vocabulary, not padding.
fn padding_ok(rows: i64, vocab: i64) -> bool {
    rows > vocab
        && [8, 16, 32, 64, 128]
            .iter()
            .any(|m| rows == (vocab + m - 1) / m * m)
}

/// The architecture the checkpoint's head variables imply.
fn detect(b: &Bundle, origin: &str) -> Result<Architecture> {
    let pre = b.entry("cls/predictions/output_bias").is_some();
    let squad = b.entry("cls/squad/output_weights").is_some();
    let clf = b.entry("output_weights");
    let n = [pre, squad, clf.is_some()].iter().filter(|&&x| x).count();
    ensure!(
        n <= 1,
        "{origin} holds more than one head (cls/predictions, cls/squad, output_weights): say which architecture to read"
    );
    if pre {
        Ok(Architecture::PreTraining)
    } else if squad {
        Ok(Architecture::QuestionAnswering)
    } else if let Some(e) = clf {
        // run_classifier.py's and the NER script's heads have the same name;
        // without a hint this is the sentence classifier.
        let k = e.shape().and_then(|s| s.first().copied()).unwrap_or(0);
        Ok(Architecture::SequenceClassification { num_labels: k })
    } else {
        bail!("{origin} has no head variables (cls/predictions/*, cls/squad/*, output_weights): say which architecture to read")
    }
}

/// Why an unexpected `bert/` or `cls/` variable does not fit.
fn misfit_hint(name: &str, cfg: &NezhaConfig) -> String {
    if name.contains("position_embeddings") {
        return " (an absolute position embedding: not NEZHA's functional relative positions)"
            .into();
    }
    if name.contains("relative_positions_keys") || name.contains("relative_positions_values") {
        return " (a trainable relative-position table: the PRPE variant, not FRPE)".into();
    }
    if let Some(rest) = name.strip_prefix("bert/encoder/layer_") {
        if let Some(Ok(l)) = rest.split('/').next().map(str::parse::<i64>) {
            if l >= cfg.num_hidden_layers {
                return format!(
                    " (layer {l}: the config has num_hidden_layers = {})",
                    cfg.num_hidden_layers
                );
            }
        }
    }
    String::new()
}

fn read_variable(
    b: &Bundle,
    spec: &ParamSpec,
    cfg: &NezhaConfig,
    report: &mut TfReadReport,
    origin: &str,
) -> Result<Tensor> {
    let Some(entry) = b.entry(&spec.tf) else {
        bail!(
            "{origin}: variable {} is missing (our {}, shape {:?})",
            spec.tf,
            spec.hf,
            spec.tf_shape()
        );
    };
    let got = entry
        .shape()
        .with_context(|| format!("{origin}: variable {} has unknown rank", spec.tf))?;
    let want = spec.tf_shape();
    let padded = spec.vocab_rows
        && got.len() == want.len()
        && got[1..] == want[1..]
        && padding_ok(got[0], want[0]);
    ensure!(
        got == want || padded,
        "{origin}: variable {} has shape {got:?}, the config needs {want:?}{}",
        spec.tf,
        if spec.vocab_rows {
            format!(" (vocab_size {})", cfg.vocab_size)
        } else {
            String::new()
        }
    );
    let t = b
        .read_tensor(entry)
        .with_context(|| format!("reading {origin}"))?;
    ensure!(
        matches!(
            t.kind(),
            Kind::Float | Kind::Half | Kind::BFloat16 | Kind::Double
        ),
        "{origin}: variable {} has kind {:?}, expected floating point",
        spec.tf,
        t.kind()
    );
    let mut t = t.to_kind(Kind::Float);
    if padded {
        report.vocab_padding = Some((got[0], cfg.vocab_size));
        t = t.narrow(0, 0, cfg.vocab_size);
    }
    if spec.transpose {
        t = t.transpose(0, 1);
    }
    Ok(t.contiguous())
}

/// Reads the checkpoint at `prefix` (`…/model.ckpt`) for `cfg`. With
/// `architecture = None` it is detected from the head variables (a
/// top-level `output_weights` reads as a sentence classifier); given, the
/// variables of other heads are skipped.
pub fn read(
    prefix: &Path,
    cfg: &NezhaConfig,
    architecture: Option<Architecture>,
) -> Result<(ModelWeights, TfReadReport)> {
    cfg.validate()?;
    let b = Bundle::open(prefix)?;
    let origin = format!("TF checkpoint {}", b.prefix.display());
    let arch = match architecture {
        Some(a) => a,
        None => detect(&b, &origin)?,
    };
    let specs = param_specs(cfg, arch);
    // The reference's BertModel always builds the pooler; architectures
    // without one read past it.
    let extra = if arch.has_pooler() {
        Vec::new()
    } else {
        pooler_specs(cfg)
    };
    // Variables of the other heads (a pretraining checkpoint read for
    // fine-tuning, say) are skipped, not refused.
    let head_names: Vec<String> = [
        Architecture::PreTraining,
        Architecture::QuestionAnswering,
        Architecture::SequenceClassification { num_labels: 1 },
    ]
    .into_iter()
    .flat_map(|a| param_specs(cfg, a))
    .filter(|s| matches!(s.part, Part::PreTrainingHeads | Part::TaskHead))
    .map(|s| s.tf)
    .collect();

    let mut report = TfReadReport::default();
    for e in &b.entries {
        let n = e.name.as_str();
        if specs.iter().any(|s| s.tf == n) {
            continue;
        }
        if n == "global_step" && e.dtype().is_some() {
            if let Ok(t) = b.read_tensor(e) {
                if t.numel() == 1 {
                    report.global_step = Some(t.int64_value(&[]));
                }
            }
        }
        if is_non_model(n) || extra.iter().any(|s| s.tf == n) || head_names.iter().any(|s| s == n) {
            report.skipped.push(e.name.clone());
            continue;
        }
        bail!(
            "{origin}: variable {n} does not fit a {} with this config{}",
            arch.hf_class(),
            misfit_hint(n, cfg)
        );
    }
    let mut tensors = Vec::with_capacity(specs.len());
    for spec in &specs {
        tensors.push((
            spec.hf.clone(),
            read_variable(&b, spec, cfg, &mut report, &origin)?,
        ));
    }
    Ok((
        ModelWeights {
            config: cfg.clone(),
            architecture: arch,
            labels: None,
            tensors,
        },
        report,
    ))
}

/// Writes `w` as a reference-named TF checkpoint at `prefix` (kernels
/// transposed back; no optimizer slots; `global_step` if given).
pub fn write(prefix: &Path, w: &ModelWeights, global_step: Option<i64>) -> Result<()> {
    let specs = param_specs(&w.config, w.architecture);
    let mut out = Vec::with_capacity(specs.len() + 1);
    for spec in &specs {
        let t = w
            .get(&spec.hf)
            .with_context(|| format!("weights lack {}", spec.hf))?;
        let t = if spec.transpose {
            t.transpose(0, 1)
        } else {
            t.shallow_clone()
        };
        out.push((spec.tf.clone(), t.contiguous()));
    }
    if let Some(step) = global_step {
        out.push(("global_step".to_string(), Tensor::from(step)));
    }
    // TF's Saver adds variables in name order; so do we.
    out.sort_by(|a, b| a.0.cmp(&b.0));
    bundle::write(prefix, &out)
}

#[cfg(test)]
mod tests {
    use super::padding_ok;

    #[test]
    fn padding_is_alignment_only() {
        assert!(padding_ok(21136, 21128));
        assert!(padding_ok(40, 37));
        assert!(padding_ok(21248, 21128));
        assert!(!padding_ok(21128, 21128));
        assert!(!padding_ok(21137, 21128));
        assert!(!padding_ok(40, 20));
        assert!(!padding_ok(28996, 21128));
    }
}
