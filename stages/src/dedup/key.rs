//! The identity of a document for exact deduplication.

use std::hash::{DefaultHasher, Hasher};

use crate::data::Document;

/// A 128-bit key of the document's text with whitespace normalized: two
/// documents get the same key when their words (maximal runs of
/// non-whitespace characters, in Unicode's sense) are the same in the same
/// order, whatever the spaces, tabs and line breaks between them.
///
/// 128 bits because a corpus of a billion documents would expect a
/// collision among 64-bit keys (the birthday bound is 2^32); among 128-bit
/// keys it would not in any corpus that fits on disk. The key is two
/// SipHash-1-3 hashes of the same words under different prefixes: it only
/// has to agree within one run, so the standard library's hasher will do.
pub fn document_key(doc: &Document) -> u128 {
    let mut hi = DefaultHasher::new();
    let mut lo = DefaultHasher::new();
    hi.write_u8(0x01);
    lo.write_u8(0x02);
    for line in &doc.lines {
        for word in line.split_whitespace() {
            hi.write(word.as_bytes());
            lo.write(word.as_bytes());
            // 0xFF never occurs in UTF-8, so "ab" "c" and "a" "bc" differ.
            hi.write_u8(0xFF);
            lo.write_u8(0xFF);
        }
    }
    (u128::from(hi.finish()) << 64) | u128::from(lo.finish())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn doc(lines: &[&str]) -> Document {
        Document {
            index: 0,
            origin: String::new(),
            lines: lines.iter().map(|s| s.to_string()).collect(),
        }
    }

    #[test]
    fn whitespace_and_line_breaks_do_not_count() {
        let a = document_key(&doc(&["第一回 宴桃园", "豪杰三结义"]));
        let b = document_key(&doc(&["  第一回\t宴桃园 豪杰三结义\u{3000}"]));
        assert_eq!(a, b);
    }

    #[test]
    fn words_and_their_boundaries_do() {
        let a = document_key(&doc(&["ab c"]));
        assert_ne!(a, document_key(&doc(&["a bc"])));
        assert_ne!(a, document_key(&doc(&["abc"])));
        assert_ne!(a, document_key(&doc(&["ab c d"])));
        assert_eq!(document_key(&doc(&[])), document_key(&doc(&[" ", ""])));
    }
}
