use crate::data::Document;
use crate::error::Result;
use crate::stage::Stage;

/// Splits running text into sentences after sentence-final punctuation, for
/// corpora that are not already one sentence per line.
///
/// A sentence ends after a run of terminators (`。！？；!?` and the like,
/// so `！？` stays together) followed by any closing quotes or brackets
/// (`”’」』）》"')`). ASCII `.` and `;` end a sentence only before
/// whitespace, so decimals and abbreviations inside words are left alone.
#[derive(Debug, Default)]
pub struct Punct;

fn is_terminator(c: char) -> bool {
    matches!(c, '。' | '！' | '？' | '；' | '!' | '?' | '…' | '｡' | '．')
}

fn is_ascii_terminator(c: char) -> bool {
    matches!(c, '.' | ';')
}

fn is_closer(c: char) -> bool {
    matches!(
        c,
        '”' | '’' | '」' | '』' | '）' | '》' | '〉' | '】' | '"' | '\'' | ')' | ']'
    )
}

/// Splits one paragraph into trimmed, non-empty sentences.
pub fn split_sentences(text: &str) -> Vec<String> {
    let chars: Vec<(usize, char)> = text.char_indices().collect();
    let mut sentences = Vec::new();
    let mut start = 0;
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i].1;
        let ascii_end =
            is_ascii_terminator(c) && chars.get(i + 1).is_none_or(|&(_, n)| super::is_py_space(n));
        if is_terminator(c) || ascii_end {
            let mut j = i + 1;
            while j < chars.len() && (is_terminator(chars[j].1) || is_ascii_terminator(chars[j].1))
            {
                j += 1;
            }
            while j < chars.len() && is_closer(chars[j].1) {
                j += 1;
            }
            let end = chars.get(j).map_or(text.len(), |&(b, _)| b);
            push_trimmed(&mut sentences, &text[start..end]);
            start = end;
            i = j;
        } else {
            i += 1;
        }
    }
    push_trimmed(&mut sentences, &text[start..]);
    sentences
}

fn push_trimmed(out: &mut Vec<String>, s: &str) {
    let s = super::py_strip(s);
    if !s.is_empty() {
        out.push(s.to_string());
    }
}

impl Stage for Punct {
    type In = Document;
    type Out = Document;

    fn push(&mut self, mut doc: Document, emit: &mut dyn FnMut(Document)) -> Result<()> {
        doc.lines = doc.lines.iter().flat_map(|l| split_sentences(l)).collect();
        emit(doc);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::split_sentences;

    #[test]
    fn splits_after_chinese_terminators_with_closing_quotes() {
        assert_eq!(
            split_sentences("玄德曰：“此何人也？”众皆不识。遂去！！ 后事如何"),
            vec!["玄德曰：“此何人也？”", "众皆不识。", "遂去！！", "后事如何"]
        );
    }

    #[test]
    fn ascii_period_needs_following_space() {
        assert_eq!(
            split_sentences("It costs 3.5 dollars. Buy it! Now"),
            vec!["It costs 3.5 dollars.", "Buy it!", "Now"]
        );
    }

    #[test]
    fn empty_and_blank_text_give_nothing() {
        assert!(split_sentences("   ").is_empty());
        assert!(split_sentences("").is_empty());
    }
}
