//! `nezha eval`: the reference's `run_pretraining.py --do_eval`. A pretrained
//! checkpoint is run over pretraining TFRecords, dropout off, and the
//! reference `metric_fn`'s quantities are written to
//! `OUTPUT_DIR/eval_results.txt` (and `.json`).
//!
//! Also the one place a pretraining model is loaded from a checkpoint for
//! inference ([`load_pretraining_model`]), shared with `nezha fill-mask`.

use std::path::{Path, PathBuf};

use anyhow::{bail, ensure, Context, Result};
use clap::Args;
use nezha_finetune::checkpoint::{self, Architecture, Format};
use nezha_train::eval::EvalMetrics;
use nezha_train::model::{NezhaConfig, NezhaForPreTraining};
pub use nezha_train::trainer::parse_device;
use serde_json::Value;
use tch::{Device, Kind};

use crate::tfrecord_batches::TfRecordBatches;

#[derive(Args, Debug, Clone)]
pub struct EvalArgs {
    /// Pretraining TFRecord files (the reference layout): paths, globs or
    /// comma-separated lists, read in the order given.
    #[arg(long = "input_file", visible_alias = "input-file", required = true, num_args = 1..)]
    pub input_file: Vec<String>,
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
    /// Checked against the model's vocab_size when given.
    #[arg(long = "vocab_file", visible_alias = "vocab-file")]
    pub vocab_file: Option<PathBuf>,
    /// Must match the records.
    #[arg(
        long = "max_seq_length",
        visible_alias = "max-seq-length",
        default_value_t = 128
    )]
    pub max_seq_length: usize,
    /// Must match the records.
    #[arg(
        long = "max_predictions_per_seq",
        visible_alias = "max-predictions-per-seq",
        default_value_t = 20
    )]
    pub max_predictions_per_seq: usize,
    #[arg(
        long = "eval_batch_size",
        visible_alias = "eval-batch-size",
        default_value_t = 8
    )]
    pub eval_batch_size: usize,
    /// At most this many batches are evaluated.
    #[arg(
        long = "max_eval_steps",
        visible_alias = "max-eval-steps",
        default_value_t = 100
    )]
    pub max_eval_steps: usize,
    /// Where eval_results.txt and eval_results.json are written (created if
    /// missing).
    #[arg(long = "output_dir", visible_alias = "output-dir")]
    pub output_dir: PathBuf,
    /// cpu, cuda or cuda:N.
    #[arg(long, default_value = "cpu")]
    pub device: String,
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

/// Runs the evaluation and returns the results without writing anything.
pub fn evaluate(args: &EvalArgs) -> Result<EvalMetrics> {
    ensure!(
        args.eval_batch_size > 0,
        "--eval_batch_size must be at least 1"
    );
    ensure!(
        args.max_eval_steps > 0,
        "--max_eval_steps must be at least 1"
    );
    ensure!(
        args.max_seq_length > 0,
        "--max_seq_length must be at least 1"
    );
    ensure!(
        args.max_predictions_per_seq > 0,
        "--max_predictions_per_seq must be at least 1"
    );
    let device = parse_device(&args.device)?;
    let files = nezha_stages::ingest::resolve_inputs(&args.input_file, Path::new("."))
        .with_context(|| format!("--input_file {}", args.input_file.join(",")))?;
    ensure!(
        !files.is_empty(),
        "--input_file {} matches no file",
        args.input_file.join(",")
    );
    let loaded = load_pretraining_model(
        &args.init_checkpoint,
        args.init_format,
        args.bert_config_file.as_deref(),
        device,
    )?;
    let model = &loaded.model;
    let cfg = &model.config;
    if let Some(v) = &args.vocab_file {
        check_vocab(v, cfg)?;
    }

    // The reference's eval input_fn reads the files in order without
    // shuffling, batches with drop_remainder and stops after max_eval_steps
    // batches (run_pretraining.py input_fn_builder / estimator.evaluate). It
    // also repeat()s the data so that short files still fill max_eval_steps
    // batches, counting records twice; here every record counts once and
    // evaluation stops at the end of the data.
    let batches = TfRecordBatches::new(
        files,
        args.eval_batch_size,
        args.max_seq_length,
        args.max_predictions_per_seq,
    );
    let batches = batches
        .take(args.max_eval_steps)
        .collect::<Result<Vec<_>>>()
        .with_context(|| {
            format!(
                "reading --input_file with --max_seq_length {} and --max_predictions_per_seq {}",
                args.max_seq_length, args.max_predictions_per_seq
            )
        })?;
    ensure!(
        !batches.is_empty(),
        "--input_file {} holds fewer than --eval_batch_size {} records: nothing to evaluate \
         (the last partial batch is dropped, as the reference's drop_remainder does)",
        args.input_file.join(","),
        args.eval_batch_size
    );
    let step = loaded.global_step.unwrap_or(0).max(0) as u64;
    nezha_train::eval::evaluate(model, &batches, Kind::Float, step)
}

pub fn run(args: &EvalArgs) -> Result<()> {
    let results = evaluate(args)?;
    let dir = &args.output_dir;
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let text = results.to_results_txt();
    for (name, body) in [
        ("eval_results.txt", text.as_str()),
        ("eval_results.json", results.to_results_json().as_str()),
    ] {
        let path = dir.join(name);
        nezha_stages::atomic_file::write_file(&path, body.as_bytes())
            .with_context(|| format!("writing {}", path.display()))?;
    }
    println!(
        "***** Eval results ***** ({} batches of {})",
        results.batches, args.eval_batch_size
    );
    for line in text.lines() {
        println!("  {line}");
    }
    println!("wrote {}", dir.join("eval_results.txt").display());
    Ok(())
}
