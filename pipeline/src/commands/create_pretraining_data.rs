//! `nezha create_pretraining_data`: a drop-in for the reference script.
//!
//! It takes the reference's flags as they are (`--input_file=a.txt,b*.txt
//! --output_file=… --vocab_file=… --do_lower_case=True …`, with the same
//! defaults) and writes the same records, in reference mode. The flags
//! become a pipeline ([`Flags::spec`], put together in code) like any
//! `pipeline.toml`, checked once by the same resolver.

use std::path::{Path, PathBuf};

use clap::Args;

use crate::plan::Plan;
use crate::registry::Registry;
use crate::spec::Spec;

/// The reference script's flags, with its defaults.
#[derive(Args, Debug, Clone)]
pub struct Flags {
    /// Input raw text file (or comma-separated list of files, directories
    /// and glob patterns). One sentence per line, a blank line between
    /// documents.
    #[arg(long = "input_file", required = true)]
    pub input_file: String,
    /// Output TFRecord file (or comma-separated list of files, written
    /// round-robin).
    #[arg(long = "output_file", required = true)]
    pub output_file: String,
    /// The vocabulary file that the BERT model was trained on.
    #[arg(long = "vocab_file", required = true)]
    pub vocab_file: PathBuf,
    /// Whether to lower case the input text (True/False, as the reference).
    #[arg(long = "do_lower_case", default_value = "True", num_args = 0..=1,
          default_missing_value = "True", value_parser = parse_py_bool)]
    pub do_lower_case: bool,
    /// Same as --do_lower_case=False (absl's negated boolean flag).
    #[arg(long = "nodo_lower_case")]
    pub nodo_lower_case: bool,
    /// Maximum sequence length.
    #[arg(long = "max_seq_length", default_value_t = 128)]
    pub max_seq_length: i64,
    /// Maximum number of masked LM predictions per sequence.
    #[arg(long = "max_predictions_per_seq", default_value_t = 20)]
    pub max_predictions_per_seq: i64,
    /// Random seed for data generation.
    #[arg(long = "random_seed", default_value_t = 12345)]
    pub random_seed: i64,
    /// Number of times to duplicate the input data (with different masks).
    #[arg(long = "dupe_factor", default_value_t = 10)]
    pub dupe_factor: i64,
    /// Masked LM probability.
    #[arg(long = "masked_lm_prob", default_value_t = 0.15)]
    pub masked_lm_prob: f64,
    /// Probability of creating sequences which are shorter than the maximum
    /// length.
    #[arg(long = "short_seq_prob", default_value_t = 0.1)]
    pub short_seq_prob: f64,
    /// Whether to use whole word masking rather than per-WordPiece masking
    /// (the later google-research/bert script's flag): a `##` piece is
    /// masked together with the rest of its word.
    #[arg(long = "do_whole_word_mask", default_value = "False", num_args = 0..=1,
          default_missing_value = "True", value_parser = parse_py_bool)]
    pub do_whole_word_mask: bool,
    /// Same as --do_whole_word_mask=False (absl's negated boolean flag).
    #[arg(long = "nodo_whole_word_mask")]
    pub nodo_whole_word_mask: bool,
    /// Write the output gzip-compressed (TFRecord `GZIP` compression). Not a
    /// reference flag.
    #[arg(long = "gzip")]
    pub gzip: bool,
}

/// absl's boolean spellings.
fn parse_py_bool(s: &str) -> Result<bool, String> {
    match s.to_ascii_lowercase().as_str() {
        "true" | "t" | "1" | "yes" => Ok(true),
        "false" | "f" | "0" | "no" => Ok(false),
        _ => Err(format!("expected True or False, got {s:?}")),
    }
}

/// Each flag and the pipeline key it sets, so that a value the pipeline
/// refuses is reported by its flag.
const FLAG_KEYS: [(&str, &str, &str); 9] = [
    ("input_file", "ingest", "input"),
    ("output_file", "sink", "output"),
    ("vocab_file", "wordpiece", "vocab"),
    ("max_seq_length", "instances", "max_seq_length"),
    ("short_seq_prob", "instances", "short_seq_prob"),
    ("dupe_factor", "instances", "dupe_factor"),
    ("masked_lm_prob", "masking", "masked_lm_prob"),
    (
        "max_predictions_per_seq",
        "masking",
        "max_predictions_per_seq",
    ),
    ("random_seed", "top level", "seed"),
];

impl Flags {
    /// The pipeline these flags describe: the reference's, in reference
    /// mode, into TFRecord files. Relative paths are the working
    /// directory's, as the reference's.
    pub fn spec(&self) -> Spec {
        let mut b = Spec::builder()
            .top("seed", self.random_seed)
            .top("workers", 1)
            .set("ingest", "kind", "text")
            .set("ingest", "input", self.input_file.as_str())
            .set("sentences", "kind", "lines")
            .set(
                "wordpiece",
                "vocab",
                self.vocab_file.to_string_lossy().as_ref(),
            )
            .set(
                "wordpiece",
                "do_lower_case",
                self.do_lower_case && !self.nodo_lower_case,
            )
            .set("instances", "kind", "reference")
            .set("instances", "max_seq_length", self.max_seq_length)
            .set("instances", "short_seq_prob", self.short_seq_prob)
            .set("instances", "dupe_factor", self.dupe_factor)
            .set("masking", "masked_lm_prob", self.masked_lm_prob)
            .set(
                "masking",
                "max_predictions_per_seq",
                self.max_predictions_per_seq,
            )
            .set("sink", "kind", "tfrecord")
            .set("sink", "output", self.output_file.as_str())
            .set("sink", "gzip", self.gzip);
        if self.do_whole_word_mask && !self.nodo_whole_word_mask {
            b = b.set("masking", "whole_word", "wordpiece");
        }
        Spec::from_text(Path::new("<flags>"), &b.to_toml())
    }

    /// The value given for `flag`, as typed.
    fn value_of(&self, flag: &str) -> String {
        match flag {
            "input_file" => self.input_file.clone(),
            "output_file" => self.output_file.clone(),
            "vocab_file" => self.vocab_file.display().to_string(),
            "max_seq_length" => self.max_seq_length.to_string(),
            "short_seq_prob" => self.short_seq_prob.to_string(),
            "dupe_factor" => self.dupe_factor.to_string(),
            "masked_lm_prob" => self.masked_lm_prob.to_string(),
            "max_predictions_per_seq" => self.max_predictions_per_seq.to_string(),
            "random_seed" => self.random_seed.to_string(),
            _ => String::new(),
        }
    }

    /// A refused pipeline key, told as the flag that set it.
    fn as_flag_error(&self, e: nezha_stages::error::Error) -> anyhow::Error {
        let message = e.to_string();
        for (flag, section, key) in FLAG_KEYS {
            let at = format!("[{section}] {key}: ");
            if let Some(i) = message.find(&at) {
                let rest = &message[i + at.len()..];
                return anyhow::anyhow!("--{flag}={}: {rest}", self.value_of(flag));
            }
        }
        e.into()
    }
}

pub fn run(flags: &Flags) -> anyhow::Result<()> {
    let plan = Plan::build(flags.spec(), Default::default(), &Registry::installed())
        .map_err(|e| flags.as_flag_error(e))?;
    plan.run(&Default::default())
}
