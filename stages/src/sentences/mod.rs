//! Sentence splitting: turns a document's raw lines into sentences.
//!
//! `lines` keeps one line as one sentence (the reference behaviour, for
//! corpora already split one sentence per line); `punct` splits running
//! text after sentence-final punctuation.

mod lines;
mod punct;

pub use lines::Lines;
pub use punct::Punct;

/// Python's `str.strip()` with no argument: removes leading and trailing
/// characters for which `str.isspace()` is true. That set is Unicode
/// White_Space plus the separators U+001C..U+001F, which Rust's
/// `char::is_whitespace` leaves out.
pub fn py_strip(s: &str) -> &str {
    s.trim_matches(is_py_space)
}

pub fn is_py_space(c: char) -> bool {
    c.is_whitespace() || ('\u{1c}'..='\u{1f}').contains(&c)
}
