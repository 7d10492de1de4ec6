//! A pretrained model loaded for inference (`nezha eval`, `nezha
//! fill-mask`): the flags that name it, and the one loader, through the
//! reader `nezha convert` and `nezha finetune` use.

use std::path::{Path, PathBuf};

use anyhow::{bail, ensure, Context, Result};
use clap::Args;
use nezha_finetune::checkpoint::{self, Architecture, Format};
use nezha_train::model::{NezhaConfig, NezhaForPreTraining};
use nezha_train::trainer::parse_device;
use serde_json::Value;
use tch::Device;

/// The flags that name a pretrained model and where it runs.
#[derive(Args, Debug, Clone)]
pub struct CheckpointArgs {
    /// The weights: our safetensors file or checkpoint directory, a Hugging
    /// Face directory, or a TF checkpoint prefix (format from --init_format,
    /// or told from the path).
    #[arg(long = "init_checkpoint", visible_alias = "init-checkpoint")]
    pub init_checkpoint: PathBuf,
    /// tf, hf or nezha.
    #[arg(long = "init_format", visible_alias = "init-format")]
    pub init_format: Option<Format>,
    /// The model config (bert_config.json plus max_relative_position), for
    /// a checkpoint that carries none; must agree with one that does.
    #[arg(long = "bert_config_file", visible_alias = "bert-config-file")]
    pub bert_config_file: Option<PathBuf>,
    /// cpu, cuda or cuda:N.
    #[arg(long, default_value = "cpu")]
    pub device: String,
}

impl CheckpointArgs {
    /// The model on its device.
    pub fn load(&self) -> Result<LoadedModel> {
        load_pretraining_model(
            &self.init_checkpoint,
            self.init_format,
            self.bert_config_file.as_deref(),
            parse_device(&self.device)?,
        )
    }
}

/// A pretraining model ready for inference, and what its checkpoint said.
pub struct LoadedModel {
    pub model: NezhaForPreTraining,
    pub format: Format,
    /// The training step the weights come from, when the checkpoint records
    /// it (a TF checkpoint's `global_step`, our checkpoint's `state.json`).
    pub global_step: Option<i64>,
}

/// The step our training checkpoint directory records in `state.json`
/// (beside `model.safetensors`, or in the directory given).
fn our_step(path: &Path) -> Result<Option<i64>> {
    let dir = if path.is_dir() {
        path.to_path_buf()
    } else {
        path.parent().unwrap_or(Path::new(".")).to_path_buf()
    };
    let state = dir.join(nezha_train::trainer::checkpoint::STATE_FILE);
    if !state.exists() {
        return Ok(None);
    }
    let text =
        std::fs::read_to_string(&state).with_context(|| format!("reading {}", state.display()))?;
    let v: Value =
        serde_json::from_str(&text).with_context(|| format!("parsing {}", state.display()))?;
    let step = v
        .get("step")
        .and_then(Value::as_i64)
        .with_context(|| format!("{}: no integer \"step\"", state.display()))?;
    Ok(Some(step))
}

/// Loads a `NezhaForPreTraining` from any checkpoint format through the
/// same reader `nezha convert` and `nezha finetune` use, so every format's
/// names, shapes and config are checked once, there.
pub fn load_pretraining_model(
    path: &Path,
    format: Option<Format>,
    config_file: Option<&Path>,
    device: Device,
) -> Result<LoadedModel> {
    let format = format.unwrap_or_else(|| Format::guess(path));
    if format != Format::Tf && !path.exists() {
        bail!(
            "--init_checkpoint {}: no such file or directory (nor a TF checkpoint prefix: no {}.index)",
            path.display(),
            path.display()
        );
    }
    let config = config_file
        .map(|p| {
            NezhaConfig::from_json_file(p)
                .with_context(|| format!("reading --bert_config_file {}", p.display()))
        })
        .transpose()?;
    let (w, report) = checkpoint::read(
        path,
        format,
        config.as_ref(),
        Some(Architecture::PreTraining),
    )
    .with_context(|| format!("reading --init_checkpoint {} ({format:?})", path.display()))?;
    let global_step = match format {
        Format::Tf => report.global_step,
        Format::Nezha => our_step(path)?,
        Format::HuggingFace => None,
    };
    let mut model = NezhaForPreTraining::new(&w.config, device)?;
    nezha_train::model::weights::load_tensors(&mut model, w.tensors)
        .with_context(|| format!("loading {} into the model", path.display()))?;
    Ok(LoadedModel {
        model,
        format,
        global_step,
    })
}

/// Checks a vocabulary file against the model's embedding rows.
pub fn check_vocab(vocab_file: &Path, config: &NezhaConfig) -> Result<nezha_stages::Vocab> {
    let vocab = nezha_stages::Vocab::load(vocab_file)
        .with_context(|| format!("reading --vocab_file {}", vocab_file.display()))?;
    ensure!(
        vocab.id_space() as i64 == config.vocab_size,
        "--vocab_file {} has {} tokens, but the checkpoint's config has vocab_size {}: \
         they must be the vocabulary and the model trained together",
        vocab_file.display(),
        vocab.id_space(),
        config.vocab_size
    );
    Ok(vocab)
}
