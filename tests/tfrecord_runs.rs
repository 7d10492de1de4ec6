//! Training from TFRecord files as the reference's input_fn reads them:
//! repeated pass after pass, shuffled from the seed, one stream shared by
//! the ranks; a run resumes mid-pass exactly, on the same number of
//! processes or on another with the same global batch.

mod common;

use std::path::{Path, PathBuf};

use common::{chapters, free_port, nezha_in, root, succeeded, MODEL_NO_DROPOUT};
use nezha_stages::tfrecord::open_records;
use nezha_train::trainer::metrics;

/// Two TFRecord files from a few chapters, and how many records they hold.
fn records(dir: &Path) -> usize {
    std::fs::write(dir.join("corpus.txt"), chapters(6).join("\n\n")).unwrap();
    std::fs::write(dir.join("model.json"), MODEL_NO_DROPOUT).unwrap();
    succeeded(
        nezha_in(dir)
            .arg("create_pretraining_data")
            .arg("--input_file=corpus.txt")
            .arg("--output_file=a.tfrecord,b.tfrecord")
            .arg(format!(
                "--vocab_file={}",
                root().join("data/vocab.txt").display()
            ))
            .args(["--max_seq_length=32", "--max_predictions_per_seq=5"])
            .args(["--dupe_factor=1"])
            .output()
            .unwrap(),
    );
    ["a.tfrecord", "b.tfrecord"]
        .iter()
        .map(|f| open_records(&dir.join(f)).unwrap().count())
        .sum()
}

/// A pipeline training `name` from the files for `steps` steps.
fn pipeline(
    dir: &Path,
    name: &str,
    batch: usize,
    accumulation: usize,
    steps: usize,
    extra: &str,
) -> PathBuf {
    let toml = format!(
        "seed = 5\n[wordpiece]\nvocab = \"{vocab}\"\n[instances]\nmax_seq_length = 32\n\
         [masking]\nmax_predictions_per_seq = 5\n[batching]\nbatch_size = {batch}\n\
         [sink]\nkind = \"train\"\n[train]\nmodel = \"model.json\"\noutput_dir = \"{name}\"\n\
         tfrecords = \"a.tfrecord,b.tfrecord\"\nsteps = {steps}\nwarmup_steps = 2\n\
         learning_rate = 1e-3\ngrad_accumulation = {accumulation}\nthreads = 1\n\
         tensorboard = false\nplot = false\nsave_every = 1000\n{extra}",
        vocab = root().join("data/vocab.txt").display()
    );
    let p = dir.join(format!("{name}-{batch}-{accumulation}.toml"));
    std::fs::write(&p, toml).unwrap();
    p
}

fn launch(dir: &Path, pipeline: &Path, resume: bool) -> String {
    let mut cmd = nezha_in(dir);
    cmd.args(["launch", "--nproc-per-node", "2", "--master-port"])
        .arg(free_port().to_string());
    if resume {
        cmd.arg("--resume");
    }
    succeeded(cmd.arg(pipeline).output().unwrap())
}

fn losses(dir: &Path, name: &str) -> Vec<(u64, f64)> {
    metrics::read(&dir.join(name).join("metrics.jsonl"))
        .unwrap()
        .iter()
        .map(|m| (m.step, m.loss))
        .collect()
}

fn assert_close(a: &[(u64, f64)], b: &[(u64, f64)]) {
    assert_eq!(a.len(), b.len());
    for ((sa, la), (sb, lb)) in a.iter().zip(b) {
        assert_eq!(sa, sb);
        assert!(
            (la - lb).abs() <= 1e-5 * lb.abs(),
            "step {sa}: {la} vs {lb}"
        );
    }
}

#[test]
fn three_passes_on_two_processes_resume_mid_pass_and_on_one_process() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    let n = records(d);
    // Global batch 8: three passes and a bit, more than the files hold once.
    let steps = 3 * n / 8 + 2;
    let stop = n / 8 + n / 16; // inside the second pass
    assert!(n >= 40 && !stop.is_multiple_of(n / 8), "{n} records");

    let whole = launch(d, &pipeline(d, "whole", 4, 1, steps, ""), false);
    assert!(
        whole.contains(&format!("trained to step {steps} (reached the last step)")),
        "{whole}"
    );
    let reference = losses(d, "whole");
    assert_eq!(reference.len(), steps);

    // Stopped mid-pass, resumed on the same two processes.
    let stopped = pipeline(d, "again", 4, 1, steps, &format!("stop_after = {stop}\n"));
    launch(d, &stopped, false);
    launch(d, &pipeline(d, "again", 4, 1, steps, ""), true);
    assert_close(&losses(d, "again"), &reference);

    // Stopped mid-pass on two processes × batch 4, resumed on one process
    // × batch 4 × accumulation 2: the same global batch, the same steps.
    launch(
        d,
        &pipeline(d, "moved", 4, 1, steps, &format!("stop_after = {stop}\n")),
        false,
    );
    let one = pipeline(d, "moved", 4, 2, steps, "");
    let resumed = succeeded(
        nezha_in(d)
            .args(["run", "--resume"])
            .arg(&one)
            .output()
            .unwrap(),
    );
    assert!(
        resumed.contains(&format!("trained to step {steps}")),
        "{resumed}"
    );
    assert_close(&losses(d, "moved"), &reference);

    // Another global batch is refused, saying why.
    launch(
        d,
        &pipeline(d, "refused", 4, 1, steps, &format!("stop_after = {stop}\n")),
        false,
    );
    let other = pipeline(d, "refused", 4, 1, steps, "");
    let out = nezha_in(d)
        .args(["run", "--resume"])
        .arg(&other)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        stderr.contains("written by a run of 2 process(es) and this run has 1")
            && stderr.contains("the global batch differs")
            && stderr.contains("8 sequences per step there")
            && stderr.contains("= 4 here"),
        "{stderr}"
    );
}
