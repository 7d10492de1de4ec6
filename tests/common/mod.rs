//! Helpers shared by the tests that run the `nezha` binary.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// The repository root (bundled data and pipeline files).
#[allow(dead_code)]
pub fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// The first `n` chapters of the bundled corpus (its blank-line-separated
/// documents).
#[allow(dead_code)]
pub fn chapters(n: usize) -> Vec<String> {
    let text = std::fs::read_to_string(root().join("data/sanguo.txt")).unwrap();
    text.split("\n\n").take(n).map(String::from).collect()
}

/// Runs `nezha ARGS` in `cwd` and returns what it did.
#[allow(dead_code)]
pub fn nezha(args: &[&str], cwd: &Path) -> Output {
    Command::new(env!("CARGO_BIN_EXE_nezha"))
        .args(args)
        .current_dir(cwd)
        .output()
        .unwrap()
}
