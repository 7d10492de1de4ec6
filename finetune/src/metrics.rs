//! Evaluation metrics: accuracy and macro-F1 for classification (as
//! scikit-learn's `accuracy_score` and `f1_score(average="macro")`), and
//! entity-level precision/recall/F1 for sequence labelling exactly as
//! `seqeval==1.2.2` computes them in its default (non-strict) mode.

use std::collections::{BTreeMap, BTreeSet};

use anyhow::{ensure, Result};
use serde::Serialize;

fn check_lengths(gold: usize, pred: usize) -> Result<()> {
    ensure!(gold == pred, "{gold} gold labels but {pred} predictions");
    ensure!(gold > 0, "no examples to score");
    Ok(())
}

/// Fraction of predictions equal to the gold label.
pub fn accuracy(gold: &[usize], pred: &[usize]) -> Result<f64> {
    check_lengths(gold.len(), pred.len())?;
    let hits = gold.iter().zip(pred).filter(|(g, p)| g == p).count();
    Ok(hits as f64 / gold.len() as f64)
}

/// Unweighted mean over classes of `F1 = 2·tp / (2·tp + fp + fn)`, the
/// classes being those that occur in `gold` or `pred` (scikit-learn's
/// default label set).
pub fn macro_f1(gold: &[usize], pred: &[usize]) -> Result<f64> {
    check_lengths(gold.len(), pred.len())?;
    let classes: BTreeSet<usize> = gold.iter().chain(pred).copied().collect();
    let mut sum = 0.0;
    for &c in &classes {
        let tp = gold
            .iter()
            .zip(pred)
            .filter(|&(&g, &p)| g == c && p == c)
            .count();
        let fp = gold
            .iter()
            .zip(pred)
            .filter(|&(&g, &p)| g != c && p == c)
            .count();
        let fn_ = gold
            .iter()
            .zip(pred)
            .filter(|&(&g, &p)| g == c && p != c)
            .count();
        // A class in the union has tp + fp + fn > 0, so this never divides by 0.
        sum += 2.0 * tp as f64 / (2 * tp + fp + fn_) as f64;
    }
    Ok(sum / classes.len() as f64)
}

/// One entity: its type and inclusive token span.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Entity {
    pub kind: String,
    pub start: usize,
    pub end: usize,
}

/// seqeval's split of a tag into its prefix character and type: `B-PER` →
/// (`B`, `PER`), `O` → (`O`, `_`); a tag without `-` has its remainder as
/// type (`X` → (`X`, `_`)).
fn split_tag(tag: &str) -> (char, &str) {
    let mut chars = tag.chars();
    let prefix = chars.next().unwrap_or('O');
    let rest = chars.as_str();
    let kind = match rest.split_once('-') {
        Some((_, k)) => k,
        None => rest,
    };
    (prefix, if kind.is_empty() { "_" } else { kind })
}

fn end_of_chunk(prev: char, tag: char, prev_kind: &str, kind: &str) -> bool {
    matches!(prev, 'E' | 'S')
        || (matches!(prev, 'B' | 'I') && matches!(tag, 'B' | 'S' | 'O'))
        || (prev != 'O' && prev != '.' && prev_kind != kind)
}

fn start_of_chunk(prev: char, tag: char, prev_kind: &str, kind: &str) -> bool {
    matches!(tag, 'B' | 'S')
        || (matches!(prev, 'E' | 'S' | 'O') && matches!(tag, 'E' | 'I'))
        || (tag != 'O' && tag != '.' && prev_kind != kind)
}

/// The entities of tag sequences as seqeval's `get_entities` finds them:
/// the sentences are concatenated with an `O` after each, and spans are
/// positions in that concatenation. Works for IOB2, IOBES and BMES (`M`
/// continues a chunk as seqeval's rules let it), and reproduces seqeval's
/// treatment of malformed sequences (an `I-` after `O` starts an entity).
pub fn entities(sentences: &[Vec<String>]) -> Vec<Entity> {
    let mut out = Vec::new();
    let (mut prev, mut prev_kind) = ('O', String::new());
    let mut begin = 0;
    let flat = sentences
        .iter()
        .flat_map(|s| s.iter().map(String::as_str).chain(std::iter::once("O")));
    // seqeval appends one more "O" to close a chunk still open at the end;
    // the flattening already ends every sentence with one.
    for (i, chunk) in flat.enumerate() {
        let (tag, kind) = split_tag(chunk);
        if end_of_chunk(prev, tag, &prev_kind, kind) {
            out.push(Entity {
                kind: prev_kind.clone(),
                start: begin,
                end: i - 1,
            });
        }
        if start_of_chunk(prev, tag, &prev_kind, kind) {
            begin = i;
        }
        prev = tag;
        prev_kind = kind.to_string();
    }
    out
}

/// Entity-level scores, micro-averaged over entity types.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct EntityScores {
    pub precision: f64,
    pub recall: f64,
    pub f1: f64,
    /// Entities in the gold tags.
    pub gold: usize,
    /// Entities in the predicted tags.
    pub predicted: usize,
    /// Predicted entities with exactly the gold type and span.
    pub correct: usize,
    /// Per type: (precision, recall, f1, gold count).
    pub per_type: BTreeMap<String, (f64, f64, f64, usize)>,
}

fn prf(correct: usize, predicted: usize, gold: usize) -> (f64, f64, f64) {
    // seqeval's zero_division default: 0 with a warning.
    let p = if predicted == 0 {
        0.0
    } else {
        correct as f64 / predicted as f64
    };
    let r = if gold == 0 {
        0.0
    } else {
        correct as f64 / gold as f64
    };
    let f = if p + r == 0.0 {
        0.0
    } else {
        2.0 * p * r / (p + r)
    };
    (p, r, f)
}

/// seqeval's `precision_score`, `recall_score` and `f1_score` (default mode,
/// micro average) and its per-type report, over sentences of tags.
pub fn entity_scores(gold: &[Vec<String>], pred: &[Vec<String>]) -> Result<EntityScores> {
    ensure!(
        gold.len() == pred.len(),
        "{} gold sentences but {} predicted",
        gold.len(),
        pred.len()
    );
    for (i, (g, p)) in gold.iter().zip(pred).enumerate() {
        ensure!(
            g.len() == p.len(),
            "sentence {i}: {} gold tags but {} predicted",
            g.len(),
            p.len()
        );
    }
    let by_type = |es: Vec<Entity>| {
        let mut m: BTreeMap<String, BTreeSet<(usize, usize)>> = BTreeMap::new();
        for e in es {
            m.entry(e.kind).or_default().insert((e.start, e.end));
        }
        m
    };
    let (g, p) = (by_type(entities(gold)), by_type(entities(pred)));
    let kinds: BTreeSet<&String> = g.keys().chain(p.keys()).collect();
    let empty = BTreeSet::new();
    let (mut tp, mut np, mut ng) = (0, 0, 0);
    let mut per_type = BTreeMap::new();
    for k in kinds {
        let (gs, ps) = (g.get(k).unwrap_or(&empty), p.get(k).unwrap_or(&empty));
        let c = gs.intersection(ps).count();
        let (pk, rk, fk) = prf(c, ps.len(), gs.len());
        per_type.insert(k.clone(), (pk, rk, fk, gs.len()));
        tp += c;
        np += ps.len();
        ng += gs.len();
    }
    let (precision, recall, f1) = prf(tp, np, ng);
    Ok(EntityScores {
        precision,
        recall,
        f1,
        gold: ng,
        predicted: np,
        correct: tp,
        per_type,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tags(s: &str) -> Vec<String> {
        s.split_whitespace().map(String::from).collect()
    }

    fn e(kind: &str, start: usize, end: usize) -> Entity {
        Entity {
            kind: kind.into(),
            start,
            end,
        }
    }

    #[test]
    fn accuracy_and_macro_f1_by_hand() {
        let gold = [0, 0, 1, 1, 2, 2];
        let pred = [0, 1, 1, 1, 2, 0];
        assert_eq!(accuracy(&gold, &pred).unwrap(), 4.0 / 6.0);
        // class 0: tp 1, fp 1, fn 1 → 2/4; class 1: tp 2, fp 1, fn 0 → 4/5;
        // class 2: tp 1, fp 0, fn 1 → 2/3.
        let want = (0.5 + 0.8 + 2.0 / 3.0) / 3.0;
        assert!((macro_f1(&gold, &pred).unwrap() - want).abs() < 1e-15);
        // A class only ever predicted counts (F1 0); one in neither does not.
        let want = (2.0 / 3.0 + 0.0) / 2.0;
        assert!((macro_f1(&[0, 0], &[0, 3]).unwrap() - want).abs() < 1e-15);
        assert!(accuracy(&[0], &[0, 1]).is_err());
        assert!(macro_f1(&[], &[]).is_err());
    }

    #[test]
    fn iob2_entities_by_hand() {
        let s = vec![tags("B-PER I-PER O B-LOC B-LOC I-LOC O I-ORG I-ORG")];
        assert_eq!(
            entities(&s),
            vec![
                e("PER", 0, 1),
                e("LOC", 3, 3),
                e("LOC", 4, 5),
                e("ORG", 7, 8)
            ]
        );
        // A type change inside a chunk splits it.
        assert_eq!(
            entities(&[tags("B-PER I-LOC")]),
            vec![e("PER", 0, 0), e("LOC", 1, 1)]
        );
    }

    #[test]
    fn bmes_entities_by_hand() {
        let s = vec![tags("B-PER M-PER E-PER S-LOC O B-ORG E-ORG"), tags("S-PER")];
        // The second sentence starts after the first one's 7 tags and its "O".
        assert_eq!(
            entities(&s),
            vec![
                e("PER", 0, 2),
                e("LOC", 3, 3),
                e("ORG", 5, 6),
                e("PER", 8, 8)
            ]
        );
        // An entity still open at a sentence end is closed there.
        assert_eq!(entities(&[tags("O B-LOC M-LOC")]), vec![e("LOC", 1, 2)]);
    }

    #[test]
    fn entity_scores_by_hand() {
        let gold = vec![tags("B-PER I-PER O B-LOC"), tags("B-ORG I-ORG I-ORG O")];
        // PER right, LOC missed, ORG span wrong, plus a spurious PER.
        let pred = vec![tags("B-PER I-PER O O"), tags("B-ORG I-ORG O B-PER")];
        let s = entity_scores(&gold, &pred).unwrap();
        assert_eq!((s.gold, s.predicted, s.correct), (3, 3, 1));
        assert!((s.precision - 1.0 / 3.0).abs() < 1e-15);
        assert!((s.recall - 1.0 / 3.0).abs() < 1e-15);
        assert!((s.f1 - 1.0 / 3.0).abs() < 1e-15);
        assert_eq!(s.per_type["PER"], (0.5, 1.0, 2.0 / 3.0, 1));
        assert_eq!(s.per_type["LOC"], (0.0, 0.0, 0.0, 1));
        // Nothing predicted: 0, not NaN.
        let none = vec![tags("O O O O"), tags("O O O O")];
        let s = entity_scores(&gold, &none).unwrap();
        assert_eq!((s.precision, s.recall, s.f1), (0.0, 0.0, 0.0));
        assert!(entity_scores(&gold, &none[..1]).is_err());
    }
}
