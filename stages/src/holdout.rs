//! A held-out share of the corpus for evaluation, chosen by document: a
//! document is held out when its text's key ([`document_key`], the words in
//! order) falls in the first `fraction` of the key space. The choice depends
//! on the text alone, so it is the same on every worker, process and pass,
//! a repeated text lands on one side only, and the training side and the
//! held-out side are the two halves of one partition.

use crate::data::Document;
use crate::dedup::document_key;
use crate::error::Result;
use crate::stage::Stage;

/// Which side of the partition a stream keeps.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Side {
    /// Every document except the held-out ones.
    Train,
    /// Only the held-out documents.
    HeldOut,
}

/// True when `doc` belongs to the held-out `fraction`.
pub fn is_held_out(doc: &Document, fraction: f64) -> bool {
    let top = (document_key(doc) >> 64) as u64;
    (top as f64) < fraction * 2f64.powi(64)
}

/// Keeps one side of the held-out partition.
pub struct Holdout {
    pub fraction: f64,
    pub keep: Side,
}

impl Stage for Holdout {
    type In = Document;
    type Out = Document;

    fn push(&mut self, doc: Document, emit: &mut dyn FnMut(Document)) -> Result<()> {
        if is_held_out(&doc, self.fraction) == (self.keep == Side::HeldOut) {
            emit(doc);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::stage::run_all;

    fn corpus(n: u64) -> Vec<Document> {
        (0..n)
            .map(|i| Document {
                index: i,
                origin: format!("c.txt:{i}"),
                lines: vec![format!("document number {i}"), "the same line".into()],
            })
            .collect()
    }

    #[test]
    fn the_two_sides_partition_the_corpus_near_the_fraction() {
        let docs = corpus(4000);
        let side = |keep| {
            let mut stage = Holdout {
                fraction: 0.1,
                keep,
            };
            run_all(&mut stage, docs.clone())
                .unwrap()
                .into_iter()
                .map(|d| d.index)
                .collect::<Vec<_>>()
        };
        let (train, held) = (side(Side::Train), side(Side::HeldOut));
        assert_eq!(train.len() + held.len(), docs.len());
        assert!(held.iter().all(|i| !train.contains(i)));
        assert!((300..500).contains(&held.len()), "{} held out", held.len());
    }

    #[test]
    fn the_choice_follows_the_words_not_the_position_or_spacing() {
        let a = Document {
            index: 1,
            origin: "a:1".into(),
            lines: vec!["same  words here".into()],
        };
        let b = Document {
            index: 99,
            origin: "b:7".into(),
            lines: vec!["same".into(), "words\there".into()],
        };
        for f in [0.01, 0.3, 0.5, 0.9] {
            assert_eq!(is_held_out(&a, f), is_held_out(&b, f));
        }
        assert!(!is_held_out(&a, 0.0));
        assert!(is_held_out(&a, 1.0));
    }
}
