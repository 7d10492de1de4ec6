//! The seed's recipe as its users start it: the preset through
//! scripts/run_pretraining.sh, scripts/run_8p.sh's launch line, and
//! processes started by hand with the seed's RANK_ID / DEVICE_ID.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use common::{chapters, free_port, root};
use nezha_train::trainer::checkpoint;

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

fn succeeded(out: &Output) -> String {
    assert!(
        out.status.success(),
        "{}\n{}",
        text(&out.stdout),
        text(&out.stderr)
    );
    text(&out.stdout)
}

/// pipelines/nezha-large.toml with the model swapped for `tiny`, the data
/// for a few chapters of the bundled corpus and the run for `steps` steps
/// of 8 sequences on the CPU; every other setting is the recipe's.
fn small_recipe(dir: &Path, steps: u64) -> PathBuf {
    std::fs::write(dir.join("corpus.txt"), chapters(12).join("\n\n")).unwrap();
    let mut toml = std::fs::read_to_string(root().join("pipelines/nezha-large.toml")).unwrap();
    let vocab = format!("vocab = \"{}\"", root().join("data/vocab.txt").display());
    for (from, to) in [
        ("input = \"../corpus\"", "input = \"corpus.txt\""),
        ("vocab = \"../data/vocab.txt\"", vocab.as_str()),
        ("model = \"large\"", "model = \"tiny\""),
        ("steps = 1000000", &format!("steps = {steps}")),
        (
            "warmup_steps = 10000",
            &format!("warmup_steps = {}", steps / 10),
        ),
        ("batch_size = 64", "batch_size = 8"),
        ("device = \"cuda\"", "device = \"cpu\""),
        ("save_every = 10000", "save_every = 25"),
        (
            "output_dir = \"../runs/nezha-large\"",
            "output_dir = \"run\"",
        ),
        // After save_every's: [eval]'s own.
        ("\nevery = 10000", "\nevery = 25"),
        ("holdout = 0.01", "holdout = 0.25"),
        ("batches = 100", "batches = 2"),
    ] {
        assert!(toml.contains(from), "the recipe no longer has {from:?}");
        toml = toml.replace(from, to);
    }
    let path = dir.join("recipe.toml");
    std::fs::write(&path, toml).unwrap();
    path
}

#[test]
fn run_pretraining_sh_runs_the_recipe() {
    let tmp = tempfile::tempdir().unwrap();
    let recipe = small_recipe(tmp.path(), 50);
    let out = Command::new("bash")
        .arg(root().join("scripts/run_pretraining.sh"))
        .env("PIPELINE", &recipe)
        .env("NEZHA", env!("CARGO_BIN_EXE_nezha"))
        .output()
        .unwrap();
    let stdout = succeeded(&out);
    assert!(stdout.contains("trained to step 50"), "{stdout}");
    let (step, _) = checkpoint::list(&tmp.path().join("run"))
        .unwrap()
        .pop()
        .unwrap();
    assert_eq!(step, 50);
    assert!(tmp.path().join("run/eval_results.txt").exists());
    assert!(tmp.path().join("run/eval_results.txt").exists());
}

#[test]
fn run_8p_sh_launches_eight_processes_of_the_recipe() {
    let tmp = tempfile::tempdir().unwrap();
    // A stand-in for the binary that prints the command line it was given.
    let stand_in = tmp.path().join("nezha");
    std::fs::write(&stand_in, "#!/bin/sh\necho \"$@\"\n").unwrap();
    std::process::Command::new("chmod")
        .args(["+x", stand_in.to_str().unwrap()])
        .status()
        .unwrap();
    let out = Command::new("bash")
        .arg(root().join("scripts/run_8p.sh"))
        .env("NEZHA", &stand_in)
        .env_remove("NPROC_PER_NODE")
        .env_remove("MASTER_ADDR")
        .env_remove("MASTER_PORT")
        .output()
        .unwrap();
    assert_eq!(
        succeeded(&out).trim(),
        "launch --nproc-per-node 8 --nnodes 1 --node-rank 0 --master-addr 127.0.0.1 \
         --master-port 29500 pipelines/nezha-large.toml"
    );
    let out = Command::new("bash")
        .arg(root().join("scripts/run_8p.sh"))
        .env("NEZHA", &stand_in)
        .env("NNODES", "2")
        .env("NODE_RANK", "1")
        .env("MASTER_ADDR", "10.0.0.1")
        .env("RESUME", "1")
        .output()
        .unwrap();
    assert!(
        succeeded(&out).contains("--nnodes 2 --node-rank 1 --master-addr 10.0.0.1"),
        "{}",
        text(&out.stdout)
    );
    assert!(text(&out.stdout).contains("--resume"));
}

#[test]
fn processes_started_by_hand_with_rank_id_and_device_id_join_one_run() {
    let tmp = tempfile::tempdir().unwrap();
    let recipe = small_recipe(tmp.path(), 3);
    let port = free_port().to_string();
    let rank = |r: &str| {
        Command::new(env!("CARGO_BIN_EXE_nezha"))
            .args(["run", recipe.to_str().unwrap()])
            .env("RANK_ID", r)
            .env("DEVICE_ID", r)
            .env("WORLD_SIZE", "2")
            .env("MASTER_ADDR", "127.0.0.1")
            .env("MASTER_PORT", &port)
            .env("TORCH_CPP_LOG_LEVEL", "ERROR")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap()
    };
    let (a, b) = (rank("0"), rank("1"));
    let (a, b) = (a.wait_with_output().unwrap(), b.wait_with_output().unwrap());
    assert!(succeeded(&a).contains("trained to step 3"));
    succeeded(&b);
    let (_, newest) = checkpoint::list(&tmp.path().join("run"))
        .unwrap()
        .pop()
        .unwrap();
    assert_eq!(checkpoint::load(&newest).unwrap().state.world_size, 2);
}
