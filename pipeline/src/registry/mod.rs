//! Stage and sink implementations by name, as `pipeline.toml` picks them.
//!
//! The pluggable steps of a pipeline (`[ingest]`, `[dedup]`, `[clean]`,
//! `[sentences]`, `[wordpiece]`) and its `[sink]` each have a table from a
//! name (`kind = "punct"`) to a builder. A builder reads its own keys of
//! the section into a parameter type of its own (which should
//! `deny_unknown_fields`), gets the pipeline's [`Resolved`] settings
//! read-only, and returns what it configures: a factory that makes one
//! stage per worker, or a sink. Users add their own implementations without
//! forking nezha: a function that calls `add` on the steps it extends,
//! passed to [`crate::cli::main_with`] (or [`install`]) at the start of
//! their `main`.

mod builtin;
mod command;
mod dedup;
mod settings;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

pub use builtin::{input_files, NoParams};
use nezha_stages::data::{Document, TokenizedDocument};
use nezha_stages::dedup::DedupPlan;
use nezha_stages::error::Result;
use nezha_stages::ingest::IngestPlan;
use nezha_stages::params::Params;
use nezha_stages::stage::BoxedStage;
use serde::de::DeserializeOwned;
pub use settings::Settings;

use crate::resolve::{core_keys, Resolved};
use crate::sink::Sink;

/// Which worker a stage is made for.
#[derive(Clone, Copy, Debug)]
pub struct WorkerInfo {
    /// This worker's global slot: process·workers + worker, of `peers`.
    pub index: usize,
    pub peers: usize,
    /// The slot a dealt global sequence gives this worker:
    /// worker·processes + process. Runs of the sequence go to slots in
    /// turn, so each process's workers together take every processes-th
    /// run, and the processes' streams interleaved one batch each are the
    /// sequence, whatever the workers per process, as ranks reading
    /// TFRecord files take batches in turn; a run then resumes on another
    /// number of processes (`instances::DynamicInstances`).
    pub deal: usize,
    /// Consecutive items of this worker's instance stream that the sink
    /// takes in one turn: the batch size when the sink takes batches, else 1
    /// (what `instances::DynamicInstances` deals to workers).
    pub per_turn: usize,
}

/// Makes the stage of one worker.
pub type Factory<I, O> = Arc<dyn Fn(WorkerInfo) -> Result<BoxedStage<I, O>> + Send + Sync>;

/// What a builder returns: the configured value, and its settings with
/// every default filled in, for `nezha run --print-plan`.
pub struct Built<T> {
    pub value: T,
    pub settings: Settings,
}

impl<T> Built<T> {
    pub fn new(value: T, settings: Settings) -> Built<T> {
        Built { value, settings }
    }
}

type Build<T> = Arc<dyn Fn(&Params, &Resolved) -> Result<Built<T>> + Send + Sync>;

/// One implementation of a step.
struct Kind<T> {
    build: Build<T>,
    /// The keys its parameter type accepts (besides `kind`).
    keys: &'static [&'static str],
}

/// The keys a parameter type accepts, read from its `Deserialize` impl.
fn keys_of<P: DeserializeOwned>() -> &'static [&'static str] {
    serde_aux::serde_introspection::serde_introspect::<P>()
}

/// One step's implementations by name.
pub struct Step<T> {
    pub section: &'static str,
    kinds: BTreeMap<String, Kind<T>>,
}

impl<T> Step<T> {
    fn new(section: &'static str) -> Step<T> {
        Step {
            section,
            kinds: BTreeMap::new(),
        }
    }

    /// Registers `name`: `build` gets the section's keys parsed as `P`.
    /// Replaces a kind of the same name.
    pub fn add<P: DeserializeOwned + 'static>(
        &mut self,
        name: &str,
        build: impl Fn(&Params, P, &Resolved) -> Result<Built<T>> + Send + Sync + 'static,
    ) {
        let build: Build<T> = Arc::new(move |params, resolved| {
            let parsed: P = params.parse()?;
            build(params, parsed, resolved)
        });
        self.kinds.insert(
            name.to_string(),
            Kind {
                build,
                keys: keys_of::<P>(),
            },
        );
    }

    pub fn names(&self) -> Vec<&str> {
        self.kinds.keys().map(String::as_str).collect()
    }

    /// Builds the kind the section names (`default` when it names none).
    /// Returns the kind's name with what it built.
    pub fn build(
        &self,
        params: &mut Params,
        default: Option<&str>,
        resolved: &Resolved,
    ) -> Result<(String, Built<T>)> {
        let kind = params.take_str("kind")?;
        let name = match (&kind, default) {
            (Some(k), _) => k.get_ref().as_str(),
            (None, Some(d)) => d,
            (None, None) => {
                return Err(params.error(
                    params.span.clone(),
                    format!(
                        "[{}] needs a kind; known: {}",
                        self.section,
                        self.names().join(", ")
                    ),
                ))
            }
        };
        let Some(found) = self.kinds.get(name) else {
            let message = format!(
                "[{}] unknown kind \"{name}\"; known: {}",
                self.section,
                self.names().join(", ")
            );
            return Err(match &kind {
                Some(k) => params.error(k.span(), message),
                None => params.error(params.span.clone(), message),
            });
        };
        Ok((name.to_string(), (found.build)(params, resolved)?))
    }

    fn keys(&self) -> impl Iterator<Item = &'static str> + '_ {
        self.kinds.values().flat_map(|k| k.keys.iter().copied())
    }
}

/// A section a sink kind reads besides `[sink]` (the trainer's `[train]`),
/// with the keys it accepts.
#[derive(Clone, Copy)]
pub struct OwnedSection {
    pub name: &'static str,
    pub keys: fn() -> &'static [&'static str],
}

impl OwnedSection {
    /// `[name]`, whose keys are those of the parameter type `P`.
    pub fn of<P: DeserializeOwned>(name: &'static str) -> OwnedSection {
        OwnedSection {
            name,
            keys: keys_of::<P>,
        }
    }
}

/// The sections a sink reads besides `[sink]`, each `None` when the file
/// has none.
pub type OwnedParams<'a, 'b> = BTreeMap<&'static str, Option<&'b Params<'a>>>;

type BuildSink =
    Arc<dyn Fn(&Params, &OwnedParams, &Resolved) -> Result<Built<Box<dyn Sink>>> + Send + Sync>;

struct SinkKind {
    build: BuildSink,
    keys: &'static [&'static str],
    sections: Vec<OwnedSection>,
}

/// The sinks by name: where the stream ends.
pub struct Sinks {
    kinds: BTreeMap<String, SinkKind>,
}

impl Sinks {
    /// Registers sink `name`, which reads `[sink]` as `P` and, if given,
    /// the `sections` of its own (handed to `build` by name).
    pub fn add<P: DeserializeOwned + 'static>(
        &mut self,
        name: &str,
        sections: &[OwnedSection],
        build: impl Fn(&Params, P, &OwnedParams, &Resolved) -> Result<Built<Box<dyn Sink>>>
            + Send
            + Sync
            + 'static,
    ) {
        let build: BuildSink = Arc::new(move |params, owned, resolved| {
            let parsed: P = params.parse()?;
            build(params, parsed, owned, resolved)
        });
        self.kinds.insert(
            name.to_string(),
            SinkKind {
                build,
                keys: keys_of::<P>(),
                sections: sections.to_vec(),
            },
        );
    }

    pub fn names(&self) -> Vec<&str> {
        self.kinds.keys().map(String::as_str).collect()
    }

    /// The sections sink `name` reads besides `[sink]`.
    pub fn sections_of(&self, name: &str) -> Vec<&'static str> {
        self.kinds
            .get(name)
            .map(|k| k.sections.iter().map(|s| s.name).collect())
            .unwrap_or_default()
    }

    /// Every section some sink reads besides `[sink]`.
    pub fn all_sections(&self) -> BTreeSet<&'static str> {
        self.kinds
            .values()
            .flat_map(|k| k.sections.iter().map(|s| s.name))
            .collect()
    }

    /// Builds the sink `[sink] kind` names; `owned` holds the sections it
    /// reads.
    pub fn build(
        &self,
        params: &mut Params,
        owned: &OwnedParams,
        resolved: &Resolved,
    ) -> Result<(String, Built<Box<dyn Sink>>)> {
        let kind = params.take_str("kind")?;
        let known = self.names().join(", ");
        let Some(kind) = kind else {
            return Err(params.error(
                params.span.clone(),
                format!("[sink] needs a kind; known: {known}"),
            ));
        };
        let name = kind.get_ref().as_str();
        let Some(found) = self.kinds.get(name) else {
            return Err(params.error(
                kind.span(),
                format!("[sink] unknown kind \"{name}\"; known: {known}"),
            ));
        };
        Ok((name.to_string(), (found.build)(params, owned, resolved)?))
    }
}

/// Every step's implementations, and the sinks.
pub struct Registry {
    pub ingest: Step<IngestPlan>,
    /// `[dedup]`: dropping repeated documents (absent: none dropped).
    pub dedup: Step<DedupPlan>,
    /// `[clean]`: documents rewritten or dropped before sentence splitting
    /// (absent: as read).
    pub clean: Step<Factory<Document, Document>>,
    pub sentences: Step<Factory<Document, Document>>,
    /// `[wordpiece]`: the tokenizer. Its `vocab` and `do_lower_case` are the
    /// pipeline's (see [`Resolved`]); a kind reads any further keys.
    pub wordpiece: Step<Factory<Document, TokenizedDocument>>,
    pub sink: Sinks,
}

impl Registry {
    /// The implementations that ship without the trainer: the trainer's
    /// sink is added by the `nezha` binary, which links libtorch.
    pub fn builtin() -> Registry {
        let mut r = Registry {
            ingest: Step::new("ingest"),
            dedup: Step::new("dedup"),
            clean: Step::new("clean"),
            sentences: Step::new("sentences"),
            wordpiece: Step::new("wordpiece"),
            sink: Sinks {
                kinds: BTreeMap::new(),
            },
        };
        builtin::register(&mut r);
        dedup::register(&mut r);
        command::register(&mut r);
        crate::sinks::register(&mut r);
        r
    }

    /// The built-in implementations and every user's, as [`install`]ed.
    /// This is what `nezha run` reads pipeline files with.
    pub fn installed() -> Registry {
        let mut r = Registry::builtin();
        for register in PLUGINS.lock().unwrap().iter() {
            register(&mut r);
        }
        r
    }

    /// Every key each section accepts (with `kind` where the section has
    /// kinds), for the pipeline reference page and its test.
    pub fn accepted_keys(&self) -> BTreeMap<String, BTreeSet<&'static str>> {
        let mut all: BTreeMap<String, BTreeSet<&'static str>> = BTreeMap::new();
        for (section, keys) in core_keys() {
            all.entry(section.to_string()).or_default().extend(keys);
        }
        let steps: [(&str, Vec<&'static str>); 5] = [
            (self.ingest.section, self.ingest.keys().collect()),
            (self.dedup.section, self.dedup.keys().collect()),
            (self.clean.section, self.clean.keys().collect()),
            (self.sentences.section, self.sentences.keys().collect()),
            (self.wordpiece.section, self.wordpiece.keys().collect()),
        ];
        for (section, keys) in steps {
            let entry = all.entry(section.to_string()).or_default();
            entry.insert("kind");
            entry.extend(keys);
        }
        all.entry("sink".to_string()).or_default().insert("kind");
        for kind in self.sink.kinds.values() {
            all.entry("sink".to_string())
                .or_default()
                .extend(kind.keys.iter().copied());
            for owned in &kind.sections {
                all.entry(owned.name.to_string())
                    .or_default()
                    .extend((owned.keys)().iter().copied());
            }
        }
        all
    }
}

static PLUGINS: std::sync::Mutex<Vec<fn(&mut Registry)>> = std::sync::Mutex::new(Vec::new());

/// Adds a user's implementations to every registry [`Registry::installed`]
/// makes from now on: a program calls it at the start of `main` (as
/// [`crate::cli::main_with`] does), then runs pipelines as `nezha run`
/// does, and its pipeline files can name the new kinds (`stages/example-tsv`
/// is a complete example). Implementations may replace built-in ones of the
/// same name.
pub fn install(register: fn(&mut Registry)) {
    PLUGINS.lock().unwrap().push(register);
}
