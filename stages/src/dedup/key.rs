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

/// Near-duplicate detection by MinHash over character shingles, banded for
/// locality-sensitive hashing: two documents whose shingle sets have
/// Jaccard similarity s share at least one band with probability
/// 1 − (1 − s^rows)^bands (about 50% at s = (1/bands)^(1/rows)).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MinHashParams {
    /// Characters per shingle, over the whitespace-normalized text.
    pub shingle: usize,
    pub bands: usize,
    pub rows: usize,
}

impl Default for MinHashParams {
    /// 16 bands of 8 rows catch half the pairs at Jaccard similarity 0.71
    /// and nearly all above 0.85; each document costs 128 hash updates per
    /// character.
    fn default() -> MinHashParams {
        MinHashParams {
            shingle: 5,
            bands: 16,
            rows: 8,
        }
    }
}

impl MinHashParams {
    /// The similarity at which a pair is caught half the time.
    pub fn threshold(&self) -> f64 {
        (1.0 / self.bands as f64).powf(1.0 / self.rows as f64)
    }
}

/// The document's band keys (one per band, the band's number included, so
/// keys of different bands never meet). A document shorter than a shingle
/// is one shingle; one with no text at all has the signature of the empty
/// set, which all such documents share.
pub fn near_duplicate_keys(doc: &Document, p: &MinHashParams, out: &mut Vec<u128>) {
    let mut chars: Vec<u32> = Vec::new();
    for line in &doc.lines {
        for word in line.split_whitespace() {
            if !chars.is_empty() {
                chars.push(u32::from(' '));
            }
            chars.extend(word.chars().map(u32::from));
        }
    }
    let n = p.bands * p.rows;
    let mut signature = vec![u64::MAX; n];
    let perms = permutations(n);
    let width = p.shingle.min(chars.len()).max(1);
    if !chars.is_empty() {
        for window in chars.windows(width) {
            let h = shingle_hash(window);
            for (s, &(a, b)) in signature.iter_mut().zip(&perms) {
                // a·h + b over 2^64 with odd a is a permutation of the
                // hashes; its minimum is one MinHash value.
                let v = a.wrapping_mul(h).wrapping_add(b);
                if v < *s {
                    *s = v;
                }
            }
        }
    }
    for (band, rows) in signature.chunks(p.rows).enumerate() {
        let mut hi = DefaultHasher::new();
        let mut lo = DefaultHasher::new();
        hi.write_u8(0x03);
        lo.write_u8(0x04);
        hi.write_usize(band);
        lo.write_usize(band);
        for r in rows {
            hi.write_u64(*r);
            lo.write_u64(*r);
        }
        out.push((u128::from(hi.finish()) << 64) | u128::from(lo.finish()));
    }
}

fn shingle_hash(window: &[u32]) -> u64 {
    let mut h = 0x243F_6A88_85A3_08D3u64;
    for &c in window {
        h = (h ^ u64::from(c))
            .wrapping_mul(0x0100_0000_01B3)
            .rotate_left(23);
    }
    splitmix(h)
}

fn splitmix(mut x: u64) -> u64 {
    x = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    x = (x ^ (x >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    x ^ (x >> 31)
}

/// `n` fixed (a, b) pairs, `a` odd: the same in every run and process.
fn permutations(n: usize) -> Vec<(u64, u64)> {
    (0..n as u64)
        .map(|i| (splitmix(2 * i) | 1, splitmix(2 * i + 1)))
        .collect()
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

    fn long_doc(seed: u64, changes: usize) -> Document {
        // 600 pseudo-random CJK characters, `changes` of them altered.
        let mut x = seed;
        let mut text: Vec<char> = (0..600)
            .map(|_| {
                x = splitmix(x);
                char::from_u32(0x4E00 + (x % 2000) as u32).unwrap()
            })
            .collect();
        for i in 0..changes {
            text[i * 600 / changes.max(1)] = '。';
        }
        doc(&[&text.iter().collect::<String>()])
    }

    fn keys(d: &Document) -> Vec<u128> {
        let p = MinHashParams {
            shingle: 5,
            bands: 16,
            rows: 8,
        };
        let mut out = Vec::new();
        near_duplicate_keys(d, &p, &mut out);
        assert_eq!(out.len(), 16);
        out
    }

    fn shared(a: &[u128], b: &[u128]) -> usize {
        a.iter().zip(b).filter(|(x, y)| x == y).count()
    }

    #[test]
    fn near_duplicates_share_bands_and_strangers_do_not() {
        let original = keys(&long_doc(1, 0));
        assert_eq!(original, keys(&long_doc(1, 0)));
        // Three characters changed in 600: Jaccard about 0.95.
        assert!(shared(&original, &keys(&long_doc(1, 3))) >= 4);
        // Another text altogether.
        assert_eq!(shared(&original, &keys(&long_doc(2, 0))), 0);
        // Whitespace does not count here either.
        let spaced = doc(&["ab  cd", "ef"]);
        assert_eq!(keys(&spaced), keys(&doc(&["ab cd ef"])));
        assert_eq!(keys(&doc(&[])), keys(&doc(&["  "])));
    }
}
