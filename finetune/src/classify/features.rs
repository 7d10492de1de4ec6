//! Examples to model inputs as `run_classifier.py`'s
//! `convert_single_example`: `[CLS] a [SEP]` or `[CLS] a [SEP] b [SEP]`,
//! segment 0 through the first `[SEP]` and 1 after, a pair truncated by
//! popping the last token of the longer side (ties: `b`).
//!
//! Labels get ids from a [`LabelMap`] fixed before training and saved with
//! the model, so the ids never depend on hash order or file order (the
//! reference's ChnSenti label order changes from run to run).

use std::sync::Arc;

use anyhow::{bail, ensure, Result};
use nezha_stages::vocab::Vocab;
use nezha_stages::wordpiece::WordPiece;

use super::data::Example;

/// Label names in id order.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LabelMap {
    pub names: Vec<String>,
}

impl LabelMap {
    /// The sorted distinct labels of the training examples.
    pub fn from_training(examples: &[Example]) -> Result<LabelMap> {
        super::data::require_labels(examples, "training")?;
        let mut names: Vec<String> = examples.iter().flat_map(|e| e.label.clone()).collect();
        names.sort();
        names.dedup();
        ensure!(
            names.len() >= 2,
            "training data has {} distinct label(s) ({names:?}): a classifier needs at least 2",
            names.len()
        );
        Ok(LabelMap { names })
    }

    /// A label list a task fixes (XNLI, LCQMC), in the reference's order;
    /// the training data must then use only these labels.
    pub fn fixed(names: Vec<String>, training: &[Example]) -> Result<LabelMap> {
        super::data::require_labels(training, "training")?;
        let map = LabelMap { names };
        for e in training {
            let label = e.label.as_deref().unwrap_or_default();
            if map.id(label).is_none() {
                bail!(
                    "{}: label {label:?} is not one of the task's labels {:?}",
                    e.origin,
                    map.names
                );
            }
        }
        Ok(map)
    }

    pub fn id(&self, label: &str) -> Option<usize> {
        self.names.iter().position(|n| n == label)
    }

    pub fn len(&self) -> usize {
        self.names.len()
    }

    pub fn is_empty(&self) -> bool {
        self.names.is_empty()
    }
}

/// One example as ids, unpadded.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Features {
    pub input_ids: Vec<i64>,
    pub segment_ids: Vec<i64>,
    pub label: usize,
}

/// One example's model inputs alone (an example to predict may have no
/// label), unpadded.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Inputs {
    pub input_ids: Vec<i64>,
    pub segment_ids: Vec<i64>,
}

/// Tokenizes and encodes examples for the classifier.
pub struct Encoder {
    tokenizer: WordPiece,
    cls: i64,
    sep: i64,
    pub max_seq_length: usize,
}

impl Encoder {
    pub fn new(vocab: Arc<Vocab>, do_lower_case: bool, max_seq_length: usize) -> Result<Encoder> {
        ensure!(
            max_seq_length >= 3,
            "max_seq_length {max_seq_length} leaves no room for text"
        );
        // Vocab::load refused a vocab without them.
        let (cls, sep) = (i64::from(vocab.cls), i64::from(vocab.sep));
        Ok(Encoder {
            tokenizer: WordPiece::new(vocab, do_lower_case)?,
            cls,
            sep,
            max_seq_length,
        })
    }

    fn ids(&self, text: &str) -> Vec<i64> {
        self.tokenizer
            .tokenize(text)
            .into_iter()
            .map(i64::from)
            .collect()
    }

    /// Encodes one example; a missing or unknown label is an error naming
    /// the example's file and line.
    pub fn encode(&self, e: &Example, labels: &LabelMap) -> Result<Features> {
        let Some(name) = &e.label else {
            bail!("{}: no label (the file has none)", e.origin);
        };
        let Some(label) = labels.id(name) else {
            bail!(
                "{}: label {name:?} never occurs in the training data (labels: {:?})",
                e.origin,
                labels.names
            );
        };
        let Inputs {
            input_ids,
            segment_ids,
        } = self.inputs(e);
        Ok(Features {
            input_ids,
            segment_ids,
            label,
        })
    }

    /// The model inputs of one example, its label aside.
    pub fn inputs(&self, e: &Example) -> Inputs {
        let mut a = self.ids(&e.text_a);
        // The reference's `if tokens_b:`: a second text with no tokens
        // makes a single-sentence input.
        let mut b = e
            .text_b
            .as_deref()
            .map(|t| self.ids(t))
            .filter(|b| !b.is_empty());
        match &mut b {
            Some(b) => truncate_pair(&mut a, b, self.max_seq_length - 3),
            None => a.truncate(self.max_seq_length - 2),
        }
        let mut input_ids = Vec::with_capacity(self.max_seq_length);
        input_ids.push(self.cls);
        input_ids.extend(&a);
        input_ids.push(self.sep);
        let mut segment_ids = vec![0; input_ids.len()];
        if let Some(b) = b {
            input_ids.extend(&b);
            input_ids.push(self.sep);
            segment_ids.resize(input_ids.len(), 1);
        }
        Inputs {
            input_ids,
            segment_ids,
        }
    }

    pub fn encode_all(&self, examples: &[Example], labels: &LabelMap) -> Result<Vec<Features>> {
        examples.iter().map(|e| self.encode(e, labels)).collect()
    }
}

/// The reference's `_truncate_seq_pair`: pop from the end of the longer
/// sequence until both fit; on a tie, from `b`.
pub fn truncate_pair(a: &mut Vec<i64>, b: &mut Vec<i64>, max_len: usize) {
    while a.len() + b.len() > max_len {
        if a.len() > b.len() {
            a.pop();
        } else {
            b.pop();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pair_truncation_pops_the_longer_side_ties_b() {
        let (mut a, mut b) = (vec![1, 2, 3, 4, 5], vec![6, 7, 8]);
        truncate_pair(&mut a, &mut b, 5);
        // 5+3 → pop a (5>3) → 4+3 → pop a (4>3) → 3+3 → tie: pop b → 3+2.
        assert_eq!((a, b), (vec![1, 2, 3], vec![6, 7]));
    }

    #[test]
    fn label_ids_are_sorted_names() {
        let ex = |l: &str| Example {
            text_a: "x".into(),
            text_b: None,
            label: Some(l.into()),
            origin: "t:1".into(),
        };
        let m = LabelMap::from_training(&[ex("pos"), ex("neg"), ex("pos")]).unwrap();
        assert_eq!(m.names, vec!["neg", "pos"]);
        assert!(LabelMap::from_training(&[ex("pos"), ex("pos")]).is_err());
    }
}
