//! Converts weights between formats until `nezha convert` is wired:
//!
//!     cargo run -p nezha-finetune --example convert -- \
//!         <tf|hf|nezha> INPUT <tf|hf|nezha> OUTPUT [CONFIG.json]
//!
//! CONFIG.json (a `bert_config.json`) is needed for a TF input that has no
//! `bert_config.json` beside it.

use std::path::PathBuf;

use anyhow::{bail, Result};
use nezha_finetune::checkpoint::{convert, Format};
use nezha_train::model::NezhaConfig;

fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.len() != 4 && args.len() != 5 {
        bail!("usage: convert <tf|hf|nezha> INPUT <tf|hf|nezha> OUTPUT [CONFIG.json]");
    }
    let config = match args.get(4) {
        Some(p) => Some(NezhaConfig::from_json_file(&PathBuf::from(p))?),
        None => None,
    };
    let report = convert(
        &PathBuf::from(&args[1]),
        args[0].parse::<Format>()?,
        &PathBuf::from(&args[3]),
        args[2].parse::<Format>()?,
        config.as_ref(),
        None,
    )?;
    if !report.skipped.is_empty() {
        let shown: Vec<&str> = report.skipped.iter().take(4).map(String::as_str).collect();
        let more = if report.skipped.len() > 4 {
            ", …"
        } else {
            ""
        };
        eprintln!(
            "skipped {} tensors: {}{more}",
            report.skipped.len(),
            shown.join(", ")
        );
    }
    if let Some((rows, vocab)) = report.vocab_padding {
        eprintln!("vocabulary padded to {rows} rows: sliced to {vocab}");
    }
    if let Some(step) = report.global_step {
        eprintln!("global_step {step}");
    }
    Ok(())
}
