//! Contexts cut into overlapping windows of pieces, as `run_squad.py`'s
//! `convert_examples_to_features`: `[CLS] question [SEP] window [SEP]`,
//! the question cut to `max_query_length` pieces, windows of at most
//! `max_seq_length − |question| − 3` pieces starting `doc_stride` apart,
//! and the training answer's pieces (or `[CLS]`, position 0, when the
//! answer is not wholly inside the window).
//!
//! The context is split into words the way the reference's
//! `ChineseFullTokenizer` pads it: every CJK character and every
//! character that is neither a letter nor a digit is a word of its own,
//! whitespace separates, and the runs between are words (Latin, digits).
//! Each word remembers its character span, so any span of pieces maps back
//! to the exact original characters, spaces and full-width punctuation
//! inside it included.

use std::sync::Arc;

use anyhow::{ensure, Result};
use nezha_stages::vocab::Vocab;
use nezha_stages::wordpiece::WordPiece;

use super::data::MrcExample;

/// BERT's "Chinese character" blocks.
fn is_cjk(c: char) -> bool {
    matches!(c as u32,
        0x4E00..=0x9FFF | 0x3400..=0x4DBF | 0x20000..=0x2A6DF | 0x2A700..=0x2B73F
        | 0x2B740..=0x2B81F | 0x2B820..=0x2CEAF | 0xF900..=0xFAFF | 0x2F800..=0x2FA1F)
}

/// The words of `text` as character spans `[start, end)`.
pub fn words(text: &str) -> Vec<(usize, usize)> {
    let mut out = Vec::new();
    let mut run: Option<usize> = None;
    for (i, c) in text.chars().enumerate() {
        let alone = is_cjk(c) || !(c.is_alphanumeric() || c.is_whitespace());
        if c.is_whitespace() || alone {
            if let Some(s) = run.take() {
                out.push((s, i));
            }
            if alone {
                out.push((i, i + 1));
            }
        } else if run.is_none() {
            run = Some(i);
        }
    }
    if let Some(s) = run {
        out.push((s, text.chars().count()));
    }
    out
}

/// One window of one example.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Window {
    /// Index of the example in the list given to [`Windower::windows`].
    pub example: usize,
    pub input_ids: Vec<i64>,
    pub segment_ids: Vec<i64>,
    /// 1 for `[CLS]` and the context pieces: where an answer may start or
    /// end (the reference's `input_span_mask`).
    pub span_mask: Vec<i64>,
    /// For each context piece position: the character span of its word.
    pub piece_chars: Vec<Option<(usize, usize)>>,
    /// Whether this window gives the piece its most context (the
    /// reference's `token_is_max_context`).
    pub max_context: Vec<bool>,
    /// The training answer's piece positions, `(0, 0)` when outside.
    pub start_position: usize,
    pub end_position: usize,
}

pub struct Windower {
    tokenizer: WordPiece,
    cls: i64,
    sep: i64,
    pub max_seq_length: usize,
    pub doc_stride: usize,
    pub max_query_length: usize,
}

impl Windower {
    pub fn new(
        vocab: Arc<Vocab>,
        do_lower_case: bool,
        max_seq_length: usize,
        doc_stride: usize,
        max_query_length: usize,
    ) -> Result<Windower> {
        let (cls, sep) = (i64::from(vocab.cls), i64::from(vocab.sep));
        ensure!(doc_stride > 0, "doc_stride must be positive");
        ensure!(
            max_seq_length > max_query_length + 3,
            "max_seq_length {max_seq_length} leaves no room for the context after a question of {max_query_length}"
        );
        Ok(Windower {
            tokenizer: WordPiece::new(vocab, do_lower_case)?,
            cls,
            sep,
            max_seq_length,
            doc_stride,
            max_query_length,
        })
    }

    fn pieces(&self, word: &str) -> Vec<i64> {
        let ids = self.tokenizer.tokenize(word);
        if ids.is_empty() {
            return vec![i64::from(self.tokenizer.unk())];
        }
        ids.into_iter().map(i64::from).collect()
    }

    /// The windows of every example, in example order.
    pub fn windows(&self, examples: &[MrcExample]) -> Vec<Window> {
        let mut out = Vec::new();
        for (n, e) in examples.iter().enumerate() {
            self.example_windows(n, e, &mut out);
        }
        out
    }

    fn example_windows(&self, n: usize, e: &MrcExample, out: &mut Vec<Window>) {
        let chars: Vec<char> = e.context.chars().collect();
        let mut query: Vec<i64> = Vec::new();
        for (s, t) in words(&e.question) {
            let w: String = e.question.chars().skip(s).take(t - s).collect();
            query.extend(self.pieces(&w));
        }
        query.truncate(self.max_query_length);
        // Every context piece with its word's character span.
        let mut doc: Vec<(i64, (usize, usize))> = Vec::new();
        for (s, t) in words(&e.context) {
            let w: String = chars[s..t].iter().collect();
            doc.extend(self.pieces(&w).into_iter().map(|p| (p, (s, t))));
        }
        let answer = e.answer_chars.map(|(s, t)| {
            // The pieces of the words the answer overlaps.
            let first = doc.iter().position(|(_, (_, we))| *we > s).unwrap_or(0);
            let last = doc
                .iter()
                .rposition(|(_, (ws, _))| *ws < t)
                .unwrap_or(first);
            (first, last)
        });
        let room = self.max_seq_length - query.len() - 3;
        let mut spans = Vec::new();
        let mut start = 0;
        loop {
            let len = room.min(doc.len() - start);
            spans.push((start, len));
            if start + len >= doc.len() {
                break;
            }
            start += len.min(self.doc_stride);
        }
        for &(start, len) in &spans {
            let mut input_ids = vec![self.cls];
            input_ids.extend(&query);
            input_ids.push(self.sep);
            let offset = input_ids.len();
            let mut segment_ids = vec![0; offset];
            let mut span_mask = vec![0; offset];
            span_mask[0] = 1;
            let mut piece_chars = vec![None; offset];
            let mut max_context = vec![false; offset];
            for (i, &(piece, span)) in doc.iter().enumerate().skip(start).take(len) {
                input_ids.push(piece);
                segment_ids.push(1);
                span_mask.push(1);
                piece_chars.push(Some(span));
                max_context.push(is_max_context(&spans, start, i));
            }
            input_ids.push(self.sep);
            segment_ids.push(1);
            span_mask.push(0);
            piece_chars.push(None);
            max_context.push(false);
            let (start_position, end_position) = match answer {
                Some((a, b)) if a >= start && b < start + len => {
                    (a - start + offset, b - start + offset)
                }
                _ => (0, 0),
            };
            out.push(Window {
                example: n,
                input_ids,
                segment_ids,
                span_mask,
                piece_chars,
                max_context,
                start_position,
                end_position,
            });
        }
    }
}

/// `run_squad.py`'s `_check_is_max_context`: the window where the piece has
/// the most context on its shorter side (ties: earliest, plus a small bonus
/// for longer windows).
fn is_max_context(spans: &[(usize, usize)], current: usize, position: usize) -> bool {
    let mut best: Option<(f64, usize)> = None;
    for &(start, len) in spans {
        let end = start + len - 1;
        if position < start || position > end {
            continue;
        }
        let score = (position - start).min(end - position) as f64 + 0.01 * len as f64;
        if best.is_none_or(|(b, _)| score > b) {
            best = Some((score, start));
        }
    }
    best.is_some_and(|(_, s)| s == current)
}

/// The original characters of context pieces `start..=end` of a window:
/// from the first piece's word start to the last piece's word end.
pub fn span_text(context: &str, w: &Window, start: usize, end: usize) -> Option<String> {
    let (s, _) = w.piece_chars.get(start).copied().flatten()?;
    let (_, e) = w.piece_chars.get(end).copied().flatten()?;
    (s < e).then(|| context.chars().skip(s).take(e - s).collect())
}
