//! SQuAD-shaped JSON (CMRC 2018 uses the same layout): `{"data": [{
//! "paragraphs": [{"context", "qas": [{"id", "question", "answers":
//! [{"text", "answer_start"}]}]}]}]}`.
//!
//! As the reference's CMRC reader, a training answer is located by the first
//! occurrence of the first answer's text in the context (`answer_start` is
//! not trusted); a question whose answer text is not in its context is
//! skipped, counted and reported with its record index, as Google's
//! `run_squad.py` skips answers it cannot find. A file to predict on may
//! leave `answers` out (or empty): its questions have no answer to train
//! on or score against.

use std::path::Path;

use anyhow::{bail, Context, Result};
use serde_json::Value;

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MrcExample {
    pub id: String,
    pub question: String,
    pub context: String,
    /// Every gold answer text (the first is the training target).
    pub answers: Vec<String>,
    /// Character span `[start, end)` of the first answer's first occurrence,
    /// when there is an answer.
    pub answer_chars: Option<(usize, usize)>,
    /// `file: data[i].paragraphs[j].qas[k]`, for messages.
    pub origin: String,
}

/// The examples of a file, and the questions left out.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MrcFile {
    pub examples: Vec<MrcExample>,
    /// `origin: why`, one per question left out.
    pub skipped: Vec<String>,
}

fn field<'a>(v: &'a Value, key: &str, at: &str) -> Result<&'a Value> {
    v.get(key)
        .with_context(|| format!("{at}: no {key:?} (not SQuAD-shaped)"))
}

fn list<'a>(v: &'a Value, key: &str, at: &str) -> Result<&'a Vec<Value>> {
    field(v, key, at)?
        .as_array()
        .with_context(|| format!("{at}.{key}: not a list (not SQuAD-shaped)"))
}

fn text<'a>(v: &'a Value, key: &str, at: &str) -> Result<&'a str> {
    field(v, key, at)?
        .as_str()
        .with_context(|| format!("{at}.{key}: not a string (not SQuAD-shaped)"))
}

/// Reads a SQuAD/CMRC file. Shape errors name the record; questions whose
/// answer is not in the context are skipped and listed.
pub fn read_squad(path: &Path) -> Result<MrcFile> {
    let raw =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    let name = path.display().to_string();
    let doc: Value = serde_json::from_str(&raw).with_context(|| format!("{name}: not JSON"))?;
    let mut examples = Vec::new();
    let mut skipped = Vec::new();
    for (i, article) in list(&doc, "data", &name)?.iter().enumerate() {
        let at = format!("{name}: data[{i}]");
        for (j, para) in list(article, "paragraphs", &at)?.iter().enumerate() {
            let at = format!("{at}.paragraphs[{j}]");
            let context = text(para, "context", &at)?;
            for (k, qa) in list(para, "qas", &at)?.iter().enumerate() {
                let at = format!("{at}.qas[{k}]");
                let id = match field(qa, "id", &at)? {
                    Value::String(s) => s.clone(),
                    Value::Number(n) => n.to_string(),
                    _ => bail!("{at}.id: not a string (not SQuAD-shaped)"),
                };
                let question = text(qa, "question", &at)?.to_string();
                let none = Vec::new();
                let given = match qa.get("answers") {
                    None => &none,
                    Some(_) => list(qa, "answers", &at)?,
                };
                let answers = given
                    .iter()
                    .enumerate()
                    .map(|(a, v)| {
                        text(v, "text", &format!("{at}.answers[{a}]")).map(str::to_string)
                    })
                    .collect::<Result<Vec<_>>>()?;
                let answer_chars = match answers.first() {
                    None => None,
                    Some(a) => match context.find(a.as_str()) {
                        Some(b) if !a.is_empty() => {
                            let start = context[..b].chars().count();
                            Some((start, start + a.chars().count()))
                        }
                        _ => {
                            skipped.push(format!("{at}: answer {a:?} is not in its context"));
                            continue;
                        }
                    },
                };
                examples.push(MrcExample {
                    id,
                    question,
                    context: context.to_string(),
                    answers,
                    answer_chars,
                    origin: at,
                });
            }
        }
    }
    if examples.is_empty() && skipped.is_empty() {
        bail!("{name} has no questions");
    }
    Ok(MrcFile { examples, skipped })
}
