//! Where the generator finds documents to draw random next segments from.

use std::collections::VecDeque;

use crate::data::TokenizedDocument;

/// A set of documents the generator can draw random "B" segments from.
///
/// The reference draws from every document of the corpus; the streaming
/// mode draws from a window of recent documents. Every document in a pool
/// must have at least one segment, and every segment at least one token.
pub trait DocumentPool {
    fn len(&self) -> usize;

    fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The segments (sentences) of document `i`, `0 <= i < len()`.
    fn segments(&self, i: usize) -> &[Vec<u32>];

    /// Identity of document `i` for the "draw another document" rule: a
    /// random draw retries while it lands on the current document's id.
    fn id(&self, i: usize) -> u64;
}

/// The reference's `all_documents`: identity is the position in the list.
impl DocumentPool for [Vec<Vec<u32>>] {
    fn len(&self) -> usize {
        <[_]>::len(self)
    }

    fn segments(&self, i: usize) -> &[Vec<u32>] {
        &self[i]
    }

    fn id(&self, i: usize) -> u64 {
        i as u64
    }
}

/// Documents that carry their corpus index, which is their identity.
impl DocumentPool for [TokenizedDocument] {
    fn len(&self) -> usize {
        <[_]>::len(self)
    }

    fn segments(&self, i: usize) -> &[Vec<u32>] {
        &self[i].segments
    }

    fn id(&self, i: usize) -> u64 {
        self[i].index
    }
}

/// The streaming mode's window of recent documents.
impl DocumentPool for VecDeque<TokenizedDocument> {
    fn len(&self) -> usize {
        VecDeque::len(self)
    }

    fn segments(&self, i: usize) -> &[Vec<u32>] {
        &self[i].segments
    }

    fn id(&self, i: usize) -> u64 {
        self[i].index
    }
}
