//! Word boundaries for whole-word masking.
//!
//! Whole-word masking masks all the tokens of a word together, so it needs
//! to know which tokens continue the word of the token before them. For
//! English, WordPiece says so itself: a piece written `##…` continues a word
//! ([`crate::masking::WholeWords`] reads that from the vocab). Chinese text
//! is tokenized one character per token, so its words come from a
//! segmenter: [`JiebaWords`] runs Jieba over each document's characters
//! before instance generation.
//!
//! The boundary travels in-band, as the top bit of the token id
//! ([`CONTINUES_WORD`]), from segmentation to masking. Instance generation
//! only copies ids (through the reservoir, the truncation and the shuffle
//! buffer), so a parallel array of flags would have to follow every one of
//! those copies; the bit follows them for free. Vocab ids are checked to fit
//! in 31 bits, and masking clears the bit on every token it sees, so no
//! tagged id ever leaves the masking step.

mod jieba;

pub use jieba::{JiebaWords, Segmenter};

/// Set on a token id when the token continues the word of the token before
/// it (Jieba said so), between segmentation and masking.
pub const CONTINUES_WORD: u32 = 1 << 31;

/// The vocab id of a possibly tagged token.
pub fn untagged(id: u32) -> u32 {
    id & !CONTINUES_WORD
}
