use std::path::PathBuf;
use std::sync::atomic::AtomicU64;

use super::{Ingest, LineReader, Numbering};
use crate::data::Document;
use crate::error::Result;
use crate::sentences::py_strip;

/// Plain text: one sentence (or paragraph) per line, a blank line between
/// documents, as the reference `create_pretraining_data.py` reads it.
#[derive(Clone, Debug)]
pub struct Text {
    /// Start a new document at each new file. The reference does not: a
    /// document runs on into the next file unless a blank line ends it, so
    /// reference mode turns this off.
    pub document_per_file: bool,
}

impl Ingest for Text {
    fn read(
        &self,
        files: &[PathBuf],
        bytes_read: &AtomicU64,
        emit: &mut dyn FnMut(Document) -> bool,
    ) -> Result<()> {
        let mut docs = Numbering::new(emit);
        // The document being read: where it starts, and its lines.
        let (mut origin, mut lines) = (String::new(), Vec::new());
        // Hands it on (if it has lines); false = stop.
        let mut flush = |origin: &mut String, lines: &mut Vec<String>| {
            docs.emit(std::mem::take(origin), std::mem::take(lines))
        };
        for path in files {
            let mut reader = LineReader::open(path, bytes_read)?;
            while let Some((line_no, line)) = reader.next_line()? {
                let line = py_strip(line);
                if line.is_empty() {
                    if !flush(&mut origin, &mut lines) {
                        return Ok(());
                    }
                    continue;
                }
                if lines.is_empty() {
                    origin = format!("{}:{line_no}", path.display());
                }
                lines.push(line.to_string());
            }
            if self.document_per_file && !flush(&mut origin, &mut lines) {
                return Ok(());
            }
        }
        flush(&mut origin, &mut lines);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read(text: &Text, contents: &[&str]) -> Vec<Document> {
        let dir = tempfile::tempdir().unwrap();
        let files: Vec<PathBuf> = contents
            .iter()
            .enumerate()
            .map(|(i, c)| {
                let p = dir.path().join(format!("{i}.txt"));
                std::fs::write(&p, c).unwrap();
                p
            })
            .collect();
        let mut docs = Vec::new();
        text.read(&files, &AtomicU64::new(0), &mut |d| {
            docs.push(d);
            true
        })
        .unwrap();
        docs
    }

    #[test]
    fn blank_lines_separate_documents_and_lines_are_stripped() {
        let docs = read(
            &Text {
                document_per_file: true,
            },
            &["  a \nb\n\u{3000}\n\n\nc\r\n"],
        );
        let lines: Vec<_> = docs.iter().map(|d| d.lines.clone()).collect();
        assert_eq!(lines, vec![vec!["a", "b"], vec!["c"]]);
        assert_eq!(docs[1].index, 1);
        assert!(docs[1].origin.ends_with("0.txt:6"), "{}", docs[1].origin);
    }

    #[test]
    fn reference_documents_run_across_files() {
        let files = ["a\nb\n", "c\n\nd\n"];
        let per_file = read(
            &Text {
                document_per_file: true,
            },
            &files,
        );
        assert_eq!(per_file.len(), 3);
        let joined = read(
            &Text {
                document_per_file: false,
            },
            &files,
        );
        let lines: Vec<_> = joined.iter().map(|d| d.lines.clone()).collect();
        assert_eq!(lines, vec![vec!["a", "b", "c"], vec!["d"]]);
    }
}
