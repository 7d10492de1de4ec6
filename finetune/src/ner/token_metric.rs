//! The reference's token-level metric, reported beside the entity scores
//! for comparison with its numbers: `tf_metrics`' micro-averaged precision,
//! recall and F1 over the piece positions, counting only the entity tags as
//! classes (a position whose gold and predicted tags are both `O`, `X`,
//! `[CLS]` or `[SEP]` counts nowhere). A `B-PER` predicted as `I-PER` is a
//! false positive for one class and a false negative for the other, so this
//! rewards partly right spans that the entity metric does not.
//!
//! The reference also counts its padding positions (all label 0, never an
//! entity class, so they only add false positives if predicted as one);
//! here only real positions are counted.

use anyhow::{ensure, Result};
use serde::Serialize;

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct TokenScores {
    pub precision: f64,
    pub recall: f64,
    pub f1: f64,
}

/// Micro P/R/F1 over positions, with `is_class(id)` telling the entity
/// classes; 0 where a denominator is 0.
pub fn token_scores(
    gold: &[i64],
    pred: &[i64],
    is_class: impl Fn(i64) -> bool,
) -> Result<TokenScores> {
    ensure!(
        gold.len() == pred.len(),
        "{} gold positions but {} predicted",
        gold.len(),
        pred.len()
    );
    let (mut tp, mut np, mut ng) = (0usize, 0usize, 0usize);
    for (&g, &p) in gold.iter().zip(pred) {
        let (gc, pc) = (is_class(g), is_class(p));
        ng += usize::from(gc);
        np += usize::from(pc);
        tp += usize::from(gc && g == p);
    }
    let ratio = |a: usize, b: usize| if b == 0 { 0.0 } else { a as f64 / b as f64 };
    let (precision, recall) = (ratio(tp, np), ratio(tp, ng));
    let f1 = if precision + recall == 0.0 {
        0.0
    } else {
        2.0 * precision * recall / (precision + recall)
    };
    Ok(TokenScores {
        precision,
        recall,
        f1,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn by_hand() {
        // Classes 2 and 3; 0 and 1 are not entity tags.
        let gold = [0, 2, 3, 3, 1, 0, 2];
        let pred = [0, 2, 2, 3, 3, 1, 0];
        // tp: positions 1 and 3 → 2; predicted in a class: 1,2,3,4 → 4;
        // gold in a class: 1,2,3,6 → 4.
        let s = token_scores(&gold, &pred, |t| t >= 2).unwrap();
        assert_eq!((s.precision, s.recall), (0.5, 0.5));
        assert!((s.f1 - 0.5).abs() < 1e-15);
        let none = token_scores(&[0, 1], &[1, 0], |t| t >= 2).unwrap();
        assert_eq!((none.precision, none.recall, none.f1), (0.0, 0.0, 0.0));
        assert!(token_scores(&[0], &[0, 1], |t| t >= 2).is_err());
    }
}
