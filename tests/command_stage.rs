//! `command` stages: a Python cleaner runs from TOML end to end; a program
//! that crashes, hangs or prints something that is not JSON stops the run
//! with a clear error carrying its stderr, a non-zero exit, and no output
//! file, not even a partial one.

use std::path::Path;
use std::time::{Duration, Instant};

use nezha_stages::tfrecord::decode_instance;
use nezha_stages::tfrecord::open_records;
use nezha_stages::Vocab;

mod common;
use common::{nezha, root};

/// A corpus where every third line is spam (an English word the vocab
/// knows, so it would show up among the tokens).
fn corpus(dir: &Path) {
    let sanguo = std::fs::read_to_string(root().join("data/sanguo.txt")).unwrap();
    let mut text = String::new();
    for (i, line) in sanguo
        .lines()
        .filter(|l| !l.trim().is_empty())
        .take(400)
        .enumerate()
    {
        if i % 3 == 0 {
            text.push_str("buy buy buy now\n");
        }
        text.push_str(line);
        text.push('\n');
        if i % 40 == 39 {
            text.push('\n');
        }
    }
    std::fs::write(dir.join("in.txt"), text).unwrap();
    std::fs::copy(root().join("data/vocab.txt"), dir.join("vocab.txt")).unwrap();
}

fn pipeline(dir: &Path, clean: &str) {
    pipeline_masking(dir, clean, "");
}

/// [`pipeline`] with a `[masking]` section.
fn pipeline_masking(dir: &Path, clean: &str, masking: &str) {
    std::fs::write(
        dir.join("p.toml"),
        format!(
            r#"
workers = 2
[ingest]
input = "in.txt"
[clean]
{clean}
[sentences]
kind = "punct"
[wordpiece]
vocab = "vocab.txt"
[instances]
max_seq_length = 64
dupe_factor = 1
{masking}
[sink]
kind = "tfrecord"
output = "out/records.tfrecord"
"#
        ),
    )
    .unwrap();
}

/// Every original token of every record (masks undone).
fn tokens(path: &Path) -> Vec<u32> {
    let mut reader = open_records(path).unwrap();
    let mut buf = Vec::new();
    let mut all = Vec::new();
    while reader.read_record(&mut buf).unwrap() {
        all.extend(decode_instance(&buf, 64, 20).unwrap().original_tokens());
    }
    all
}

const CLEANER: &str = r#"
import json, sys
# Drops spam lines; answers every document, in order.
for line in sys.stdin:
    doc = json.loads(line)
    kept = [l for l in doc["lines"] if "buy" not in l]
    print(json.dumps({"lines": kept}, ensure_ascii=False), flush=True)
"#;

#[test]
fn a_python_cleaner_runs_from_toml() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    corpus(d);
    std::fs::write(d.join("clean.py"), CLEANER).unwrap();
    let vocab = Vocab::load(&root().join("data/vocab.txt")).unwrap();
    let spam = vocab.id("buy").expect("the vocab knows buy");

    // Without the cleaner the spam is there...
    pipeline(d, "kind = \"command\"\ncommand = [\"cat\"]");
    let out = nezha(&["run", "p.toml"], d);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let before = tokens(&d.join("out/records.tfrecord"));
    assert!(before.contains(&spam));

    // ...and with it, gone, with the rest of the text still there.
    pipeline(
        d,
        "kind = \"command\"\ncommand = [\"python3\", \"clean.py\"]\nmax_in_flight = 3",
    );
    let out = nezha(&["run", "p.toml"], d);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let after = tokens(&d.join("out/records.tfrecord"));
    assert!(!after.contains(&spam));
    assert!(
        after.len() > before.len() / 2,
        "{} of {}",
        after.len(),
        before.len()
    );
}

/// Runs a misbehaving program as `[clean]` and checks the failure.
fn fails_clearly(script: &str, extra: &str, needles: &[&str]) {
    fails_clearly_masking(script, extra, "", needles);
}

fn fails_clearly_masking(script: &str, extra: &str, masking: &str, needles: &[&str]) {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    corpus(d);
    std::fs::write(d.join("bad.py"), script).unwrap();
    pipeline_masking(
        d,
        &format!("kind = \"command\"\ncommand = [\"python3\", \"bad.py\"]\n{extra}"),
        masking,
    );
    let t0 = Instant::now();
    let out = nezha(&["run", "p.toml"], d);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "expected failure, stderr: {stderr}");
    assert!(
        t0.elapsed() < Duration::from_secs(60),
        "took {:?}",
        t0.elapsed()
    );
    assert!(
        stderr.contains("[clean] command [\"python3\", \"bad.py\"]"),
        "{stderr}"
    );
    for n in needles {
        assert!(stderr.contains(n), "stderr lacks {n:?}: {stderr}");
    }
    // Nothing written, nothing half-written.
    let out_dir = d.join("out");
    let left: Vec<_> = std::fs::read_dir(&out_dir)
        .map(|r| r.map(|e| e.unwrap().file_name()).collect())
        .unwrap_or_default();
    assert!(left.is_empty(), "left behind: {left:?}");
}

#[test]
fn a_crashing_program_is_reported_with_its_stderr() {
    fails_clearly(
        r#"
import json, sys
for n, line in enumerate(sys.stdin):
    if n == 2:
        sys.exit("cleaner: cannot handle this document")
    print(json.dumps({"lines": json.loads(line)["lines"]}), flush=True)
"#,
        "",
        &[
            "closed its output after answering",
            "cannot handle this document",
            "exit status: 1",
        ],
    );
}

/// Dynamic masking gathers every worker's documents on every worker: one
/// worker's failure must still end the run rather than leave the others
/// waiting for its documents.
#[test]
fn a_program_failing_on_one_worker_of_a_gathering_run_ends_it() {
    fails_clearly_masking(
        r#"
import json, sys
for line in sys.stdin:
    doc = json.loads(line)
    # Only the worker that holds document 5 meets it.
    if doc["index"] == 5:
        sys.exit("cleaner: cannot handle this document")
    print(json.dumps({"lines": doc["lines"]}), flush=True)
"#,
        "",
        "[masking]\nkind = \"dynamic\"\nepochs = 2",
        &["cannot handle this document"],
    );
}

#[test]
fn a_hanging_program_times_out() {
    fails_clearly(
        r#"
import sys, time
print("cleaner: thinking", file=sys.stderr, flush=True)
sys.stdin.readline()
time.sleep(600)
"#,
        // Long enough for Python to start and print on a loaded machine.
        "timeout_s = 5",
        &["no answer within 5s", "cleaner: thinking"],
    );
}

#[test]
fn a_program_printing_invalid_json_is_quoted() {
    fails_clearly(
        r#"
import sys
for line in sys.stdin:
    print("cleaned!", flush=True)
"#,
        "",
        &["answer line 1 is malformed", "\"cleaned!\""],
    );
}
