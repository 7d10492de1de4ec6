//! Tagged sentences to model inputs as `run_classifier_ner.py`'s
//! `convert_single_example`: each character is WordPiece-tokenized, its
//! first piece carries its tag and any further pieces the tag `X`;
//! `[CLS]` and `[SEP]` carry the tags `[CLS]` and `[SEP]`; a sentence whose
//! pieces do not fit is cut to `max_seq_length − 2` pieces.
//!
//! Two departures, both to keep every character aligned with a prediction:
//! a character that tokenizes to nothing (a control character) becomes
//! `[UNK]` instead of vanishing with its tag; and the tag set is the sorted
//! tags of the training data plus `X`, `[CLS]` and `[SEP]`, fixed and saved
//! with the model, instead of the reference's hard-coded PER/ORG/LOC list.

use std::sync::Arc;

use anyhow::{bail, ensure, Context, Result};
use nezha_stages::vocab::Vocab;
use nezha_stages::wordpiece::WordPiece;

use super::data::Sentence;
use crate::heads::token_classification::IGNORE_LABEL;

/// The tags the model predicts that are not the data's.
pub const SPECIAL_TAGS: [&str; 3] = ["X", "[CLS]", "[SEP]"];

/// Tag names in id order.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TagMap {
    pub names: Vec<String>,
}

impl TagMap {
    /// The sorted distinct tags of the training sentences and the special
    /// tags.
    pub fn from_training(train: &[Sentence]) -> Result<TagMap> {
        let mut names: Vec<String> = Vec::new();
        for s in train {
            if !s.is_tagged() {
                bail!("{}: no tags, and training needs a tagged file", s.origin);
            }
            for (i, t) in s.tags.iter().enumerate() {
                if SPECIAL_TAGS.contains(&t.as_str()) {
                    bail!("{}: the tag {t:?} is reserved", s.at(i));
                }
                names.push(t.clone());
            }
        }
        names.sort();
        names.dedup();
        ensure!(
            names.len() >= 2,
            "training data has {} distinct tag(s) ({names:?}): a tagger needs at least 2",
            names.len()
        );
        names.extend(SPECIAL_TAGS.iter().map(|s| s.to_string()));
        names.sort();
        Ok(TagMap { names })
    }

    pub fn id(&self, tag: &str) -> Option<usize> {
        self.names.iter().position(|n| n == tag)
    }

    pub fn len(&self) -> usize {
        self.names.len()
    }

    pub fn is_empty(&self) -> bool {
        self.names.is_empty()
    }

    /// The data tag a predicted id stands for: the special tags are not
    /// entities and read as `O`.
    pub fn data_tag(&self, id: usize) -> &str {
        let n = self.names[id].as_str();
        if SPECIAL_TAGS.contains(&n) {
            "O"
        } else {
            n
        }
    }
}

/// One sentence as ids, unpadded.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TagFeatures {
    pub input_ids: Vec<i64>,
    /// One tag id per piece.
    pub tag_ids: Vec<i64>,
    /// The piece position of each character's first piece, for the
    /// characters that fit.
    pub first_piece: Vec<usize>,
}

pub struct TagEncoder {
    tokenizer: WordPiece,
    cls: i64,
    sep: i64,
    pub max_seq_length: usize,
}

impl TagEncoder {
    pub fn new(
        vocab: Arc<Vocab>,
        do_lower_case: bool,
        max_seq_length: usize,
    ) -> Result<TagEncoder> {
        ensure!(
            max_seq_length >= 3,
            "max_seq_length {max_seq_length} leaves no room for text"
        );
        let (cls, sep) = (i64::from(vocab.cls), i64::from(vocab.sep));
        Ok(TagEncoder {
            tokenizer: WordPiece::new(vocab, do_lower_case)?,
            cls,
            sep,
            max_seq_length,
        })
    }

    /// The pieces of one character or word.
    pub fn pieces(&self, word: &str) -> Vec<i64> {
        let ids = self.tokenizer.tokenize(word);
        if ids.is_empty() {
            return vec![i64::from(self.tokenizer.unk())];
        }
        ids.into_iter().map(i64::from).collect()
    }

    /// Encodes a sentence; a tag training never saw is an error naming its
    /// file and line. A sentence without tags gets [`IGNORE_LABEL`] at
    /// every position: no loss, nothing to score.
    pub fn encode(&self, s: &Sentence, tags: &TagMap) -> Result<TagFeatures> {
        let tagged = s.is_tagged();
        let id = |t: &str| {
            if tagged {
                tags.id(t).map(|i| i as i64)
            } else {
                Some(IGNORE_LABEL)
            }
        };
        let x = id("X").context("the tag map has no X")?;
        let mut input_ids = vec![self.cls];
        let mut tag_ids = vec![id("[CLS]").context("the tag map has no [CLS]")?];
        let mut first_piece = Vec::with_capacity(s.chars.len());
        let room = self.max_seq_length - 1;
        for (i, c) in s.chars.iter().enumerate() {
            let t = s.tags.get(i).map_or("", String::as_str);
            let Some(tag) = id(t) else {
                bail!(
                    "{}: tag {t:?} never occurs in the training data (tags: {:?})",
                    s.at(i),
                    tags.names
                );
            };
            for (k, piece) in self.pieces(c).into_iter().enumerate() {
                if input_ids.len() >= room {
                    break;
                }
                if k == 0 {
                    first_piece.push(input_ids.len());
                }
                input_ids.push(piece);
                tag_ids.push(if k == 0 { tag } else { x });
            }
        }
        input_ids.push(self.sep);
        tag_ids.push(id("[SEP]").context("the tag map has no [SEP]")?);
        Ok(TagFeatures {
            input_ids,
            tag_ids,
            first_piece,
        })
    }

    pub fn encode_all(&self, sentences: &[Sentence], tags: &TagMap) -> Result<Vec<TagFeatures>> {
        sentences.iter().map(|s| self.encode(s, tags)).collect()
    }
}

/// Per-character tags from per-piece predicted ids: each character gets the
/// tag predicted at its first piece; characters cut off by the length limit
/// get `O`.
pub fn char_tags(f: &TagFeatures, n_chars: usize, pred: &[i64], tags: &TagMap) -> Vec<String> {
    (0..n_chars)
        .map(|c| match f.first_piece.get(c) {
            Some(&p) => tags.data_tag(pred[p] as usize).to_string(),
            None => "O".to_string(),
        })
        .collect()
}
