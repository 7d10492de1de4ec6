//! `run_squad.py`'s `write_predictions` for one example: over all its
//! windows, the `n_best` highest start and end logits among the context
//! pieces where the window gives them most context, pairs with
//! `start ≤ end` and at most `max_answer_length` pieces, ranked by
//! `start + end` logit; the answer text is the original characters the
//! pieces span. Without any valid pair the answer is empty, as the
//! reference's "empty" entry.

use super::windows::{span_text, Window};

#[derive(Clone, Debug, PartialEq)]
pub struct Candidate {
    pub text: String,
    pub start_logit: f32,
    pub end_logit: f32,
    /// The answer's first and last piece positions in its window (the
    /// reference's `start_index`, `end_index`; 0 for the empty answer).
    pub start_index: usize,
    pub end_index: usize,
}

fn top(logits: &[f32], n: usize) -> Vec<usize> {
    let mut idx: Vec<usize> = (0..logits.len()).collect();
    // Stable on ties: lower positions first, as Python's sorted().
    idx.sort_by(|&a, &b| logits[b].total_cmp(&logits[a]));
    idx.truncate(n);
    idx
}

/// The n-best answers of one example from its windows' logits (one
/// `(start, end)` pair of logit rows per window, unpadded), best first,
/// distinct texts only.
pub fn n_best(
    context: &str,
    windows: &[&Window],
    logits: &[(Vec<f32>, Vec<f32>)],
    n_best_size: usize,
    max_answer_length: usize,
) -> Vec<Candidate> {
    let mut prelim: Vec<(f32, usize, usize, usize)> = Vec::new();
    for (k, (w, (s, e))) in windows.iter().zip(logits).enumerate() {
        for &i in &top(s, n_best_size) {
            for &j in &top(e, n_best_size) {
                let ok = w.piece_chars.get(i).is_some_and(Option::is_some)
                    && w.piece_chars.get(j).is_some_and(Option::is_some)
                    && w.max_context[i]
                    && j >= i
                    && j - i < max_answer_length;
                if ok {
                    prelim.push((s[i] + e[j], k, i, j));
                }
            }
        }
    }
    prelim.sort_by(|a, b| b.0.total_cmp(&a.0));
    let mut out: Vec<Candidate> = Vec::new();
    for (_, k, i, j) in prelim {
        if out.len() >= n_best_size {
            break;
        }
        let Some(text) = span_text(context, windows[k], i, j) else {
            continue;
        };
        if out.iter().any(|c| c.text == text) {
            continue;
        }
        out.push(Candidate {
            text,
            start_logit: logits[k].0[i],
            end_logit: logits[k].1[j],
            start_index: i,
            end_index: j,
        });
    }
    if out.is_empty() {
        out.push(Candidate {
            text: String::new(),
            start_logit: 0.0,
            end_logit: 0.0,
            start_index: 0,
            end_index: 0,
        });
    }
    out
}
