//! A stage that panics ends the run with an error naming the worker, the
//! stage and the panic's message, instead of leaving the other workers
//! waiting for ever on the panicked one (a timely worker that unwinds never
//! finishes its dataflow); in a launch, the rank with the panic fails and
//! the launcher ends the run.
//!
//! Without the libtest harness (Cargo.toml): started as `run` or `launch`,
//! this binary is nezha with the panicking stage installed, so the ranks a
//! launch starts (itself, `current_exe`) have it too.

use std::process::{Command, ExitCode};
use std::sync::Arc;
use std::time::{Duration, Instant};

use nezha_pipeline::registry::{install, Built, Factory, Registry, Settings};
use nezha_pipeline::{start, Plan};
use nezha_stages::data::Document;
use nezha_stages::stage::Stage;
use nezha_stages::Batch;

mod common;
use common::{chapters, free_port, root, MODEL_NO_DROPOUT};

/// Passes documents on and panics on its `at`-th.
struct PanicAt {
    at: u64,
    seen: u64,
}

impl Stage for PanicAt {
    type In = Document;
    type Out = Document;
    fn push(
        &mut self,
        doc: Document,
        emit: &mut dyn FnMut(Document),
    ) -> nezha_stages::error::Result<()> {
        self.seen += 1;
        if self.seen == self.at {
            panic!("document {} is the {}th", doc.index, self.at);
        }
        emit(doc);
        Ok(())
    }
}

#[derive(serde::Deserialize)]
struct PanicParams {
    at: u64,
    /// Only this worker's stage panics.
    worker: usize,
}

fn register(r: &mut Registry) {
    r.clean.add("panic_at", |_, p: PanicParams, _| {
        let (at, only) = (p.at, p.worker);
        let factory: Factory<Document, Document> = Arc::new(move |w| {
            let at = if w.index == only { at } else { u64::MAX };
            Ok(Box::new(PanicAt { at, seen: 0 }))
        });
        Ok(Built::new(factory, Settings::new()))
    });
}

fn main() -> ExitCode {
    let command = std::env::args().nth(1);
    if matches!(command.as_deref(), Some("run" | "launch")) {
        install(nezha::register);
        return nezha_pipeline::cli::main_with(register);
    }
    a_panicking_stage_ends_a_three_worker_run_naming_the_worker();
    println!("a panicking stage ends a three-worker run naming the worker: ok");
    a_panicking_rank_ends_a_launch();
    println!("a panicking rank ends a launch: ok");
    ExitCode::SUCCESS
}

/// Many one-paragraph documents in `dir/corpus.txt`, so that worker 1
/// meets its 100th.
fn corpus(dir: &std::path::Path) {
    let docs: Vec<String> = chapters(60)
        .iter()
        .flat_map(|c| c.lines().map(str::to_string).collect::<Vec<_>>())
        .filter(|l| !l.trim().is_empty())
        .collect();
    assert!(docs.len() > 400, "{} documents", docs.len());
    std::fs::write(dir.join("corpus.txt"), docs.join("\n\n")).unwrap();
}

fn a_panicking_stage_ends_a_three_worker_run_naming_the_worker() {
    install(register);
    let dir = tempfile::tempdir().unwrap();
    corpus(dir.path());
    let toml = format!(
        r#"workers = 3
[ingest]
input = "corpus.txt"
[clean]
kind = "panic_at"
at = 100
worker = 1
[sentences]
kind = "punct"
[wordpiece]
vocab = "{}"
[masking]
kind = "dynamic"
[batching]
batch_size = 8
[sink]
kind = "check"
"#,
        root().join("data/vocab.txt").display()
    );
    let file = dir.path().join("p.toml");
    std::fs::write(&file, toml).unwrap();
    let plan = Plan::load(&file, Default::default()).unwrap();
    let started = Instant::now();
    let mut running = start::<Batch>(&plan).unwrap();
    running.items.by_ref().for_each(drop);
    let err = running.finish().expect_err("the run must fail");
    let message = format!("{err:#}");
    assert!(
        message.contains("worker 1")
            && message.contains("\"clean\"")
            && message.contains("panicked")
            && message.contains("is the 100th"),
        "{message}"
    );
    assert!(started.elapsed() < Duration::from_secs(30));
}

/// Two processes of one worker each, training: rank 1 runs global worker
/// slot 1, whose stage panics; rank 1 fails with the message, rank 0 stops
/// at its next collective, and the launch fails naming both.
fn a_panicking_rank_ends_a_launch() {
    let dir = tempfile::tempdir().unwrap();
    corpus(dir.path());
    std::fs::write(dir.path().join("model.json"), MODEL_NO_DROPOUT).unwrap();
    let toml = format!(
        r#"workers = 1
[ingest]
input = "corpus.txt"
[clean]
kind = "panic_at"
at = 100
worker = 1
[sentences]
kind = "punct"
[wordpiece]
vocab = "{}"
[instances]
max_seq_length = 32
[masking]
kind = "dynamic"
max_predictions_per_seq = 5
[batching]
batch_size = 4
[sink]
kind = "train"
[train]
model = "model.json"
output_dir = "out"
steps = 10
threads = 1
collective_timeout_s = 10
"#,
        root().join("data/vocab.txt").display()
    );
    std::fs::write(dir.path().join("p.toml"), toml).unwrap();
    let started = Instant::now();
    let out = Command::new(std::env::current_exe().unwrap())
        .args(["launch", "--nproc-per-node", "2", "--master-port"])
        .arg(free_port().to_string())
        .arg("p.toml")
        .current_dir(dir.path())
        .env_remove("RANK")
        .env_remove("WORLD_SIZE")
        .env("TORCH_CPP_LOG_LEVEL", "ERROR")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{stderr}");
    assert!(started.elapsed() < Duration::from_secs(30), "{stderr}");
    assert!(
        // Rank 1's only worker (its worker 0) runs global slot 1.
        stderr.contains("[rank 1] ")
            && stderr.contains("worker 0: stage \"clean\" panicked: document")
            && stderr.contains("error: rank 1 exited with status 1"),
        "{stderr}"
    );
}
