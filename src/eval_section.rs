//! The `[eval]` section: evaluation during training, on a held-out share of
//! the corpus (`holdout`, documents chosen by their text, which then never
//! reach training) or on TFRecord files (`tfrecords`), every `every` steps
//! and at the end.

use std::path::PathBuf;

use nezha_pipeline::registry::Settings;
use nezha_pipeline::Resolved;
use nezha_stages::error::Result;
use nezha_stages::ingest::{resolve_inputs, InputList};
use nezha_stages::params::{check_at_least, Params};
use serde::Deserialize;
use toml::Spanned;

/// Batches evaluated each time unless `batches` says.
const DEFAULT_BATCHES: usize = 10;

/// `[eval]` as written.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EvalToml {
    /// The fraction of documents held out, strictly between 0 and 1.
    holdout: Option<Spanned<f64>>,
    /// Or TFRecord files prepared the same way as the training data.
    tfrecords: Option<Spanned<InputList>>,
    /// Steps between evaluations (default: `[train] save_every`).
    every: Option<Spanned<i64>>,
    /// Batches of `[batching] batch_size` per evaluation.
    batches: Option<Spanned<i64>>,
}

/// What the trainer evaluates on.
#[derive(Clone, Debug, PartialEq)]
pub enum EvalSource {
    Holdout(f64),
    TfRecords(Vec<PathBuf>),
}

/// `[eval]`, read.
#[derive(Clone, Debug, PartialEq)]
pub struct EvalSection {
    pub source: EvalSource,
    pub every: u64,
    pub batches: usize,
}

impl EvalSection {
    pub fn settings(&self) -> Settings {
        let s = match &self.source {
            EvalSource::Holdout(f) => Settings::new().set("holdout", f),
            EvalSource::TfRecords(files) => Settings::new().set("tfrecords", files),
        };
        s.set("every", self.every).set("batches", self.batches)
    }
}

/// Reads `[eval]`; `save_every` is the default interval.
pub fn parse_eval(p: &Params, t: EvalToml, r: &Resolved, save_every: u64) -> Result<EvalSection> {
    let source = match (&t.holdout, &t.tfrecords) {
        (Some(h), None) => {
            let f = *h.get_ref();
            if !(f > 0.0 && f < 1.0) {
                return Err(p.invalid(
                    h,
                    "holdout",
                    format!(
                        "{f} is not a share strictly between 0 and 1 (0 holds nothing out, \
                         1 leaves nothing to train on)"
                    ),
                ));
            }
            EvalSource::Holdout(f)
        }
        (None, Some(files)) => EvalSource::TfRecords(
            resolve_inputs(files.get_ref().entries(), &r.base_dir)
                .map_err(|e| p.invalid(files, "tfrecords", e))?,
        ),
        (Some(h), Some(_)) => {
            return Err(p.invalid(
                h,
                "holdout",
                "give either holdout (a share of the corpus) or tfrecords (files), not both",
            ))
        }
        (None, None) => {
            return Err(p.error(
                p.span.clone(),
                "[eval] needs holdout (a share of the corpus) or tfrecords (files)".into(),
            ))
        }
    };
    let every = match &t.every {
        Some(e) => check_at_least(p, e, "every", 1)? as u64,
        None => save_every,
    };
    let batches = match &t.batches {
        Some(b) => check_at_least(p, b, "batches", 1)?,
        None => DEFAULT_BATCHES,
    };
    Ok(EvalSection {
        source,
        every,
        batches,
    })
}
