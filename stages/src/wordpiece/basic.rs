//! The reference `BasicTokenizer`: text to words, before WordPiece.
//!
//! The reference makes six passes over each line (`_clean_text`, CJK
//! padding, `str.split()`, lower-casing and accent stripping per token,
//! punctuation split, `str.split()` again), building a new string each time.
//! This does the same in one pass over the characters, slicing words out of
//! the input where it can:
//!
//! - the characters dropped by cleaning are skipped; only a token that one of
//!   them cuts in two is copied, to join its halves;
//! - whitespace ends the current token, and a CJK character is a token of its
//!   own, which is what padding it with spaces achieves;
//! - a token is lower-cased as a whole, as `str.lower()` sees it (Final_Sigma
//!   looks across punctuation), and only when it needs it: when a character
//!   in it changes (its table flag) or is an ASCII capital (lowered in place);
//! - punctuation is split last, from the lower-cased token, since lowering
//!   and NFD can create punctuation (U+1FEF becomes '`').

use super::chars::{CharTable, CJK, DROP, PUNCT, SPACE, WORD};
use super::lowercase::lower_strip_accents;

#[derive(Clone, Debug)]
pub struct BasicTokenizer {
    do_lower_case: bool,
    table: &'static CharTable,
}

/// What the scan learned about the token it is building.
#[derive(Default)]
struct Token {
    /// Byte offset in the text where the token starts.
    start: Option<usize>,
    /// The token is in `Scratch::joined` because a dropped character cut it.
    joined: bool,
    has_punct: bool,
    /// A character other than an ASCII capital changes when lower-cased.
    needs_lowering: bool,
    has_ascii_capital: bool,
}

/// Buffers reused across the tokens of one call.
#[derive(Default)]
struct Scratch {
    joined: String,
    lowered: String,
    normalized: String,
}

impl BasicTokenizer {
    pub fn new(do_lower_case: bool) -> BasicTokenizer {
        BasicTokenizer {
            do_lower_case,
            table: CharTable::get(),
        }
    }

    pub fn do_lower_case(&self) -> bool {
        self.do_lower_case
    }

    /// The reference's `BasicTokenizer.tokenize(text)`.
    pub fn tokenize(&self, text: &str) -> Vec<String> {
        let mut words = Vec::new();
        self.for_each_word(text, |w| words.push(w.to_string()));
        words
    }

    /// Calls `emit` with each word of `text`, in order; never with an empty
    /// word.
    pub fn for_each_word(&self, text: &str, mut emit: impl FnMut(&str)) {
        let mut scratch = Scratch::default();
        let mut token = Token::default();
        for (i, c) in text.char_indices() {
            let flags = self.table.flags(c);
            match flags.class() {
                DROP => {
                    if let (Some(start), false) = (token.start, token.joined) {
                        scratch.joined.clear();
                        scratch.joined.push_str(&text[start..i]);
                        token.joined = true;
                    }
                }
                SPACE => self.finish_token(text, i, &mut token, &mut scratch, &mut emit),
                CJK => {
                    self.finish_token(text, i, &mut token, &mut scratch, &mut emit);
                    let end = i + c.len_utf8();
                    if self.do_lower_case && flags.lower_changes() {
                        let normalized = &mut scratch.normalized;
                        normalized.clear();
                        lower_strip_accents(
                            self.table,
                            &text[i..end],
                            &mut scratch.lowered,
                            normalized,
                        );
                        self.split_punct(normalized, &mut emit);
                    } else {
                        emit(&text[i..end]);
                    }
                }
                class @ (WORD | PUNCT) => {
                    if token.start.is_none() {
                        token.start = Some(i);
                    }
                    if token.joined {
                        scratch.joined.push(c);
                    }
                    token.has_punct |= class == PUNCT;
                    if c.is_ascii_uppercase() {
                        token.has_ascii_capital = true;
                    } else {
                        token.needs_lowering |= flags.lower_changes();
                    }
                }
                class => unreachable!("the character table has no class {class}"),
            }
        }
        self.finish_token(text, text.len(), &mut token, &mut scratch, &mut emit);
    }

    /// Emits the words of the token that ends at byte `end`, if any.
    fn finish_token(
        &self,
        text: &str,
        end: usize,
        token: &mut Token,
        scratch: &mut Scratch,
        emit: &mut impl FnMut(&str),
    ) {
        let Some(start) = token.start else { return };
        let t = std::mem::take(token);
        let raw = if t.joined {
            scratch.joined.as_str()
        } else {
            &text[start..end]
        };
        let lowered = &mut scratch.lowered;
        let word = if !self.do_lower_case {
            raw
        } else if t.needs_lowering {
            let normalized = &mut scratch.normalized;
            normalized.clear();
            lower_strip_accents(self.table, raw, lowered, normalized);
            // Lowering can create punctuation; look again.
            return self.split_punct(normalized, emit);
        } else if t.has_ascii_capital {
            lowered.clear();
            lowered.push_str(raw);
            lowered.make_ascii_lowercase();
            lowered.as_str()
        } else {
            raw
        };
        if t.has_punct {
            self.split_punct(word, emit);
        } else {
            emit(word);
        }
    }

    /// `_run_split_on_punc`: each punctuation character is a word, and so is
    /// each run of other characters.
    fn split_punct(&self, token: &str, emit: &mut impl FnMut(&str)) {
        let mut start = 0;
        for (i, c) in token.char_indices() {
            if self.table.flags(c).class() == PUNCT {
                if start < i {
                    emit(&token[start..i]);
                }
                let end = i + c.len_utf8();
                emit(&token[i..end]);
                start = end;
            }
        }
        if start < token.len() {
            emit(&token[start..]);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn words(lower: bool, text: &str) -> Vec<String> {
        BasicTokenizer::new(lower).tokenize(text)
    }

    #[test]
    fn cleans_pads_and_splits() {
        assert_eq!(
            words(true, " Hello,  World! "),
            ["hello", ",", "world", "!"]
        );
        assert_eq!(words(false, "Hello,World"), ["Hello", ",", "World"]);
        assert_eq!(words(true, "中文ab中"), ["中", "文", "ab", "中"]);
        assert_eq!(words(true, "a\u{3000}b\u{2028}c"), ["a", "b", "c"]);
        assert!(words(true, " \t\u{200b}\0 ").is_empty());
    }

    #[test]
    fn dropped_characters_join_their_neighbours() {
        assert_eq!(words(true, "ab\u{200b}cd"), ["abcd"]);
        assert_eq!(words(true, "A\u{ad}B\u{feff}C.d e"), ["abc", ".", "d", "e"]);
        assert_eq!(words(false, "\u{200b}ab"), ["ab"]);
        assert_eq!(words(true, "a\x1cb\x7fc"), ["abc"]);
    }

    #[test]
    fn other_c_categories_are_kept() {
        // Private use and unassigned code points are not controls to the
        // reference (only Cc and Cf are).
        assert_eq!(words(true, "a\u{e000}b \u{378}"), ["a\u{e000}b", "\u{378}"]);
    }

    #[test]
    fn lower_casing_happens_before_the_punctuation_split() {
        assert_eq!(words(true, "ΑΣ.Α ΑΣ."), ["ασ", ".", "α", "ας", "."]);
        // U+1FEF (GREEK VARIA, a symbol) decomposes to '`' (punctuation).
        assert_eq!(words(true, "a\u{1fef}b"), ["a", "`", "b"]);
        assert_eq!(words(false, "a\u{1fef}b"), ["a\u{1fef}b"]);
    }

    #[test]
    fn accents_are_stripped_only_when_lower_casing() {
        assert_eq!(words(true, "Café"), ["cafe"]);
        assert_eq!(words(false, "Café"), ["Café"]);
        assert_eq!(words(true, "が"), ["か"]);
        assert!(words(true, "\u{301}").is_empty());
    }

    #[test]
    fn cjk_compatibility_ideographs_are_normalized_when_lower_casing() {
        assert_eq!(words(true, "x\u{f900}x"), ["x", "\u{8c48}", "x"]);
        assert_eq!(words(false, "x\u{f900}x"), ["x", "\u{f900}", "x"]);
    }
}
