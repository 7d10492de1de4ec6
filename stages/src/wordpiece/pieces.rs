//! The reference `WordpieceTokenizer`: greedy longest-match-first splitting
//! of one word into vocabulary pieces.
//!
//! The reference tries `chars[start:end]` (prefixed with "##" after the first
//! piece) for `end` from the end of the word down, and turns the whole word
//! into `[UNK]` when some position has no match or the word has more than
//! 200 characters. This does exactly that, with the lookups made cheap:
//! continuation pieces live in their own map without the "##", so candidates
//! are slices of the word and nothing is allocated; candidates longer than
//! the longest piece are skipped (they cannot match); and a one-character
//! word, which is what every CJK character is, is a single array index.

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};

use crate::error::{Error, Result};
use crate::vocab::Vocab;

/// `WordpieceTokenizer.max_input_chars_per_word` in the reference (the
/// NEZHA-PyTorch copy uses 100; the TF reference and its data use 200).
pub const MAX_INPUT_CHARS_PER_WORD: usize = 200;

const CONTINUATION: &str = "##";
const NONE: u32 = u32::MAX;

pub(super) struct Pieces {
    /// Id of the word-initial piece that is exactly this BMP character, or
    /// `NONE`.
    single: Box<[u32]>,
    initial: HashMap<Box<str>, u32, FxBuildHasher>,
    /// Pieces that start with "##", keyed without it.
    continuation: HashMap<Box<str>, u32, FxBuildHasher>,
    longest_initial: usize,
    longest_continuation: usize,
    unk: u32,
}

impl Pieces {
    pub(super) fn new(vocab: &Vocab) -> Result<Pieces> {
        let unk = vocab.unk.ok_or_else(|| {
            Error::config(format!(
                "vocab {} has no [UNK] token; WordPiece needs it for words it cannot split",
                vocab.path.display()
            ))
        })?;
        let mut single = vec![NONE; 0x10000].into_boxed_slice();
        let mut initial = HashMap::default();
        let mut continuation = HashMap::default();
        let (mut longest_initial, mut longest_continuation) = (0, 0);
        for (token, &id) in vocab.token_map() {
            let mut chars = token.chars();
            if let (Some(c), None) = (chars.next(), chars.next()) {
                if let Some(slot) = single.get_mut(c as usize) {
                    *slot = id;
                }
            }
            longest_initial = longest_initial.max(token.len());
            initial.insert(token.as_str().into(), id);
            if let Some(rest) = token.strip_prefix(CONTINUATION) {
                longest_continuation = longest_continuation.max(rest.len());
                continuation.insert(rest.into(), id);
            }
        }
        Ok(Pieces {
            single,
            initial,
            continuation,
            longest_initial,
            longest_continuation,
            unk,
        })
    }

    pub(super) fn unk(&self) -> u32 {
        self.unk
    }

    /// Appends the ids of `word`'s pieces to `out`. `word` is non-empty and
    /// has no whitespace (it comes from the basic tokenizer).
    pub(super) fn push_word(&self, word: &str, out: &mut Vec<u32>) {
        let mut chars = word.chars();
        if let (Some(c), None) = (chars.next(), chars.next()) {
            if let Some(&id) = self.single.get(c as usize) {
                out.push(if id == NONE { self.unk } else { id });
                return;
            }
        }
        // A word of at most 200 bytes has at most 200 characters.
        if word.len() > MAX_INPUT_CHARS_PER_WORD && word.chars().count() > MAX_INPUT_CHARS_PER_WORD
        {
            out.push(self.unk);
            return;
        }
        let first_piece = out.len();
        let mut rest = word;
        let mut pieces = &self.initial;
        let mut longest = self.longest_initial;
        while !rest.is_empty() {
            let mut end = floor_char_boundary(rest, rest.len().min(longest));
            loop {
                if end == 0 {
                    out.truncate(first_piece);
                    out.push(self.unk);
                    return;
                }
                if let Some(&id) = pieces.get(&rest[..end]) {
                    out.push(id);
                    break;
                }
                end = floor_char_boundary(rest, end - 1);
            }
            rest = &rest[end..];
            pieces = &self.continuation;
            longest = self.longest_continuation;
        }
    }
}

impl std::fmt::Debug for Pieces {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pieces")
            .field("initial", &self.initial.len())
            .field("continuation", &self.continuation.len())
            .field("unk", &self.unk)
            .finish_non_exhaustive()
    }
}

/// The largest char boundary of `s` at or below `i` (`i <= s.len()`).
fn floor_char_boundary(s: &str, mut i: usize) -> usize {
    while !s.is_char_boundary(i) {
        i -= 1;
    }
    i
}

/// A multiply-rotate hash (the scheme of rustc's FxHash) for the piece maps:
/// keys are short and trusted, and SipHash would cost more than the rest of
/// a lookup.
#[derive(Default, Clone, Copy)]
struct FxHasher {
    hash: u64,
}

type FxBuildHasher = BuildHasherDefault<FxHasher>;

const FX_SEED: u64 = 0x51_7c_c1_b7_27_22_0a_95;

impl FxHasher {
    #[inline]
    fn add(&mut self, word: u64) {
        self.hash = (self.hash.rotate_left(5) ^ word).wrapping_mul(FX_SEED);
    }
}

impl Hasher for FxHasher {
    #[inline]
    fn write(&mut self, bytes: &[u8]) {
        let mut chunks = bytes.chunks_exact(8);
        for chunk in &mut chunks {
            self.add(u64::from_le_bytes(chunk.try_into().unwrap()));
        }
        let tail = chunks.remainder();
        if !tail.is_empty() {
            let mut last = [0u8; 8];
            last[..tail.len()].copy_from_slice(tail);
            self.add(u64::from_le_bytes(last));
        }
    }

    #[inline]
    fn write_u8(&mut self, byte: u8) {
        self.add(byte as u64);
    }

    #[inline]
    fn finish(&self) -> u64 {
        self.hash
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    fn vocab(words: &[&str]) -> Vocab {
        let mut text = String::from("[PAD]\n[UNK]\n[CLS]\n[SEP]\n[MASK]\n");
        for w in words {
            text.push_str(w);
            text.push('\n');
        }
        Vocab::parse(&text, Path::new("test-vocab.txt")).unwrap()
    }

    fn pieces(p: &Pieces, v: &Vocab, word: &str) -> Vec<String> {
        let mut ids = Vec::new();
        p.push_word(word, &mut ids);
        ids.iter()
            .map(|&i| v.token(i).unwrap().to_string())
            .collect()
    }

    #[test]
    fn greedy_longest_match_first() {
        let v = vocab(&["un", "una", "##aff", "##able", "##a", "##ff", "中", "##中"]);
        let p = Pieces::new(&v).unwrap();
        // "una" is tried (and taken) before "un", as the reference does.
        assert_eq!(pieces(&p, &v, "unaffable"), ["una", "##ff", "##able"]);
        assert_eq!(pieces(&p, &v, "中"), ["中"]);
        assert_eq!(pieces(&p, &v, "中中"), ["中", "##中"]);
    }

    #[test]
    fn a_word_with_an_unmatched_position_is_one_unk() {
        let v = vocab(&["un", "##aff"]);
        let p = Pieces::new(&v).unwrap();
        assert_eq!(pieces(&p, &v, "unaffx"), ["[UNK]"]);
        assert_eq!(pieces(&p, &v, "x"), ["[UNK]"]);
        assert_eq!(pieces(&p, &v, "\u{1f600}"), ["[UNK]"]);
    }

    #[test]
    fn words_over_200_characters_are_unk() {
        let v = vocab(&["a", "##a", "é", "##é"]);
        let p = Pieces::new(&v).unwrap();
        assert_eq!(pieces(&p, &v, &"a".repeat(200)).len(), 200);
        assert_eq!(pieces(&p, &v, &"a".repeat(201)), ["[UNK]"]);
        // Characters, not bytes: 200 two-byte characters are still a word.
        assert_eq!(pieces(&p, &v, &"é".repeat(200)).len(), 200);
        assert_eq!(pieces(&p, &v, &"é".repeat(201)), ["[UNK]"]);
    }

    #[test]
    fn multibyte_candidates_shrink_by_whole_characters() {
        let v = vocab(&["é", "##éé"]);
        let p = Pieces::new(&v).unwrap();
        assert_eq!(pieces(&p, &v, "ééé"), ["é", "##éé"]);
    }

    #[test]
    fn a_vocab_without_unk_is_refused_by_name() {
        let v = Vocab::parse("[PAD]\n[CLS]\n[SEP]\n[MASK]\n", Path::new("no-unk.txt")).unwrap();
        let err = Pieces::new(&v).unwrap_err().to_string();
        assert!(err.contains("no-unk.txt") && err.contains("[UNK]"), "{err}");
    }
}
