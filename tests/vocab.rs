//! `nezha vocab` builds a vocab the rest of the pipeline can use.

use std::collections::HashSet;
use std::path::PathBuf;
use std::process::Command;
use std::sync::Arc;

use nezha_stages::vocab::Vocab;
use nezha_stages::wordpiece::WordPiece;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

#[test]
fn builds_a_usable_vocab_with_special_tokens_first() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("vocab.txt");
    let corpus = root().join("data/brown-press.txt");
    let status = Command::new(env!("CARGO_BIN_EXE_nezha"))
        .args([
            "vocab",
            "--input",
            corpus.to_str().unwrap(),
            "--output",
            out.to_str().unwrap(),
            "--vocab-size",
            "2000",
        ])
        .output()
        .unwrap();
    assert!(
        status.status.success(),
        "{}",
        String::from_utf8_lossy(&status.stderr)
    );

    let text = std::fs::read_to_string(&out).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(&lines[..5], &["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]);
    assert!(
        lines.len() <= 2000 && lines.len() > 1000,
        "{} tokens",
        lines.len()
    );
    assert_eq!(
        lines.iter().collect::<HashSet<_>>().len(),
        lines.len(),
        "duplicate tokens"
    );
    assert!(
        lines.iter().any(|l| l.starts_with("##")),
        "no continuation pieces"
    );

    // The reference tokenizer with this vocab covers the corpus it came from.
    let vocab = Arc::new(Vocab::load(&out).unwrap());
    let tok = WordPiece::new(vocab.clone(), true).unwrap();
    let corpus_text = std::fs::read_to_string(&corpus).unwrap();
    let (mut total, mut unknown) = (0usize, 0usize);
    for line in corpus_text.lines().take(2000) {
        let ids = tok.tokenize(line);
        total += ids.len();
        unknown += ids.iter().filter(|&&i| i == tok.unk()).count();
    }
    assert!(total > 10_000);
    assert!(
        (unknown as f64) < 0.01 * total as f64,
        "{unknown} of {total} tokens unknown"
    );
}

#[test]
fn a_missing_corpus_is_named_and_nothing_is_written() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("vocab.txt");
    let res = Command::new(env!("CARGO_BIN_EXE_nezha"))
        .args([
            "vocab",
            "--input",
            "/no/such/corpus.txt",
            "--output",
            out.to_str().unwrap(),
        ])
        .output()
        .unwrap();
    assert!(!res.status.success());
    assert!(String::from_utf8_lossy(&res.stderr).contains("/no/such/corpus.txt"));
    assert!(!out.exists());
}
