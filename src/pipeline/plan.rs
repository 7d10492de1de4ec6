use std::path::{Path, PathBuf};

use anyhow::Context as _;
use nezha_stages::data::{Document, Instance, TokenizedDocument};
use nezha_stages::dedup::DedupPlan;
use nezha_stages::error::Error;
use nezha_stages::params::{check_at_least, Location, Params};
use nezha_stages::registry::{Context, Factory, IngestPlan, Registry};
use nezha_stages::sinks::TfRecordSink;
use nezha_stages::Batch;
use nezha_train::trainer::TrainConfig;
use serde::Deserialize;
use toml::de::{DeTable, DeValue};
use toml::Spanned;

use super::train_section::{parse_train, TrainInput};

/// A checked pipeline: every stage chosen and configured, every input
/// found, before any work starts.
pub struct Plan {
    pub file: PathBuf,
    pub workers: usize,
    pub ctx: Context,
    /// `None` only when the trainer reads TFRecord files instead of the
    /// live stream.
    pub ingest: Option<IngestPlan>,
    /// `[dedup]`: drop documents whose text came earlier in the corpus.
    pub dedup: Option<DedupPlan>,
    /// `[clean]`: a stage that rewrites or drops documents before sentence
    /// splitting.
    pub clean: Option<Factory<Document, Document>>,
    pub sentences: Factory<Document, Document>,
    pub wordpiece: Factory<Document, TokenizedDocument>,
    /// Jieba's word tags, when `[masking]` masks Chinese words.
    pub words: Option<Factory<TokenizedDocument, TokenizedDocument>>,
    pub instances: Factory<TokenizedDocument, Instance>,
    /// `None` in reference mode, where masking is fused into instance
    /// generation because the reference draws both from one random stream.
    pub masking: Option<Factory<Instance, Instance>>,
    pub batching: Option<Factory<Instance, Batch>>,
    pub sink: SinkPlan,
    /// Sections the plan does not interpret itself (`[train]`), for the
    /// caller, with the file's text to report their errors.
    pub source: String,
}

/// Where the stream ends.
pub enum SinkPlan {
    /// TFRecord files in the reference layout.
    TfRecord(TfRecordSink),
    /// The bounded channel with a consumer that checks and counts batches.
    Check,
    /// The trainer (`[train]`), fed by the live stream through the bounded
    /// channel or by TFRecord files.
    Train(Box<TrainConfig>, TrainInput),
}

/// What `nezha run` was asked besides the file.
#[derive(Clone, Copy, Debug, Default)]
pub struct RunOptions {
    /// Overrides `workers`.
    pub workers: Option<usize>,
    /// Continue training from the newest checkpoint.
    pub resume: bool,
}

const SECTIONS: [&str; 10] = [
    "ingest",
    "dedup",
    "clean",
    "sentences",
    "wordpiece",
    "instances",
    "masking",
    "batching",
    "sink",
    "train",
];

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct TopLevel {
    #[serde(default = "default_seed")]
    seed: Spanned<i64>,
    #[serde(default = "default_workers")]
    workers: Spanned<i64>,
}

fn default_seed() -> Spanned<i64> {
    Spanned::new(0..0, 12345)
}

fn default_workers() -> Spanned<i64> {
    Spanned::new(0..0, 1)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct TfRecordParams {
    output: Spanned<String>,
    #[serde(default)]
    gzip: bool,
}

impl Plan {
    pub fn load(file: &Path, options: RunOptions) -> anyhow::Result<Plan> {
        let source = std::fs::read_to_string(file)
            .with_context(|| format!("cannot read {}", file.display()))?;
        Ok(Plan::parse(file, &source, options)?)
    }

    pub fn parse(file: &Path, source: &str, options: RunOptions) -> Result<Plan, Error> {
        let at = Location { file, src: source };
        let doc = DeTable::parse(source)
            .map_err(|e| at.error(e.span().unwrap_or(0..0), e.message().to_string()))?;
        let doc = doc.into_inner();

        let mut top = DeTable::default();
        let section = |name: &str| {
            doc.iter()
                .find(|(k, _)| k.get_ref().as_ref() == name)
                .map(|(_, v)| v)
        };
        for (k, v) in doc.iter() {
            let name = k.get_ref().as_ref();
            let is_table = matches!(v.get_ref(), DeValue::Table(_));
            if is_table && !SECTIONS.contains(&name) {
                return Err(at.error(
                    k.span(),
                    format!("unknown section [{name}]; known: {}", SECTIONS.join(", ")),
                ));
            }
            if !is_table {
                top.insert(k.clone(), v.clone());
            }
        }
        let top_value = Spanned::new(0..0, DeValue::Table(top));
        let top_params = Params::new(file, source, "top level", &top_value)?;
        let t: TopLevel = top_params.parse()?;
        let workers = match options.workers {
            Some(w) => w,
            None => check_at_least(&top_params, &t.workers, "workers", 1)?,
        };
        let seed = *t.seed.get_ref();
        if seed < 0 {
            return Err(top_params.invalid(&t.seed, "seed", "must not be negative"));
        }

        let registry = Registry::installed();
        let base_dir = file.parent().map(Path::to_path_buf).unwrap_or_default();
        let params_of = |name: &'static str| -> Result<Params<'_>, Error> {
            match section(name) {
                Some(v) => Params::new(file, source, name, v),
                None => Ok(Params::empty(file, source, name)),
            }
        };
        let require = |name: &'static str| -> Result<Params<'_>, Error> {
            match section(name) {
                Some(v) => Params::new(file, source, name, v),
                None => Err(at.error(0..0, format!("missing section [{name}]"))),
            }
        };

        // The instance generator decides the mode, which changes the
        // defaults of other stages, so look at its kind first.
        let mut instances_params = params_of("instances")?;
        let kind = instances_params.take_str("kind")?;
        let reference = kind.as_ref().is_some_and(|k| k.get_ref() == "reference");
        if reference && workers > 1 {
            return Err(at.error(
                kind.as_ref().map_or(0..0, |k| k.span()),
                format!("[instances] kind = \"reference\" holds every document in one worker, as the reference does; it needs workers = 1 (got {workers})"),
            ));
        }
        let mut ctx = Context {
            seed: seed as u64,
            reference,
            base_dir,
            ..Context::default()
        };

        // A trainer that reads TFRecord files needs no ingest.
        let reads_tfrecords = section("train").is_some_and(|t| match t.get_ref() {
            DeValue::Table(t) => t.keys().any(|k| k.get_ref().as_ref() == "tfrecords"),
            _ => false,
        });
        let ingest = match (section("ingest"), reads_tfrecords) {
            (None, true) => None,
            _ => Some(
                registry
                    .ingest
                    .build(&mut require("ingest")?, "text", &mut ctx)?,
            ),
        };
        // Optional steps: absent sections add no operator.
        let dedup = section("dedup")
            .map(|_| {
                registry
                    .dedup
                    .build(&mut params_of("dedup")?, "exact", &mut ctx)
            })
            .transpose()?;
        let clean = section("clean")
            .map(|_| {
                let mut p = params_of("clean")?;
                if p.take_str("kind")?.is_none() {
                    // No default: cleaning is whatever the user brings.
                    let known = registry.clean.names().join(", ");
                    return Err(p.error(
                        p.span.clone(),
                        format!("[clean] needs a kind; known: {known}"),
                    ));
                }
                registry.clean.build(&mut params_of("clean")?, "", &mut ctx)
            })
            .transpose()?;
        let sentences =
            registry
                .sentences
                .build(&mut params_of("sentences")?, "lines", &mut ctx)?;
        let wordpiece =
            registry
                .wordpiece
                .build(&mut require("wordpiece")?, "wordpiece", &mut ctx)?;
        let masking = registry
            .masking
            .build(&mut params_of("masking")?, "static", &mut ctx)?;
        let instance_kind = kind.as_ref().map_or("streaming", |k| k.get_ref().as_str());
        let instances = registry.instances.build_kind(
            &mut instances_params,
            kind.as_ref(),
            instance_kind,
            &mut ctx,
        )?;
        let masking = if reference { None } else { masking };
        let words = ctx.word_marking()?;

        let mut sink_params = require("sink")?;
        let sink_kind = sink_params.take_str("kind")?;
        let sink = match sink_kind.as_ref().map(|k| k.get_ref().as_str()) {
            Some("tfrecord") => {
                let p: TfRecordParams = sink_params.parse()?;
                let outputs: Vec<PathBuf> = p
                    .output
                    .get_ref()
                    .split(',')
                    .map(str::trim)
                    .filter(|s| !s.is_empty())
                    .map(|s| ctx.resolve(s))
                    .collect();
                if outputs.is_empty() {
                    return Err(sink_params.invalid(&p.output, "output", "names no file"));
                }
                SinkPlan::TfRecord(TfRecordSink {
                    outputs,
                    gzip: p.gzip,
                    max_seq_length: ctx.max_seq_length.expect("instances built"),
                    max_predictions_per_seq: ctx
                        .masking
                        .as_ref()
                        .expect("masking built")
                        .max_predictions_per_seq,
                })
            }
            Some("check") => {
                sink_params.parse::<Empty>()?;
                SinkPlan::Check
            }
            Some("train") => {
                sink_params.parse::<Empty>()?;
                if section("train").is_none() {
                    return Err(sink_params.error(
                        sink_params.span.clone(),
                        "[sink] kind = \"train\" needs a [train] section".into(),
                    ));
                }
                let (cfg, input) = parse_train(&require("train")?, &ctx, options.resume)?;
                SinkPlan::Train(Box::new(cfg), input)
            }
            other => {
                let span = sink_kind
                    .as_ref()
                    .map_or(sink_params.span.clone(), |k| k.span());
                return Err(sink_params.error(
                    span,
                    format!("[sink] kind must be one of \"tfrecord\", \"check\", \"train\" (got {other:?})"),
                ));
            }
        };
        let batching = match sink {
            SinkPlan::TfRecord(_) => None,
            _ => Some(
                registry
                    .batching
                    .build(&mut require("batching")?, "fixed", &mut ctx)?,
            ),
        };

        Ok(Plan {
            file: file.to_path_buf(),
            workers,
            ctx,
            ingest,
            dedup,
            clean,
            sentences,
            wordpiece,
            words,
            instances,
            masking,
            batching,
            sink,
            source: source.to_string(),
        })
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Empty {}
