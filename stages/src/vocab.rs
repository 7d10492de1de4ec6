//! The WordPiece vocabulary, loaded as the reference `tokenization.load_vocab`
//! does: one token per line, surrounding whitespace stripped, ids in line
//! order.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use crate::error::{Error, Result};

#[derive(Clone, Debug)]
pub struct Vocab {
    /// Distinct tokens in order of first appearance: the reference's
    /// `list(vocab.keys())`, from which masking draws random replacements.
    words: Vec<String>,
    /// Token to id. A token listed twice keeps its last line, as a Python
    /// dict assignment does.
    ids: HashMap<String, u32>,
    /// Id of each entry of `words`.
    word_ids: Vec<u32>,
    pub path: PathBuf,
    pub cls: u32,
    pub sep: u32,
    pub mask: u32,
    pub pad: Option<u32>,
    pub unk: Option<u32>,
}

impl Vocab {
    pub fn load(path: &Path) -> Result<Vocab> {
        let bytes = std::fs::read(path).map_err(|e| Error::io(path, e))?;
        let text = std::str::from_utf8(&bytes)
            .map_err(|e| Error::invalid_utf8(path, e.valid_up_to() as u64))?;
        Self::parse(text, path)
    }

    pub fn parse(text: &str, path: &Path) -> Result<Vocab> {
        let mut words = Vec::new();
        let mut ids: HashMap<String, u32> = HashMap::new();
        // `readline()` keeps the line ending; `strip()` then removes it and
        // any other surrounding whitespace, so the last line needs no newline.
        for (line_no, line) in text.split_inclusive('\n').enumerate() {
            let token = crate::sentences::py_strip(line);
            if ids.insert(token.to_string(), line_no as u32).is_none() {
                words.push(token.to_string());
            }
        }
        let special = |name: &str| -> Result<u32> {
            ids.get(name).copied().ok_or_else(|| {
                Error::config(format!(
                    "vocab {} has no {name} token; a BERT vocab needs [CLS], [SEP] and [MASK]",
                    path.display()
                ))
            })
        };
        let cls = special("[CLS]")?;
        let sep = special("[SEP]")?;
        let mask = special("[MASK]")?;
        let word_ids = words.iter().map(|w| ids[w]).collect();
        Ok(Vocab {
            pad: ids.get("[PAD]").copied(),
            unk: ids.get("[UNK]").copied(),
            words,
            word_ids,
            ids,
            path: path.to_path_buf(),
            cls,
            sep,
            mask,
        })
    }

    /// Number of distinct tokens: `len(vocab)` in the reference.
    pub fn len(&self) -> usize {
        self.words.len()
    }

    pub fn is_empty(&self) -> bool {
        self.words.is_empty()
    }

    /// Size of the id space (largest id + 1), the model's vocab size.
    pub fn id_space(&self) -> usize {
        self.ids
            .values()
            .map(|&i| i as usize + 1)
            .max()
            .unwrap_or(0)
    }

    pub fn id(&self, token: &str) -> Option<u32> {
        self.ids.get(token).copied()
    }

    /// The id of the `n`-th distinct word, as `vocab[vocab_words[n]]`.
    pub fn word_id(&self, n: usize) -> u32 {
        self.word_ids[n]
    }

    pub fn token(&self, id: u32) -> Option<&str> {
        // Ids are line numbers; with duplicates the id's word is the one
        // whose last occurrence is that line.
        let w = self.words.get(id as usize)?;
        if self.ids[w] == id {
            return Some(w);
        }
        self.words
            .iter()
            .find(|w| self.ids[*w] == id)
            .map(|s| s.as_str())
    }

    pub fn token_map(&self) -> &HashMap<String, u32> {
        &self.ids
    }
}

/// For unit tests: the five special tokens, then `words` plain words
/// `w0`, `w1`, … and `pieces` continuation pieces `##w0`, `##w1`, ….
#[cfg(test)]
pub(crate) fn test_vocab(words: usize, pieces: usize) -> Vocab {
    let lines: Vec<String> = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
        .iter()
        .map(|s| s.to_string())
        .chain((0..words).map(|i| format!("w{i}")))
        .chain((0..pieces).map(|i| format!("##w{i}")))
        .collect();
    Vocab::parse(&lines.join("\n"), Path::new("test-vocab")).unwrap()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_follow_lines_and_strip_whitespace() {
        let v = Vocab::parse(
            "[PAD]\n [UNK] \n[CLS]\n[SEP]\n[MASK]\nhello\r\n##lo",
            Path::new("v"),
        )
        .unwrap();
        assert_eq!(v.id("[UNK]"), Some(1));
        assert_eq!(v.id("hello"), Some(5));
        assert_eq!(v.id("##lo"), Some(6));
        assert_eq!((v.cls, v.sep, v.mask), (2, 3, 4));
        assert_eq!(v.len(), 7);
        assert_eq!(v.token(5), Some("hello"));
    }

    #[test]
    fn missing_special_token_is_named() {
        let err = Vocab::parse("[PAD]\n[CLS]\n[SEP]\n", Path::new("v.txt")).unwrap_err();
        assert!(err.to_string().contains("[MASK]"), "{err}");
        assert!(err.to_string().contains("v.txt"), "{err}");
    }
}
