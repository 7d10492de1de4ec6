//! The JSON lines ingest, through the same file reader as a run (plain
//! and `.gz`), with the default text field and bounds.
#![no_main]

use std::path::PathBuf;
use std::sync::atomic::AtomicU64;
use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use nezha_stages::ingest::{Ingest, JsonLines};

/// One directory for the whole run. Statics are never dropped, so it
/// outlives the process: benches/fuzz.sh points TMPDIR at a directory in
/// memory (/dev/shm) that it removes after each target.
fn dir() -> &'static tempfile::TempDir {
    static DIR: OnceLock<tempfile::TempDir> = OnceLock::new();
    DIR.get_or_init(|| tempfile::tempdir().expect("temp dir"))
}

fuzz_target!(|data: &[u8]| {
    // The reader picks gzip by the name, so gzip-looking bytes go to a
    // `.gz` file too.
    let name = if data.starts_with(&[0x1f, 0x8b]) {
        "in.jsonl.gz"
    } else {
        "in.jsonl"
    };
    let path: PathBuf = dir().path().join(name);
    std::fs::write(&path, data).expect("write fuzz input");
    // The default line and document bounds, as a run without settings.
    let ingest = JsonLines {
        text_field: "text".into(),
        ..Default::default()
    };
    let mut docs = 0usize;
    let _ = ingest.read(std::slice::from_ref(&path), &AtomicU64::new(0), &mut |d| {
        docs += d.lines.len();
        true
    });
});
