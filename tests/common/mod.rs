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

/// `nezha` in `dir`, to be given its arguments, outside any launch (no
/// rank variables) and with c10d's C++ logs quiet.
#[allow(dead_code)]
pub fn nezha_in(dir: &Path) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_nezha"));
    cmd.current_dir(dir)
        .env_remove("RANK")
        .env_remove("WORLD_SIZE")
        .env("TORCH_CPP_LOG_LEVEL", "ERROR");
    cmd
}

/// The stdout of a run that must have succeeded (else its output).
#[allow(dead_code)]
pub fn succeeded(out: Output) -> String {
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}

/// A port on the loopback interface nobody listens on now.
#[allow(dead_code)]
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A model small enough that a step takes milliseconds, without dropout
/// (runs that split batches differently then compute the same thing).
#[allow(dead_code)]
pub const MODEL_NO_DROPOUT: &str = r#"{
  "vocab_size": 21128, "hidden_size": 32, "num_hidden_layers": 1,
  "num_attention_heads": 2, "intermediate_size": 64, "hidden_act": "gelu",
  "hidden_dropout_prob": 0.0, "attention_probs_dropout_prob": 0.0,
  "max_position_embeddings": 512, "type_vocab_size": 2,
  "initializer_range": 0.02, "max_relative_position": 64
}"#;
