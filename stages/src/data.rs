//! The plain data that flows between stages.

/// A document as read from the corpus: its sentences (or, before sentence
/// splitting, its raw lines) in order.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Document {
    /// Position of the document in the whole corpus, counted by the reader
    /// over all workers. Stable for a given input, so it names the document
    /// in errors and lets workers partition the corpus deterministically.
    pub index: u64,
    /// Where the document starts, for error messages: `file:line`.
    pub origin: String,
    pub lines: Vec<String>,
}

/// A document after WordPiece: one list of token ids per sentence. Sentences
/// that tokenized to nothing are already dropped, as the reference does.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct TokenizedDocument {
    pub index: u64,
    pub segments: Vec<Vec<u32>>,
}

impl TokenizedDocument {
    pub fn is_empty(&self) -> bool {
        self.segments.is_empty()
    }
}

/// One pretraining example: `[CLS] A [SEP] B [SEP]`, and after masking the
/// masked positions with their original tokens.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Instance {
    /// Token ids including `[CLS]` and both `[SEP]`; masked tokens already
    /// replaced.
    pub tokens: Vec<u32>,
    /// Number of leading tokens with segment id 0 (`[CLS]`, A and the first
    /// `[SEP]`); the rest have segment id 1.
    pub segment_a_len: u32,
    /// True when B was drawn from another document (label 1).
    pub is_random_next: bool,
    /// Masked positions in increasing order; empty until masking.
    pub masked_positions: Vec<u32>,
    /// The original token at each masked position.
    pub masked_labels: Vec<u32>,
}

impl Instance {
    /// The tokens as they were before masking: each masked position's
    /// original token put back.
    pub fn original_tokens(&self) -> Vec<u32> {
        let mut tokens = self.tokens.clone();
        for (&p, &label) in self.masked_positions.iter().zip(&self.masked_labels) {
            tokens[p as usize] = label;
        }
        tokens
    }
}
