use std::path::PathBuf;
use std::sync::atomic::AtomicU64;

use super::{Ingest, LineReader, Numbering};
use crate::data::Document;
use crate::error::{Error, Result};
use crate::sentences::py_strip;

/// Plain text: one sentence (or paragraph) per line, a blank line between
/// documents, as the reference `create_pretraining_data.py` reads it.
#[derive(Clone, Debug, Default)]
pub struct Text {
    /// Start a new document at each new file. The reference does not: a
    /// document runs on into the next file unless a blank line ends it, so
    /// reference mode turns this off.
    pub document_per_file: bool,
    /// Bounds on what is held at once, so that memory does not depend on
    /// the input (a 1 GB file without blank lines, a 100 MB line).
    pub bounds: Bounds,
}

/// The longest line and document a reader holds.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Bounds {
    /// Longer lines come in pieces ([`LineReader::max_line`]).
    pub max_line_bytes: Option<usize>,
    /// A longer document is cut into documents at line (sentence)
    /// boundaries, or refused.
    pub max_document_bytes: Option<usize>,
    pub oversize: Oversize,
}

/// What becomes of a document longer than `max_document_bytes`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Oversize {
    /// Cut into documents of at most the bound, each named by its first
    /// line.
    #[default]
    Cut,
    /// An error naming the file and the line where it starts.
    Refuse,
}

impl Ingest for Text {
    fn read(
        &self,
        files: &[PathBuf],
        bytes_read: &AtomicU64,
        emit: &mut dyn FnMut(Document) -> bool,
    ) -> Result<()> {
        let mut docs = Numbering::new(emit);
        // The document being read: where it starts, its lines and bytes.
        let (mut origin, mut lines, mut bytes) = (String::new(), Vec::new(), 0usize);
        // Hands it on (if it has lines); false = stop.
        let mut flush = |origin: &mut String, lines: &mut Vec<String>, bytes: &mut usize| {
            *bytes = 0;
            docs.emit(std::mem::take(origin), std::mem::take(lines))
        };
        let max_document = self.bounds.max_document_bytes.unwrap_or(usize::MAX);
        for path in files {
            let mut reader =
                LineReader::open(path, bytes_read)?.max_line(self.bounds.max_line_bytes);
            while let Some((line_no, line)) = reader.next_line()? {
                let line = py_strip(line);
                if line.is_empty() {
                    if !flush(&mut origin, &mut lines, &mut bytes) {
                        return Ok(());
                    }
                    continue;
                }
                if !lines.is_empty() && bytes + line.len() > max_document {
                    if self.bounds.oversize == Oversize::Refuse {
                        return Err(Error::input(
                            path,
                            line_no,
                            format!(
                                "the document that starts at {origin} is longer than \
                                 max_document_bytes = {max_document}"
                            ),
                        ));
                    }
                    if !flush(&mut origin, &mut lines, &mut bytes) {
                        return Ok(());
                    }
                }
                if lines.is_empty() {
                    origin = format!("{}:{line_no}", path.display());
                }
                bytes += line.len();
                lines.push(line.to_string());
            }
            if self.document_per_file && !flush(&mut origin, &mut lines, &mut bytes) {
                return Ok(());
            }
        }
        flush(&mut origin, &mut lines, &mut bytes);
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
                ..Text::default()
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
                ..Text::default()
            },
            &files,
        );
        assert_eq!(per_file.len(), 3);
        let joined = read(
            &Text {
                document_per_file: false,
                ..Text::default()
            },
            &files,
        );
        let lines: Vec<_> = joined.iter().map(|d| d.lines.clone()).collect();
        assert_eq!(lines, vec![vec!["a", "b", "c"], vec!["d"]]);
    }

    #[test]
    fn long_documents_are_cut_at_lines_or_refused() {
        let cut = Text {
            document_per_file: true,
            bounds: Bounds {
                max_line_bytes: Some(8),
                max_document_bytes: Some(10),
                oversize: Oversize::Cut,
            },
        };
        let docs = read(&cut, &["aaaa\nbbbb\ncccc\n\nddddddddddddeeee\n"]);
        let lines: Vec<_> = docs.iter().map(|d| d.lines.clone()).collect();
        assert_eq!(
            lines,
            vec![
                vec!["aaaa", "bbbb"],
                vec!["cccc"],
                vec!["dddddddd"],
                vec!["ddddeeee"]
            ]
        );
        assert!(docs[1].origin.ends_with("0.txt:3"), "{}", docs[1].origin);
        assert!(docs[3].origin.ends_with("0.txt:5"), "{}", docs[3].origin);
        let refuse = Text {
            bounds: Bounds {
                oversize: Oversize::Refuse,
                ..cut.bounds
            },
            ..cut
        };
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("big.txt");
        std::fs::write(&p, "aaaa\nbbbb\ncccc\n").unwrap();
        let err = refuse
            .read(&[p], &AtomicU64::new(0), &mut |_| true)
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("big.txt:3")
                && err.contains("big.txt:1")
                && err.contains("max_document_bytes = 10"),
            "{err}"
        );
    }
}
