//! Single-threaded WordPiece throughput on the bundled corpora, against the
//! `tokenizers` crate's BERT pipeline on the same lines.
//!
//!     cargo bench -p nezha-stages --bench wordpiece
//!
//! Prints MB/s of input text; tokenizing all of sanguo.txt (1.8 MB) should
//! take well under 0.15 s.

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use nezha_stages::wordpiece::{WordPiece, MAX_INPUT_CHARS_PER_WORD};
use nezha_stages::Vocab;
use tokenizers::models::wordpiece::WordPiece as HfWordPiece;
use tokenizers::normalizers::bert::BertNormalizer;
use tokenizers::pre_tokenizers::bert::BertPreTokenizer;
use tokenizers::Tokenizer;

/// Runs `pass` over all lines until at least `min` has elapsed; returns
/// seconds per pass and the tokens one pass made.
fn time(min: Duration, mut pass: impl FnMut() -> usize) -> (f64, usize) {
    let tokens = pass(); // warm-up
    let (start, mut passes) = (Instant::now(), 0u32);
    while start.elapsed() < min {
        std::hint::black_box(pass());
        passes += 1;
    }
    (start.elapsed().as_secs_f64() / passes as f64, tokens)
}

fn hf_pipeline(vocab: &Vocab) -> Tokenizer {
    let mut lines = String::new();
    for id in 0..vocab.id_space() as u32 {
        lines.push_str(vocab.token(id).unwrap_or(""));
        lines.push('\n');
    }
    let model = HfWordPiece::builder()
        .vocab(HfWordPiece::read_bytes(lines.as_bytes()).unwrap())
        .unk_token("[UNK]".into())
        .max_input_chars_per_word(MAX_INPUT_CHARS_PER_WORD)
        .build()
        .unwrap();
    let mut t = Tokenizer::new(model);
    t.with_normalizer(Some(BertNormalizer::default()));
    t.with_pre_tokenizer(Some(BertPreTokenizer));
    t
}

fn main() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let quick = std::env::args().any(|a| a == "--quick");
    let min = Duration::from_millis(if quick { 200 } else { 2000 });
    for (corpus, vocab) in [
        ("sanguo.txt", "vocab.txt"),
        ("brown-press.txt", "vocab-en-uncased.txt"),
    ] {
        let text = std::fs::read_to_string(root.join("data").join(corpus)).unwrap();
        let lines: Vec<&str> = text
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty())
            .collect();
        let mb = lines.iter().map(|l| l.len()).sum::<usize>() as f64 / 1e6;
        let vocab = Arc::new(Vocab::load(&root.join("data").join(vocab)).unwrap());

        let ours = WordPiece::new(vocab.clone(), true).unwrap();
        let mut ids = Vec::new();
        let (secs, tokens) = time(min, || {
            let mut n = 0;
            for line in &lines {
                ids.clear();
                ours.tokenize_into(line, &mut ids);
                n += ids.len();
            }
            n
        });
        println!(
            "{corpus}: {mb:.2} MB, {} lines, {tokens} tokens: nezha WordPiece {:.4} s/pass = {:.0} MB/s, {:.1} M tokens/s",
            lines.len(),
            secs,
            mb / secs,
            tokens as f64 / secs / 1e6
        );

        let hf = hf_pipeline(&vocab);
        let (hf_secs, hf_tokens) = time(min, || {
            lines
                .iter()
                .map(|l| hf.encode(*l, false).unwrap().len())
                .sum()
        });
        println!(
            "{corpus}: tokenizers crate BERT pipeline {:.4} s/pass = {:.0} MB/s ({hf_tokens} tokens; {:.1}x slower)",
            hf_secs,
            mb / hf_secs,
            hf_secs / secs
        );
    }
}
