//! The parameters of the stages that ship with nezha, and how each is
//! built from its section of `pipeline.toml`.

use std::sync::Arc;

use serde::Deserialize;
use toml::Spanned;

use super::{Context, Factory, IngestPlan, Registry};
use crate::batch::Batching;
use crate::error::Result;
use crate::ingest::{resolve_inputs, JsonLines, Text};
use crate::params::{check_at_least, Params};
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

fn resolve(p: &Params, ctx: &Context, input: &Spanned<Inputs>) -> Result<Arc<Vec<std::path::PathBuf>>> {
    let entries: Vec<String> = match input.get_ref() {
        Inputs::One(s) => s.split(',').map(str::to_string).collect(),
        Inputs::Many(v) => v.iter().flat_map(|s| s.split(',').map(str::to_string)).collect(),
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
        format: Arc::new(JsonLines { text_field: j.text_field }),
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

fn wordpiece(p: &Params, ctx: &mut Context) -> Result<Factory<crate::Document, crate::TokenizedDocument>> {
    let w: WordPieceParams = p.parse()?;
    let vocab = Arc::new(Vocab::load(&ctx.resolve(w.vocab.get_ref())).map_err(|e| p.invalid(&w.vocab, "vocab", e))?);
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
    let seq_len = ctx.max_seq_length.expect("[instances] is built before [batching]");
    let max_predictions = ctx.masking.as_ref().expect("[masking] is built before [batching]").max_predictions_per_seq;
    let keep = b.keep_remainder;
    Ok(Arc::new(move |_| Ok(Box::new(Batching::new(batch_size, seq_len, max_predictions, keep)))))
}
