//! `inspect` over the TensorFlow-written fixture and over damaged files.

use std::path::{Path, PathBuf};

use nezha_stages::tfrecord::{inspect, InspectSummary};
use nezha_stages::Vocab;

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../tests/fixtures/tfrecord")
        .join(name)
}

fn vocab() -> Vocab {
    Vocab::load(&Path::new(env!("CARGO_MANIFEST_DIR")).join("../data/vocab.txt")).unwrap()
}

fn run(path: &Path, vocab: Option<&Vocab>, show: usize) -> (InspectSummary, String) {
    let mut out = Vec::new();
    let summary = inspect(path, vocab, show, &mut out).unwrap_or_else(|e| panic!("{e}"));
    (summary, String::from_utf8(out).unwrap())
}

#[test]
fn counts_records_and_bytes_of_plain_and_gzip_files() {
    let size = std::fs::metadata(fixture("tf_reference.tfrecord"))
        .unwrap()
        .len();
    let expected = InspectSummary {
        records: 4,
        payload_bytes: size - 4 * 16,
        stream_bytes: size,
    };
    for name in ["tf_reference.tfrecord", "tf_reference.tfrecord.gz"] {
        let (summary, out) = run(&fixture(name), None, 0);
        assert_eq!(summary, expected, "{name}");
        assert!(!out.contains("record 0"), "show 0 prints no example: {out}");
        assert!(
            out.contains(&format!(
                "4 records, {} example bytes, {size} framed bytes",
                size - 64
            )),
            "{out}"
        );
    }
}

#[test]
fn shows_features_and_tokens_of_the_first_examples() {
    let (_, out) = run(&fixture("tf_reference.tfrecord"), Some(&vocab()), 1);
    assert!(
        out.contains("record 0 at byte offset 0 (254 bytes):"),
        "{out}"
    );
    assert!(
        out.contains("  masked_lm_weights (float_list, 4): 1 1 0 0\n"),
        "{out}"
    );
    assert!(
        out.contains("  next_sentence_labels (int64_list, 1): 0\n"),
        "{out}"
    );
    assert!(
        out.contains("  input_ids (int64_list, 16): 101 2769 103 704 1744 102 791 1921 103 3698 1962 102 0 0 0 0\n"),
        "{out}"
    );
    assert!(
        out.contains("  tokens: [CLS] 我 [MASK] 中 国 [SEP] 今 天 [MASK] 气 好 [SEP]\n"),
        "{out}"
    );
    assert!(out.contains("  masked labels: 2:爱 8:天\n"), "{out}");
    assert!(!out.contains("record 1 "), "only one example shown: {out}");
}

#[test]
fn without_vocab_prints_no_tokens() {
    let (_, out) = run(&fixture("tf_reference.tfrecord"), None, 4);
    assert!(out.contains("record 3 at byte offset"), "{out}");
    assert!(!out.contains("tokens:"), "{out}");
}

#[test]
fn damaged_file_fails_naming_record_and_offset() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("damaged.tfrecord");
    let mut bytes = std::fs::read(fixture("tf_reference.tfrecord")).unwrap();
    // Record 0 is 254 bytes, so record 1 starts at 270; damage its data.
    bytes[270 + 12 + 40] ^= 1;
    std::fs::write(&path, &bytes).unwrap();
    let err = inspect(&path, None, 0, &mut Vec::new())
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("damaged.tfrecord: record 1 at byte offset 270: bad data CRC"),
        "{err}"
    );
}

#[test]
fn record_that_is_not_an_example_is_reported() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("junk.tfrecord");
    let mut w = nezha_stages::tfrecord::RecordWriter::new(Vec::new());
    w.write_record(b"").unwrap();
    w.write_record(&[0x0a, 0x7f]).unwrap();
    std::fs::write(&path, w.into_inner()).unwrap();
    let err = inspect(&path, None, 0, &mut Vec::new())
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("junk.tfrecord: record 1 at byte offset 16: not a tf.train.Example"),
        "{err}"
    );
}
