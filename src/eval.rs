//! `nezha eval`: the reference's `run_pretraining.py --do_eval`. A pretrained
//! checkpoint is run over pretraining TFRecords, dropout off, and the
//! reference `metric_fn`'s quantities are written to
//! `OUTPUT_DIR/eval_results.txt` (and `.json`).

use std::path::{Path, PathBuf};

use anyhow::{ensure, Context, Result};
use clap::Args;
use nezha_train::eval::EvalMetrics;
use tch::Kind;

use crate::pretrained::{check_vocab, CheckpointArgs};
use crate::tfrecord_batches::TfRecordBatches;

#[derive(Args, Debug, Clone)]
pub struct EvalArgs {
    /// Pretraining TFRecord files (the reference layout): paths, globs or
    /// comma-separated lists, read in the order given.
    #[arg(long = "input_file", visible_alias = "input-file", required = true, num_args = 1..)]
    pub input_file: Vec<String>,
    #[command(flatten)]
    pub checkpoint: CheckpointArgs,
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
    let files = nezha_stages::ingest::resolve_inputs(&args.input_file, Path::new("."))
        .with_context(|| format!("--input_file {}", args.input_file.join(",")))?;
    ensure!(
        !files.is_empty(),
        "--input_file {} matches no file",
        args.input_file.join(",")
    );
    let loaded = args.checkpoint.load()?;
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
