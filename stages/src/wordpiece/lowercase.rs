//! The reference's lower-casing of one whitespace-separated token:
//! `str.lower()`, then NFD, then removal of category Mn
//! (`BasicTokenizer._run_strip_accents`).
//!
//! Python 3.11 follows Unicode 14.0; Rust's `char::to_lowercase` and the
//! `unicode-normalization` crate follow newer versions. They agree on the
//! mappings of every character assigned in 14.0 (the whole-code-point sweep
//! in `tests/wordpiece_parity.rs` checks it), so they are used, with three
//! corrections for what changed since:
//!
//! - characters unassigned in 14.0 are copied as they are, however later
//!   versions map them;
//! - for NFD the text is cut at those characters: to Python each is a starter
//!   with no decomposition, so canonical reordering never crosses it, while
//!   newer tables may give it a combining class;
//! - the final-sigma choice is made here with Unicode 14's Cased and
//!   Case_Ignorable, not left to `str::to_lowercase`: two characters changed
//!   since (U+0295 is no longer cased, U+1171E no longer case-ignorable), and
//!   the sweep caught both.

use unicode_normalization::UnicodeNormalization;

use super::chars::CharTable;

const CAPITAL_SIGMA: char = 'Σ';

/// Appends the lower-cased, accent-stripped `token` to `out`, using `lowered`
/// as scratch.
pub(super) fn lower_strip_accents(
    table: &CharTable,
    token: &str,
    lowered: &mut String,
    out: &mut String,
) {
    lowered.clear();
    for (i, c) in token.char_indices() {
        if table.flags(c).is_unassigned() {
            lowered.push(c);
        } else if c == CAPITAL_SIGMA {
            lowered.push(if is_final_sigma(table, token, i) {
                'ς'
            } else {
                'σ'
            });
        } else {
            lowered.extend(c.to_lowercase());
        }
    }
    let mut run_start = 0;
    for (i, c) in lowered.char_indices() {
        if table.flags(c).is_unassigned() {
            push_nfd_without_marks(table, &lowered[run_start..i], out);
            out.push(c);
            run_start = i + c.len_utf8();
        }
    }
    push_nfd_without_marks(table, &lowered[run_start..], out);
}

fn push_nfd_without_marks(table: &CharTable, run: &str, out: &mut String) {
    out.extend(run.nfd().filter(|&c| !table.flags(c).is_nonspacing_mark()));
}

/// Unicode's Final_Sigma condition, as CPython's `handle_capital_sigma`
/// checks it: skipping case-ignorable characters, a cased one comes before
/// the sigma at byte `at` and none comes after it.
fn is_final_sigma(table: &CharTable, token: &str, at: usize) -> bool {
    let significant = |c: &char| !table.flags(*c).is_case_ignorable();
    let cased = |c: char| table.flags(c).is_cased();
    let before = token[..at].chars().rev().find(significant);
    let after = token[at + CAPITAL_SIGMA.len_utf8()..]
        .chars()
        .find(significant);
    before.is_some_and(cased) && !after.is_some_and(cased)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lower(token: &str) -> String {
        let (mut scratch, mut out) = (String::new(), String::new());
        lower_strip_accents(CharTable::get(), token, &mut scratch, &mut out);
        out
    }

    #[test]
    fn lowers_and_strips_accents() {
        assert_eq!(lower("Crème"), "creme");
        assert_eq!(lower("Ångström"), "angstrom");
        assert_eq!(lower("e\u{301}"), "e");
        assert_eq!(lower("\u{301}"), "");
    }

    #[test]
    fn full_case_mapping() {
        // U+0130 lower-cases to "i\u{307}"; the dot is then stripped.
        assert_eq!(lower("İSTANBUL"), "istanbul");
        assert_eq!(lower("STRASSE"), "strasse");
        assert_eq!(lower("ß"), "ß");
    }

    #[test]
    fn final_sigma_depends_on_the_whole_token() {
        assert_eq!(lower("ΑΣ"), "ας");
        assert_eq!(lower("ΑΣΑ"), "ασα");
        assert_eq!(lower("Σ"), "σ");
        // '.' is case-ignorable, so the scans look past it.
        assert_eq!(lower("ΑΣ.Α"), "ασ.α");
        assert_eq!(lower("ΑΣ."), "ας.");
        assert_eq!(lower(".Σ"), ".σ");
    }

    #[test]
    fn final_sigma_uses_unicode_14_properties() {
        // U+0295 was a cased letter (Ll) in Unicode 14.
        assert_eq!(lower("ΑΣ\u{295}"), "ασ\u{295}");
        assert_eq!(lower("\u{295}Σ"), "\u{295}ς");
        // U+1171E was a nonspacing mark (case-ignorable) in Unicode 14; NFD
        // keeps it and accent stripping then drops it.
        assert_eq!(lower("ΑΣ\u{1171e}Α"), "ασα");
    }

    #[test]
    fn unassigned_characters_are_left_alone_and_cut_the_context() {
        // U+1C89 (CYRILLIC CAPITAL LETTER TJE) came in Unicode 16; Rust
        // lower-cases it to U+1C8A, Python 3.11 does not.
        assert_eq!(lower("\u{1c89}"), "\u{1c89}");
        assert_eq!(lower("A\u{1c89}B"), "a\u{1c89}b");
        // To Python, U+1C89 is not cased: the sigma before it is final only
        // if a cased letter precedes, and the one after it is never final.
        assert_eq!(lower("ΑΣ\u{1c89}"), "ας\u{1c89}");
        assert_eq!(lower("\u{1c89}Σ"), "\u{1c89}σ");
    }

    #[test]
    fn compatibility_ideographs_decompose() {
        assert_eq!(lower("\u{f900}"), "\u{8c48}");
    }
}
