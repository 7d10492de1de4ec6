//! Pipeline files that panicked `Plan::parse` when fuzzed (fuzz/, target
//! `pipeline_toml`; benches/fuzz.sh). Each is checked here as `nezha run`
//! checks a pipeline file: it must give a plan or an error naming the key,
//! never a panic or an allocation sized by the file.

use std::path::{Path, PathBuf};

use nezha_pipeline::{Plan, RunOptions};

/// A pipeline directory with the tiny vocab and corpus the files name, so
/// checking gets past them to the sections under test.
fn layout() -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    std::fs::create_dir(&data).unwrap();
    std::fs::write(
        data.join("vocab.txt"),
        "[PAD]\n[UNK]\n[CLS]\n[SEP]\n[MASK]\n的\n一\n",
    )
    .unwrap();
    std::fs::write(data.join("corpus.txt"), "一的。\n\n的一。\n").unwrap();
    let file = dir.path().join("pipeline.toml");
    (dir, file)
}

/// A pipeline that reaches every check before a run starts: `instances`
/// is added to its [instances] section, `clean` is a whole section.
fn pipeline(instances: &str, clean: &str) -> String {
    format!(
        r#"
[ingest]
input = "data/corpus.txt"
{clean}
[wordpiece]
vocab = "data/vocab.txt"
[instances]
kind = "streaming"
max_seq_length = 16
{instances}
[masking]
max_predictions_per_seq = 2
[sink]
kind = "tfrecord"
output = "out/a.tfrecord"
"#
    )
}

fn parse(file: &Path, source: &str) -> Result<Plan, String> {
    Plan::parse(file, source, RunOptions::default()).map_err(|e| e.to_string())
}

/// `shuffle_buffer` at i64::MAX: the shuffle buffer reserved all of it up
/// front, a capacity-overflow panic (a billion would have reserved
/// gigabytes). It is a bound, not a size, so the file is valid.
#[test]
fn huge_shuffle_buffer_is_a_bound_not_an_allocation() {
    let (_dir, file) = layout();
    for n in ["9223372036854775807", "1000000000000"] {
        let source = pipeline(&format!("shuffle_buffer = {n}"), "");
        let plan = parse(&file, &source).unwrap_or_else(|e| panic!("{n}: {e}"));
        assert!(
            plan.to_toml().contains(&format!("shuffle_buffer = {n}")),
            "{}",
            plan.to_toml()
        );
    }
}

/// `timeout_s = 1e300`: finite and positive, so it passed the check, and
/// then `Duration::from_secs_f64` panicked on it. Now refused, naming the
/// key, like NaN, infinity, zero and negatives.
#[test]
fn command_timeout_too_large_for_a_duration_is_refused() {
    let (_dir, file) = layout();
    for t in ["1e300", "1.9e19", "inf", "nan", "0.0", "-1.0"] {
        let clean = format!("[clean]\nkind = \"command\"\ncommand = [\"cat\"]\ntimeout_s = {t}\n");
        let err = parse(&file, &pipeline("", &clean))
            .err()
            .unwrap_or_else(|| panic!("timeout_s = {t} was accepted"));
        assert!(
            err.contains("timeout_s") && err.contains("positive number of seconds"),
            "{t}: {err}"
        );
        assert!(err.contains("pipeline.toml"), "{t}: {err}");
    }
    // The largest sensible values still pass.
    let clean = "[clean]\nkind = \"command\"\ncommand = [\"cat\"]\ntimeout_s = 1e9\n";
    parse(&file, &pipeline("", clean)).unwrap();
}
