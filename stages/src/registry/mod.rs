//! Stage implementations by name, as `pipeline.toml` picks them.
//!
//! Each step of the pipeline has a table from a name (`kind = "punct"`) to
//! a builder. A builder reads and checks its `[section]` of the file once,
//! before any work starts, and returns a factory that makes one stage per
//! worker. Users add their own implementations without forking nezha: a
//! function that calls [`Step::add`] on the steps it extends, passed to
//! [`install`] at the start of their `main`.

mod builtin;
mod documents;

use std::collections::BTreeMap;
use std::sync::Arc;

use crate::data::{Document, Instance, TokenizedDocument};
use crate::dedup::DedupPlan;
use crate::error::Result;
use crate::ingest::Ingest;
use crate::masking::{MaskingParams, WholeWords};
use crate::params::Params;
use crate::segment::{JiebaWords, Segmenter};
use crate::stage::BoxedStage;
use crate::vocab::Vocab;
use crate::Batch;

/// Which worker a stage is made for.
#[derive(Clone, Copy, Debug)]
pub struct WorkerInfo {
    pub index: usize,
    pub peers: usize,
    /// Consecutive items of this worker's instance stream that the sink
    /// takes in one turn: the batch size when the sink takes batches, else 1
    /// (what `instances::DynamicInstances` deals to workers).
    pub per_turn: usize,
}

/// Whole-word masking as `[masking]` asks for it.
#[derive(Clone, Debug)]
pub struct WholeWordPlan {
    /// Which tokens continue a word (`##` pieces and segmenter tags).
    pub words: WholeWords,
    /// Jieba, when Chinese words are wanted: it runs on each document in
    /// front of the instance generator (see [`Context::word_marking`]).
    pub jieba: Option<Segmenter>,
}

/// How each worker's reader reads the corpus.
#[derive(Clone, Copy, Debug)]
pub struct Reading {
    /// Every worker reads, splits and tokenizes its share of the documents,
    /// and then receives every worker's tokenized documents in corpus order
    /// ([`crate::gather`]) for a generator that splits the work itself, as
    /// dynamic masking does.
    pub gather: bool,
    /// How many times the corpus is read: the epochs of dynamic masking.
    pub passes: usize,
}

impl Default for Reading {
    fn default() -> Reading {
        Reading {
            gather: false,
            passes: 1,
        }
    }
}

/// Makes the stage of one worker.
pub type Factory<I, O> = Arc<dyn Fn(WorkerInfo) -> Result<BoxedStage<I, O>> + Send + Sync>;

/// What earlier sections of the file tell later ones.
#[derive(Clone, Debug, Default)]
pub struct Context {
    /// The run's seed (top-level `seed`).
    pub seed: u64,
    /// True when `[instances] kind = "reference"`: the run reproduces the
    /// reference script, on one worker, holding every document.
    pub reference: bool,
    /// Directory that relative paths in the file are resolved against.
    pub base_dir: std::path::PathBuf,
    /// Set by `[wordpiece]`.
    pub vocab: Option<Arc<Vocab>>,
    /// Set by `[masking]`.
    pub masking: Option<MaskingParams>,
    /// Set by `[masking]` when it masks whole words.
    pub whole_words: Option<WholeWordPlan>,
    /// Set by `[masking] kind = "dynamic"`: masking happens in the instance
    /// generator as instances leave it, so no masking operator is built.
    pub dynamic_masking: bool,
    /// Set by `[masking] kind = "dynamic"`.
    pub reading: Reading,
    /// Set by `[instances]`.
    pub max_seq_length: Option<usize>,
    /// Set by `[batching]`.
    pub batch_size: Option<usize>,
}

impl Context {
    pub fn resolve(&self, path: &str) -> std::path::PathBuf {
        self.base_dir.join(path)
    }

    /// The step that tags Chinese words (Jieba) in tokenized documents, in
    /// front of the instance generator (and of the gather, so that each
    /// worker segments only its share), when `[masking]` asks for them.
    pub fn word_marking(&self) -> Result<Option<Factory<TokenizedDocument, TokenizedDocument>>> {
        let Some(segmenter) = self.whole_words.as_ref().and_then(|w| w.jieba.clone()) else {
            return Ok(None);
        };
        let vocab = self
            .vocab
            .clone()
            .expect("[wordpiece] is built before [masking]");
        // `[masking]` checked that the vocab fits the segmenter's tags.
        Ok(Some(Arc::new(move |_| {
            Ok(Box::new(JiebaWords::new(segmenter.clone(), &vocab)?))
        })))
    }
}

/// A builder: checks a section's parameters and returns what it configures.
pub type Builder<T> = fn(&Params, &mut Context) -> Result<T>;

/// The configured ingest: its format and the files it reads.
#[derive(Clone)]
pub struct IngestPlan {
    pub format: Arc<dyn Ingest>,
    pub files: Arc<Vec<std::path::PathBuf>>,
}

/// One step's implementations by name.
pub struct Step<T> {
    pub section: &'static str,
    entries: BTreeMap<String, Builder<T>>,
}

impl<T> Step<T> {
    fn new(section: &'static str) -> Step<T> {
        Step {
            section,
            entries: BTreeMap::new(),
        }
    }

    pub fn add(&mut self, name: &str, builder: Builder<T>) {
        self.entries.insert(name.to_string(), builder);
    }

    pub fn names(&self) -> Vec<&str> {
        self.entries.keys().map(String::as_str).collect()
    }

    /// Builds the implementation named by the section's `kind` (or
    /// `default` when the section has none).
    pub fn build(&self, params: &mut Params, default: &str, ctx: &mut Context) -> Result<T> {
        let kind = params.take_str("kind")?;
        self.build_kind(params, kind.as_ref(), default, ctx)
    }

    /// As [`Step::build`], for a section whose `kind` was already taken out.
    pub fn build_kind(
        &self,
        params: &mut Params,
        kind: Option<&toml::Spanned<String>>,
        default: &str,
        ctx: &mut Context,
    ) -> Result<T> {
        let name = kind.map_or(default, |k| k.get_ref().as_str());
        let Some(builder) = self.entries.get(name) else {
            let known = self.names().join(", ");
            let message = format!("[{}] unknown kind \"{name}\"; known: {known}", self.section);
            return Err(match kind {
                Some(k) => params.error(k.span(), message),
                None => params.error(params.span.clone(), message),
            });
        };
        builder(params, ctx)
    }
}

/// Every step's implementations.
pub struct Registry {
    pub ingest: Step<IngestPlan>,
    /// `[dedup]`: dropping repeated documents (absent: none dropped).
    pub dedup: Step<DedupPlan>,
    /// `[clean]`: documents rewritten or dropped before sentence splitting
    /// (absent: as read).
    pub clean: Step<Factory<Document, Document>>,
    pub sentences: Step<Factory<Document, Document>>,
    pub wordpiece: Step<Factory<Document, TokenizedDocument>>,
    pub masking: Step<Option<Factory<Instance, Instance>>>,
    pub instances: Step<Factory<TokenizedDocument, Instance>>,
    pub batching: Step<Factory<Instance, Batch>>,
}

impl Registry {
    /// The implementations that ship with nezha.
    pub fn builtin() -> Registry {
        let mut r = Registry {
            ingest: Step::new("ingest"),
            dedup: Step::new("dedup"),
            clean: Step::new("clean"),
            sentences: Step::new("sentences"),
            wordpiece: Step::new("wordpiece"),
            masking: Step::new("masking"),
            instances: Step::new("instances"),
            batching: Step::new("batching"),
        };
        builtin::register(&mut r);
        documents::register(&mut r);
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
}

static PLUGINS: std::sync::Mutex<Vec<fn(&mut Registry)>> = std::sync::Mutex::new(Vec::new());

/// Adds a user's implementations to every registry [`Registry::installed`]
/// makes from now on: a program calls it at the start of `main`, then runs
/// pipelines as `nezha run` does, and its pipeline files can name the new
/// kinds (`stages/example-tsv` is a complete example). Implementations may
/// replace built-in ones of the same name.
pub fn install(register: fn(&mut Registry)) {
    PLUGINS.lock().unwrap().push(register);
}
