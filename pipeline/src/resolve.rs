//! What spans sections, decided once: the generation mode, the sequence
//! length, the masking budget, the vocab, the batch size. Every builder of
//! a stage or sink gets a [`Resolved`] read-only; none writes anything
//! another reads.
//!
//! The sections read here (`[instances]`, `[masking]`, `[batching]`, and
//! `[wordpiece]`'s `vocab` and `do_lower_case`) define the instances the
//! trainer and the reference's TFRecords expect; their kinds are modes of
//! the generator, not plugins.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use nezha_stages::error::Result;
use nezha_stages::instances::{DEFAULT_RESERVOIR_DOCS, DEFAULT_SHUFFLE_BUFFER};
use nezha_stages::masking::{MaskingParams, WholeWords};
use nezha_stages::params::{check_at_least, check_probability, Params};
use nezha_stages::segment::{JiebaWords, Segmenter};
use nezha_stages::vocab::Vocab;
use serde::{Deserialize, Serialize};
use toml::Spanned;

use crate::spec::Document;

/// How instances are cut and masked: the one decision that spans
/// `[instances]` and `[masking]`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase", tag = "mode")]
pub enum Generation {
    /// `[instances] kind = "reference"`: the reference script's order, every
    /// document held in one worker, masked as each instance is made (the
    /// reference draws both from one random stream).
    Reference,
    /// `kind = "streaming"` with static masking: a masking operator behind
    /// the generator masks each instance once. Each of `epochs` passes cuts
    /// the corpus again, with the generator's and the masker's random
    /// streams carried on from the pass before, so every pass differs.
    Streaming { epochs: usize },
    /// `kind = "streaming"` with `[masking] kind = "dynamic"`: the generator
    /// masks each instance as it leaves, anew each of `epochs` passes, and
    /// the stream is the same for any number of workers.
    Dynamic { epochs: usize },
}

impl Generation {
    /// How each worker's reader reads the corpus.
    pub fn reading(self) -> Reading {
        match self {
            Generation::Dynamic { epochs } => Reading {
                gather: true,
                passes: epochs,
            },
            Generation::Streaming { epochs } => Reading {
                gather: false,
                passes: epochs,
            },
            Generation::Reference => Reading {
                gather: false,
                passes: 1,
            },
        }
    }

    /// Passes over the corpus.
    pub fn epochs(self) -> usize {
        self.reading().passes
    }

    /// The same instances, the corpus read once.
    pub fn one_epoch(self) -> Generation {
        match self {
            Generation::Reference => Generation::Reference,
            Generation::Streaming { .. } => Generation::Streaming { epochs: 1 },
            Generation::Dynamic { .. } => Generation::Dynamic { epochs: 1 },
        }
    }
}

/// How each worker's reader reads the corpus.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Reading {
    /// Every worker reads, splits and tokenizes its share of the documents,
    /// and then receives every worker's tokenized documents in corpus order
    /// (`nezha_stages::gather`), for a generator that splits the work
    /// itself, as dynamic masking does.
    pub gather: bool,
    /// How many times the corpus is read: `[masking] epochs`.
    pub passes: usize,
}

/// `[instances]`, every default filled in.
#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
pub struct InstanceSettings {
    pub max_seq_length: usize,
    pub short_seq_prob: f64,
    pub dupe_factor: usize,
    /// Streaming only: recent documents random next segments come from.
    pub reservoir_documents: usize,
    /// Streaming only: instances held to shuffle the output.
    pub shuffle_buffer: usize,
}

impl Default for InstanceSettings {
    /// The reference's `create_pretraining_data.py` flags.
    fn default() -> InstanceSettings {
        InstanceSettings {
            max_seq_length: 128,
            short_seq_prob: 0.1,
            dupe_factor: 10,
            reservoir_documents: DEFAULT_RESERVOIR_DOCS,
            shuffle_buffer: DEFAULT_SHUFFLE_BUFFER,
        }
    }
}

/// Which tokens are masked together.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum WholeWord {
    /// `##` pieces join their word.
    Wordpiece,
    /// Chinese words from Jieba too.
    Jieba,
}

/// `[masking]`, every default filled in.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct MaskingSettings {
    pub masked_lm_prob: f64,
    pub max_predictions_per_seq: usize,
    pub whole_word: Option<WholeWord>,
    /// Jieba's user dictionary (`whole_word = "jieba"`).
    pub user_dict: Option<PathBuf>,
    /// Jieba's HMM for words its dictionary lacks (`whole_word = "jieba"`).
    pub hmm: bool,
}

impl Default for MaskingSettings {
    /// The reference's flags; every token masked on its own.
    fn default() -> MaskingSettings {
        MaskingSettings {
            masked_lm_prob: 0.15,
            max_predictions_per_seq: 20,
            whole_word: None,
            user_dict: None,
            hmm: true,
        }
    }
}

impl MaskingSettings {
    pub fn params(&self) -> MaskingParams {
        MaskingParams {
            masked_lm_prob: self.masked_lm_prob,
            max_predictions_per_seq: self.max_predictions_per_seq,
        }
    }
}

/// `[batching]`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct BatchSettings {
    pub batch_size: usize,
    /// Emit the last, smaller batch of each worker's stream.
    pub keep_remainder: bool,
}

/// The vocab the pipeline tokenizes with (`[wordpiece]`).
#[derive(Clone, Debug, Serialize)]
pub struct VocabSettings {
    pub vocab: PathBuf,
    pub do_lower_case: bool,
    #[serde(skip)]
    pub loaded: Arc<Vocab>,
}

/// Whole-word masking, ready to run: which tokens continue a word, and
/// Jieba when Chinese words are wanted (it tags each document in front of
/// the instance generator).
#[derive(Clone, Debug)]
pub struct WholeWordPlan {
    pub words: WholeWords,
    pub jieba: Option<Segmenter>,
}

/// Everything that spans sections, decided before any stage is built.
#[derive(Clone, Debug, Serialize)]
pub struct Resolved {
    #[serde(skip)]
    pub file: PathBuf,
    /// Directory that relative paths in the file are resolved against.
    #[serde(skip)]
    pub base_dir: PathBuf,
    pub seed: u64,
    pub workers: usize,
    pub generation: Generation,
    pub instances: InstanceSettings,
    pub masking: MaskingSettings,
    pub wordpiece: VocabSettings,
    /// `None` when the file has no `[batching]` (a sink that takes
    /// batches refuses that).
    pub batching: Option<BatchSettings>,
    #[serde(skip)]
    pub whole_words: Option<WholeWordPlan>,
}

impl Resolved {
    /// A path written in the file, relative to the file's directory.
    pub fn resolve(&self, path: &str) -> PathBuf {
        self.base_dir.join(path)
    }

    pub fn vocab(&self) -> &Arc<Vocab> {
        &self.wordpiece.loaded
    }
}

/// What `nezha run` was asked besides the file.
#[derive(Clone, Copy, Debug, Default)]
pub struct RunOptions {
    /// Overrides `workers`.
    pub workers: Option<usize>,
    /// Continue training from the newest checkpoint.
    pub resume: bool,
    /// Continue from this step's checkpoint instead (implies `resume`).
    pub resume_from: Option<u64>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct TopLevelToml {
    seed: Option<Spanned<i64>>,
    workers: Option<Spanned<i64>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct InstancesToml {
    kind: Option<Spanned<String>>,
    max_seq_length: Option<Spanned<i64>>,
    short_seq_prob: Option<Spanned<f64>>,
    dupe_factor: Option<Spanned<i64>>,
    reservoir_documents: Option<Spanned<i64>>,
    shuffle_buffer: Option<Spanned<i64>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct MaskingToml {
    kind: Option<Spanned<String>>,
    masked_lm_prob: Option<Spanned<f64>>,
    max_predictions_per_seq: Option<Spanned<i64>>,
    whole_word: Option<Spanned<String>>,
    user_dict: Option<Spanned<String>>,
    hmm: Option<Spanned<bool>>,
    /// Passes over the corpus, each masked anew (dynamic masking only).
    epochs: Option<Spanned<i64>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct BatchingToml {
    kind: Option<Spanned<String>>,
    batch_size: Spanned<i64>,
    keep_remainder: Option<bool>,
}

/// The keys of `[wordpiece]` that are the pipeline's, not its kind's
/// ([`vocab`] takes them out before the kind reads the rest).
const VOCAB_KEYS: &[&str] = &["vocab", "do_lower_case"];

/// The keys of the sections read here, for the pipeline reference.
pub(crate) fn core_keys() -> Vec<(&'static str, &'static [&'static str])> {
    use serde_aux::serde_introspection::serde_introspect as keys;
    vec![
        ("top level", keys::<TopLevelToml>()),
        ("instances", keys::<InstancesToml>()),
        ("masking", keys::<MaskingToml>()),
        ("batching", keys::<BatchingToml>()),
        ("wordpiece", VOCAB_KEYS),
    ]
}

/// Reads the sections that span the pipeline, in the order they depend on
/// each other: the vocab, then instances and masking (which decide the
/// mode together), then batching.
pub(crate) fn resolve(doc: &Document, options: RunOptions) -> Result<Resolved> {
    let file = doc.location().file.to_path_buf();
    let base_dir = file.parent().map(Path::to_path_buf).unwrap_or_default();
    let top = doc.top_level()?;
    let t: TopLevelToml = top.parse()?;
    let seed = match &t.seed {
        Some(s) if *s.get_ref() < 0 => return Err(top.invalid(s, "seed", "must not be negative")),
        Some(s) => *s.get_ref() as u64,
        None => 12345,
    };
    let workers = match (options.workers, &t.workers) {
        (Some(w), _) => w,
        (None, Some(w)) => check_at_least(&top, w, "workers", 1)?,
        (None, None) => 1,
    };

    let wordpiece = vocab(&mut doc.required("wordpiece")?, &base_dir)?;
    let instances_params = doc.section_or_empty("instances")?;
    let masking_params = doc.section_or_empty("masking")?;
    let instances_toml: InstancesToml = instances_params.parse()?;
    let masking_toml: MaskingToml = masking_params.parse()?;
    let generation = generation(
        &instances_params,
        &instances_toml,
        &masking_params,
        &masking_toml,
    )?;
    if generation == Generation::Reference && workers > 1 {
        let span = instances_toml.kind.as_ref().map_or(0..0, |k| k.span());
        return Err(doc.error(
            span,
            format!(
                "[instances] kind = \"reference\" holds every document in one worker, as the \
                 reference does; it needs workers = 1 (got {workers})"
            ),
        ));
    }
    let instances = instance_settings(&instances_params, &instances_toml, generation)?;
    let masking = masking_settings(&masking_params, &masking_toml, &base_dir)?;
    let whole_words = whole_word_plan(&masking_params, &masking_toml, &masking, &wordpiece)?;
    let batching = doc
        .section("batching")?
        .map(|p| batch_settings(&p))
        .transpose()?;
    Ok(Resolved {
        file,
        base_dir,
        seed,
        workers,
        generation,
        instances,
        masking,
        wordpiece,
        batching,
        whole_words,
    })
}

/// Takes `vocab` and `do_lower_case` out of `[wordpiece]` (its kind reads
/// the rest) and loads the vocab.
fn vocab(p: &mut Params, base_dir: &Path) -> Result<VocabSettings> {
    let Some(path) = p.take::<String>("vocab")? else {
        // Most likely misspelt: point at the first other key.
        return Err(match p.key_spans().into_iter().next() {
            Some((key, span)) => p.error(
                span,
                format!("[wordpiece] missing key `vocab` (`{key}` is not a key of [wordpiece])"),
            ),
            None => p.error(p.span.clone(), "[wordpiece] missing key `vocab`".into()),
        });
    };
    let do_lower_case = p
        .take::<bool>("do_lower_case")?
        .is_none_or(|d| *d.get_ref());
    let resolved = base_dir.join(path.get_ref());
    let loaded = Vocab::load(&resolved).map_err(|e| p.invalid(&path, "vocab", e))?;
    Ok(VocabSettings {
        vocab: resolved,
        do_lower_case,
        loaded: Arc::new(loaded),
    })
}

fn generation(ip: &Params, i: &InstancesToml, mp: &Params, m: &MaskingToml) -> Result<Generation> {
    let reference = match i.kind.as_ref().map(|k| (k, k.get_ref().as_str())) {
        None | Some((_, "streaming")) => false,
        Some((_, "reference")) => true,
        Some((k, other)) => {
            return Err(ip.invalid(
                k,
                "kind",
                format!("unknown kind \"{other}\"; known: reference, streaming"),
            ))
        }
    };
    let dynamic = match m.kind.as_ref().map(|k| (k, k.get_ref().as_str())) {
        None | Some((_, "static")) => false,
        Some((_, "dynamic")) => true,
        Some((k, other)) => {
            return Err(mp.invalid(
                k,
                "kind",
                format!("unknown kind \"{other}\"; known: dynamic, static"),
            ))
        }
    };
    let epochs = match &m.epochs {
        Some(e) if reference => {
            return Err(mp.invalid(
                e,
                "epochs",
                "[instances] kind = \"reference\" reads the corpus once, as the reference \
                 does; repeat it with `dupe_factor`, or use kind = \"streaming\"",
            ))
        }
        Some(e) => check_at_least(mp, e, "epochs", 1)?,
        None => 1,
    };
    Ok(match (reference, dynamic) {
        (true, true) => {
            return Err(ip.error(
                ip.span.clone(),
                "[instances] kind = \"reference\" masks each instance once, as the reference \
                 does; [masking] kind = \"dynamic\" needs kind = \"streaming\""
                    .into(),
            ))
        }
        (true, false) => Generation::Reference,
        (false, false) => Generation::Streaming { epochs },
        (false, true) => Generation::Dynamic { epochs },
    })
}

/// `[CLS] a [SEP] b [SEP]` needs at least one token in each segment.
fn instance_settings(
    p: &Params,
    t: &InstancesToml,
    generation: Generation,
) -> Result<InstanceSettings> {
    let mut s = InstanceSettings::default();
    if let Some(v) = &t.max_seq_length {
        s.max_seq_length = check_at_least(p, v, "max_seq_length", 5)?;
    }
    if let Some(v) = &t.short_seq_prob {
        s.short_seq_prob = check_probability(p, v, "short_seq_prob")?;
    }
    if let Some(v) = &t.dupe_factor {
        s.dupe_factor = check_at_least(p, v, "dupe_factor", 1)?;
    }
    if generation == Generation::Reference {
        if let Some(r) = t.reservoir_documents.as_ref().or(t.shuffle_buffer.as_ref()) {
            return Err(p.invalid(
                r,
                "reservoir_documents/shuffle_buffer",
                "only the streaming generator has these; the reference holds every document",
            ));
        }
    }
    if let Some(v) = &t.reservoir_documents {
        s.reservoir_documents = check_at_least(p, v, "reservoir_documents", 2)?;
    }
    if let Some(v) = &t.shuffle_buffer {
        s.shuffle_buffer = check_at_least(p, v, "shuffle_buffer", 1)?;
    }
    Ok(s)
}

fn masking_settings(p: &Params, m: &MaskingToml, base_dir: &Path) -> Result<MaskingSettings> {
    let mut s = MaskingSettings::default();
    if let Some(v) = &m.masked_lm_prob {
        s.masked_lm_prob = check_probability(p, v, "masked_lm_prob")?;
    }
    if let Some(v) = &m.max_predictions_per_seq {
        s.max_predictions_per_seq = check_at_least(p, v, "max_predictions_per_seq", 1)?;
    }
    s.whole_word = match m.whole_word.as_ref().map(|w| (w, w.get_ref().as_str())) {
        None => None,
        Some((_, "wordpiece")) => Some(WholeWord::Wordpiece),
        Some((_, "jieba")) => Some(WholeWord::Jieba),
        Some((w, other)) => {
            return Err(p.invalid(
                w,
                "whole_word",
                format!("{other:?} is not \"wordpiece\" (## pieces) or \"jieba\" (Chinese words)"),
            ))
        }
    };
    if s.whole_word != Some(WholeWord::Jieba) {
        if let Some(u) = &m.user_dict {
            return Err(p.invalid(
                u,
                "user_dict",
                "only whole_word = \"jieba\" reads a user dictionary",
            ));
        }
        if let Some(h) = &m.hmm {
            return Err(p.invalid(h, "hmm", "only whole_word = \"jieba\" uses Jieba's HMM"));
        }
    }
    s.user_dict = m.user_dict.as_ref().map(|u| base_dir.join(u.get_ref()));
    if let Some(h) = &m.hmm {
        s.hmm = *h.get_ref();
    }
    s.params().validate()?;
    Ok(s)
}

/// Loads Jieba (when asked for) and checks the vocab fits its tags, before
/// any work.
fn whole_word_plan(
    p: &Params,
    m: &MaskingToml,
    s: &MaskingSettings,
    wordpiece: &VocabSettings,
) -> Result<Option<WholeWordPlan>> {
    let vocab = &wordpiece.loaded;
    Ok(match s.whole_word {
        None => None,
        Some(WholeWord::Wordpiece) => Some(WholeWordPlan {
            words: WholeWords::new(vocab),
            jieba: None,
        }),
        Some(WholeWord::Jieba) => {
            let segmenter =
                Segmenter::new(s.user_dict.as_deref(), s.hmm).map_err(|e| match &m.user_dict {
                    Some(u) => p.invalid(u, "user_dict", e),
                    None => e,
                })?;
            JiebaWords::new(segmenter.clone(), vocab)?;
            Some(WholeWordPlan {
                words: WholeWords::new(vocab),
                jieba: Some(segmenter),
            })
        }
    })
}

fn batch_settings(p: &Params) -> Result<BatchSettings> {
    let b: BatchingToml = p.parse()?;
    if let Some(k) = b.kind.as_ref().filter(|k| k.get_ref() != "fixed") {
        return Err(p.invalid(
            k,
            "kind",
            format!("unknown kind \"{}\"; known: fixed", k.get_ref()),
        ));
    }
    Ok(BatchSettings {
        batch_size: check_at_least(p, &b.batch_size, "batch_size", 1)?,
        keep_remainder: b.keep_remainder.unwrap_or(false),
    })
}
