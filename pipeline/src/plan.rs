//! A checked pipeline: the spec resolved once ([`Resolved`]), then every
//! stage and the sink built from it, every input found, before any work
//! starts.

use std::fmt;
use std::path::Path;

use nezha_stages::data::{Document, Instance, TokenizedDocument};
use nezha_stages::dedup::DedupPlan;
use nezha_stages::error::Result;
use nezha_stages::ingest::IngestPlan;
use nezha_stages::params::Params;
use nezha_stages::Batch;

use crate::generation;
use crate::registry::{Built, Factory, OwnedParams, Registry, Settings, Step};
use crate::resolve::{resolve, Generation, Resolved, RunOptions, WholeWord};
use crate::sink::{Consumes, Sink};
use crate::spec::{Document as SpecDocument, Spec};

/// A step as configured: the kind the file names, what it built, and its
/// settings for printing.
pub struct Configured<T> {
    pub kind: String,
    pub value: T,
    pub settings: Settings,
}

impl<T> Configured<T> {
    fn new((kind, built): (String, Built<T>)) -> Configured<T> {
        Configured {
            kind,
            value: built.value,
            settings: built.settings,
        }
    }
}

/// A pipeline ready to run.
pub struct Plan {
    pub spec: Spec,
    pub resolved: Resolved,
    /// `None` only when the sink reads its own input (the trainer reading
    /// TFRecord files).
    pub ingest: Option<IngestPlan>,
    /// `[dedup]`: drop documents whose text came earlier in the corpus.
    pub dedup: Option<DedupPlan>,
    /// `[clean]`: documents rewritten or dropped before sentence splitting.
    pub clean: Option<Factory<Document, Document>>,
    pub sentences: Factory<Document, Document>,
    pub wordpiece: Factory<Document, TokenizedDocument>,
    /// Jieba's word tags, when `[masking]` masks Chinese words.
    pub words: Option<Factory<TokenizedDocument, TokenizedDocument>>,
    pub instances: Factory<TokenizedDocument, Instance>,
    /// Only with static streaming masking: reference and dynamic masking
    /// mask inside the generator.
    pub masking: Option<Factory<Instance, Instance>>,
    /// Only when the sink takes batches.
    pub batching: Option<Factory<Instance, Batch>>,
    pub sink: Box<dyn Sink>,
    /// The fraction of documents held out of the main stream for the
    /// sink's evaluation ([`Sink::holdout`]).
    pub holdout: Option<f64>,
    /// Each configured section's kind and settings, in pipeline order.
    described: Vec<(&'static str, String, Settings)>,
}

impl Plan {
    /// Reads and checks a pipeline file with the installed registry.
    pub fn load(file: &Path, options: RunOptions) -> anyhow::Result<Plan> {
        Ok(Plan::build(
            Spec::load(file)?,
            options,
            &Registry::installed(),
        )?)
    }

    /// Checks `source` as if read from `file`, with the installed registry.
    pub fn parse(file: &Path, source: &str, options: RunOptions) -> Result<Plan> {
        Plan::build(
            Spec::from_text(file, source),
            options,
            &Registry::installed(),
        )
    }

    /// Resolves the spec, then builds every step and the sink from it.
    pub fn build(spec: Spec, options: RunOptions, registry: &Registry) -> Result<Plan> {
        let doc = spec.parse()?;
        check_sections(&doc, registry)?;
        let resolved = resolve(&doc, options)?;

        let sink = build_sink(&doc, registry, &resolved)?;
        let consumes = sink.value.consumes();
        let ingest = match (doc.section("ingest")?, consumes) {
            (None, Consumes::Nothing) => None,
            (section, _) => {
                let mut p = match section {
                    Some(p) => p,
                    None => doc.required("ingest")?,
                };
                Some(build_step(
                    &registry.ingest,
                    &mut p,
                    Some("text"),
                    &resolved,
                )?)
            }
        };
        let dedup = optional_step(&doc, &registry.dedup, Some("exact"), &resolved)?;
        let clean = optional_step(&doc, &registry.clean, None, &resolved)?;
        let sentences = build_step(
            &registry.sentences,
            &mut doc.section_or_empty("sentences")?,
            Some("lines"),
            &resolved,
        )?;
        let mut wordpiece_params = doc.required("wordpiece")?;
        // `vocab` and `do_lower_case` were the resolver's.
        wordpiece_params.take::<toml::Value>("vocab")?;
        wordpiece_params.take::<toml::Value>("do_lower_case")?;
        let wordpiece = build_step(
            &registry.wordpiece,
            &mut wordpiece_params,
            Some("wordpiece"),
            &resolved,
        )?;
        let batching = match consumes {
            Consumes::Batches => Some(generation::batching(&resolved).ok_or_else(|| {
                doc.error(
                    0..0,
                    format!(
                        "missing section [batching]: [sink] kind = \"{}\" takes batches",
                        sink.kind
                    ),
                )
            })?),
            Consumes::Instances | Consumes::Nothing => None,
        };

        let mut described = Vec::new();
        let mut describe = |section: &'static str, kind: &str, settings: &Settings| {
            described.push((section, kind.to_string(), settings.clone()))
        };
        if let Some(s) = &ingest {
            describe("ingest", &s.kind, &s.settings);
        }
        if let Some(s) = &dedup {
            describe("dedup", &s.kind, &s.settings);
        }
        if let Some(s) = &clean {
            describe("clean", &s.kind, &s.settings);
        }
        describe("sentences", &sentences.kind, &sentences.settings);
        describe("wordpiece", &wordpiece.kind, &wordpiece.settings);
        describe("sink", &sink.kind, &sink.settings);

        Ok(Plan {
            instances: generation::instances(&resolved)?,
            masking: generation::masking(&resolved)?,
            words: generation::word_marking(&resolved),
            ingest: ingest.map(|s| s.value),
            dedup: dedup.map(|s| s.value),
            clean: clean.map(|s| s.value),
            sentences: sentences.value,
            wordpiece: wordpiece.value,
            batching,
            holdout: sink.value.holdout(),
            sink: sink.value,
            described,
            resolved,
            spec,
        })
    }

    /// The pipeline file's name, for messages.
    pub fn file(&self) -> &Path {
        &self.spec.file
    }

    /// Runs the whole pipeline into its sink.
    pub fn run(&self, options: &RunOptions) -> anyhow::Result<()> {
        self.sink.run(self, options)
    }

    /// The resolved pipeline as `pipeline.toml` text, every default filled
    /// in, sections in pipeline order (`nezha run --print-plan`).
    pub fn to_toml(&self) -> String {
        let r = &self.resolved;
        let mut text = format!("seed = {}\nworkers = {}\n", r.seed, r.workers);
        let mut put = |name: &str, kind: Option<&str>, settings: &Settings| {
            text.push_str(&format!("\n[{name}]\n"));
            if let Some(k) = kind {
                text.push_str(&format!("kind = {}\n", toml::Value::from(k)));
            }
            text.push_str(&toml::to_string(&settings.0).expect("TOML values serialize"));
        };
        let find = |name: &str| self.described.iter().find(|(s, _, _)| *s == name);
        for section in ["ingest", "dedup", "clean", "sentences"] {
            if let Some((s, kind, settings)) = find(section) {
                put(s, Some(kind), settings);
            }
        }
        if let Some((s, kind, settings)) = find("wordpiece") {
            let settings = Settings(settings.0.clone())
                .set("vocab", &r.wordpiece.vocab)
                .set("do_lower_case", r.wordpiece.do_lower_case);
            put(s, Some(kind), &settings);
        }
        let (instances_kind, masking_kind) = match r.generation {
            Generation::Reference => ("reference", "static"),
            Generation::Streaming { .. } => ("streaming", "static"),
            Generation::Dynamic { .. } => ("streaming", "dynamic"),
        };
        let mut instances = Settings::new()
            .set("max_seq_length", r.instances.max_seq_length)
            .set("short_seq_prob", r.instances.short_seq_prob)
            .set("dupe_factor", r.instances.dupe_factor);
        if r.generation != Generation::Reference {
            instances = instances
                .set("reservoir_documents", r.instances.reservoir_documents)
                .set("shuffle_buffer", r.instances.shuffle_buffer);
        }
        put("instances", Some(instances_kind), &instances);
        let mut masking = Settings::new()
            .set("masked_lm_prob", r.masking.masked_lm_prob)
            .set("max_predictions_per_seq", r.masking.max_predictions_per_seq)
            .set("whole_word", r.masking.whole_word)
            .set("user_dict", &r.masking.user_dict);
        if r.masking.whole_word == Some(WholeWord::Jieba) {
            masking = masking.set("hmm", r.masking.hmm);
        }
        if r.generation != Generation::Reference {
            masking = masking.set("epochs", r.generation.epochs());
        }
        put("masking", Some(masking_kind), &masking);
        if let (Some(b), Some(_)) = (&r.batching, &self.batching) {
            let batching = Settings::new()
                .set("batch_size", b.batch_size)
                .set("keep_remainder", b.keep_remainder);
            put("batching", Some("fixed"), &batching);
        }
        if let Some((s, kind, settings)) = find("sink") {
            put(s, Some(kind), settings);
        }
        for (name, settings) in self.sink.owned_settings() {
            put(name, None, &settings);
        }
        text
    }
}

impl fmt::Display for Plan {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_toml())
    }
}

/// Every section of the file must be one the pipeline or its sink reads.
fn check_sections(doc: &SpecDocument, registry: &Registry) -> Result<()> {
    // The sections some kind reads keys from, the sinks' own included.
    let known: Vec<String> = registry
        .accepted_keys()
        .into_keys()
        .filter(|s| s != "top level")
        .collect();
    for (name, span) in doc.section_names() {
        if !known.iter().any(|k| k == name) {
            return Err(doc.error(
                span,
                format!("unknown section [{name}]; known: {}", known.join(", ")),
            ));
        }
    }
    Ok(())
}

fn build_step<T>(
    step: &Step<T>,
    params: &mut Params,
    default: Option<&str>,
    resolved: &Resolved,
) -> Result<Configured<T>> {
    Ok(Configured::new(step.build(params, default, resolved)?))
}

/// A step whose section may be absent (then it adds no operator).
fn optional_step<T>(
    doc: &SpecDocument,
    step: &Step<T>,
    default: Option<&str>,
    resolved: &Resolved,
) -> Result<Option<Configured<T>>> {
    doc.section(step.section)?
        .map(|mut p| build_step(step, &mut p, default, resolved))
        .transpose()
}

/// `[sink]` and the sections its kind reads; a section only another sink
/// kind reads is refused.
fn build_sink(
    doc: &SpecDocument,
    registry: &Registry,
    resolved: &Resolved,
) -> Result<Configured<Box<dyn Sink>>> {
    let name = doc
        .required("sink")?
        .take_str("kind")?
        .map(|k| k.into_inner())
        .unwrap_or_default();
    let wanted = registry.sink.sections_of(&name);
    for other in registry.sink.all_sections() {
        if !wanted.contains(&other) {
            if let Some((_, span)) = doc.section_names().find(|(n, _)| *n == other) {
                return Err(doc.error(
                    span,
                    format!(
                        "[{other}] is read by another kind of sink, not [sink] kind = {name:?}"
                    ),
                ));
            }
        }
    }
    let sections: Vec<(&'static str, Option<Params>)> = wanted
        .iter()
        .map(|s| Ok((*s, doc.section(s)?)))
        .collect::<Result<_>>()?;
    let owned: OwnedParams = sections.iter().map(|(n, p)| (*n, p.as_ref())).collect();
    Ok(Configured::new(registry.sink.build(
        &mut doc.required("sink")?,
        &owned,
        resolved,
    )?))
}
