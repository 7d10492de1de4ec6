//! Chinese whole-word masking on real text: the first 20 chapters of
//! data/sanguo.txt, with Python jieba 0.42.1's segmentation of every line
//! as the oracle (tests/fixtures/wwm-jieba/, written by
//! scripts/fixtures/jieba_words.sh).
//!
//! Run with `--nocapture` to see the masked-character rates.

use std::io::Read;
use std::path::PathBuf;
use std::sync::Arc;

use flate2::read::GzDecoder;
use nezha_stages::instances::{
    ReferenceInstances, ReferenceParams, StreamingInstances, StreamingParams,
};
use nezha_stages::masking::{MaskingParams, MaskingStage, WholeWords};
use nezha_stages::segment::{JiebaWords, Segmenter, CONTINUES_WORD};
use nezha_stages::stage::run_all;
use nezha_stages::wordpiece::WordPiece;
use nezha_stages::{Instance, TokenizedDocument, Vocab};
use serde_json::Value;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

struct Row {
    chapter: u64,
    line: String,
    /// Python jieba's words of the line.
    words: Vec<String>,
    /// Its words of the line as the segmenter sees it through the tokens:
    /// whitespace dropped, characters missing from the vocab (which arrive
    /// as [UNK]) replaced by the segmenter's stand-in, U+4DB5.
    vocab_words: Vec<String>,
}

fn rows() -> Vec<Row> {
    let path = root().join("tests/fixtures/wwm-jieba/words.jsonl.gz");
    let mut text = String::new();
    GzDecoder::new(std::fs::File::open(&path).unwrap())
        .read_to_string(&mut text)
        .unwrap();
    let strings = |v: &Value| -> Vec<String> {
        v.as_array()
            .unwrap()
            .iter()
            .map(|w| w.as_str().unwrap().to_string())
            .collect()
    };
    text.lines()
        .map(|l| {
            let v: Value = serde_json::from_str(l).unwrap();
            let words = strings(&v["words"]);
            Row {
                chapter: v["chapter"].as_u64().unwrap(),
                line: v["line"].as_str().unwrap().to_string(),
                vocab_words: match v.get("seen_words") {
                    Some(u) => strings(u),
                    None => words.clone(),
                },
                words,
            }
        })
        .collect()
}

/// For each character of a line: does a word start there?
fn word_starts(words: &[impl AsRef<str>]) -> Vec<(char, bool)> {
    words
        .iter()
        .flat_map(|w| w.as_ref().chars().enumerate().map(|(i, c)| (c, i == 0)))
        .collect()
}

fn is_cjk(c: char) -> bool {
    ('\u{4E00}'..='\u{9FFF}').contains(&c) || ('\u{3400}'..='\u{4DBF}').contains(&c)
}

#[test]
fn jieba_rs_cuts_sanguo_as_python_jieba_does() {
    let seg = Segmenter::new(None, true).unwrap();
    let rows = rows();
    let (mut words, mut same_lines) = (0, 0);
    for (k, row) in rows.iter().enumerate() {
        let ours = seg.words(&row.line);
        same_lines += (ours == row.words) as usize;
        words += row.words.len();
        // Where the two differ, they differ outside Chinese: on this corpus
        // only "www.xyyuedu.com", which jieba-rs keeps whole and Python
        // jieba cuts at the dots. Chinese word boundaries, which are all
        // whole-word masking takes from Jieba, agree everywhere.
        let cjk = |w: Vec<(char, bool)>| {
            w.into_iter()
                .filter(|(c, _)| is_cjk(*c))
                .collect::<Vec<_>>()
        };
        assert_eq!(
            cjk(word_starts(&ours)),
            cjk(word_starts(&row.words)),
            "line {k}: {}",
            row.line
        );
    }
    println!(
        "jieba-rs and Python jieba 0.42.1 cut {same_lines} of {} lines ({words} words) identically",
        rows.len()
    );
    assert!(rows.len() > 250 && words > 60_000, "{} lines", rows.len());
    assert!(
        same_lines + 1 >= rows.len(),
        "{same_lines} of {}",
        rows.len()
    );
}

/// Token serial numbers start here: above every vocab id, and never
/// [CLS] or [SEP].
const SERIAL: u32 = 1 << 24;

/// The corpus twice over, position for position: once as vocab ids, and
/// once as serial numbers that name each token's Jieba word (from Python).
struct Corpus {
    docs: Vec<TokenizedDocument>,
    serial_docs: Vec<TokenizedDocument>,
    /// By serial number − SERIAL: the token's word, counted over the corpus.
    word_of: Vec<u32>,
}

fn corpus(wp: &WordPiece) -> Corpus {
    let mut c = Corpus {
        docs: Vec::new(),
        serial_docs: Vec::new(),
        word_of: Vec::new(),
    };
    let mut word = 0;
    for row in rows() {
        if c.docs.len() as u64 <= row.chapter {
            for d in [&mut c.docs, &mut c.serial_docs] {
                d.push(TokenizedDocument {
                    index: row.chapter,
                    segments: vec![Vec::new()],
                });
            }
        }
        // WordPiece splits text at spaces, punctuation and CJK characters,
        // so the words' tokens are the line's tokens.
        let mut line_ids = Vec::new();
        for (k, w) in row.vocab_words.iter().enumerate() {
            let ids = wp.tokenize(w);
            line_ids.extend_from_slice(&ids);
            let doc = c.docs.last_mut().unwrap();
            let serial_doc = c.serial_docs.last_mut().unwrap();
            for id in ids {
                doc.segments.last_mut().unwrap().push(id);
                serial_doc
                    .segments
                    .last_mut()
                    .unwrap()
                    .push(SERIAL + c.word_of.len() as u32);
                c.word_of.push(word);
            }
            word += 1;
            // Sentences end after 。！？； (the paragraphs are long), or at
            // the end of the line.
            let next = row.vocab_words.get(k + 1).map(String::as_str);
            let ends = ["。", "！", "？", "；"].contains(&w.as_str()) && next != Some("”");
            if (ends || next.is_none()) && !doc.segments.last().unwrap().is_empty() {
                doc.segments.push(Vec::new());
                serial_doc.segments.push(Vec::new());
            }
        }
        assert_eq!(line_ids, wp.tokenize(&row.line), "{}", row.line);
    }
    for d in c.docs.iter_mut().chain(&mut c.serial_docs) {
        d.segments.retain(|s| !s.is_empty());
    }
    c
}

const MASKING: MaskingParams = MaskingParams {
    masked_lm_prob: 0.15,
    max_predictions_per_seq: 20,
};

/// Instances of the corpus masked with Jieba whole words, by the streaming
/// generator and masking stage or by the reference generator, and the same
/// instances made of serial numbers (unmasked).
fn masked_instances(
    vocab: &Arc<Vocab>,
    c: &Corpus,
    reference: bool,
) -> (Vec<Instance>, Vec<Instance>) {
    let mut words = JiebaWords::new(Segmenter::new(None, true).unwrap(), vocab).unwrap();
    let whole = WholeWords::new(vocab);
    let mut tagged = c.docs.clone();
    let mut serial = c.serial_docs.clone();
    for (doc, serial_doc) in tagged.iter_mut().zip(&mut serial) {
        words.mark(doc);
        // The serial numbers get the same word structure, so that masking
        // (which in reference mode shares the generator's random stream)
        // draws exactly the same.
        for (seg, serial_seg) in doc.segments.iter().zip(&mut serial_doc.segments) {
            for (&t, s) in seg.iter().zip(serial_seg) {
                if whole.continues(t) {
                    *s |= CONTINUES_WORD;
                }
            }
        }
    }
    let run = |docs: Vec<TokenizedDocument>| -> Vec<Instance> {
        if reference {
            let params = ReferenceParams {
                max_seq_length: 128,
                short_seq_prob: 0.1,
                dupe_factor: 3,
                masked_lm_prob: MASKING.masked_lm_prob,
                max_predictions_per_seq: MASKING.max_predictions_per_seq,
                random_seed: 5,
                vocab: vocab.clone(),
            };
            let mut stage = ReferenceInstances::new(params)
                .unwrap()
                .with_whole_words(Some(whole.clone()));
            return run_all(&mut stage, docs).unwrap();
        }
        let params = StreamingParams::new(128, 0.1, 5, 5, 0);
        let generated =
            run_all(&mut StreamingInstances::new(params, vocab).unwrap(), docs).unwrap();
        let mut masking = MaskingStage::new(MASKING, vocab.clone(), 5, 0)
            .unwrap()
            .with_whole_words(Some(whole.clone()));
        run_all(&mut masking, generated).unwrap()
    };
    let masked = run(tagged);
    let serial: Vec<Instance> = run(serial)
        .into_iter()
        .zip(&masked)
        .map(|(mut s, m)| {
            assert_eq!(s.masked_positions, m.masked_positions);
            s.tokens = s.original_tokens();
            s
        })
        .collect();
    assert_eq!(masked.len(), serial.len());
    (masked, serial)
}

#[test]
fn masked_spans_cover_whole_jieba_words_within_the_budget() {
    let vocab = Arc::new(Vocab::load(&root().join("data/vocab.txt")).unwrap());
    let wp = WordPiece::new(vocab.clone(), true).unwrap();
    let c = corpus(&wp);
    for reference in [false, true] {
        check_whole_words(&vocab, &c, reference);
    }
}

fn check_whole_words(vocab: &Vocab, c: &Corpus, reference: bool) {
    let (masked, serial) = masked_instances(&Arc::new(vocab.clone()), c, reference);
    assert!(masked.len() > 3_000, "{} instances", masked.len());

    let (mut tokens, mut predicted, mut as_mask, mut random, mut in_long_words) = (0, 0, 0, 0, 0);
    for (m, s) in masked.iter().zip(&serial) {
        let word = |p: usize| {
            let t = s.tokens[p];
            (t >= SERIAL).then(|| c.word_of[(t - SERIAL) as usize])
        };
        let segment = |p: usize| p < s.segment_a_len as usize;
        let n = MASKING.num_to_predict(m.tokens.len());
        assert!(!m.masked_positions.is_empty() && m.masked_positions.len() <= n);
        for (&p, &label) in m.masked_positions.iter().zip(&m.masked_labels) {
            let p = p as usize;
            match m.tokens[p] {
                t if t == vocab.mask => as_mask += 1,
                t if t != label => random += 1,
                _ => {}
            }
            let w = word(p).expect("[CLS] and [SEP] are never masked");
            // The label is the vocab id the serial number stands for.
            let doc_token = label;
            assert_eq!(doc_token & CONTINUES_WORD, 0);
            // Every token of the same word in the same segment is masked.
            let mates: Vec<u32> = (1..s.tokens.len())
                .filter(|&q| word(q) == Some(w) && segment(q) == segment(p))
                .map(|q| q as u32)
                .collect();
            for q in &mates {
                assert!(
                    m.masked_positions.contains(q),
                    "position {p} masked but {q} of the same word is not: {:?} in {:?}",
                    m.masked_positions,
                    m.masked_labels
                        .iter()
                        .map(|&t| vocab.token(t).unwrap_or("?"))
                        .collect::<Vec<_>>()
                );
            }
            in_long_words += (mates.len() > 1) as u32;
        }
        assert!(m.tokens.iter().all(|&t| t & CONTINUES_WORD == 0));
        tokens += m.tokens.len() - 3;
        predicted += m.masked_positions.len();
    }
    let rate = |x: usize| 100.0 * x as f64 / tokens as f64;
    println!(
        "Jieba whole-word masking ({} mode), {} instances of sanguo chapters 1-20 at length 128: \
         {:.2}% of characters predicted: {:.2}% [MASK], {:.2}% random, {:.2}% kept; \
         {:.1}% of predicted characters belong to words of 2+ characters",
        if reference { "reference" } else { "streaming" },
        masked.len(),
        rate(predicted),
        rate(as_mask),
        rate(random),
        rate(predicted - as_mask - random),
        100.0 * in_long_words as f64 / predicted as f64
    );
    // The budget is 15% of all tokens ([CLS] and [SEP] included), at most
    // 20: a little under 15% of the characters.
    assert!(
        (13.0..15.5).contains(&rate(predicted)),
        "{}",
        rate(predicted)
    );
    assert!((10.5..12.5).contains(&rate(as_mask)), "{}", rate(as_mask));
    assert!((1.1..1.9).contains(&rate(random)), "{}", rate(random));
    assert!(
        in_long_words * 2 > predicted as u32,
        "{in_long_words} of {predicted}"
    );
}
