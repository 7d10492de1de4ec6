use std::path::PathBuf;
use std::sync::atomic::AtomicU64;

use super::{Bounds, Ingest, LineReader, Numbering, Oversize};
use crate::data::Document;
use crate::error::{Error, Result};
use crate::sentences::py_strip;

/// JSON Lines: one JSON object per line, one document per object, its text
/// in `text_field`. Newlines inside the text separate sentences or
/// paragraphs; blank ones are dropped.
///
/// A JSON line is parsed whole, so `bounds.max_line_bytes` refuses longer
/// ones (naming file and line) rather than cutting them; a text longer than
/// `bounds.max_document_bytes` becomes several documents, cut at its lines,
/// or is refused, as plain text's are.
#[derive(Clone, Debug, Default)]
pub struct JsonLines {
    pub text_field: String,
    pub bounds: Bounds,
}

impl Ingest for JsonLines {
    fn read(
        &self,
        files: &[PathBuf],
        bytes_read: &AtomicU64,
        emit: &mut dyn FnMut(Document) -> bool,
    ) -> Result<()> {
        let mut docs = Numbering::new(emit);
        for path in files {
            let max_line = self.bounds.max_line_bytes;
            let mut reader = LineReader::open(path, bytes_read)?.max_line(max_line);
            while let Some((line_no, line, cut)) = reader.next_piece()? {
                let at = |msg: String| Error::input(path, line_no, msg);
                if cut {
                    return Err(at(format!(
                        "a JSON line longer than max_line_bytes = {}",
                        max_line.unwrap_or(0)
                    )));
                }
                if py_strip(line).is_empty() {
                    continue;
                }
                let value: serde_json::Value = serde_json::from_str(line)
                    .map_err(|e| at(format!("not a JSON object: {e}")))?;
                let text = match value.get(&self.text_field) {
                    Some(serde_json::Value::String(s)) => s,
                    Some(_) => {
                        return Err(at(format!("field \"{}\" is not a string", self.text_field)))
                    }
                    None => return Err(at(format!("no field \"{}\"", self.text_field))),
                };
                let lines: Vec<String> = text
                    .lines()
                    .map(py_strip)
                    .filter(|l| !l.is_empty())
                    .map(str::to_string)
                    .collect();
                let origin = format!("{}:{line_no}", path.display());
                for piece in pieces(lines, &self.bounds, &at)? {
                    if !docs.emit(origin.clone(), piece) {
                        return Ok(());
                    }
                }
            }
        }
        Ok(())
    }
}

/// A document's lines as documents of at most `max_document_bytes` each
/// (a longer single line stays whole), or the refusal `oversize` asks for.
fn pieces(
    lines: Vec<String>,
    bounds: &Bounds,
    at: &dyn Fn(String) -> Error,
) -> Result<Vec<Vec<String>>> {
    let Some(max) = bounds.max_document_bytes else {
        return Ok(vec![lines]);
    };
    let mut out: Vec<Vec<String>> = vec![Vec::new()];
    let mut bytes = 0;
    for line in lines {
        let current = out.last_mut().expect("one piece at least");
        if !current.is_empty() && bytes + line.len() > max {
            if bounds.oversize == Oversize::Refuse {
                return Err(at(format!("a text longer than max_document_bytes = {max}")));
            }
            out.push(Vec::new());
            bytes = 0;
        }
        bytes += line.len();
        out.last_mut().expect("one piece at least").push(line);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_text_field_and_reports_bad_lines() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("c.jsonl");
        std::fs::write(
            &p,
            "{\"body\": \"一。\\n\\n二。\", \"id\": 1}\n\n{\"body\": 3}\n",
        )
        .unwrap();
        let ingest = JsonLines {
            text_field: "body".into(),
            ..JsonLines::default()
        };
        let mut docs = Vec::new();
        let err = ingest
            .read(std::slice::from_ref(&p), &AtomicU64::new(0), &mut |d| {
                docs.push(d);
                true
            })
            .unwrap_err()
            .to_string();
        assert_eq!(docs[0].lines, vec!["一。", "二。"]);
        assert!(
            err.contains("c.jsonl:3") && err.contains("not a string"),
            "{err}"
        );
    }

    #[test]
    fn long_lines_are_refused_and_long_texts_cut() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("c.jsonl");
        let long = "x".repeat(100);
        std::fs::write(
            &p,
            format!("{{\"text\": \"aaaa\\nbbbb\\ncccc\"}}\n{{\"text\": \"{long}\"}}\n"),
        )
        .unwrap();
        let ingest = JsonLines {
            text_field: "text".into(),
            bounds: Bounds {
                max_line_bytes: Some(64),
                max_document_bytes: Some(10),
                oversize: Oversize::Cut,
            },
        };
        let mut docs = Vec::new();
        let err = ingest
            .read(std::slice::from_ref(&p), &AtomicU64::new(0), &mut |d| {
                docs.push(d.lines);
                true
            })
            .unwrap_err()
            .to_string();
        assert_eq!(docs, vec![vec!["aaaa", "bbbb"], vec!["cccc"]]);
        assert!(
            err.contains("c.jsonl:2") && err.contains("longer than max_line_bytes = 64"),
            "{err}"
        );
    }
}
