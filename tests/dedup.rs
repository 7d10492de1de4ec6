//! `[dedup]`: exact duplicates planted across files are dropped, exactly
//! those, whatever the number of workers, and the run says how many.

use std::collections::BTreeSet;
use std::path::Path;
use std::process::{Command, Output};

mod common;
use common::{nezha, root};

/// Document `n` of the corpus: three sentences nobody else has.
fn doc(n: usize) -> Vec<String> {
    (0..3)
        .map(|s| format!("第{n}篇第{s}句，曹操与刘备论英雄{n}。关羽{s}温酒斩华雄。"))
        .collect()
}

/// Writes the files (each a list of documents, blank lines between) and
/// returns, for each document, its origin (`file:line`) and its text.
fn write_corpus(dir: &Path, files: &[(&str, Vec<Vec<String>>)]) -> Vec<(String, String)> {
    let mut docs = Vec::new();
    for (name, file_docs) in files {
        let path = dir.join(name);
        let mut text = String::new();
        let mut line = 1;
        for d in file_docs {
            docs.push((format!("{name}:{line}"), d.join(" ")));
            for l in d {
                text.push_str(l);
                text.push('\n');
                line += 1;
            }
            text.push('\n');
            line += 1;
        }
        std::fs::write(&path, text).unwrap();
    }
    docs
}

/// The origins of the documents the `sentences` stage received (a
/// `command` stage that logs its input and answers it unchanged).
fn seen_origins(dir: &Path) -> BTreeSet<String> {
    let mut seen = BTreeSet::new();
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.file_name()
            .unwrap()
            .to_string_lossy()
            .starts_with("seen.")
        {
            for line in std::fs::read_to_string(&p).unwrap().lines() {
                let v: serde_json::Value = serde_json::from_str(line).unwrap();
                assert!(
                    seen.insert(v["origin"].as_str().unwrap().to_string()),
                    "a document reached the stage twice: {line}"
                );
            }
            std::fs::remove_file(&p).unwrap();
        }
    }
    seen
}

/// A pipeline whose sentence stage logs the documents it receives.
fn write_pipeline(dir: &Path, input: &str, dedup: &str) {
    std::fs::copy(root().join("data/vocab.txt"), dir.join("vocab.txt")).unwrap();
    let toml = format!(
        r#"
seed = 7
[ingest]
input = "{input}"
{dedup}
[sentences]
kind = "command"
command = ["sh", "-c", "exec tee seen.$$.log"]
max_in_flight = 4
[wordpiece]
vocab = "vocab.txt"
[instances]
max_seq_length = 32
dupe_factor = 1
[sink]
kind = "tfrecord"
output = "out.tfrecord"
"#
    );
    std::fs::write(dir.join("p.toml"), toml).unwrap();
}

#[test]
fn planted_duplicates_across_files_are_dropped_and_counted() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let mut a: Vec<Vec<String>> = (0..10).map(doc).collect();
    // A duplicate inside the first file.
    a.push(doc(2));
    let mut b: Vec<Vec<String>> = (10..20).map(doc).collect();
    // Document 3 again, with other spaces and line breaks.
    let three = doc(3);
    b.insert(
        4,
        vec![
            format!("  {}  \t {}", three[0], three[1]),
            format!("\u{3000}{}\t", three[2]),
        ],
    );
    b.push(doc(7));
    let mut c: Vec<Vec<String>> = (20..25).map(doc).collect();
    c.insert(0, doc(15));
    c.insert(2, doc(3));
    // Nearly the same is not the same.
    let mut near = doc(4);
    near[2].push('！');
    c.push(near);
    let docs = write_corpus(d, &[("a.txt", a), ("b.txt", b), ("c.txt", c)]);
    assert_eq!(docs.len(), 31);

    // First occurrences by normalized text, in corpus order.
    let mut first = BTreeSet::new();
    let mut expected = BTreeSet::new();
    for (origin, text) in &docs {
        let words: Vec<&str> = text.split_whitespace().collect();
        if first.insert(words.join(" ")) {
            expected.insert(origin.clone());
        }
    }
    assert_eq!(expected.len(), 26, "5 planted duplicates");

    write_pipeline(
        d,
        "a.txt,b.txt,c.txt",
        "[dedup]\nkind = \"exact\"\nlead_documents = 3",
    );
    for workers in ["1", "2", "3"] {
        let out = nezha(&["run", "p.toml", "--workers", workers], d);
        let stdout = String::from_utf8_lossy(&out.stdout);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "{workers} workers: {stderr}");
        assert!(
            stdout.contains("dedup: kept 26 documents, dropped 5 exact duplicates"),
            "{workers} workers: {stdout}"
        );
        assert_eq!(seen_origins(d), expected, "{workers} workers");
        assert!(d.join("out.tfrecord").exists());
    }
}

#[test]
fn without_dedup_every_document_passes() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let docs = write_corpus(d, &[("a.txt", vec![doc(1), doc(2), doc(1)])]);
    write_pipeline(d, "a.txt", "");
    let out = nezha(&["run", "p.toml"], d);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(!String::from_utf8_lossy(&out.stdout).contains("dedup:"));
    let all: BTreeSet<String> = docs.into_iter().map(|(o, _)| o).collect();
    assert_eq!(seen_origins(d), all);
}

/// Runs `nezha run p.toml` in `dir`, failing the test if it has not ended
/// within a minute (a deadlock would hang it forever).
fn run_within_a_minute(dir: &Path) -> Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_nezha"))
        .args(["run", "p.toml"])
        .current_dir(dir)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let t0 = std::time::Instant::now();
    while child.try_wait().unwrap().is_none() {
        if t0.elapsed() > std::time::Duration::from_secs(60) {
            child.kill().unwrap();
            panic!("the run hung");
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    child.wait_with_output().unwrap()
}

fn checking_pipeline(dir: &Path, input: &str, dedup: &str, masking: &str) {
    std::fs::copy(root().join("data/vocab.txt"), dir.join("vocab.txt")).unwrap();
    let toml = format!(
        r#"
seed = 3
workers = 2
[ingest]
input = "{input}"
{dedup}
[wordpiece]
vocab = "vocab.txt"
[instances]
max_seq_length = 32
dupe_factor = 1
shuffle_buffer = 8
reservoir_documents = 4
[masking]
{masking}
[batching]
batch_size = 4
[sink]
kind = "check"
"#
    );
    std::fs::write(dir.join("p.toml"), toml).unwrap();
}

/// Every document of worker 0's share is a copy of the first one, so
/// worker 0 has nothing to give while worker 1 fills its channel, and the
/// consumer, which takes batches from the workers in turn, waits on worker
/// 0. The dedup reader must still decide worker 0's documents (it runs
/// ahead of the furthest worker, not the slowest).
#[test]
fn a_worker_whose_share_is_all_duplicates_does_not_deadlock() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let docs: Vec<Vec<String>> = (0..4000)
        .map(|i| if i % 2 == 0 { doc(0) } else { doc(i) })
        .collect();
    write_corpus(d, &[("a.txt", docs)]);
    checking_pipeline(d, "a.txt", "[dedup]\nlead_documents = 2", "");
    let out = run_within_a_minute(d);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout.contains("dedup: kept 2001 documents, dropped 1999 exact duplicates"),
        "{stdout}"
    );
}

/// With dynamic masking the corpus is read twice (two epochs) and every
/// worker's share is gathered on every worker; dedup must drop the same
/// documents in both epochs. A corpus
/// that is the bundled one twice then gives exactly the batches of the
/// bundled one without dedup.
#[test]
fn dedup_under_dynamic_masking_drops_the_same_documents_every_epoch() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let sanguo = std::fs::read_to_string(root().join("data/sanguo.txt")).unwrap();
    let head: String = sanguo
        .split("\n\n")
        .take(12)
        .collect::<Vec<_>>()
        .join("\n\n");
    std::fs::write(d.join("once.txt"), format!("{head}\n\n")).unwrap();
    std::fs::write(d.join("twice.txt"), format!("{head}\n\n{head}\n\n")).unwrap();
    let masking = "kind = \"dynamic\"\nepochs = 2";
    let summary = |out: &Output| -> String {
        let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let line = stdout.lines().find(|l| l.starts_with("checked")).unwrap();
        // Everything but the timing.
        line.split("; ").take(1).collect::<Vec<_>>().join("")
            + &stdout
                .lines()
                .filter(|l| l.starts_with("masked"))
                .collect::<String>()
    };
    checking_pipeline(d, "once.txt", "", masking);
    let once = summary(&run_within_a_minute(d));
    checking_pipeline(d, "twice.txt", "[dedup]", masking);
    let out = run_within_a_minute(d);
    assert!(String::from_utf8_lossy(&out.stdout).contains("dropped 12 exact duplicates"));
    assert_eq!(summary(&out), once);
}

/// `kind = "minhash"` also drops a document with a few characters changed;
/// `exact` keeps it.
#[test]
fn minhash_drops_near_duplicates_too() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let sanguo = std::fs::read_to_string(root().join("data/sanguo.txt")).unwrap();
    let text: Vec<char> = sanguo.chars().filter(|c| !c.is_whitespace()).collect();
    let chunk =
        |i: usize| -> String { text[2000 + i * 400..2000 + (i + 1) * 400].iter().collect() };
    let a: Vec<Vec<String>> = (0..20).map(|i| vec![chunk(i)]).collect();
    let mut near: Vec<char> = chunk(5).chars().collect();
    near[100] = '甲';
    near[300] = '乙';
    let b = vec![
        vec![chunk(20)],
        vec![near.into_iter().collect()],
        vec![chunk(21)],
        // An exact copy, with other whitespace around it.
        vec![format!("\u{3000} {}\t", chunk(7))],
    ];
    let docs = write_corpus(d, &[("a.txt", a), ("b.txt", b)]);
    let origins: Vec<String> = docs.into_iter().map(|(o, _)| o).collect();
    for (kind, dropped) in [("exact", vec![23]), ("minhash", vec![21, 23])] {
        write_pipeline(
            d,
            "a.txt,b.txt",
            &format!("[dedup]\nkind = \"{kind}\"\nlead_documents = 5"),
        );
        let out = nezha(&["run", "p.toml", "--workers", "2"], d);
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let expected: BTreeSet<String> = origins
            .iter()
            .enumerate()
            .filter(|(i, _)| !dropped.contains(i))
            .map(|(_, o)| o.clone())
            .collect();
        assert_eq!(seen_origins(d), expected, "{kind}");
        let counts = format!(
            "kept {} documents, dropped {}",
            expected.len(),
            dropped.len()
        );
        assert!(stdout.contains(&counts), "{kind}: {stdout}");
    }
}
