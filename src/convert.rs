//! `nezha convert`: weights between TensorFlow checkpoints (the reference's
//! variable names), Hugging Face directories (`NezhaFor…` names) and ours.

use std::path::PathBuf;

use clap::Args;
use nezha_finetune::checkpoint::{convert, Format};
use nezha_train::model::NezhaConfig;

#[derive(Args, Debug, Clone)]
pub struct ConvertArgs {
    /// Format of INPUT: tf (a checkpoint prefix, `.index` + `.data-*`), hf (a
    /// directory with config.json and model.safetensors) or nezha (our
    /// safetensors file or checkpoint directory).
    pub from: Format,
    pub input: PathBuf,
    /// Format of OUTPUT: tf, hf or nezha.
    pub to: Format,
    pub output: PathBuf,
    /// A bert_config.json (plus max_relative_position) for a TF input that
    /// has none beside it; must agree with the config an HF or nezha input
    /// carries.
    #[arg(long)]
    pub config: Option<PathBuf>,
}

pub fn run(args: &ConvertArgs) -> anyhow::Result<()> {
    let config = args
        .config
        .as_deref()
        .map(NezhaConfig::from_json_file)
        .transpose()?;
    let report = convert(
        &args.input,
        args.from,
        &args.output,
        args.to,
        config.as_ref(),
        None,
    )?;
    if !report.skipped.is_empty() {
        println!(
            "skipped {} variables that are not model weights (optimizer slots, global_step, loss scale): {}",
            report.skipped.len(),
            report.skipped.iter().take(6).cloned().collect::<Vec<_>>().join(", ")
        );
    }
    if let Some((rows, kept)) = report.vocab_padding {
        println!("vocab padded to {rows} rows in the checkpoint; kept the first {kept}");
    }
    if let Some(step) = report.global_step {
        println!("checkpoint global_step: {step}");
    }
    println!("wrote {}", args.output.display());
    Ok(())
}
