//! Several processes: `nezha launch --nproc-per-node 2` runs the bundled
//! pipeline (shortened) end to end with one combined progress line; a rank
//! killed mid-run makes the other exit within the collective timeout naming
//! it, the last checkpoint loads and a resumed launch continues from it; and
//! the bad inputs of a multi-process start (world size, unreachable master,
//! different pipeline files) fail fast with a clear message.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::mpsc::channel;
use std::time::{Duration, Instant};

mod common;

use common::{free_port, root, MODEL_NO_DROPOUT};
use nezha_train::trainer::checkpoint;

/// A model small enough that a step takes milliseconds.
const MODEL: &str = r#"{
  "vocab_size": 21128, "hidden_size": 32, "num_hidden_layers": 1,
  "num_attention_heads": 2, "intermediate_size": 64, "hidden_act": "gelu",
  "hidden_dropout_prob": 0.1, "attention_probs_dropout_prob": 0.1,
  "max_position_embeddings": 512, "type_vocab_size": 2,
  "initializer_range": 0.02, "max_relative_position": 64
}"#;

/// The bundled pipeline.toml with its data, model, length and step count
/// swapped for test-sized ones and `extra` appended to `[train]` (the
/// last section); everything else is the bundled file's.
/// The bundled pipeline without its `[eval]` (the last section): a few
/// chapters hold none out.
fn without_eval(toml: String) -> String {
    let at = toml.find("\n[eval]").expect("pipeline.toml has [eval]");
    toml[..at + 1].to_string()
}

fn bundled_pipeline(
    dir: &Path,
    name: &str,
    chapters: usize,
    replace: &[(&str, &str)],
    extra: &str,
) -> PathBuf {
    let text = std::fs::read_to_string(root().join("data/sanguo.txt")).unwrap();
    let part: Vec<&str> = text.split("\n\n").take(chapters).collect();
    std::fs::write(dir.join("corpus.txt"), part.join("\n\n")).unwrap();
    std::fs::write(dir.join("model.json"), MODEL).unwrap();
    let vocab = root().join("data/vocab.txt");
    let mut toml = without_eval(std::fs::read_to_string(root().join("pipeline.toml")).unwrap());
    let mut swaps = vec![
        (
            "input = \"data/sanguo.txt\"",
            "input = \"corpus.txt\"".to_string(),
        ),
        (
            "vocab = \"data/vocab.txt\"",
            format!("vocab = \"{}\"", vocab.display()),
        ),
        ("model = \"tiny\"", "model = \"model.json\"".into()),
        (
            "output_dir = \"out/tiny\"",
            format!("output_dir = \"{name}\""),
        ),
    ];
    for (a, b) in replace {
        swaps.push((a, b.to_string()));
    }
    for (from, to) in swaps {
        assert!(toml.contains(from), "pipeline.toml no longer has {from:?}");
        toml = toml.replace(from, &to);
    }
    toml.push_str(extra);
    let path = dir.join(format!("{name}.toml"));
    std::fs::write(&path, toml).unwrap();
    path
}

fn launch(dir: &Path, pipeline: &Path, port: u16, more: &[&str]) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_nezha"));
    cmd.args(["launch", "--nproc-per-node", "2", "--master-port"])
        .arg(port.to_string())
        .args(more)
        .arg(pipeline)
        .current_dir(dir)
        .env_remove("RANK")
        .env_remove("WORLD_SIZE");
    cmd
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

#[test]
fn launch_runs_the_bundled_pipeline_on_two_processes_with_one_progress_line() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let steps = 8;
    let pipeline = bundled_pipeline(
        dir,
        "two",
        3,
        &[
            ("steps = 600", "steps = 8"),
            ("warmup_steps = 60", "warmup_steps = 2"),
            ("max_seq_length = 128", "max_seq_length = 64"),
            ("save_every = 200", "save_every = 4"),
        ],
        "threads = 1\n",
    );
    let out = launch(dir, &pipeline, free_port(), &[]).output().unwrap();
    let (stdout, stderr) = (text(&out.stdout), text(&out.stderr));
    assert!(out.status.success(), "launch failed:\n{stdout}\n{stderr}");

    // One report, by rank 0; the other rank prints nothing of its own.
    assert_eq!(
        stdout.matches(&format!("trained to step {steps}")).count(),
        1,
        "{stdout}"
    );
    assert!(!stdout.contains("[rank 1]"), "{stdout}");
    // One progress line per reported step (stderr is not a terminal here,
    // so it is the plain form), for both ranks together.
    let progress: Vec<&str> = stderr
        .lines()
        .filter(|l| l.contains("step ") && l.contains("seq/s"))
        .collect();
    assert!(!progress.is_empty(), "no progress line: {stderr}");
    for line in &progress {
        assert!(
            line.starts_with("step "),
            "progress from a rank other than 0: {line}"
        );
        assert!(line.contains("(2 ranks)"), "{line}");
    }
    let mut reported: Vec<&str> = progress
        .iter()
        .map(|l| l.split_whitespace().nth(1).unwrap())
        .collect();
    let n = reported.len();
    reported.dedup();
    assert_eq!(reported.len(), n, "a step reported twice: {progress:?}");
    assert!(reported.contains(&"8/8"), "{progress:?}");

    let metrics = std::fs::read_to_string(dir.join("two/metrics.jsonl")).unwrap();
    assert_eq!(metrics.lines().count(), steps);
    let (_, newest) = checkpoint::list(&dir.join("two")).unwrap().pop().unwrap();
    let state = checkpoint::load(&newest).unwrap().state;
    assert_eq!((state.step, state.world_size), (steps as u64, 2));
    assert_eq!(state.rank_positions, vec![steps as u64; 2]);
}

#[test]
fn two_nodes_of_one_process_each_train_together() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let pipeline = bundled_pipeline(
        dir,
        "nodes",
        8,
        &[
            ("steps = 600", "steps = 3"),
            ("warmup_steps = 60", "warmup_steps = 1"),
            ("max_seq_length = 128", "max_seq_length = 32"),
        ],
        "threads = 1\n",
    );
    let port = free_port().to_string();
    let node = |rank: &str| {
        Command::new(env!("CARGO_BIN_EXE_nezha"))
            .args(["launch", "--nnodes", "2", "--node-rank", rank])
            .args(["--master-addr", "127.0.0.1", "--master-port", &port])
            .arg(&pipeline)
            .current_dir(dir)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap()
    };
    let (a, b) = (node("0"), node("1"));
    let (a, b) = (
        finish(a, Duration::from_secs(120)),
        finish(b, Duration::from_secs(120)),
    );
    assert!(a.status.success(), "{}", text(&a.stderr));
    assert!(b.status.success(), "{}", text(&b.stderr));
    assert!(
        text(&a.stdout).contains("trained to step 3"),
        "{}\n{}",
        text(&a.stdout),
        text(&a.stderr)
    );
    assert!(text(&b.stderr).contains("rank 1/2 started"));
    assert!(!text(&b.stdout).contains("trained to step"));
    let (_, newest) = checkpoint::list(&dir.join("nodes")).unwrap().pop().unwrap();
    assert_eq!(checkpoint::load(&newest).unwrap().state.world_size, 2);
}

/// The whole path through the CLI on a fixed stream: TFRecords with one
/// prediction per sequence (so every sequence weighs the same in the MLM
/// loss), 2 ranks × batch 4 by `nezha launch` against 1 × batch 8 by
/// `nezha run`: the same parameters to 1e-5.
#[test]
fn launch_on_tfrecords_equals_one_process_with_twice_the_batch() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let corpus = std::fs::read_to_string(root().join("data/sanguo.txt")).unwrap();
    let part: Vec<&str> = corpus.split("\n\n").take(6).collect();
    std::fs::write(dir.join("corpus.txt"), part.join("\n\n")).unwrap();
    std::fs::write(dir.join("model.json"), MODEL_NO_DROPOUT).unwrap();
    let vocab = root().join("data/vocab.txt");
    let made = Command::new(env!("CARGO_BIN_EXE_nezha"))
        .arg("create_pretraining_data")
        .arg("--input_file=corpus.txt")
        .arg("--output_file=data.tfrecord")
        .arg(format!("--vocab_file={}", vocab.display()))
        .args(["--max_seq_length=32", "--max_predictions_per_seq=1"])
        .args(["--dupe_factor=1"])
        .current_dir(dir)
        .output()
        .unwrap();
    assert!(made.status.success(), "{}", text(&made.stderr));
    let pipeline = |name: &str, batch: usize| {
        let toml = format!(
            r#"seed = 3
[wordpiece]
vocab = "{}"
[instances]
max_seq_length = 32
[masking]
max_predictions_per_seq = 1
[batching]
batch_size = {batch}
[sink]
kind = "train"
[train]
model = "model.json"
output_dir = "{name}"
tfrecords = "data.tfrecord"
steps = 5
warmup_steps = 1
learning_rate = 1e-3
threads = 1
tensorboard = false
plot = false
"#,
            vocab.display()
        );
        let p = dir.join(format!("{name}.toml"));
        std::fs::write(&p, toml).unwrap();
        p
    };
    let one = Command::new(env!("CARGO_BIN_EXE_nezha"))
        .arg("run")
        .arg(pipeline("one", 8))
        .current_dir(dir)
        .env_remove("RANK")
        .env_remove("WORLD_SIZE")
        .output()
        .unwrap();
    assert!(one.status.success(), "{}", text(&one.stderr));
    let two = launch(dir, &pipeline("two", 4), free_port(), &[])
        .output()
        .unwrap();
    assert!(two.status.success(), "{}", text(&two.stderr));

    let weights = |name: &str| {
        let (_, newest) = checkpoint::list(&dir.join(name)).unwrap().pop().unwrap();
        checkpoint::load(&newest).unwrap()
    };
    let (a, b) = (weights("two"), weights("one"));
    assert_eq!((a.state.step, a.state.world_size), (5, 2));
    assert_eq!(a.state.rank_positions, vec![5, 5]);
    assert_eq!(b.state.batches_consumed, 5);
    let mut worst = 0.0f64;
    for ((name, x), (name_y, y)) in a.model.iter().zip(&b.model) {
        assert_eq!(name, name_y);
        let norm = y.norm().double_value(&[]);
        let diff = (x - y).norm().double_value(&[]);
        let largest = (x - y).abs().max().double_value(&[]);
        // Key biases get no gradient in exact arithmetic (see
        // train/tests/data_parallel.rs): rounding noise, held absolutely.
        assert!(
            diff <= 1e-5 * norm || largest <= 1e-8,
            "{name}: {diff:e} apart (norm {norm:e})"
        );
        if largest > 1e-8 {
            worst = worst.max(diff / norm);
        }
    }
    eprintln!("largest relative difference {worst:.2e}");
}

/// Reads a child's stderr into a channel of lines, echoing them.
fn lines_of(child: &mut Child) -> std::sync::mpsc::Receiver<String> {
    let stderr = child.stderr.take().unwrap();
    let (tx, rx) = channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            eprintln!("| {line}");
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    rx
}

/// A run far longer than the test lets it go, checkpointing often.
const LONG_RUN: &[(&str, &str)] = &[
    ("steps = 600", "steps = 100000"),
    ("warmup_steps = 60", "warmup_steps = 2"),
    ("max_seq_length = 128", "max_seq_length = 32"),
    ("batch_size = 32", "batch_size = 4"),
    ("save_every = 200", "save_every = 5"),
    // Enough passes over the corpus that the stream holds every step.
    (
        "masked_lm_prob = 0.15",
        "masked_lm_prob = 0.15\nepochs = 100",
    ),
];

/// Starts a long run of two ranks, kills rank `victim` once two checkpoints
/// exist, and requires the launcher to fail within the collective timeout
/// with the survivor naming the victim. Returns the launcher's stderr.
fn kill_mid_run(dir: &Path, victim: usize, timeout: u64) -> String {
    let extra = format!("threads = 1\ncollective_timeout_s = {timeout}\n");
    let pipeline = bundled_pipeline(dir, "run", usize::MAX, LONG_RUN, &extra);
    let mut child = launch(dir, &pipeline, free_port(), &[])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let lines = lines_of(&mut child);
    let started = format!("nezha launch: rank {victim}/2 started (pid ");
    let mut pid = None;
    let mut seen = Vec::new();
    while pid.is_none() {
        let line = lines.recv_timeout(Duration::from_secs(60)).unwrap();
        if let Some(rest) = line.strip_prefix(&started) {
            pid = Some(rest.trim_end_matches(')').to_string());
        }
        seen.push(line);
    }
    // Kill it once a checkpoint exists and training goes on.
    let out_dir = dir.join("run");
    let start = Instant::now();
    while checkpoint::list(&out_dir).unwrap().len() < 2 {
        assert!(
            start.elapsed() < Duration::from_secs(120),
            "no checkpoints: {seen:?}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    let pid = pid.unwrap();
    assert!(Command::new("kill")
        .args(["-9", &pid])
        .status()
        .unwrap()
        .success());
    let killed = Instant::now();
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        if killed.elapsed() > Duration::from_secs(timeout + 30) {
            child.kill().unwrap();
            panic!(
                "the launcher still runs {:?} after rank {victim} was killed",
                killed.elapsed()
            );
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let took = killed.elapsed();
    eprintln!("rank {victim} killed: the launcher failed {took:?} later");
    let stderr: Vec<String> = lines.iter().collect();
    let stderr = stderr.join("\n");
    assert!(!status.success(), "{stderr}");
    assert!(
        took < Duration::from_secs(timeout),
        "the survivor took {took:?} to stop (timeout {timeout} s)"
    );
    // The survivor names the lost rank; the launcher says what happened.
    let survivor = 1 - victim;
    assert!(stderr.contains(&format!("rank {survivor}/2")), "{stderr}");
    assert!(stderr.contains(&format!("lost rank {victim}")), "{stderr}");
    assert!(
        stderr.contains(&format!("rank {victim} was killed (SIGKILL)")),
        "{stderr}"
    );
    stderr
}

#[test]
fn killing_rank_0_stops_rank_1_naming_it() {
    let tmp = tempfile::tempdir().unwrap();
    let stderr = kill_mid_run(tmp.path(), 0, 20);
    assert!(stderr.contains("the store it serves"), "{stderr}");
}

#[test]
fn a_killed_rank_stops_the_other_naming_it_and_the_run_resumes() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let timeout = 20;
    kill_mid_run(dir, 1, timeout);
    let out_dir = dir.join("run");
    let extra = format!("threads = 1\ncollective_timeout_s = {timeout}\n");

    // The newest checkpoint is complete; a resumed launch continues from it.
    let (step, newest) = checkpoint::list(&out_dir).unwrap().pop().unwrap();
    let loaded = checkpoint::load(&newest).unwrap();
    assert_eq!(loaded.state.world_size, 2);
    let resumed = bundled_pipeline(
        dir,
        "run",
        usize::MAX,
        LONG_RUN,
        &format!("{extra}stop_after = 3\n"),
    );
    let out = launch(dir, &resumed, free_port(), &["--resume"])
        .output()
        .unwrap();
    assert!(out.status.success(), "resume failed: {}", text(&out.stderr));
    assert!(
        text(&out.stdout).contains(&format!("trained to step {}", step + 3)),
        "{}",
        text(&out.stdout)
    );
    let (last, dir_last) = checkpoint::list(&out_dir).unwrap().pop().unwrap();
    assert_eq!(last, step + 3);
    let state = checkpoint::load(&dir_last).unwrap().state;
    assert_eq!(
        state.rank_positions,
        vec![loaded.state.rank_positions[0] + 3; 2],
        "each rank continues from its own data position"
    );
}

/// `nezha run` as one rank, with torchrun's variables.
fn rank(dir: &Path, pipeline: &Path, rank: usize, world: usize, port: u16) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_nezha"));
    cmd.arg("run")
        .arg(pipeline)
        .current_dir(dir)
        .env("RANK", rank.to_string())
        .env("WORLD_SIZE", world.to_string())
        .env("MASTER_ADDR", "127.0.0.1")
        .env("MASTER_PORT", port.to_string())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    cmd
}

/// Waits for `child`, killing it and failing if it takes longer than `within`.
fn finish(mut child: Child, within: Duration) -> Output {
    let start = Instant::now();
    while child.try_wait().unwrap().is_none() {
        if start.elapsed() > within {
            child.kill().unwrap();
            panic!("still running after {within:?}");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    child.wait_with_output().unwrap()
}

fn failed_with(out: &Output, needles: &[&str]) {
    let stderr = text(&out.stderr);
    assert!(!out.status.success(), "expected a failure: {stderr}");
    for n in needles {
        assert!(stderr.contains(n), "stderr lacks {n:?}: {stderr}");
    }
}

fn small(dir: &Path, name: &str, extra: &str) -> PathBuf {
    bundled_pipeline(
        dir,
        name,
        2,
        &[
            ("steps = 600", "steps = 4"),
            ("warmup_steps = 60", "warmup_steps = 1"),
            ("max_seq_length = 128", "max_seq_length = 32"),
        ],
        &format!("threads = 1\ncollective_timeout_s = 3\n{extra}"),
    )
}

#[test]
fn bad_multi_process_starts_fail_fast_and_say_why() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let p = small(dir, "bad", "");
    let quick = Duration::from_secs(30);

    // RANK outside WORLD_SIZE: refused before anything starts.
    let out = finish(rank(dir, &p, 2, 2, free_port()).spawn().unwrap(), quick);
    failed_with(&out, &["RANK=2 is not below WORLD_SIZE=2"]);

    // Processes that disagree on the world size.
    let port = free_port();
    let a = rank(dir, &p, 0, 2, port).spawn().unwrap();
    let b = rank(dir, &p, 1, 3, port).spawn().unwrap();
    let (a, b) = (finish(a, quick), finish(b, quick));
    failed_with(&a, &["world size mismatch", "rank 1", "WORLD_SIZE=3"]);
    failed_with(&b, &["world size mismatch", "rank 0", "WORLD_SIZE=2"]);

    // Fewer processes than WORLD_SIZE: rank 0 gives up after the timeout.
    let t = Instant::now();
    let out = finish(rank(dir, &p, 0, 2, free_port()).spawn().unwrap(), quick);
    failed_with(&out, &["rank 0/2", "WORLD_SIZE=2 processes must start"]);
    assert!(t.elapsed() < Duration::from_secs(15), "{:?}", t.elapsed());

    // A rank that cannot reach the master.
    let t = Instant::now();
    let out = finish(rank(dir, &p, 1, 2, free_port()).spawn().unwrap(), quick);
    failed_with(
        &out,
        &["rank 1/2", "cannot reach the master (rank 0) at 127.0.0.1:"],
    );
    assert!(t.elapsed() < Duration::from_secs(15), "{:?}", t.elapsed());

    // Different pipeline files on the two ranks.
    let other = small(dir, "bad2", "");
    let port = free_port();
    let a = rank(dir, &p, 0, 2, port).spawn().unwrap();
    let b = rank(dir, &other, 1, 2, port).spawn().unwrap();
    let (a, b) = (finish(a, quick), finish(b, quick));
    failed_with(&a, &["pipeline file differs between ranks", "rank 1 runs"]);
    failed_with(&b, &["pipeline file differs between ranks", "rank 0 runs"]);
}

/// SIGTERM to the launcher (what a scheduler sends) reaches every rank:
/// they agree on the step to stop after, rank 0 checkpoints it, and the
/// launch exits with the interrupted status.
#[test]
fn sigterm_to_the_launcher_stops_every_rank_after_one_step() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let pipeline = bundled_pipeline(dir, "run", usize::MAX, LONG_RUN, "threads = 1\n");
    let mut child = launch(dir, &pipeline, free_port(), &[])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let lines = lines_of(&mut child);
    let out_dir = dir.join("run");
    let start = Instant::now();
    while checkpoint::list(&out_dir).unwrap().is_empty() {
        assert!(start.elapsed() < Duration::from_secs(120), "no checkpoint");
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap()
        .success());
    let status = child.wait().unwrap();
    // Every line, up to the end of the launcher's stderr.
    let said: Vec<String> = lines.iter().collect();
    assert_eq!(status.code(), Some(130), "{said:?}");
    assert!(
        said.iter().any(|l| l.contains("stop requested")),
        "{said:?}"
    );
    assert!(
        said.iter()
            .any(|l| l.contains("interrupted: every rank stopped after its step")),
        "{said:?}"
    );
    // The step the ranks stopped after is checkpointed.
    let (step, _) = checkpoint::list(&out_dir).unwrap().pop().unwrap();
    let metrics = std::fs::read_to_string(out_dir.join("metrics.jsonl")).unwrap();
    assert!(
        metrics.contains(&format!("{{\"step\":{step},")),
        "step {step}"
    );
}
