use std::path::PathBuf;
use std::sync::atomic::AtomicU64;

use super::{Ingest, LineReader, Numbering};
use crate::data::Document;
use crate::error::{Error, Result};
use crate::sentences::py_strip;

/// JSON Lines: one JSON object per line, one document per object, its text
/// in `text_field`. Newlines inside the text separate sentences or
/// paragraphs; blank ones are dropped.
#[derive(Clone, Debug)]
pub struct JsonLines {
    pub text_field: String,
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
            let mut reader = LineReader::open(path, bytes_read)?;
            while let Some((line_no, line)) = reader.next_line()? {
                if py_strip(line).is_empty() {
                    continue;
                }
                let at = |msg: String| Error::input(path, line_no, msg);
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
                if !docs.emit(format!("{}:{line_no}", path.display()), lines) {
                    return Ok(());
                }
            }
        }
        Ok(())
    }
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
}
