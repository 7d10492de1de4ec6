//! `nezha run` with the trainer as the sink: streaming into the trainer,
//! stopping and resuming exactly, training from TFRecord files, and the bad
//! inputs the trainer must refuse without overwriting anything.

use std::path::{Path, PathBuf};
use std::process::Output;

mod common;
use common::{nezha, root};

fn ok(out: &Output) -> String {
    assert!(
        out.status.success(),
        "nezha failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn fails(out: &Output, needles: &[&str]) {
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success(),
        "expected failure; stdout: {}",
        String::from_utf8_lossy(&out.stdout)
    );
    for n in needles {
        assert!(stderr.contains(n), "stderr lacks {n:?}: {stderr}");
    }
}

/// A model small enough that a step takes milliseconds.
const MODEL: &str = r#"{
  "vocab_size": 21128, "hidden_size": 32, "num_hidden_layers": 1,
  "num_attention_heads": 2, "intermediate_size": 64, "hidden_act": "gelu",
  "hidden_dropout_prob": 0.1, "attention_probs_dropout_prob": 0.1,
  "max_position_embeddings": 512, "type_vocab_size": 2,
  "initializer_range": 0.02, "max_relative_position": 64
}"#;

struct Run {
    dir: tempfile::TempDir,
}

impl Run {
    fn new() -> Run {
        let dir = tempfile::tempdir().unwrap();
        let text = std::fs::read_to_string(root().join("data/sanguo.txt")).unwrap();
        let part: Vec<&str> = text.split("\n\n").take(3).collect();
        std::fs::write(dir.path().join("corpus.txt"), part.join("\n\n")).unwrap();
        std::fs::write(dir.path().join("model.json"), MODEL).unwrap();
        std::fs::copy(root().join("data/vocab.txt"), dir.path().join("vocab.txt")).unwrap();
        Run { dir }
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }

    /// Writes `p.toml` training into `out_dir` with `extra` keys in `[train]`.
    fn pipeline(&self, out_dir: &str, seq: usize, extra: &str) -> PathBuf {
        let toml = format!(
            r#"seed = 3
workers = 1
[ingest]
input = "corpus.txt"
[sentences]
kind = "punct"
[wordpiece]
vocab = "vocab.txt"
[instances]
max_seq_length = {seq}
dupe_factor = 2
[masking]
max_predictions_per_seq = 5
[batching]
batch_size = 4
[sink]
kind = "train"
[train]
model = "model.json"
output_dir = "{out_dir}"
steps = 6
warmup_steps = 2
learning_rate = 1e-3
save_every = 2
threads = 1
{extra}
"#
        );
        let p = self.path().join(format!("{out_dir}.toml"));
        std::fs::write(&p, toml).unwrap();
        p
    }

    fn losses(&self, out_dir: &str) -> Vec<(u64, f64)> {
        let text =
            std::fs::read_to_string(self.path().join(out_dir).join("metrics.jsonl")).unwrap();
        text.lines()
            .map(|l| {
                let v: serde_json::Value = serde_json::from_str(l).unwrap();
                (v["step"].as_u64().unwrap(), v["loss"].as_f64().unwrap())
            })
            .collect()
    }
}

#[test]
fn a_stopped_run_resumes_exactly_from_the_stream() {
    let r = Run::new();
    let whole = r.pipeline("whole", 32, "");
    let stdout = ok(&nezha(&["run", whole.to_str().unwrap()], r.path()));
    assert!(stdout.contains("trained to step 6"), "{stdout}");
    let expected = r.losses("whole");
    assert_eq!(
        expected.iter().map(|l| l.0).collect::<Vec<_>>(),
        vec![1, 2, 3, 4, 5, 6]
    );
    assert!(r.path().join("whole/checkpoints/training.png").exists());

    let split = r.pipeline("split", 32, "stop_after = 3");
    let stdout = ok(&nezha(&["run", split.to_str().unwrap()], r.path()));
    assert!(stdout.contains("trained to step 3"), "{stdout}");
    let stdout = ok(&nezha(
        &["run", split.to_str().unwrap(), "--resume"],
        r.path(),
    ));
    assert!(stdout.contains("trained to step 6"), "{stdout}");
    assert_eq!(
        r.losses("split"),
        expected,
        "per-step losses of the stopped and resumed run"
    );
}

/// A corrupt newest checkpoint: `--resume` names it and the older ones and
/// offers `--resume-from`, which continues from the one named (the newer
/// moved aside) with the uninterrupted run's losses.
#[test]
fn a_corrupt_newest_checkpoint_offers_resume_from() {
    let r = Run::new();
    let whole = r.pipeline("whole", 32, "");
    ok(&nezha(&["run", whole.to_str().unwrap()], r.path()));
    let expected = r.losses("whole");

    let p = r.pipeline("broken", 32, "");
    ok(&nezha(&["run", p.to_str().unwrap()], r.path()));
    let checkpoints = r.path().join("broken/checkpoints");
    let model = checkpoints.join("step-00000006/model.safetensors");
    let bytes = std::fs::read(&model).unwrap();
    std::fs::write(&model, &bytes[..bytes.len() / 2]).unwrap();

    let out = nezha(&["run", p.to_str().unwrap(), "--resume"], r.path());
    fails(
        &out,
        &[
            "step-00000006",
            "corrupt or truncated",
            "older checkpoints: steps 2, 4",
            "--resume-from 4",
        ],
    );
    let out = nezha(
        &["run", p.to_str().unwrap(), "--resume-from", "3"],
        r.path(),
    );
    fails(&out, &["no checkpoint of step 3", "steps 2, 4, 6"]);

    let stdout = ok(&nezha(
        &["run", p.to_str().unwrap(), "--resume-from", "step-00000004"],
        r.path(),
    ));
    assert!(stdout.contains("trained to step 6"), "{stdout}");
    assert!(checkpoints
        .join("step-00000006.abandoned/model.safetensors")
        .exists());
    assert!(checkpoints.join("step-00000006/state.json").exists());
    let losses = r.losses("broken");
    assert_eq!(losses.len(), expected.len());
    for ((s, a), (_, b)) in losses.iter().zip(&expected) {
        assert!((a - b).abs() <= 1e-5 * b.abs(), "step {s}: {a} vs {b}");
    }
}

/// SIGTERM mid-run: the run ends after the step under way with a
/// checkpoint at it and exit status 130; `--resume` then gives the
/// uninterrupted run's per-step losses.
#[test]
fn sigterm_checkpoints_the_step_and_resume_continues_exactly() {
    let r = Run::new();
    let long = |name: &str| {
        let p = r.pipeline(name, 32, "");
        let toml = std::fs::read_to_string(&p)
            .unwrap()
            .replace("steps = 6\n", "steps = 400\n")
            .replace("save_every = 2\n", "save_every = 1000\n")
            .replace(
                "max_predictions_per_seq = 5",
                "max_predictions_per_seq = 5\nepochs = 20",
            );
        std::fs::write(&p, toml).unwrap();
        p
    };
    let whole = long("whole");
    ok(&nezha(&["run", whole.to_str().unwrap()], r.path()));
    let expected = r.losses("whole");
    assert_eq!(expected.len(), 400);

    let p = long("stopped");
    let child = std::process::Command::new(env!("CARGO_BIN_EXE_nezha"))
        .args(["run", p.to_str().unwrap()])
        .current_dir(r.path())
        .env_remove("RANK")
        .env_remove("WORLD_SIZE")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let metrics = r.path().join("stopped/metrics.jsonl");
    let started = std::time::Instant::now();
    while std::fs::read_to_string(&metrics).map_or(0, |t| t.lines().count()) < 5 {
        assert!(started.elapsed().as_secs() < 120, "the run did not start");
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
    let signalled = std::time::Instant::now();
    assert!(std::process::Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap()
        .success());
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(130), "{stderr}");
    assert!(
        stderr.contains("interrupted: stopped after step"),
        "{stderr}"
    );
    assert!(signalled.elapsed().as_secs() < 30);
    let done = r.losses("stopped");
    let step = done.last().unwrap().0;
    assert!(step < 400, "the run finished before the signal");
    assert!(r
        .path()
        .join(format!("stopped/checkpoints/step-{step:08}/state.json"))
        .exists());

    ok(&nezha(&["run", p.to_str().unwrap(), "--resume"], r.path()));
    let losses = r.losses("stopped");
    assert_eq!(losses.len(), expected.len());
    for ((s, a), (_, b)) in losses.iter().zip(&expected) {
        assert!((a - b).abs() <= 1e-5 * b.abs(), "step {s}: {a} vs {b}");
    }
}

/// A checkpoint write that fails halfway (here the file-size limit, as a
/// full disk would) names the checkpoint and the OS error, leaves no
/// partial checkpoint under a final or temporary name, and the previous
/// checkpoint still resumes.
#[test]
fn a_failed_checkpoint_write_leaves_the_previous_one_usable() {
    let r = Run::new();
    let p = r.pipeline("full", 32, "stop_after = 2");
    ok(&nezha(&["run", p.to_str().unwrap()], r.path()));
    let checkpoints = r.path().join("full/checkpoints");
    let model_bytes = std::fs::metadata(checkpoints.join("step-00000002/model.safetensors"))
        .unwrap()
        .len();
    // Room for the logs, not for a model file (ulimit -f counts KiB).
    let limit = model_bytes / 1024 / 2;
    let p = r.pipeline("full", 32, "");
    let out = std::process::Command::new("bash")
        .arg("-c")
        .arg(format!(
            "ulimit -f {limit} && exec \"$0\" run \"$1\" --resume",
        ))
        .arg(env!("CARGO_BIN_EXE_nezha"))
        .arg(&p)
        .current_dir(r.path())
        .env_remove("RANK")
        .env_remove("WORLD_SIZE")
        .output()
        .unwrap();
    fails(
        &out,
        &["writing checkpoint", "step-00000004", "File too large"],
    );
    let mut left: Vec<String> = std::fs::read_dir(&checkpoints)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    left.sort();
    assert_eq!(
        left,
        ["step-00000002", "training.png"],
        "left behind: {left:?}"
    );
    let stdout = ok(&nezha(&["run", p.to_str().unwrap(), "--resume"], r.path()));
    assert!(stdout.contains("trained to step 6"), "{stdout}");
}

/// A stream that cannot feed `[train] steps` is refused before training,
/// with the steps it holds and the epochs that would do; nothing written.
#[test]
fn a_stream_shorter_than_the_run_is_refused_up_front() {
    let r = Run::new();
    let p = r.pipeline("short", 32, "");
    let toml = std::fs::read_to_string(&p).unwrap();
    std::fs::write(&p, toml.replace("steps = 6\n", "steps = 100000\n")).unwrap();
    let out = nezha(&["run", p.to_str().unwrap()], r.path());
    fails(
        &out,
        &["[train] steps = 100000", "the stream holds", "epochs ="],
    );
    assert!(
        !r.path().join("short").exists(),
        "a refused run wrote output"
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    let epochs: u64 = stderr
        .split("set [masking] epochs = ")
        .nth(1)
        .and_then(|t| t.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no epochs suggested: {stderr}"));
    assert!(epochs > 1, "{stderr}");
    // With the suggested epochs the run starts (and stops after a step).
    let toml = std::fs::read_to_string(&p).unwrap().replace(
        "max_predictions_per_seq = 5",
        &format!("max_predictions_per_seq = 5\nepochs = {epochs}"),
    );
    let toml = toml.replace("steps = 100000", "steps = 100000\nstop_after = 1");
    std::fs::write(&p, toml).unwrap();
    let stdout = ok(&nezha(&["run", p.to_str().unwrap()], r.path()));
    assert!(stdout.contains("trained to step 1"), "{stdout}");
}

#[test]
fn trains_from_tfrecord_files_and_refuses_bad_ones() {
    let r = Run::new();
    let p = r.path();
    ok(&nezha(
        &[
            "create_pretraining_data",
            "--input_file=corpus.txt",
            "--output_file=data.tfrecord",
            "--vocab_file=vocab.txt",
            "--max_seq_length=32",
            "--max_predictions_per_seq=5",
            "--dupe_factor=1",
        ],
        p,
    ));
    let good = r.pipeline("fromrecords", 32, "tfrecords = \"data.tfrecord\"");
    let stdout = ok(&nezha(&["run", good.to_str().unwrap()], p));
    assert!(stdout.contains("trained to step 6"), "{stdout}");

    // Records written for another length are refused, naming the feature.
    let wrong = r.pipeline("wronglength", 64, "tfrecords = \"data.tfrecord\"");
    fails(
        &nezha(&["run", wrong.to_str().unwrap()], p),
        &["data.tfrecord", "input_ids", "64"],
    );

    // A flipped byte fails its CRC, with the record and offset.
    let mut bytes = std::fs::read(p.join("data.tfrecord")).unwrap();
    bytes[100] ^= 0x40;
    std::fs::write(p.join("bad.tfrecord"), bytes).unwrap();
    let bad = r.pipeline("badcrc", 32, "tfrecords = \"bad.tfrecord\"");
    fails(
        &nezha(&["run", bad.to_str().unwrap()], p),
        &["bad.tfrecord", "record 0", "CRC"],
    );
}

fn snapshot(dir: &Path) -> Vec<(PathBuf, Vec<u8>)> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                stack.push(p);
            } else {
                out.push((p.clone(), std::fs::read(&p).unwrap()));
            }
        }
    }
    out.sort();
    out
}

#[test]
fn bad_model_configs_and_checkpoints_are_refused_without_overwriting() {
    let r = Run::new();
    let p = r.path();
    let first = r.pipeline("run", 32, "stop_after = 2");
    ok(&nezha(&["run", first.to_str().unwrap()], p));
    let before = snapshot(&p.join("run"));

    // A model whose vocab size does not match the vocab.
    std::fs::write(p.join("model.json"), MODEL.replace("21128", "21000")).unwrap();
    fails(
        &nezha(&["run", first.to_str().unwrap(), "--resume"], p),
        &["21000", "vocab.txt"],
    );

    // A checkpoint from another config.
    std::fs::write(
        p.join("model.json"),
        MODEL.replace("\"intermediate_size\": 64", "\"intermediate_size\": 48"),
    )
    .unwrap();
    fails(
        &nezha(&["run", first.to_str().unwrap(), "--resume"], p),
        &["another model config"],
    );
    assert_eq!(
        snapshot(&p.join("run")),
        before,
        "a refused run changed the output directory"
    );

    // A truncated checkpoint.
    std::fs::write(p.join("model.json"), MODEL).unwrap();
    let ckpt = p.join("run/checkpoints/step-00000002");
    let weights = std::fs::read_dir(&ckpt)
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|f| f.extension().is_some_and(|e| e == "safetensors"))
        .expect("a safetensors file in the checkpoint");
    let len = std::fs::metadata(&weights).unwrap().len();
    let data = std::fs::read(&weights).unwrap();
    std::fs::write(&weights, &data[..(len / 2) as usize]).unwrap();
    let before = snapshot(&p.join("run"));
    fails(
        &nezha(&["run", first.to_str().unwrap(), "--resume"], p),
        &["step-00000002"],
    );
    assert_eq!(
        snapshot(&p.join("run")),
        before,
        "a refused run changed the output directory"
    );
}
