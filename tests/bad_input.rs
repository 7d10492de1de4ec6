//! Bad input gets one clear message naming what is wrong and where, a
//! non-zero exit, and no output file (not even a partial one).

use std::path::Path;
use std::process::Output;

mod common;
use common::{nezha, root};

/// Asserts failure with a message containing every `needle`, and that
/// `dir` holds nothing but `keep`.
fn assert_fails(out: &Output, needles: &[&str], dir: &Path, keep: &[&str]) {
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "expected failure, stderr: {stderr}");
    for n in needles {
        assert!(stderr.contains(n), "stderr lacks {n:?}: {stderr}");
    }
    assert_eq!(
        stderr.trim().lines().count(),
        1,
        "one message expected: {stderr}"
    );
    let mut left: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    left.sort();
    let mut keep: Vec<String> = keep.iter().map(|s| s.to_string()).collect();
    keep.sort();
    assert_eq!(left, keep, "files left behind");
}

struct Case {
    dir: tempfile::TempDir,
}

impl Case {
    fn new(corpus: &[u8]) -> Case {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("in.txt"), corpus).unwrap();
        std::fs::copy(root().join("data/vocab.txt"), dir.path().join("vocab.txt")).unwrap();
        Case { dir }
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }

    fn drop_in(&self, extra: &[&str]) -> Output {
        let mut args = vec![
            "create_pretraining_data",
            "--input_file=in.txt",
            "--output_file=out.tfrecord",
            "--vocab_file=vocab.txt",
        ];
        args.extend_from_slice(extra);
        nezha(&args, self.path())
    }
}

const GOOD: &[u8] = "滚滚长江东逝水，浪花淘尽英雄。\n是非成败转头空。\n青山依旧在，几度夕阳红。\n\n白发渔樵江渚上。\n惯看秋月春风。\n".as_bytes();

#[test]
fn good_input_writes_the_file() {
    let c = Case::new(GOOD);
    let out = c.drop_in(&[]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(c.path().join("out.tfrecord").exists());
    assert!(String::from_utf8_lossy(&out.stdout).contains("out.tfrecord"));
}

#[test]
fn invalid_utf8_names_file_and_byte_offset() {
    let mut corpus = GOOD.to_vec();
    let offset = corpus.len();
    corpus.extend_from_slice(b"more\xfftext\n");
    let c = Case::new(&corpus);
    let out = c.drop_in(&[]);
    let at = format!("byte offset {}", offset + 4);
    assert_fails(
        &out,
        &["in.txt", "invalid UTF-8", &at],
        c.path(),
        &["in.txt", "vocab.txt"],
    );
}

#[test]
fn missing_input_file_is_named() {
    let c = Case::new(GOOD);
    let out = nezha(
        &[
            "create_pretraining_data",
            "--input_file=nope.txt",
            "--output_file=out.tfrecord",
            "--vocab_file=vocab.txt",
        ],
        c.path(),
    );
    assert_fails(
        &out,
        &["nope.txt", "does not exist"],
        c.path(),
        &["in.txt", "vocab.txt"],
    );
}

#[test]
fn empty_corpus_is_an_error() {
    let c = Case::new(b"\n  \n\x00\n\n");
    let out = c.drop_in(&[]);
    assert_fails(&out, &["no instances"], c.path(), &["in.txt", "vocab.txt"]);
}

#[test]
fn vocab_without_special_tokens_is_refused() {
    let c = Case::new(GOOD);
    std::fs::write(
        c.path().join("vocab.txt"),
        "[PAD]\n[UNK]\n[CLS]\n[SEP]\n的\n",
    )
    .unwrap();
    let out = c.drop_in(&[]);
    assert_fails(
        &out,
        &["vocab.txt", "[MASK]"],
        c.path(),
        &["in.txt", "vocab.txt"],
    );
}

#[test]
fn too_small_max_seq_length_is_refused() {
    let c = Case::new(GOOD);
    let out = c.drop_in(&["--max_seq_length=4"]);
    assert_fails(
        &out,
        &["--max_seq_length=4"],
        c.path(),
        &["in.txt", "vocab.txt"],
    );
}

#[test]
fn probabilities_outside_unit_interval_are_refused() {
    let c = Case::new(GOOD);
    let out = c.drop_in(&["--masked_lm_prob=1.5"]);
    assert_fails(
        &out,
        &["--masked_lm_prob=1.5", "[0, 1]"],
        c.path(),
        &["in.txt", "vocab.txt"],
    );
    let out = c.drop_in(&["--short_seq_prob=-0.1"]);
    assert_fails(
        &out,
        &["--short_seq_prob=-0.1"],
        c.path(),
        &["in.txt", "vocab.txt"],
    );
}

#[test]
fn unwritable_output_path_is_named() {
    let c = Case::new(GOOD);
    // A regular file cannot be a directory, even for root.
    let out = c.drop_in(&["--output_file=in.txt/out.tfrecord"]);
    assert_fails(
        &out,
        &["in.txt/out.tfrecord"],
        c.path(),
        &["in.txt", "vocab.txt"],
    );
}

fn pipeline(c: &Case, toml: &str) -> Output {
    std::fs::write(c.path().join("p.toml"), toml).unwrap();
    nezha(&["run", "p.toml"], c.path())
}

const PIPELINE: &str = r#"seed = 1
workers = 1

[ingest]
input = "in.txt"

[wordpiece]
vocab = "vocab.txt"

[instances]
max_seq_length = 32
dupe_factor = 2

[masking]
masked_lm_prob = 0.15
max_predictions_per_seq = 5

[sink]
kind = "tfrecord"
output = "out.tfrecord"
"#;

#[test]
fn the_pipeline_file_runs() {
    let c = Case::new(GOOD);
    let out = pipeline(&c, PIPELINE);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(c.path().join("out.tfrecord").exists());
}

#[test]
fn pipeline_errors_name_file_line_and_key() {
    let keep = ["in.txt", "vocab.txt", "p.toml"];
    let c = Case::new(GOOD);
    let out = pipeline(
        &c,
        &PIPELINE.replace("dupe_factor = 2", "dupe_factor = 2\nkind = \"magic\""),
    );
    assert_fails(
        &out,
        &["p.toml:13:", "unknown kind \"magic\"", "streaming"],
        c.path(),
        &keep,
    );

    let out = pipeline(
        &c,
        &PIPELINE.replace("masked_lm_prob = 0.15", "masked_lm_prob = 1.15"),
    );
    assert_fails(
        &out,
        &["p.toml:15:", "masked_lm_prob", "[0, 1]"],
        c.path(),
        &keep,
    );

    let out = pipeline(&c, &PIPELINE.replace("dupe_factor = 2", "dupe_factr = 2"));
    assert_fails(&out, &["p.toml:12:", "dupe_factr"], c.path(), &keep);

    let out = pipeline(
        &c,
        &PIPELINE.replace("max_seq_length = 32", "max_seq_length = \"long\""),
    );
    assert_fails(&out, &["p.toml:11:", "max_seq_length"], c.path(), &keep);

    let out = pipeline(
        &c,
        &PIPELINE.replace("vocab = \"vocab.txt\"", "vocab_file = \"vocab.txt\""),
    );
    assert_fails(&out, &["p.toml:8:", "vocab"], c.path(), &keep);

    let out = pipeline(&c, &PIPELINE.replace("[masking]", "[maskin]"));
    assert_fails(
        &out,
        &["p.toml:14:", "unknown section [maskin]"],
        c.path(),
        &keep,
    );

    let out = pipeline(
        &c,
        &PIPELINE.replace("max_seq_length = 32", "max_seq_length = 4"),
    );
    assert_fails(&out, &["p.toml:11:", "max_seq_length"], c.path(), &keep);
}

/// Runs `nezha ARGS` in the case's directory with a file-size limit of
/// `kib` KiB: a write past it fails as on a full disk.
fn limited(c: &Case, kib: u64, args: &[&str]) -> Output {
    std::process::Command::new("bash")
        .arg("-c")
        .arg(format!("ulimit -f {kib} && exec \"$0\" \"$@\""))
        .arg(env!("CARGO_BIN_EXE_nezha"))
        .args(args)
        .current_dir(c.path())
        .output()
        .unwrap()
}

/// A TFRecord write that fails halfway (the file-size limit, as a full
/// disk) names the file and the OS error and leaves no partial file, from
/// the drop-in command and from a pipeline's sink alike.
#[test]
fn a_failed_tfrecord_write_leaves_no_partial_file() {
    let corpus = std::fs::read_to_string(root().join("data/sanguo.txt")).unwrap();
    let part: String = corpus.chars().take(60_000).collect();
    let c = Case::new(part.as_bytes());
    let out = limited(
        &c,
        64,
        &[
            "create_pretraining_data",
            "--input_file=in.txt",
            "--output_file=out.tfrecord",
            "--vocab_file=vocab.txt",
        ],
    );
    assert_fails(
        &out,
        &["out.tfrecord", "File too large"],
        c.path(),
        &["in.txt", "vocab.txt"],
    );
    std::fs::write(c.path().join("p.toml"), PIPELINE).unwrap();
    let out = limited(&c, 64, &["run", "p.toml"]);
    assert_fails(
        &out,
        &["out.tfrecord", "File too large"],
        c.path(),
        &["in.txt", "p.toml", "vocab.txt"],
    );
}
