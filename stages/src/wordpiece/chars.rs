//! What the reference tokenizer does with each code point, as the generated
//! [`super::unicode_table`] records it under Python 3.11's Unicode 14.0.

use std::sync::OnceLock;

use super::unicode_table::RUNS;

/// Part of a word: a letter, digit, mark, symbol, private-use or unassigned
/// code point.
pub(super) const WORD: u8 = 0;
/// Removed by `_clean_text`: U+0000, U+FFFD and categories Cc/Cf other than
/// `\t\n\r`.
pub(super) const DROP: u8 = 1;
/// Separates words: what `_clean_text` turns into a space, and U+2028/U+2029,
/// which survive cleaning but split in `str.split()`.
pub(super) const SPACE: u8 = 2;
/// One of the CJK ideograph ranges that `_tokenize_chinese_chars` pads.
pub(super) const CJK: u8 = 3;
/// `_is_punctuation`: ASCII non-alphanumerics and categories P*.
pub(super) const PUNCT: u8 = 4;

const CLASS_MASK: u8 = 0b111;
const LOWER_CHANGES: u8 = 1 << 3;
const MN: u8 = 1 << 4;
const UNASSIGNED: u8 = 1 << 5;
const CASED: u8 = 1 << 6;
const CASE_IGNORABLE: u8 = 1 << 7;

/// The flags of one code point; layout shared with the generator script.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct Flags(u8);

impl Flags {
    pub(super) fn class(self) -> u8 {
        self.0 & CLASS_MASK
    }

    /// `_run_strip_accents(c.lower()) != c`: lower-casing mode must rewrite
    /// the word this character is in.
    pub(super) fn lower_changes(self) -> bool {
        self.0 & LOWER_CHANGES != 0
    }

    /// General category Mn, which accent stripping removes after NFD.
    pub(super) fn is_nonspacing_mark(self) -> bool {
        self.0 & MN != 0
    }

    /// Unassigned in Unicode 14 (category Cn): no case mapping, no
    /// decomposition, canonical combining class 0, neither cased nor
    /// case-ignorable, whatever later Unicode versions assigned there.
    pub(super) fn is_unassigned(self) -> bool {
        self.0 & UNASSIGNED != 0
    }

    /// Cased and not Case_Ignorable (Unicode 14): stops the Final_Sigma scan
    /// and counts as a letter there.
    pub(super) fn is_cased(self) -> bool {
        self.0 & CASED != 0
    }

    /// Case_Ignorable (Unicode 14): skipped by the Final_Sigma scan.
    pub(super) fn is_case_ignorable(self) -> bool {
        self.0 & CASE_IGNORABLE != 0
    }
}

/// Code point to flags. The Basic Multilingual Plane, where nearly all text
/// lives, is expanded into a flat array once per process; the rare astral
/// code points are looked up in the runs.
pub(super) struct CharTable {
    bmp: Box<[u8]>,
}

impl CharTable {
    pub(super) fn get() -> &'static CharTable {
        static TABLE: OnceLock<CharTable> = OnceLock::new();
        TABLE.get_or_init(|| {
            let mut bmp = vec![0u8; 0x10000].into_boxed_slice();
            for &(first, last, flags) in RUNS.iter().take_while(|r| r.0 < 0x10000) {
                bmp[first as usize..=(last.min(0xFFFF) as usize)].fill(flags);
            }
            CharTable { bmp }
        })
    }

    #[inline]
    pub(super) fn flags(&self, c: char) -> Flags {
        let cp = c as u32;
        match self.bmp.get(cp as usize) {
            Some(&f) => Flags(f),
            None => Flags(astral(cp)),
        }
    }
}

impl std::fmt::Debug for CharTable {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("CharTable(Unicode 14.0)")
    }
}

fn astral(cp: u32) -> u8 {
    let i = RUNS.partition_point(|r| r.1 < cp);
    match RUNS.get(i) {
        Some(&(first, _, flags)) if first <= cp => flags,
        _ => 0,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn flags(c: char) -> Flags {
        CharTable::get().flags(c)
    }

    #[test]
    fn runs_are_sorted_and_disjoint() {
        for w in RUNS.windows(2) {
            assert!(
                w[0].0 <= w[0].1 && w[0].1 < w[1].0,
                "{:X?} then {:X?}",
                w[0],
                w[1]
            );
        }
    }

    #[test]
    fn classes_of_known_characters() {
        assert_eq!(flags('a').class(), WORD);
        assert_eq!(flags('\0').class(), DROP);
        assert_eq!(flags('\u{fffd}').class(), DROP);
        assert_eq!(flags('\u{200b}').class(), DROP, "Cf");
        assert_eq!(
            flags('\u{e000}').class(),
            WORD,
            "Co is not dropped, unlike HF's C*"
        );
        assert_eq!(flags('\t').class(), SPACE);
        assert_eq!(flags('\u{3000}').class(), SPACE);
        assert_eq!(flags('\u{2028}').class(), SPACE);
        assert_eq!(flags('\u{85}').class(), DROP, "Cc before whitespace");
        assert_eq!(flags('中').class(), CJK);
        assert_eq!(flags('\u{2b820}').class(), CJK);
        assert_eq!(flags('\u{2f800}').class(), CJK);
        assert_eq!(flags('\u{3042}').class(), WORD, "kana is not padded");
        assert_eq!(flags('$').class(), PUNCT);
        assert_eq!(flags('，').class(), PUNCT);
        assert_eq!(flags('€').class(), WORD, "Sc is not punctuation");
    }

    #[test]
    fn lowercase_and_mark_flags() {
        assert!(flags('A').lower_changes());
        assert!(!flags('a').lower_changes());
        assert!(flags('é').lower_changes(), "NFD splits off the accent");
        assert!(flags('\u{301}').lower_changes() && flags('\u{301}').is_nonspacing_mark());
        assert!(
            flags('\u{f900}').lower_changes(),
            "compatibility ideograph decomposes"
        );
        assert!(flags('\u{378}').is_unassigned());
        assert!(
            flags('\u{1c89}').is_unassigned(),
            "assigned only in Unicode 16"
        );
        assert!(!flags('\u{1c89}').lower_changes());
        assert!(flags('\u{10ffff}').is_unassigned());
        assert!(!flags('\u{10fffd}').is_unassigned(), "private use");
        assert!(flags('A').is_cased() && flags('\u{3c3}').is_cased());
        assert!(flags('.').is_case_ignorable() && flags('\u{301}').is_case_ignorable());
        assert!(!flags('1').is_cased() && !flags('1').is_case_ignorable());
        // Lowercase in Unicode 14; a plain letter (Lo) since Unicode 16.
        assert!(flags('\u{295}').is_cased());
    }
}
