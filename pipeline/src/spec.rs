//! A pipeline as written, before anything is checked across sections: the
//! text of a `pipeline.toml`, or a pipeline put together in code with
//! [`Spec::builder`], which the same loader reads.

use std::path::{Path, PathBuf};

use anyhow::Context as _;
use nezha_stages::error::{Error, Result};
use nezha_stages::params::{Location, Params};
use toml::de::{DeTable, DeValue};
use toml::Spanned;

/// A pipeline description and where it came from (errors name the file,
/// line and key).
#[derive(Clone, Debug)]
pub struct Spec {
    pub file: PathBuf,
    pub source: String,
}

impl Spec {
    /// Reads a pipeline file.
    pub fn load(file: &Path) -> anyhow::Result<Spec> {
        let source = std::fs::read_to_string(file)
            .with_context(|| format!("cannot read {}", file.display()))?;
        Ok(Spec {
            file: file.to_path_buf(),
            source,
        })
    }

    /// A pipeline held in memory, named `file` in messages (and relative
    /// paths in it resolved against `file`'s directory).
    pub fn from_text(file: &Path, source: &str) -> Spec {
        Spec {
            file: file.to_path_buf(),
            source: source.to_string(),
        }
    }

    /// A pipeline put together in code: sections and keys as `pipeline.toml`
    /// names them.
    pub fn builder() -> SpecBuilder {
        SpecBuilder::default()
    }

    pub(crate) fn parse(&self) -> Result<Document<'_>> {
        let at = Location {
            file: &self.file,
            src: &self.source,
        };
        let doc = DeTable::parse(&self.source)
            .map_err(|e| at.error(e.span().unwrap_or(0..0), e.message().to_string()))?
            .into_inner();
        Ok(Document { spec: self, doc })
    }
}

/// The parsed file: its top-level keys and its sections.
pub(crate) struct Document<'a> {
    spec: &'a Spec,
    doc: DeTable<'a>,
}

impl<'a> Document<'a> {
    pub fn location(&self) -> Location<'a> {
        Location {
            file: &self.spec.file,
            src: &self.spec.source,
        }
    }

    fn value(&self, name: &str) -> Option<&Spanned<DeValue<'a>>> {
        self.doc
            .iter()
            .find(|(k, _)| k.get_ref().as_ref() == name)
            .map(|(_, v)| v)
    }

    /// The keys outside any section.
    pub fn top_level(&self) -> Result<Params<'a>> {
        let top: DeTable = self
            .doc
            .iter()
            .filter(|(_, v)| !matches!(v.get_ref(), DeValue::Table(_)))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        let value = Spanned::new(0..0, DeValue::Table(top));
        Params::new(&self.spec.file, &self.spec.source, "top level", &value)
    }

    /// `[name]`, or `None` when the file has no such section.
    pub fn section(&self, name: &'static str) -> Result<Option<Params<'a>>> {
        self.value(name)
            .map(|v| Params::new(&self.spec.file, &self.spec.source, name, v))
            .transpose()
    }

    /// `[name]`, or an empty one (every key at its default).
    pub fn section_or_empty(&self, name: &'static str) -> Result<Params<'a>> {
        Ok(self
            .section(name)?
            .unwrap_or_else(|| Params::empty(&self.spec.file, &self.spec.source, name)))
    }

    /// `[name]`, which the pipeline needs.
    pub fn required(&self, name: &'static str) -> Result<Params<'a>> {
        self.section(name)?.ok_or_else(|| {
            self.location()
                .error(0..0, format!("missing section [{name}]"))
        })
    }

    /// The names of the file's sections, with where each is written.
    pub fn section_names(&self) -> impl Iterator<Item = (&str, std::ops::Range<usize>)> + '_ {
        self.doc
            .iter()
            .filter(|(_, v)| matches!(v.get_ref(), DeValue::Table(_)))
            .map(|(k, _)| (k.get_ref().as_ref(), k.span()))
    }

    pub fn error(&self, span: std::ops::Range<usize>, message: String) -> Error {
        self.location().error(span, message)
    }
}

/// Puts a pipeline together in code, key by key, as a file would:
///
/// ```
/// use nezha_pipeline::Spec;
/// let spec = Spec::builder()
///     .top("seed", 7)
///     .set("ingest", "kind", "text")
///     .set("ingest", "input", "corpus.txt")
///     .set("wordpiece", "vocab", "vocab.txt")
///     .set("sink", "kind", "check")
///     .build_in(std::path::Path::new("."));
/// assert!(spec.source.contains("[ingest]"));
/// ```
#[derive(Clone, Debug, Default)]
pub struct SpecBuilder {
    table: toml::Table,
}

impl SpecBuilder {
    /// A top-level key (`seed`, `workers`).
    pub fn top(mut self, key: &str, value: impl Into<toml::Value>) -> SpecBuilder {
        self.table.insert(key.to_string(), value.into());
        self
    }

    /// `[section] key = value`.
    pub fn set(mut self, section: &str, key: &str, value: impl Into<toml::Value>) -> SpecBuilder {
        let entry = self
            .table
            .entry(section.to_string())
            .or_insert_with(|| toml::Value::Table(toml::Table::new()));
        if let toml::Value::Table(t) = entry {
            t.insert(key.to_string(), value.into());
        }
        self
    }

    /// `[section]` with no keys (every key at its default).
    pub fn section(mut self, section: &str) -> SpecBuilder {
        self.table
            .entry(section.to_string())
            .or_insert_with(|| toml::Value::Table(toml::Table::new()));
        self
    }

    /// The pipeline, with relative paths resolved against `dir`. Messages
    /// about it quote the TOML it corresponds to.
    pub fn build_in(self, dir: &Path) -> Spec {
        Spec {
            file: dir.join("<pipeline built in code>"),
            source: self.to_toml(),
        }
    }

    /// The pipeline as `pipeline.toml` text.
    pub fn to_toml(&self) -> String {
        // Top-level keys must come before any table: toml's serializer
        // writes plain values first.
        toml::to_string(&self.table).expect("a table of TOML values always serializes")
    }
}
