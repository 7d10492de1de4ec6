//! A run streaming with dynamic masking resumes on another number of
//! processes: the stream is one global sequence of batches dealt to the
//! ranks in turn (`registry::WorkerInfo::deal`), so 2 processes × batch b
//! stopped at step k continue on 1 process × batch b × accumulation 2 with
//! the same per-step losses. Static masking's stream depends on the layout
//! and is refused, saying why.

mod common;

use std::path::{Path, PathBuf};
use std::process::Output;

use common::{chapters, free_port, nezha_in, root, succeeded, MODEL_NO_DROPOUT};
use nezha_train::trainer::metrics;

/// Two workers per process streaming into the trainer for `steps` steps.
fn pipeline(dir: &Path, name: &str, masking: &str, accumulation: usize, extra: &str) -> PathBuf {
    let toml = format!(
        r#"seed = 9
workers = 2
[ingest]
input = "corpus.txt"
[sentences]
kind = "punct"
[wordpiece]
vocab = "{vocab}"
[instances]
max_seq_length = 32
dupe_factor = 2
[masking]
kind = "{masking}"
max_predictions_per_seq = 5
epochs = 3
[batching]
batch_size = 4
[sink]
kind = "train"
[train]
model = "model.json"
output_dir = "{name}"
steps = 12
warmup_steps = 2
learning_rate = 1e-3
grad_accumulation = {accumulation}
threads = 1
tensorboard = false
plot = false
save_every = 1000
{extra}
"#,
        vocab = root().join("data/vocab.txt").display()
    );
    let p = dir.join(format!("{name}-{accumulation}.toml"));
    std::fs::write(&p, toml).unwrap();
    p
}

fn launch(dir: &Path, pipeline: &Path) -> String {
    succeeded(
        nezha_in(dir)
            .args(["launch", "--nproc-per-node", "2", "--master-port"])
            .arg(free_port().to_string())
            .arg(pipeline)
            .output()
            .unwrap(),
    )
}

fn resume_on_one(dir: &Path, pipeline: &Path) -> Output {
    nezha_in(dir)
        .args(["run", "--resume"])
        .arg(pipeline)
        .output()
        .unwrap()
}

fn losses(dir: &Path, name: &str) -> Vec<(u64, f64)> {
    metrics::read(&dir.join(name).join("metrics.jsonl"))
        .unwrap()
        .iter()
        .map(|m| (m.step, m.loss))
        .collect()
}

#[test]
fn a_dynamic_stream_resumes_on_another_number_of_processes() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    std::fs::write(d.join("corpus.txt"), chapters(3).join("\n\n")).unwrap();
    std::fs::write(d.join("model.json"), MODEL_NO_DROPOUT).unwrap();

    let whole = launch(d, &pipeline(d, "whole", "dynamic", 1, ""));
    assert!(whole.contains("trained to step 12"), "{whole}");
    let reference = losses(d, "whole");
    assert_eq!(reference.len(), 12);

    launch(d, &pipeline(d, "moved", "dynamic", 1, "stop_after = 5"));
    let resumed = succeeded(resume_on_one(d, &pipeline(d, "moved", "dynamic", 2, "")));
    assert!(resumed.contains("trained to step 12"), "{resumed}");
    let moved = losses(d, "moved");
    assert_eq!(moved.len(), reference.len());
    for ((s, a), (_, b)) in moved.iter().zip(&reference) {
        assert!((a - b).abs() <= 1e-5 * b.abs(), "step {s}: {a} vs {b}");
    }
    // The steps after the resume trained on other batches than a fresh
    // start would have: the losses are not those of the first steps again.
    assert!((moved[5].1 - reference[0].1).abs() > 1e-3);

    // Moved, stopped again after three steps there, and finished.
    launch(d, &pipeline(d, "twice", "dynamic", 1, "stop_after = 5"));
    let part = succeeded(resume_on_one(
        d,
        &pipeline(d, "twice", "dynamic", 2, "stop_after = 3"),
    ));
    assert!(part.contains("trained to step 8"), "{part}");
    succeeded(resume_on_one(d, &pipeline(d, "twice", "dynamic", 2, "")));
    for ((s, a), (_, b)) in losses(d, "twice").iter().zip(&reference) {
        assert!((a - b).abs() <= 1e-5 * b.abs(), "step {s}: {a} vs {b}");
    }

    // Static masking: refused with the reason and what to change.
    launch(d, &pipeline(d, "fixed", "static", 1, "stop_after = 5"));
    let out = resume_on_one(d, &pipeline(d, "fixed", "static", 2, ""));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        stderr.contains("written by a run of 2 process(es) and this run has 1")
            && stderr.contains("cannot continue exactly on another layout")
            && stderr.contains("kind = \"dynamic\""),
        "{stderr}"
    );
}
