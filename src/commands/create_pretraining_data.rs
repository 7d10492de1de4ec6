//! `nezha create_pretraining_data`: a drop-in for the reference script.
//!
//! It takes the reference's flags as they are (`--input_file=a.txt,b*.txt
//! --output_file=… --vocab_file=… --do_lower_case=True …`, with the same
//! defaults) and writes the same records, in reference mode. The flags
//! become a pipeline graph like any `pipeline.toml`.

use std::path::{Path, PathBuf};

use anyhow::bail;
use clap::Args;
use nezha_stages::ingest::resolve_inputs;
use nezha_stages::vocab::Vocab;

use super::run::{print_write_summary, write_tfrecords};
use crate::pipeline::{Plan, SinkPlan};

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

impl Flags {
    /// Checks every flag with a message naming it, before any work.
    fn check(&self) -> anyhow::Result<()> {
        for (name, p) in [
            ("masked_lm_prob", self.masked_lm_prob),
            ("short_seq_prob", self.short_seq_prob),
        ] {
            if !(0.0..=1.0).contains(&p) {
                bail!("--{name}={p} is not a probability in [0, 1]");
            }
        }
        if self.max_seq_length < 5 {
            bail!(
                "--max_seq_length={} is too small: an instance needs [CLS], [SEP], [SEP] and at least one token in each segment (5)",
                self.max_seq_length
            );
        }
        if self.max_predictions_per_seq < 1 {
            bail!(
                "--max_predictions_per_seq={} must be at least 1",
                self.max_predictions_per_seq
            );
        }
        if self.dupe_factor < 1 {
            bail!("--dupe_factor={} must be at least 1", self.dupe_factor);
        }
        if self.random_seed < 0 {
            bail!("--random_seed={} must not be negative", self.random_seed);
        }
        resolve_inputs(&self.input_file).map_err(|e| anyhow::anyhow!("--input_file: {e}"))?;
        Vocab::load(&self.vocab_file).map_err(|e| anyhow::anyhow!("--vocab_file: {e}"))?;
        if self.output_file.split(',').all(|s| s.trim().is_empty()) {
            bail!("--output_file names no file");
        }
        Ok(())
    }

    /// The pipeline graph these flags describe.
    pub fn to_toml(&self) -> String {
        let q = |s: &str| toml::Value::String(s.to_string()).to_string();
        format!(
            "seed = {seed}\nworkers = 1\n\n\
             [ingest]\nkind = \"text\"\ninput = {input}\n\n\
             [sentences]\nkind = \"lines\"\n\n\
             [wordpiece]\nvocab = {vocab}\ndo_lower_case = {lower}\n\n\
             [instances]\nkind = \"reference\"\nmax_seq_length = {len}\nshort_seq_prob = {short:?}\ndupe_factor = {dupe}\n\n\
             [masking]\nmasked_lm_prob = {mlm:?}\nmax_predictions_per_seq = {pred}\n{wwm}\n\
             [sink]\nkind = \"tfrecord\"\noutput = {output}\ngzip = {gzip}\n",
            seed = self.random_seed,
            input = q(&self.input_file),
            vocab = q(&self.vocab_file.to_string_lossy()),
            lower = self.do_lower_case && !self.nodo_lower_case,
            len = self.max_seq_length,
            short = self.short_seq_prob,
            dupe = self.dupe_factor,
            mlm = self.masked_lm_prob,
            pred = self.max_predictions_per_seq,
            wwm = if self.do_whole_word_mask && !self.nodo_whole_word_mask {
                "whole_word = \"wordpiece\"\n"
            } else {
                ""
            },
            output = q(&self.output_file),
            gzip = self.gzip,
        )
    }
}

pub fn run(flags: &Flags) -> anyhow::Result<()> {
    flags.check()?;
    let graph = flags.to_toml();
    let plan = Plan::parse(Path::new("<flags>"), &graph, Default::default())?;
    let SinkPlan::TfRecord(sink) = &plan.sink else {
        unreachable!("the flags always describe a TFRecord sink")
    };
    let summary = write_tfrecords(&plan, sink)?;
    print_write_summary(&summary);
    Ok(())
}
