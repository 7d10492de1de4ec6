//! Hugging Face model directories (`config.json` + `model.safetensors`), as
//! `transformers==4.57.6` `save_pretrained` writes and `from_pretrained`
//! reads them for the Nezha classes.
//!
//! The config needs translating, not copying: Hugging Face's "gelu" is the
//! exact erf form, which is our `gelu_erf`, while the TF reference's "gelu"
//! (our default) is the tanh approximation, Hugging Face's
//! "gelu_pytorch_tanh". Classifier heads get their size from `id2label`.

use std::path::{Path, PathBuf};

use anyhow::{bail, ensure, Context, Result};
use nezha_stages::atomic_file;
use nezha_train::model::{Activation, NezhaConfig};
use nezha_train::tensorfile;
use serde_json::{json, Map, Value};

use super::names::Architecture;
use super::weights::ModelWeights;

pub const CONFIG_FILE: &str = "config.json";
pub const WEIGHTS_FILE: &str = "model.safetensors";
/// The version whose layout this follows (`config.json` says so too).
pub const TRANSFORMERS_VERSION: &str = "4.57.6";

fn activation_from_hf(name: &str, origin: &str) -> Result<Activation> {
    Ok(match name {
        "gelu" => Activation::GeluErf,
        "gelu_pytorch_tanh" | "gelu_new" => Activation::GeluTanh,
        other => bail!(
            "{origin}: hidden_act {other:?} is not supported (gelu, gelu_new or gelu_pytorch_tanh)"
        ),
    })
}

fn activation_to_hf(a: Activation) -> &'static str {
    match a {
        Activation::GeluErf => "gelu",
        // Computes torch's gelu(approximate="tanh"), exactly what we run.
        Activation::GeluTanh => "gelu_pytorch_tanh",
    }
}

/// What a Hugging Face `config.json` says: the model config, the class
/// named in `architectures` (if any) and the label names (if not HF's
/// default `LABEL_i`).
pub struct HfConfig {
    pub config: NezhaConfig,
    pub architecture: Option<String>,
    pub num_labels: i64,
    pub labels: Option<Vec<String>>,
}

/// Parses a Nezha `config.json`, using `NezhaConfig`'s defaults for absent
/// fields as transformers does.
pub fn parse_config(text: &str, origin: &str) -> Result<HfConfig> {
    let v: Value = serde_json::from_str(text).with_context(|| format!("parsing {origin}"))?;
    let o = v
        .as_object()
        .with_context(|| format!("{origin} is not a JSON object"))?;
    if let Some(t) = o.get("model_type") {
        ensure!(t == "nezha", "{origin}: model_type is {t}, not \"nezha\"");
    }
    let int = |k: &str, d: i64| -> Result<i64> {
        match o.get(k) {
            None => Ok(d),
            Some(x) => x
                .as_i64()
                .with_context(|| format!("{origin}: {k} = {x} is not an integer")),
        }
    };
    let float = |k: &str, d: f64| -> Result<f64> {
        match o.get(k) {
            None | Some(Value::Null) => Ok(d),
            Some(x) => x
                .as_f64()
                .with_context(|| format!("{origin}: {k} = {x} is not a number")),
        }
    };
    let act = match o.get("hidden_act") {
        None => "gelu",
        Some(x) => x
            .as_str()
            .with_context(|| format!("{origin}: hidden_act = {x} is not a string"))?,
    };
    let config = NezhaConfig {
        vocab_size: int("vocab_size", 21128)?,
        hidden_size: int("hidden_size", 768)?,
        num_hidden_layers: int("num_hidden_layers", 12)?,
        num_attention_heads: int("num_attention_heads", 12)?,
        intermediate_size: int("intermediate_size", 3072)?,
        hidden_act: activation_from_hf(act, origin)?,
        hidden_dropout_prob: float("hidden_dropout_prob", 0.1)?,
        attention_probs_dropout_prob: float("attention_probs_dropout_prob", 0.1)?,
        max_position_embeddings: int("max_position_embeddings", 512)?,
        type_vocab_size: int("type_vocab_size", 2)?,
        initializer_range: float("initializer_range", 0.02)?,
        max_relative_position: int("max_relative_position", 64)?,
        layer_norm_eps: float("layer_norm_eps", 1e-12)?,
        use_relative_position: None,
    };
    config
        .validate()
        .with_context(|| format!("invalid model config {origin}"))?;
    let architecture = match o.get("architectures") {
        None | Some(Value::Null) => None,
        Some(Value::Array(a)) if a.len() == 1 => Some(
            a[0].as_str()
                .with_context(|| format!("{origin}: architectures[0] is not a string"))?
                .to_string(),
        ),
        Some(x) => bail!("{origin}: architectures = {x}, expected a list of one class name"),
    };
    let (num_labels, labels) = match o.get("id2label") {
        None => (int("num_labels", 2)?, None),
        Some(Value::Object(m)) => {
            let n = m.len();
            let mut names = vec![None; n];
            for (k, v) in m {
                let id: usize = k.parse().ok().filter(|&i: &usize| i < n).with_context(|| {
                    format!("{origin}: id2label key {k:?} is not an id below {n}")
                })?;
                names[id] = Some(
                    v.as_str()
                        .with_context(|| format!("{origin}: id2label[{k}] is not a string"))?
                        .to_string(),
                );
            }
            let names: Vec<String> = names.into_iter().map(Option::unwrap).collect();
            let default = names
                .iter()
                .enumerate()
                .all(|(i, s)| *s == format!("LABEL_{i}"));
            (n as i64, (!default).then_some(names))
        }
        Some(x) => bail!("{origin}: id2label = {x} is not an object"),
    };
    Ok(HfConfig {
        config,
        architecture,
        num_labels,
        labels,
    })
}

/// The `config.json` transformers writes for these weights.
pub fn config_json(w: &ModelWeights) -> Value {
    let c = &w.config;
    let mut o = Map::new();
    o.insert("architectures".into(), json!([w.architecture.hf_class()]));
    o.insert("model_type".into(), json!("nezha"));
    o.insert("vocab_size".into(), json!(c.vocab_size));
    o.insert("hidden_size".into(), json!(c.hidden_size));
    o.insert("num_hidden_layers".into(), json!(c.num_hidden_layers));
    o.insert("num_attention_heads".into(), json!(c.num_attention_heads));
    o.insert("intermediate_size".into(), json!(c.intermediate_size));
    o.insert("hidden_act".into(), json!(activation_to_hf(c.hidden_act)));
    o.insert("hidden_dropout_prob".into(), json!(c.hidden_dropout_prob));
    o.insert(
        "attention_probs_dropout_prob".into(),
        json!(c.attention_probs_dropout_prob),
    );
    o.insert(
        "max_position_embeddings".into(),
        json!(c.max_position_embeddings),
    );
    o.insert(
        "max_relative_position".into(),
        json!(c.max_relative_position),
    );
    o.insert("type_vocab_size".into(), json!(c.type_vocab_size));
    o.insert("initializer_range".into(), json!(c.initializer_range));
    o.insert("layer_norm_eps".into(), json!(c.layer_norm_eps));
    // The reference's classifier dropout (run_classifier.py: keep_prob 0.9).
    o.insert("classifier_dropout".into(), json!(0.1));
    o.insert("pad_token_id".into(), json!(0));
    o.insert("dtype".into(), json!("float32"));
    o.insert("transformers_version".into(), json!(TRANSFORMERS_VERSION));
    if let Some(k) = w.architecture.num_labels() {
        let names: Vec<String> = match &w.labels {
            Some(l) => l.clone(),
            None => (0..k).map(|i| format!("LABEL_{i}")).collect(),
        };
        let id2label: Map<String, Value> = names
            .iter()
            .enumerate()
            .map(|(i, n)| (i.to_string(), json!(n)))
            .collect();
        let label2id: Map<String, Value> = names
            .iter()
            .enumerate()
            .map(|(i, n)| (n.clone(), json!(i)))
            .collect();
        o.insert("id2label".into(), Value::Object(id2label));
        o.insert("label2id".into(), Value::Object(label2id));
    }
    Value::Object(o)
}

/// The config and weights paths of a model directory (or of the directory
/// holding a given `model.safetensors`).
fn locate(path: &Path) -> Result<(PathBuf, PathBuf)> {
    let dir = if path.is_dir() {
        path.to_path_buf()
    } else {
        path.parent().unwrap_or(Path::new(".")).to_path_buf()
    };
    let weights = if path.is_dir() {
        dir.join(WEIGHTS_FILE)
    } else {
        path.to_path_buf()
    };
    if !weights.exists() {
        if dir.join("model.safetensors.index.json").exists() {
            bail!(
                "{}: sharded safetensors (model.safetensors.index.json) are not supported",
                dir.display()
            );
        }
        if dir.join("pytorch_model.bin").exists() {
            bail!(
                "{}: only safetensors weights are read, and this directory has pytorch_model.bin",
                dir.display()
            );
        }
        bail!("{} does not exist", weights.display());
    }
    Ok((dir.join(CONFIG_FILE), weights))
}

/// Reads a Hugging Face model directory (or its `model.safetensors`).
/// `architecture` overrides the class `config.json` names; the tensors must
/// match it. Returns the weights and the names dropped (tied duplicates,
/// buffers).
pub fn read(
    path: &Path,
    architecture: Option<Architecture>,
) -> Result<(ModelWeights, Vec<String>)> {
    let (config_path, weights_path) = locate(path)?;
    let text = std::fs::read_to_string(&config_path)
        .with_context(|| format!("reading {}", config_path.display()))?;
    let hf = parse_config(&text, &config_path.display().to_string())?;
    let arch = match (architecture, &hf.architecture) {
        (Some(a), _) => Some(a),
        (None, Some(class)) => Some(
            Architecture::from_hf_class(class, hf.num_labels)
                .with_context(|| format!("{}", config_path.display()))?,
        ),
        (None, None) => None,
    };
    let file = tensorfile::load(&weights_path)?;
    ModelWeights::from_hf_tensors(
        &hf.config,
        arch,
        hf.labels,
        file.tensors,
        &weights_path.display().to_string(),
    )
}

/// Writes `w` as a Hugging Face model directory, creating it if needed. Each
/// file is written under a temporary name and renamed when complete
/// ([`nezha_stages::atomic_file`]), the weights first.
pub fn write(dir: &Path, w: &ModelWeights) -> Result<()> {
    let mut meta = std::collections::HashMap::new();
    // transformers refuses safetensors without this key.
    meta.insert("format".to_string(), "pt".to_string());
    super::ours::write_safetensors(&dir.join(WEIGHTS_FILE), &w.tensors, meta)?;
    let text = serde_json::to_string_pretty(&config_json(w))? + "\n";
    Ok(atomic_file::write_file(
        &dir.join(CONFIG_FILE),
        text.as_bytes(),
    )?)
}
