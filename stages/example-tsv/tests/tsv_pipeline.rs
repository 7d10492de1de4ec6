//! The plugin end to end: `nezha-tsv run` reads a pipeline file that names
//! `[ingest] kind = "tsv"`, and only the rows the filter keeps reach the
//! records.

use std::path::{Path, PathBuf};
use std::process::Command;

use nezha_stages::tfrecord::{decode_instance, open_records};
use nezha_stages::Vocab;

fn data() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../data")
}

fn original_tokens(path: &Path) -> Vec<u32> {
    let mut reader = open_records(path).unwrap();
    let mut buf = Vec::new();
    let mut all = Vec::new();
    while reader.read_record(&mut buf).unwrap() {
        all.extend(decode_instance(&buf, 64, 20).unwrap().original_tokens());
    }
    all
}

/// Writes `corpus.tsv` (columns id, lang, body: `rows` rows of the bundled
/// corpus in Chinese, each followed by an English row) and the vocab into
/// `d`.
fn write_corpus(d: &Path, rows: usize) {
    let sanguo = std::fs::read_to_string(data().join("sanguo.txt")).unwrap();
    let lines: Vec<&str> = sanguo.lines().filter(|l| !l.trim().is_empty()).collect();
    let mut tsv = String::from("id\tlang\tbody\n");
    for (i, chunk) in lines.chunks(8).take(rows).enumerate() {
        tsv.push_str(&format!("{i}\tzh\t{}\n", chunk.join("\\n")));
        tsv.push_str(&format!("{i}e\ten\tbuy buy buy now.\\nbuy again.\n"));
    }
    std::fs::write(d.join("corpus.tsv"), tsv).unwrap();
    std::fs::copy(data().join("vocab.txt"), d.join("vocab.txt")).unwrap();
}

#[test]
fn a_tsv_corpus_runs_from_toml() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    // The English rows are for the filter to leave out.
    write_corpus(d, 60);
    let pipeline = r#"
workers = 2
[ingest]
kind = "tsv"
input = "corpus.tsv"
column = "body"
where = { lang = "zh" }
[sentences]
kind = "punct"
[wordpiece]
vocab = "vocab.txt"
[instances]
max_seq_length = 64
dupe_factor = 1
[sink]
kind = "tfrecord"
output = "records.tfrecord"
"#;
    std::fs::write(d.join("p.toml"), pipeline).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_nezha-tsv"))
        .args(["run", "p.toml"])
        .current_dir(d)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let tokens = original_tokens(&d.join("records.tfrecord"));
    assert!(tokens.len() > 1000, "{} tokens", tokens.len());
    let vocab = Vocab::load(&d.join("vocab.txt")).unwrap();
    assert!(
        !tokens.contains(&vocab.id("buy").unwrap()),
        "an English row got in"
    );

    // A key the plugin does not know is refused with its line.
    std::fs::write(d.join("bad.toml"), pipeline.replace("column =", "colum =")).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_nezha-tsv"))
        .args(["run", "bad.toml"])
        .current_dir(d)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        stderr.contains("bad.toml:6") && stderr.contains("colum"),
        "{stderr}"
    );
}

/// `checked N batches: S sequences` from each line that says it.
fn checked(stdout: &str) -> Vec<(u64, u64)> {
    stdout
        .lines()
        .filter_map(|l| {
            let rest = &l[l.find("checked ")? + "checked ".len()..];
            let mut words = rest.split_whitespace();
            let batches = words.next()?.parse().ok()?;
            let sequences = words.nth(1)?.parse().ok()?;
            Some((batches, sequences))
        })
        .collect()
}

#[test]
fn the_plugin_binary_launches_two_processes() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    write_corpus(d, 80);
    std::fs::write(
        d.join("p.toml"),
        "workers = 1\n[ingest]\nkind = \"tsv\"\ninput = \"corpus.tsv\"\ncolumn = \"body\"\n\
         [sentences]\nkind = \"punct\"\n[wordpiece]\nvocab = \"vocab.txt\"\n\
         [instances]\nmax_seq_length = 64\ndupe_factor = 1\n\
         [batching]\nbatch_size = 4\n[sink]\nkind = \"check\"\n",
    )
    .unwrap();
    let run = |args: &[&str]| {
        let out = Command::new(env!("CARGO_BIN_EXE_nezha-tsv"))
            .args(args)
            .current_dir(d)
            .output()
            .unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
        assert!(
            out.status.success(),
            "{stdout}{}",
            String::from_utf8_lossy(&out.stderr)
        );
        stdout
    };
    // Two processes of one worker each run the slots one process of two
    // workers runs: together they check the same batches.
    let launched = run(&[
        "launch",
        "--nproc-per-node",
        "2",
        "--master-port",
        "29731",
        "p.toml",
    ]);
    let ranks = checked(&launched);
    assert_eq!(ranks.len(), 2, "{launched}");
    assert!(launched.contains("rank 0/2: checked"), "{launched}");
    assert!(
        launched.contains("[rank 1] rank 1/2: checked"),
        "{launched}"
    );
    let alone = checked(&run(&["run", "--workers", "2", "p.toml"]));
    assert_eq!(alone.len(), 1);
    let sum = ranks
        .iter()
        .fold((0, 0), |(b, s), (rb, rs)| (b + rb, s + rs));
    assert_eq!(sum, alone[0]);
    assert!(alone[0].1 > 100, "{alone:?}");
}
