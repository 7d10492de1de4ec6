//! The parameters of the stages that ship with nezha, and how each is
//! built from its section of `pipeline.toml`.

use std::sync::Arc;

use serde::Deserialize;
use toml::Spanned;

use super::{Context, Factory, IngestPlan, Reading, Registry, WholeWordPlan};
use crate::batch::Batching;
use crate::error::Result;
use crate::ingest::{resolve_inputs, JsonLines, Text};
use crate::instances::{
    DynamicInstances, DynamicParams, ReferenceInstances, ReferenceParams, StreamingInstances,
    StreamingParams,
};
use crate::masking::{MaskingParams, MaskingStage, WholeWords};
use crate::params::{check_at_least, check_probability, Params};
use crate::segment::{JiebaWords, Segmenter};
use crate::sentences::{Lines, Punct};
use crate::vocab::Vocab;
use crate::wordpiece::WordPiece;

pub fn register(r: &mut Registry) {
    r.ingest.add("text", text);
    r.ingest.add("jsonl", jsonl);
    r.sentences.add("lines", |p, _| {
        p.parse::<NoParams>()?;
        Ok(Arc::new(|_| Ok(Box::new(Lines))))
    });
    r.sentences.add("punct", |p, _| {
        p.parse::<NoParams>()?;
        Ok(Arc::new(|_| Ok(Box::new(Punct))))
    });
    r.wordpiece.add("wordpiece", wordpiece);
    r.masking.add("static", static_masking);
    r.masking.add("dynamic", dynamic_masking);
    r.instances.add("streaming", streaming_instances);
    r.instances.add("reference", reference_instances);
    r.batching.add("fixed", batching);
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct NoParams {}

/// `input` as the reference's `--input_file`: a comma-separated string, or
/// a list of such strings.
#[derive(Deserialize)]
#[serde(untagged)]
enum Inputs {
    One(String),
    Many(Vec<String>),
}

fn resolve(
    p: &Params,
    ctx: &Context,
    input: &Spanned<Inputs>,
) -> Result<Arc<Vec<std::path::PathBuf>>> {
    let entries: Vec<String> = match input.get_ref() {
        Inputs::One(s) => s.split(',').map(str::to_string).collect(),
        Inputs::Many(v) => v
            .iter()
            .flat_map(|s| s.split(',').map(str::to_string))
            .collect(),
    };
    let spec: Vec<String> = entries
        .iter()
        .map(|e| e.trim())
        .filter(|e| !e.is_empty())
        .map(|e| ctx.resolve(e).to_string_lossy().into_owned())
        .collect();
    resolve_inputs(&spec.join(","))
        .map(Arc::new)
        .map_err(|e| p.invalid(input, "input", e))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct TextParams {
    input: Spanned<Inputs>,
    document_per_file: Option<bool>,
}

fn text(p: &Params, ctx: &mut Context) -> Result<IngestPlan> {
    let t: TextParams = p.parse()?;
    // The reference lets a document run on into the next file.
    let document_per_file = t.document_per_file.unwrap_or(!ctx.reference);
    Ok(IngestPlan {
        files: resolve(p, ctx, &t.input)?,
        format: Arc::new(Text { document_per_file }),
    })
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct JsonlParams {
    input: Spanned<Inputs>,
    #[serde(default = "default_text_field")]
    text_field: String,
}

fn default_text_field() -> String {
    "text".into()
}

fn jsonl(p: &Params, ctx: &mut Context) -> Result<IngestPlan> {
    let j: JsonlParams = p.parse()?;
    Ok(IngestPlan {
        files: resolve(p, ctx, &j.input)?,
        format: Arc::new(JsonLines {
            text_field: j.text_field,
        }),
    })
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct WordPieceParams {
    vocab: Spanned<String>,
    #[serde(default = "yes")]
    do_lower_case: bool,
}

fn yes() -> bool {
    true
}

fn wordpiece(
    p: &Params,
    ctx: &mut Context,
) -> Result<Factory<crate::Document, crate::TokenizedDocument>> {
    let w: WordPieceParams = p.parse()?;
    let vocab = Arc::new(
        Vocab::load(&ctx.resolve(w.vocab.get_ref()))
            .map_err(|e| p.invalid(&w.vocab, "vocab", e))?,
    );
    // Built once here so a bad vocab fails before the run; workers clone it.
    let tokenizer = WordPiece::new(vocab.clone(), w.do_lower_case)?;
    ctx.vocab = Some(vocab);
    Ok(Arc::new(move |_| Ok(Box::new(tokenizer.clone()))))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct BatchingParams {
    batch_size: Spanned<i64>,
    #[serde(default)]
    keep_remainder: bool,
}

fn batching(p: &Params, ctx: &mut Context) -> Result<Factory<crate::Instance, crate::Batch>> {
    let b: BatchingParams = p.parse()?;
    let batch_size = check_at_least(p, &b.batch_size, "batch_size", 1)?;
    ctx.batch_size = Some(batch_size);
    let seq_len = ctx
        .max_seq_length
        .expect("[instances] is built before [batching]");
    let max_predictions = ctx
        .masking
        .as_ref()
        .expect("[masking] is built before [batching]")
        .max_predictions_per_seq;
    let keep = b.keep_remainder;
    Ok(Arc::new(move |_| {
        Ok(Box::new(Batching::new(
            batch_size,
            seq_len,
            max_predictions,
            keep,
        )))
    }))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct MaskingToml {
    #[serde(default = "default_masked_lm_prob")]
    masked_lm_prob: Spanned<f64>,
    #[serde(default = "default_max_predictions")]
    max_predictions_per_seq: Spanned<i64>,
    /// "wordpiece": `##` pieces join their word; "jieba": Chinese words
    /// from Jieba too. Absent: every token on its own.
    whole_word: Option<Spanned<String>>,
    /// A Jieba user dictionary (with `whole_word = "jieba"`).
    user_dict: Option<Spanned<String>>,
    /// Jieba's HMM for words its dictionary lacks (with `whole_word = "jieba"`).
    hmm: Option<Spanned<bool>>,
    /// Passes over the corpus, each masked anew (dynamic masking only).
    epochs: Option<Spanned<i64>>,
}

fn default_masked_lm_prob() -> Spanned<f64> {
    Spanned::new(0..0, 0.15)
}

fn default_max_predictions() -> Spanned<i64> {
    Spanned::new(0..0, 20)
}

/// What both masking kinds share: the budget and whole-word masking. Sets
/// `ctx.masking` and `ctx.whole_words`.
fn masking_basics(p: &Params, m: &MaskingToml, ctx: &mut Context) -> Result<MaskingParams> {
    let params = MaskingParams {
        masked_lm_prob: check_probability(p, &m.masked_lm_prob, "masked_lm_prob")?,
        max_predictions_per_seq: check_at_least(
            p,
            &m.max_predictions_per_seq,
            "max_predictions_per_seq",
            1,
        )?,
    };
    ctx.masking = Some(params);
    let vocab = ctx
        .vocab
        .clone()
        .expect("[wordpiece] is built before [masking]");
    let jieba = match m.whole_word.as_ref().map(|w| (w, w.get_ref().as_str())) {
        None => None,
        Some((_, "wordpiece")) => Some(false),
        Some((_, "jieba")) => Some(true),
        Some((w, other)) => {
            return Err(p.invalid(
                w,
                "whole_word",
                format!("{other:?} is not \"wordpiece\" (## pieces) or \"jieba\" (Chinese words)"),
            ))
        }
    };
    if jieba != Some(true) {
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
    ctx.whole_words = match jieba {
        None => None,
        Some(false) => Some(WholeWordPlan {
            words: WholeWords::new(&vocab),
            jieba: None,
        }),
        Some(true) => {
            let user_dict = m.user_dict.as_ref().map(|u| (u, ctx.resolve(u.get_ref())));
            let hmm = m.hmm.as_ref().is_none_or(|h| *h.get_ref());
            let segmenter = Segmenter::new(user_dict.as_ref().map(|(_, path)| path.as_path()), hmm)
                .map_err(|e| match &user_dict {
                    Some((u, _)) => p.invalid(u, "user_dict", e),
                    None => e,
                })?;
            // Checks the vocab fits the segmenter's tags before any work.
            JiebaWords::new(segmenter.clone(), &vocab)?;
            Some(WholeWordPlan {
                words: WholeWords::new(&vocab),
                jieba: Some(segmenter),
            })
        }
    };
    Ok(params)
}

/// Static masking: one mask per instance. In reference mode the instance
/// generator applies it itself (see `ReferenceInstances`), so no separate
/// operator is built.
fn static_masking(
    p: &Params,
    ctx: &mut Context,
) -> Result<Option<Factory<crate::Instance, crate::Instance>>> {
    let m: MaskingToml = p.parse()?;
    if let Some(e) = &m.epochs {
        return Err(p.invalid(e, "epochs", "only kind = \"dynamic\" masks each epoch anew"));
    }
    let params = masking_basics(p, &m, ctx)?;
    let vocab = ctx
        .vocab
        .clone()
        .expect("[wordpiece] is built before [masking]");
    let words = ctx.whole_words.as_ref().map(|w| w.words.clone());
    let seed = ctx.seed;
    // Checked once here, so building per worker cannot fail on parameters.
    MaskingStage::new(params, vocab.clone(), seed, 0)?;
    Ok(Some(Arc::new(move |w| {
        Ok(Box::new(
            MaskingStage::new(params, vocab.clone(), seed, w.index)?
                .with_whole_words(words.clone()),
        ))
    })))
}

/// Dynamic masking: each instance is masked as it leaves the instance
/// generator, from (seed, epoch, instance number), and the stream does not
/// depend on the number of workers (see `DynamicInstances`). No masking
/// operator is built: the streaming generator does it.
fn dynamic_masking(
    p: &Params,
    ctx: &mut Context,
) -> Result<Option<Factory<crate::Instance, crate::Instance>>> {
    let m: MaskingToml = p.parse()?;
    masking_basics(p, &m, ctx)?;
    let epochs = match &m.epochs {
        Some(e) => check_at_least(p, e, "epochs", 1)?,
        None => 1,
    };
    ctx.dynamic_masking = true;
    ctx.reading = Reading {
        gather: true,
        passes: epochs,
    };
    Ok(None)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct InstancesToml {
    #[serde(default = "default_max_seq_length")]
    max_seq_length: Spanned<i64>,
    #[serde(default = "default_short_seq_prob")]
    short_seq_prob: Spanned<f64>,
    #[serde(default = "default_dupe_factor")]
    dupe_factor: Spanned<i64>,
    reservoir_documents: Option<Spanned<i64>>,
    shuffle_buffer: Option<Spanned<i64>>,
}

fn default_max_seq_length() -> Spanned<i64> {
    Spanned::new(0..0, 128)
}

fn default_short_seq_prob() -> Spanned<f64> {
    Spanned::new(0..0, 0.1)
}

fn default_dupe_factor() -> Spanned<i64> {
    Spanned::new(0..0, 10)
}

/// Checks what every instance generator shares. `[CLS] a [SEP] b [SEP]`
/// needs at least one token in each segment.
fn instance_basics(
    p: &Params,
    t: &InstancesToml,
    ctx: &mut Context,
) -> Result<(usize, f64, usize)> {
    let max_seq_length = check_at_least(p, &t.max_seq_length, "max_seq_length", 5)?;
    let short_seq_prob = check_probability(p, &t.short_seq_prob, "short_seq_prob")?;
    let dupe_factor = check_at_least(p, &t.dupe_factor, "dupe_factor", 1)?;
    ctx.max_seq_length = Some(max_seq_length);
    Ok((max_seq_length, short_seq_prob, dupe_factor))
}

fn streaming_instances(
    p: &Params,
    ctx: &mut Context,
) -> Result<Factory<crate::TokenizedDocument, crate::Instance>> {
    let t: InstancesToml = p.parse()?;
    let (max_seq_length, short_seq_prob, dupe_factor) = instance_basics(p, &t, ctx)?;
    let mut params = StreamingParams::new(max_seq_length, short_seq_prob, dupe_factor, ctx.seed, 0);
    if let Some(r) = &t.reservoir_documents {
        params.reservoir_docs = check_at_least(p, r, "reservoir_documents", 2)?;
    }
    if let Some(s) = &t.shuffle_buffer {
        params.shuffle_buffer = check_at_least(p, s, "shuffle_buffer", 1)?;
    }
    let vocab = ctx
        .vocab
        .clone()
        .expect("[wordpiece] is built before [instances]");
    if ctx.dynamic_masking {
        return dynamic_instances(ctx, params, vocab);
    }
    StreamingInstances::new(params, &vocab)?;
    Ok(Arc::new(move |w| {
        let params = StreamingParams {
            worker: w.index,
            ..params
        };
        Ok(Box::new(StreamingInstances::new(params, &vocab)?))
    }))
}

/// The streaming generator's parameters, with masking moved into it.
fn dynamic_instances(
    ctx: &Context,
    s: StreamingParams,
    vocab: Arc<Vocab>,
) -> Result<Factory<crate::TokenizedDocument, crate::Instance>> {
    let params = DynamicParams {
        max_seq_length: s.max_seq_length,
        short_seq_prob: s.short_seq_prob,
        dupe_factor: s.dupe_factor,
        reservoir_docs: s.reservoir_docs,
        shuffle_buffer: s.shuffle_buffer,
        seed: s.seed,
        masking: ctx.masking.expect("[masking] is built before [instances]"),
        worker: 0,
        peers: 1,
        per_turn: 1,
    };
    let words = ctx.whole_words.as_ref().map(|w| w.words.clone());
    DynamicInstances::new(params, vocab.clone(), words.clone())?;
    Ok(Arc::new(move |w| {
        let params = DynamicParams {
            worker: w.index,
            peers: w.peers,
            per_turn: w.per_turn,
            ..params
        };
        Ok(Box::new(DynamicInstances::new(
            params,
            vocab.clone(),
            words.clone(),
        )?))
    }))
}

fn reference_instances(
    p: &Params,
    ctx: &mut Context,
) -> Result<Factory<crate::TokenizedDocument, crate::Instance>> {
    let t: InstancesToml = p.parse()?;
    if let Some(r) = t.reservoir_documents.as_ref().or(t.shuffle_buffer.as_ref()) {
        return Err(p.invalid(
            r,
            "reservoir_documents/shuffle_buffer",
            "only the streaming generator has these; the reference holds every document",
        ));
    }
    if ctx.dynamic_masking {
        return Err(p.error(
            p.span.clone(),
            "[instances] kind = \"reference\" masks each instance once, as the reference does; \
             [masking] kind = \"dynamic\" needs kind = \"streaming\""
                .into(),
        ));
    }
    let (max_seq_length, short_seq_prob, dupe_factor) = instance_basics(p, &t, ctx)?;
    let masking = ctx.masking.expect("[masking] is built before [instances]");
    let vocab = ctx
        .vocab
        .clone()
        .expect("[wordpiece] is built before [instances]");
    let params = ReferenceParams {
        max_seq_length,
        short_seq_prob,
        dupe_factor,
        masked_lm_prob: masking.masked_lm_prob,
        max_predictions_per_seq: masking.max_predictions_per_seq,
        random_seed: ctx.seed as i64,
        vocab: vocab.clone(),
    };
    let words = ctx.whole_words.as_ref().map(|w| w.words.clone());
    ReferenceInstances::new(params.clone())?;
    Ok(Arc::new(move |_| {
        Ok(Box::new(
            ReferenceInstances::new(params.clone())?.with_whole_words(words.clone()),
        ))
    }))
}
