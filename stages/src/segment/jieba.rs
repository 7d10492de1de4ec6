//! Chinese word boundaries from Jieba (`jieba-rs`, with its bundled
//! dictionary, as Python `jieba` 0.42.1 segments).

use std::io::BufRead;
use std::path::Path;
use std::sync::Arc;

use jieba_rs::Jieba;

use super::CONTINUES_WORD;
use crate::data::TokenizedDocument;
use crate::error::{Error, Result};
use crate::stage::Stage;
use crate::vocab::Vocab;

/// The Jieba dictionary and model, loaded once and shared by every worker
/// (the bundled dictionary takes a fraction of a second and tens of MB).
#[derive(Clone)]
pub struct Segmenter {
    jieba: Arc<Jieba>,
    /// Jieba's HMM guesses words its dictionary lacks (names, mostly), as
    /// Python's `jieba.cut` does by default.
    hmm: bool,
}

impl std::fmt::Debug for Segmenter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Segmenter").field("hmm", &self.hmm).finish()
    }
}

impl Segmenter {
    /// The bundled dictionary, plus the words of `user_dict` if given.
    pub fn new(user_dict: Option<&Path>, hmm: bool) -> Result<Segmenter> {
        let mut jieba = Jieba::new();
        if let Some(path) = user_dict {
            let file = std::fs::File::open(path).map_err(|e| Error::io(path, e))?;
            load_user_dict(&mut jieba, std::io::BufReader::new(file), path)?;
        }
        Ok(Segmenter {
            jieba: Arc::new(jieba),
            hmm,
        })
    }

    /// The words of `text`, in order, as Jieba cuts them.
    pub fn words<'a>(&self, text: &'a str) -> Vec<&'a str> {
        self.jieba
            .cut(text, self.hmm)
            .into_iter()
            .map(|t| t.word)
            .collect()
    }
}

/// Adds a user dictionary in Jieba's format: one word per line, optionally
/// followed by a frequency and a part-of-speech tag, separated by spaces.
/// Blank lines are skipped; a frequency that is not a whole number is an
/// error naming the file and line.
fn load_user_dict(jieba: &mut Jieba, reader: impl BufRead, path: &Path) -> Result<()> {
    for (n, line) in reader.lines().enumerate() {
        let line_no = n as u64 + 1;
        let line = line.map_err(|e| match e.kind() {
            std::io::ErrorKind::InvalidData => Error::input(path, line_no, "invalid UTF-8"),
            _ => Error::io(path, e),
        })?;
        let mut fields = line.split_whitespace();
        let Some(word) = fields.next() else { continue };
        let freq = match fields.next() {
            Some(f) => Some(f.parse::<usize>().map_err(|_| {
                Error::input(
                    path,
                    line_no,
                    format!("user dictionary: frequency {f:?} of {word:?} is not a whole number"),
                )
            })?),
            None => None,
        };
        jieba.add_word(word, freq, fields.next());
    }
    Ok(())
}

/// Stands for [UNK] in the text Jieba segments (see [`JiebaWords::new`]).
const UNKNOWN_CHAR: char = '\u{4DB5}';

/// The CJK ranges of the reference tokenizer's `_is_chinese_char`: the
/// characters it splits into one token each.
fn is_cjk(c: char) -> bool {
    matches!(c as u32,
        0x4E00..=0x9FFF
        | 0x3400..=0x4DBF
        | 0x20000..=0x2A6DF
        | 0x2A700..=0x2B73F
        | 0x2B740..=0x2B81F
        | 0x2B820..=0x2CEAF
        | 0xF900..=0xFAFF
        | 0x2F800..=0x2FA1F)
}

/// Tags the tokens of Chinese words that continue a word
/// ([`CONTINUES_WORD`]). Jieba runs over each maximal run of
/// single-character CJK tokens (and [UNK]s) of a sentence: the reference
/// tokenizer cut the sentence into those characters, punctuation, and
/// WordPiece pieces of other words, whose `##` marks already say where their
/// words go on.
#[derive(Clone, Debug)]
pub struct JiebaWords {
    segmenter: Segmenter,
    /// The CJK character each vocab id stands for, if it is one.
    chars: Arc<Vec<Option<char>>>,
    run: String,
}

impl JiebaWords {
    pub fn new(segmenter: Segmenter, vocab: &Vocab) -> Result<JiebaWords> {
        if vocab.id_space() > CONTINUES_WORD as usize {
            return Err(Error::config(format!(
                "vocab {} has {} ids; whole-word masking needs ids below 2^31",
                vocab.path.display(),
                vocab.id_space()
            )));
        }
        let mut chars = vec![None; vocab.id_space()];
        for (word, &id) in vocab.token_map() {
            let mut it = word.chars();
            if let (Some(c), None) = (it.next(), it.next()) {
                if is_cjk(c) {
                    chars[id as usize] = Some(c);
                }
            }
        }
        // In Chinese text [UNK] is almost always a rare character missing
        // from the vocab, and so, most likely, from Jieba's dictionary and
        // HMM tables too. Cutting the run there would change the words
        // around it; a stand-in that Jieba does not know either (U+4DB5, an
        // unused CJK Extension A character) segments the run as the lost
        // character most likely would have.
        if let Some(unk) = vocab.unk {
            chars[unk as usize] = Some(UNKNOWN_CHAR);
        }
        Ok(JiebaWords {
            segmenter,
            chars: Arc::new(chars),
            run: String::new(),
        })
    }

    fn char_of(&self, id: u32) -> Option<char> {
        self.chars.get(id as usize).copied().flatten()
    }

    /// Tags every segment of `doc`.
    pub fn mark(&mut self, doc: &mut TokenizedDocument) {
        for segment in &mut doc.segments {
            self.mark_segment(segment);
        }
    }

    /// Tags the tokens of one sentence that continue a Jieba word.
    pub fn mark_segment(&mut self, tokens: &mut [u32]) {
        let mut start = 0;
        while start < tokens.len() {
            if self.char_of(tokens[start]).is_none() {
                start += 1;
                continue;
            }
            let mut end = start;
            self.run.clear();
            while let Some(c) = tokens.get(end).and_then(|&t| self.char_of(t)) {
                self.run.push(c);
                end += 1;
            }
            // One token per character, so character offsets are token offsets.
            for word in self.segmenter.jieba.cut(&self.run, self.segmenter.hmm) {
                for t in &mut tokens[start + word.start + 1..start + word.end] {
                    *t |= CONTINUES_WORD;
                }
            }
            start = end;
        }
    }
}

impl Stage for JiebaWords {
    type In = TokenizedDocument;
    type Out = TokenizedDocument;

    fn push(&mut self, mut doc: TokenizedDocument, emit: &mut dyn FnMut(Self::Out)) -> Result<()> {
        self.mark(&mut doc);
        emit(doc);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::segment::untagged;

    fn vocab() -> Vocab {
        let words: Vec<String> = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "，", "。"]
            .iter()
            .map(|s| s.to_string())
            .chain("我们喜欢三国演义的故事曹操刘备".chars().map(String::from))
            .chain(["abc", "##de"].iter().map(|s| s.to_string()))
            .collect();
        Vocab::parse(&words.join("\n"), Path::new("test-vocab")).unwrap()
    }

    fn ids(v: &Vocab, text: &[&str]) -> Vec<u32> {
        text.iter().map(|t| v.id(t).unwrap()).collect()
    }

    #[test]
    fn tags_word_continuations_and_nothing_else() {
        let v = vocab();
        let mut words = JiebaWords::new(Segmenter::new(None, false).unwrap(), &v).unwrap();
        let plain = ids(
            &v,
            &[
                "我", "们", "喜", "欢", "abc", "##de", "三", "国", "演", "义", "，", "曹", "操",
            ],
        );
        let mut tagged = plain.clone();
        words.mark_segment(&mut tagged);
        let continues: Vec<bool> = tagged.iter().map(|&t| t & CONTINUES_WORD != 0).collect();
        // 我们 | 喜欢 | abc ##de (WordPiece's business) | 三国演义 | ， | 曹操
        assert_eq!(
            continues,
            [false, true, false, true, false, false, false, true, true, true, false, false, true]
        );
        assert_eq!(
            tagged.iter().map(|&t| untagged(t)).collect::<Vec<_>>(),
            plain
        );
    }

    #[test]
    fn user_dictionary_words_are_kept_whole_and_bad_lines_are_named() {
        let v = vocab();
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("user.txt");
        let mut tokens = ids(&v, &["刘", "备", "曹", "操", "的", "故", "事"]);
        let before = Segmenter::new(None, false).unwrap().words("刘备曹操的故事");
        assert!(!before.contains(&"刘备曹操"), "{before:?}");
        std::fs::write(&path, "\n刘备曹操 1000000 nr\n").unwrap();
        let seg = Segmenter::new(Some(&path), false).unwrap();
        assert_eq!(seg.words("刘备曹操的故事")[0], "刘备曹操");
        JiebaWords::new(seg, &v).unwrap().mark_segment(&mut tokens);
        let continues: Vec<bool> = tokens.iter().map(|&t| t & CONTINUES_WORD != 0).collect();
        assert_eq!(&continues[..4], [false, true, true, true]);

        std::fs::write(&path, "刘备 3\n曹操 many\n").unwrap();
        let err = Segmenter::new(Some(&path), false).unwrap_err().to_string();
        assert!(err.contains("user.txt:2:") && err.contains("many"), "{err}");
    }
}
