//! Parity of the `wordpiece` stage with the reference BERT tokenizer, against
//! the fixtures `scripts/fixtures/tokenizer.py` makes with bert-tensorflow's
//! own `tokenization.py` under Python 3.11.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use nezha_stages::wordpiece::{BasicTokenizer, WordPiece};
use nezha_stages::Vocab;
use serde_json::Value;

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn fixture(name: &str) -> Vec<Value> {
    let path = repo().join("tests/fixtures/tokenizer").join(name);
    let file = std::fs::File::open(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    BufReader::new(flate2::read::GzDecoder::new(file))
        .lines()
        .enumerate()
        .map(|(n, line)| {
            let line = line.unwrap_or_else(|e| panic!("{}:{}: {e}", path.display(), n + 1));
            serde_json::from_str(&line)
                .unwrap_or_else(|e| panic!("{}:{}: {e}", path.display(), n + 1))
        })
        .collect()
}

fn tokenizer(vocab: &str, lower: bool) -> WordPiece {
    let vocab = Vocab::load(&repo().join("data").join(vocab)).unwrap();
    WordPiece::new(Arc::new(vocab), lower).unwrap()
}

fn ids(v: &Value) -> Vec<u32> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_u64().unwrap() as u32)
        .collect()
}

fn strings(v: &Value) -> Vec<String> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_str().unwrap().to_string())
        .collect()
}

/// Lines as Python's text-mode `readline()` returns them (universal
/// newlines), without their line ends.
fn python_lines(text: &str) -> Vec<&str> {
    let mut lines = Vec::new();
    let mut rest = text;
    while !rest.is_empty() {
        match rest.find(['\n', '\r']) {
            None => {
                lines.push(rest);
                break;
            }
            Some(i) => {
                lines.push(&rest[..i]);
                let skip = if rest[i..].starts_with("\r\n") { 2 } else { 1 };
                rest = &rest[i + skip..];
            }
        }
    }
    lines
}

/// Python's `str.strip()`.
fn py_strip(s: &str) -> &str {
    s.trim_matches(|c: char| c.is_whitespace() || ('\u{1c}'..='\u{1f}').contains(&c))
}

fn describe(t: &WordPiece, ids: &[u32]) -> String {
    let tokens: Vec<&str> = ids.iter().map(|&i| t.token(i)).collect();
    format!("{tokens:?}")
}

/// Where two id lists first differ, with the tokens around it.
fn diff(t: &WordPiece, want: &[u32], got: &[u32]) -> String {
    let at = want.iter().zip(got).take_while(|(a, b)| a == b).count();
    let from = at.saturating_sub(3);
    format!(
        "first difference at token {at} of {} (we give {}):\n    reference: ...{}\n    ours:      ...{}",
        want.len(),
        got.len(),
        describe(t, &want[from..want.len().min(at + 5)]),
        describe(t, &got[from..got.len().min(at + 5)]),
    )
}

fn check_corpus(fixture_name: &str, corpus: &str, vocab: &str) {
    let t = tokenizer(vocab, true);
    let text = std::fs::read_to_string(repo().join("data").join(corpus)).unwrap();
    let lines = python_lines(&text);
    let rows = fixture(fixture_name);
    assert_eq!(
        lines.len(),
        rows.len(),
        "data/{corpus} has {} lines, the fixture {}",
        lines.len(),
        rows.len()
    );
    let mut failures = Vec::new();
    let mut tokens = 0;
    for (n, (line, row)) in lines.iter().zip(&rows).enumerate() {
        assert_eq!(
            row["line"].as_u64(),
            Some(n as u64),
            "{fixture_name}: rows out of order"
        );
        let want = ids(&row["ids"]);
        let got = t.tokenize(py_strip(line));
        tokens += want.len();
        if got != want {
            failures.push(format!(
                "data/{corpus}:{}: {:?}\n  {}",
                n + 1,
                line,
                diff(&t, &want, &got)
            ));
        }
    }
    assert!(
        tokens > 10_000,
        "{fixture_name}: only {tokens} tokens; wrong fixture?"
    );
    assert!(
        failures.is_empty(),
        "{} of {} lines differ from the reference:\n{}",
        failures.len(),
        lines.len(),
        failures[..failures.len().min(10)].join("\n")
    );
}

#[test]
fn sanguo_matches_reference() {
    check_corpus("sanguo.jsonl.gz", "sanguo.txt", "vocab.txt");
}

#[test]
fn brown_press_matches_reference() {
    check_corpus(
        "brown-press.jsonl.gz",
        "brown-press.txt",
        "vocab-en-uncased.txt",
    );
}

#[test]
fn tricky_strings_match_reference() {
    let mut tokenizers: HashMap<(String, bool), WordPiece> = HashMap::new();
    let rows = fixture("tricky.jsonl.gz");
    assert!(rows.len() > 100, "only {} tricky rows", rows.len());
    let mut failures = String::new();
    for row in &rows {
        let (vocab, lower) = (
            row["vocab"].as_str().unwrap(),
            row["lower"].as_bool().unwrap(),
        );
        let t = tokenizers
            .entry((vocab.to_string(), lower))
            .or_insert_with(|| tokenizer(vocab, lower));
        let text = row["text"].as_str().unwrap();
        let basic = t.basic().tokenize(text);
        let got = t.tokenize(text);
        let want = ids(&row["ids"]);
        if basic != strings(&row["basic"])
            || got != want
            || t.tokens(text) != strings(&row["tokens"])
        {
            let _ = writeln!(
                failures,
                "{vocab} lower={lower} {text:?}:\n  basic reference {:?}\n  basic ours      {basic:?}\n  {}",
                strings(&row["basic"]),
                diff(t, &want, &got)
            );
        }
    }
    assert!(
        failures.is_empty(),
        "differences from the reference:\n{failures}"
    );
}

/// Every code point in every probe string gives the reference's words: this
/// checks the character table, lower-casing, NFD and accent stripping, and
/// final sigma over the whole of Unicode, including code points unassigned
/// in Python's Unicode 14 that newer Rust tables know.
#[test]
fn every_code_point_matches_reference() {
    let rows = fixture("unicode-sweep.jsonl.gz");
    let header = &rows[0];
    let hole = header["hole"].as_str().unwrap();
    let probes: Vec<(BasicTokenizer, String)> = header["probes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| {
            (
                BasicTokenizer::new(p["lower"].as_bool().unwrap()),
                p["template"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    // Each probe's runs must tile all code points but the surrogates.
    let mut next = vec![0u32; probes.len()];
    let mut failures = Vec::new();
    let mut checked = 0u64;
    let mut input = String::new();
    let mut got = Vec::new();
    for row in &rows[1..] {
        let p = row[0].as_u64().unwrap() as usize;
        let (first, last) = (
            row[1].as_u64().unwrap() as u32,
            row[2].as_u64().unwrap() as u32,
        );
        let shape = strings(&row[3]);
        assert_eq!(
            first, next[p],
            "probe {p}: runs are not contiguous at U+{first:04X}"
        );
        next[p] = if (0xD800..=0xDFFF).contains(&(last + 1)) {
            0xE000
        } else {
            last + 1
        };
        let (basic, template) = &probes[p];
        for cp in first..=last {
            let Some(c) = char::from_u32(cp) else {
                continue;
            };
            let mut buf = [0u8; 4];
            let c_str: &str = c.encode_utf8(&mut buf);
            input.clear();
            input.push_str(&template.replace(hole, c_str));
            got.clear();
            basic.for_each_word(&input, |w| got.push(w.replace(c_str, hole)));
            checked += 1;
            if got != shape {
                failures.push(format!(
                    "U+{cp:04X} in probe {p} (lower={}) {input:?}: reference {:?}, ours {:?}",
                    basic.do_lower_case(),
                    shape
                        .iter()
                        .map(|w| w.replace(hole, c_str))
                        .collect::<Vec<_>>(),
                    got.iter()
                        .map(|w| w.replace(hole, c_str))
                        .collect::<Vec<_>>(),
                ));
            }
        }
    }
    assert!(
        next.iter().all(|&n| n == 0x110000),
        "probes do not cover all code points: {next:X?}"
    );
    assert!(
        failures.is_empty(),
        "{} of {checked} probed code points differ:\n{}",
        failures.len(),
        failures[..failures.len().min(30)].join("\n")
    );
}

/// Our allocation-free greedy search agrees with the `tokenizers` crate's
/// WordPiece model (same algorithm, written independently) on every word of
/// both corpora and on synthetic words built from vocab pieces.
#[test]
fn greedy_search_agrees_with_tokenizers_crate() {
    use tokenizers::models::wordpiece::WordPiece as HfWordPiece;
    use tokenizers::Model;

    for (corpus, vocab_file) in [
        ("sanguo.txt", "vocab.txt"),
        ("brown-press.txt", "vocab-en-uncased.txt"),
    ] {
        let lower = tokenizer(vocab_file, true);
        // Words come out of the basic tokenizer already lowered and split;
        // the cased tokenizer passes them through unchanged to WordPiece.
        let cased = tokenizer(vocab_file, false);
        let vocab = cased.vocab();
        let mut vocab_bytes = String::new();
        for id in 0..vocab.id_space() as u32 {
            vocab_bytes.push_str(vocab.token(id).unwrap());
            vocab_bytes.push('\n');
        }
        let hf = HfWordPiece::builder()
            .vocab(HfWordPiece::read_bytes(vocab_bytes.as_bytes()).unwrap())
            .unk_token("[UNK]".into())
            .max_input_chars_per_word(200)
            .build()
            .unwrap();

        let text = std::fs::read_to_string(repo().join("data").join(corpus)).unwrap();
        let mut words: Vec<String> = Vec::new();
        lower
            .basic()
            .for_each_word(&text, |w| words.push(w.to_string()));
        // Synthetic words: runs of vocab pieces (with their "##" removed),
        // sometimes with a character no piece has, from a fixed LCG.
        let mut state = 12345u64;
        let mut next = move |n: usize| {
            state = state
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            ((state >> 33) as usize) % n
        };
        for _ in 0..50_000 {
            let mut w = String::new();
            for _ in 0..1 + next(5) {
                let piece = vocab.token(next(vocab.id_space()) as u32).unwrap();
                w.push_str(piece.trim_start_matches("##"));
                if next(20) == 0 {
                    w.push('\u{2603}');
                }
            }
            words.push(w);
        }
        words.push("q".repeat(200));
        words.push("q".repeat(201));

        let mut compared = 0;
        for w in &words {
            if cased.basic().tokenize(w) != [w.as_str()] {
                continue; // has punctuation or spaces: not a single word
            }
            let want: Vec<u32> = hf.tokenize(w).unwrap().iter().map(|t| t.id).collect();
            assert_eq!(cased.tokenize(w), want, "{corpus}: word {w:?}");
            compared += 1;
        }
        assert!(
            compared > 50_000,
            "{corpus}: only {compared} words compared"
        );
    }
}
