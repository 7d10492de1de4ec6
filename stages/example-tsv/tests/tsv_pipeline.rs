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

#[test]
fn a_tsv_corpus_runs_from_toml() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let sanguo = std::fs::read_to_string(data().join("sanguo.txt")).unwrap();
    let lines: Vec<&str> = sanguo.lines().filter(|l| !l.trim().is_empty()).collect();
    let mut tsv = String::from("id\tlang\tbody\n");
    for (i, chunk) in lines.chunks(8).take(60).enumerate() {
        tsv.push_str(&format!("{i}\tzh\t{}\n", chunk.join("\\n")));
        // English rows the filter must leave out.
        tsv.push_str(&format!("{i}e\ten\tbuy buy buy now.\\nbuy again.\n"));
    }
    std::fs::write(d.join("corpus.tsv"), tsv).unwrap();
    std::fs::copy(data().join("vocab.txt"), d.join("vocab.txt")).unwrap();
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
