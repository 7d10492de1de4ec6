//! Helpers shared by the tests that run the `nezha` binary.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// The repository root (bundled data and pipeline files).
#[allow(dead_code)]
pub fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// Runs `nezha ARGS` in `cwd` and returns what it did.
pub fn nezha(args: &[&str], cwd: &Path) -> Output {
    Command::new(env!("CARGO_BIN_EXE_nezha"))
        .args(args)
        .current_dir(cwd)
        .output()
        .unwrap()
}
