//! Ingest: finds the input files and reads documents from them.
//!
//! Inputs are named as the reference's `--input_file`: a comma-separated
//! list of files, directories (read recursively, in name order) and glob
//! patterns (matches in sorted order). Files ending in `.gz`, `.zst` or
//! `.xz` are decompressed on the fly.

mod files;
mod jsonl;
mod lines;
mod numbering;
mod passes;
mod reader;
mod text;

pub use files::{resolve_inputs, InputList};
pub use jsonl::JsonLines;
pub use lines::LineReader;
pub use numbering::Numbering;
pub use passes::Passes;
pub use reader::{spawn_reader, spawn_reader_passes};
pub use text::{Bounds, Oversize, Text};

use std::path::PathBuf;
use std::sync::atomic::AtomicU64;

use crate::data::Document;
use crate::error::Result;

/// A corpus format: reads every document of the given files in order.
///
/// `emit` returns false when the reader should stop early (the run was
/// stopped); implementations then return `Ok(())` at once. `bytes_read`
/// counts the bytes taken from the files (compressed bytes for `.gz`), for
/// progress reports.
pub trait Ingest: Send + Sync {
    fn read(
        &self,
        files: &[PathBuf],
        bytes_read: &AtomicU64,
        emit: &mut dyn FnMut(Document) -> bool,
    ) -> Result<()>;
}

/// A configured ingest: its format and the files it reads.
#[derive(Clone)]
pub struct IngestPlan {
    pub format: std::sync::Arc<dyn Ingest>,
    pub files: std::sync::Arc<Vec<PathBuf>>,
}
