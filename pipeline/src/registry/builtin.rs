//! The input formats, sentence splitters and tokenizer that ship with
//! nezha, and how each is built from its section of `pipeline.toml`.

use std::sync::Arc;

use nezha_stages::error::Result;
use nezha_stages::ingest::{
    resolve_inputs, Bounds, IngestPlan, InputList, JsonLines, Oversize, Text,
};
use nezha_stages::params::Params;
use nezha_stages::sentences::{Lines, Punct};
use nezha_stages::wordpiece::WordPiece;
use serde::Deserialize;
use toml::Spanned;

use super::{Built, Registry, Settings};
use crate::resolve::{Generation, Resolved};

pub fn register(r: &mut Registry) {
    r.ingest.add("text", text);
    r.ingest.add("jsonl", jsonl);
    r.sentences.add("lines", |_, _: NoParams, _| {
        Ok(Built::new(
            Arc::new(|_| Ok(Box::new(Lines))),
            Settings::new(),
        ))
    });
    r.sentences.add("punct", |_, _: NoParams, _| {
        Ok(Built::new(
            Arc::new(|_| Ok(Box::new(Punct))),
            Settings::new(),
        ))
    });
    r.wordpiece.add("wordpiece", wordpiece);
}

/// A kind without keys of its own.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NoParams {}

/// The files `input` names, relative to the pipeline file.
pub fn input_files(
    p: &Params,
    resolved: &Resolved,
    input: &Spanned<InputList>,
) -> Result<Arc<Vec<std::path::PathBuf>>> {
    resolve_inputs(input.get_ref().entries(), &resolved.base_dir)
        .map(Arc::new)
        .map_err(|e| p.invalid(input, "input", e))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct TextParams {
    input: Spanned<InputList>,
    document_per_file: Option<bool>,
    max_line_bytes: Option<Spanned<i64>>,
    max_document_bytes: Option<Spanned<i64>>,
    oversize: Option<Spanned<String>>,
}

/// The keys that bound what a reader holds, which both text formats have.
struct BoundsParams<'a> {
    max_line_bytes: &'a Option<Spanned<i64>>,
    max_document_bytes: &'a Option<Spanned<i64>>,
    oversize: &'a Option<Spanned<String>>,
}

/// The streaming generators' bounds: a reservoir of 1,000 documents of at
/// most 64 KiB per worker keeps a run under 1 GB whatever the corpus
/// (`benches/memory.sh`: 693 MB for one 1 GB document). The reference holds
/// every document whole, so its mode has none unless asked.
const MAX_LINE_BYTES: i64 = 16 << 10;
const MAX_DOCUMENT_BYTES: i64 = 64 << 10;
/// A JSON line is parsed whole: longer ones are refused, not cut.
const MAX_JSON_LINE_BYTES: i64 = 64 << 20;

/// `b`'s bounds, `max_line` the default line bound; none by default in
/// reference mode. The settings get the resolved values.
fn bounds(
    p: &Params,
    b: BoundsParams<'_>,
    resolved: &Resolved,
    max_line: i64,
    settings: Settings,
) -> Result<(Bounds, Settings)> {
    let reference = resolved.generation == Generation::Reference;
    let bound = |v: &Option<Spanned<i64>>, key: &str, default: i64| -> Result<Option<usize>> {
        match v {
            Some(b) if *b.get_ref() < 64 => Err(p.invalid(b, key, "must be at least 64 bytes")),
            Some(b) => Ok(Some(*b.get_ref() as usize)),
            None => Ok((!reference).then_some(default as usize)),
        }
    };
    let (oversize, name) = match b.oversize.as_ref().map(|o| (o, o.get_ref().as_str())) {
        None | Some((_, "cut")) => (Oversize::Cut, "cut"),
        Some((_, "refuse")) => (Oversize::Refuse, "refuse"),
        Some((o, other)) => {
            return Err(p.invalid(o, "oversize", format!("\"{other}\" is not cut or refuse")))
        }
    };
    let bounds = Bounds {
        max_line_bytes: bound(b.max_line_bytes, "max_line_bytes", max_line)?,
        max_document_bytes: bound(
            b.max_document_bytes,
            "max_document_bytes",
            MAX_DOCUMENT_BYTES,
        )?,
        oversize,
    };
    let settings = settings
        .set("max_line_bytes", bounds.max_line_bytes)
        .set("max_document_bytes", bounds.max_document_bytes)
        .set("oversize", name);
    Ok((bounds, settings))
}

fn text(p: &Params, t: TextParams, resolved: &Resolved) -> Result<Built<IngestPlan>> {
    // The reference lets a document run on into the next file.
    let document_per_file = t
        .document_per_file
        .unwrap_or(resolved.generation != Generation::Reference);
    let files = input_files(p, resolved, &t.input)?;
    let settings = Settings::new()
        .set("input", files.as_ref())
        .set("document_per_file", document_per_file);
    let b = BoundsParams {
        max_line_bytes: &t.max_line_bytes,
        max_document_bytes: &t.max_document_bytes,
        oversize: &t.oversize,
    };
    let (bounds, settings) = bounds(p, b, resolved, MAX_LINE_BYTES, settings)?;
    Ok(Built::new(
        IngestPlan {
            files,
            format: Arc::new(Text {
                document_per_file,
                bounds,
            }),
        },
        settings,
    ))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct JsonlParams {
    input: Spanned<InputList>,
    text_field: Option<String>,
    max_line_bytes: Option<Spanned<i64>>,
    max_document_bytes: Option<Spanned<i64>>,
    oversize: Option<Spanned<String>>,
}

fn jsonl(p: &Params, j: JsonlParams, resolved: &Resolved) -> Result<Built<IngestPlan>> {
    let text_field = j.text_field.unwrap_or_else(|| "text".into());
    let files = input_files(p, resolved, &j.input)?;
    let settings = Settings::new()
        .set("input", files.as_ref())
        .set("text_field", &text_field);
    let b = BoundsParams {
        max_line_bytes: &j.max_line_bytes,
        max_document_bytes: &j.max_document_bytes,
        oversize: &j.oversize,
    };
    let (bounds, settings) = bounds(p, b, resolved, MAX_JSON_LINE_BYTES, settings)?;
    Ok(Built::new(
        IngestPlan {
            files,
            format: Arc::new(JsonLines { text_field, bounds }),
        },
        settings,
    ))
}

/// The vocab and `do_lower_case` are the pipeline's ([`Resolved`]); the
/// tokenizer is built once here so a bad vocab fails before the run, and
/// workers clone it.
fn wordpiece(
    _: &Params,
    _: NoParams,
    resolved: &Resolved,
) -> Result<Built<super::Factory<nezha_stages::Document, nezha_stages::TokenizedDocument>>> {
    let tokenizer = WordPiece::new(resolved.vocab().clone(), resolved.wordpiece.do_lower_case)?;
    Ok(Built::new(
        Arc::new(move |_| Ok(Box::new(tokenizer.clone()))),
        Settings::new(),
    ))
}
