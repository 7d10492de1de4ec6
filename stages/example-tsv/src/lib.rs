//! A complete example of a user's own stage: a TSV input format, added to
//! nezha from outside without forking it.
//!
//! Three things make a plugin:
//!
//! 1. the stage itself, implementing one of nezha's traits: here
//!    [`nezha_stages::ingest::Ingest`], the input-format trait (a transform
//!    between documents would implement [`nezha_stages::Stage`]);
//! 2. a builder that reads and checks its section of `pipeline.toml`
//!    ([`build`]), reporting bad values with the file, line and key;
//! 3. a `register` function that adds the builder to the registry under a
//!    name ([`register`]), which the plugin's binary hands to nezha's
//!    command line (`src/main.rs`, one line): `[ingest] kind = "tsv"` then
//!    picks it, in `run`, `launch` and every other subcommand.
//!
//! The crate depends on `nezha-stages` and `nezha-pipeline` only, so its
//! binary links no libtorch.
//!
//! ```toml
//! [ingest]
//! kind = "tsv"
//! input = "corpus/*.tsv"   # files, directories, globs, as for "text"
//! column = "body"          # the column holding the text
//! where = { lang = "zh" }  # optional: keep rows whose columns equal these
//! ```
//!
//! The first line of each file names the columns. Each further row is one
//! document; a literal `\n` inside a cell separates its lines.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::atomic::AtomicU64;
use std::sync::Arc;

use nezha_pipeline::registry::{input_files, Built, Registry, Settings};
use nezha_pipeline::Resolved;
use nezha_stages::error::{Error, Result};
use nezha_stages::ingest::{Ingest, IngestPlan, InputList, LineReader, Numbering};
use nezha_stages::params::Params;
use nezha_stages::Document;
use serde::Deserialize;
use toml::Spanned;

/// Adds `[ingest] kind = "tsv"`.
pub fn register(r: &mut Registry) {
    r.ingest.add("tsv", build);
}

/// The format: which column is the text, and which rows to keep.
#[derive(Clone, Debug)]
pub struct Tsv {
    pub column: String,
    pub filter: BTreeMap<String, String>,
}

impl Ingest for Tsv {
    fn read(
        &self,
        files: &[PathBuf],
        bytes_read: &AtomicU64,
        emit: &mut dyn FnMut(Document) -> bool,
    ) -> Result<()> {
        let mut docs = Numbering::new(emit);
        for path in files {
            let mut reader = LineReader::open(path, bytes_read)?;
            let Some((_, header)) = reader.next_line()? else {
                continue; // an empty file has no rows
            };
            let columns: Vec<String> = split_row(header).map(str::to_string).collect();
            let at = |name: &str| -> Result<usize> {
                columns.iter().position(|c| c == name).ok_or_else(|| {
                    Error::input(
                        path,
                        1,
                        format!("no column {name:?}; the header has {columns:?}"),
                    )
                })
            };
            let text_at = at(&self.column)?;
            let filter: Vec<(usize, &str)> = self
                .filter
                .iter()
                .map(|(k, v)| Ok((at(k)?, v.as_str())))
                .collect::<Result<_>>()?;
            while let Some((line_no, row)) = reader.next_line()? {
                if row.trim().is_empty() {
                    continue;
                }
                let cells: Vec<&str> = split_row(row).collect();
                if cells.len() != columns.len() {
                    return Err(Error::input(
                        path,
                        line_no,
                        format!(
                            "{} cells where the header has {}",
                            cells.len(),
                            columns.len()
                        ),
                    ));
                }
                if filter.iter().any(|&(i, want)| cells[i] != want) {
                    continue;
                }
                let lines: Vec<String> = cells[text_at]
                    .split("\\n")
                    .map(str::trim)
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

fn split_row(line: &str) -> impl Iterator<Item = &str> {
    line.trim_end_matches('\n').split('\t')
}

/// The section's keys. `deny_unknown_fields`, so a mistyped key is
/// reported with its line rather than ignored.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TsvToml {
    input: Spanned<InputList>,
    column: Spanned<String>,
    #[serde(default, rename = "where")]
    filter: BTreeMap<String, String>,
}

/// Checks `[ingest]` once, before any work starts.
pub fn build(p: &Params, t: TsvToml, resolved: &Resolved) -> Result<Built<IngestPlan>> {
    if t.column.get_ref().is_empty() {
        return Err(p.invalid(&t.column, "column", "names no column"));
    }
    let files = input_files(p, resolved, &t.input)?;
    let settings = Settings::new()
        .set("input", files.as_ref())
        .set("column", t.column.get_ref())
        .set("where", &t.filter);
    Ok(Built::new(
        IngestPlan {
            format: Arc::new(Tsv {
                column: t.column.into_inner(),
                filter: t.filter,
            }),
            files,
        },
        settings,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read(tsv: &Tsv, text: &str) -> Result<Vec<Document>> {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("c.tsv");
        std::fs::write(&p, text).unwrap();
        let mut docs = Vec::new();
        tsv.read(&[p], &AtomicU64::new(0), &mut |d| {
            docs.push(d);
            true
        })?;
        Ok(docs)
    }

    #[test]
    fn rows_become_documents_and_the_filter_applies() {
        let tsv = Tsv {
            column: "body".into(),
            filter: [("lang".to_string(), "zh".to_string())].into(),
        };
        let docs = read(
            &tsv,
            "id\tlang\tbody\n1\tzh\t第一句。\\n第二句。\n2\ten\tHello.\n3\tzh\t第三句。\n",
        )
        .unwrap();
        let got: Vec<(u64, Vec<String>)> = docs.into_iter().map(|d| (d.index, d.lines)).collect();
        assert_eq!(
            got,
            vec![
                (0, vec!["第一句。".to_string(), "第二句。".to_string()]),
                (1, vec!["第三句。".to_string()]),
            ]
        );
    }

    #[test]
    fn bad_rows_and_columns_are_named() {
        let tsv = Tsv {
            column: "text".into(),
            filter: BTreeMap::new(),
        };
        let err = read(&tsv, "id\tbody\n").unwrap_err().to_string();
        assert!(
            err.contains("c.tsv:1") && err.contains("no column \"text\""),
            "{err}"
        );
        let tsv = Tsv {
            column: "body".into(),
            filter: BTreeMap::new(),
        };
        let err = read(&tsv, "id\tbody\n1\tok\n2\n").unwrap_err().to_string();
        assert!(
            err.contains("c.tsv:3") && err.contains("1 cells where the header has 2"),
            "{err}"
        );
    }
}
