//! Character-level tagged text, one `char TAG` per line and a blank line
//! between sentences (the layout of `run_classifier_ner.py`'s input and of
//! the MSRA data), in BIO or BMES.
//!
//! Every span is checked on load, because real data has broken ones (the
//! PyPI MSRA copy has an `E-ORG` with no `B-ORG`): a sentence holding a
//! malformed span is left out, and each one left out is counted and
//! reported with its file and line. The reference checks nothing and trains
//! on them as they are.
//!
//! A file to predict on may have no tags: one character per line, nothing
//! after it (then [`Sentence::tags`] is empty). A file is tagged throughout
//! or not at all.
//!
//! Unlike the reference, which flushes a sentence only at a blank line after
//! "。" and drops a trailing unflushed one, every blank line ends a sentence
//! and the last sentence is kept: the files' own sentence boundaries are
//! what the entity metric must see.

use std::path::Path;

use anyhow::{bail, ensure, Context, Result};
use nezha_stages::atomic_file;

/// Tags, one list per sentence.
pub type TagSentences = Vec<Vec<String>>;

/// One sentence: its characters (or words) and their tags.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Sentence {
    pub chars: Vec<String>,
    /// One per character; empty in a file without tags.
    pub tags: Vec<String>,
    /// `file:line` of the sentence's first character, for error messages.
    pub origin: String,
    /// 1-based line of each character, for error messages.
    pub lines: Vec<usize>,
}

impl Sentence {
    /// Whether the sentence has its tags.
    pub fn is_tagged(&self) -> bool {
        !self.tags.is_empty()
    }

    /// `file:line` of character `i`.
    pub fn at(&self, i: usize) -> String {
        let file = self
            .origin
            .rsplit_once(':')
            .map_or(self.origin.as_str(), |p| p.0);
        format!("{file}:{}", self.lines[i])
    }
}

/// A malformed span, and the sentence left out because of it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SpanIssue {
    /// `file:line` of the tag at fault.
    pub at: String,
    pub message: String,
}

impl std::fmt::Display for SpanIssue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.at, self.message)
    }
}

/// A file's sentences and the ones it left out.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TaggedFile {
    pub sentences: Vec<Sentence>,
    /// One per sentence left out, in file order.
    pub skipped: Vec<SpanIssue>,
    pub scheme: Scheme,
}

/// The tagging scheme, told from the prefixes a file uses.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Scheme {
    /// `B-`, `I-`, `O`: an entity may end anywhere.
    Bio,
    /// `B-`, `M-`, `E-`, `S-`, `O`: an entity ends exactly at `E-`/`S-`.
    Bmes,
}

/// Splits a tag into prefix and type; `O` has neither.
fn parse_tag(tag: &str) -> Option<(char, &str)> {
    if tag == "O" {
        return None;
    }
    let (p, kind) = tag.split_once('-')?;
    let mut cs = p.chars();
    match (cs.next(), cs.next()) {
        (Some(c @ ('B' | 'I' | 'M' | 'E' | 'S')), None) if !kind.is_empty() => Some((c, kind)),
        _ => None,
    }
}

/// Checks one sentence's spans: the first problem as (index, message).
fn first_span_problem(tags: &[String], scheme: Scheme) -> Option<(usize, String)> {
    // The type of the entity still open after the previous tag.
    let mut open: Option<&str> = None;
    for (i, tag) in tags.iter().enumerate() {
        let parsed = parse_tag(tag);
        let continues = matches!(parsed, Some(('I' | 'M' | 'E', _)));
        if let Some((p, kind)) = parsed.filter(|_| continues) {
            match open {
                None => {
                    return Some((i, format!("{tag} continues an entity that was never begun")))
                }
                Some(o) if o != kind => {
                    return Some((i, format!("{tag} continues a {o} entity")));
                }
                _ => {}
            }
            open = (p != 'E').then_some(kind);
            continue;
        }
        if scheme == Scheme::Bmes {
            if let Some(o) = open {
                return Some((
                    i,
                    format!("{tag} follows an unclosed {o} entity (no E-{o})"),
                ));
            }
        }
        open = match parsed {
            Some(('B', kind)) => Some(kind),
            _ => None,
        };
    }
    match (scheme, open) {
        (Scheme::Bmes, Some(o)) => Some((
            tags.len() - 1,
            format!("the sentence ends inside a {o} entity (no E-{o})"),
        )),
        _ => None,
    }
}

/// `char TAG`, or `char` alone (a file without tags).
fn line_tag(line: &str) -> Option<(&str, Option<&str>)> {
    let mut parts = line.split_whitespace();
    let (c, t) = (parts.next()?, parts.next());
    parts.next().is_none().then_some((c, t))
}

/// Reads a tagged file, or one without tags. Errors (with file and line) on
/// an unreadable or empty file, a line that is neither `char TAG` nor
/// `char`, a file with both, a tag that is neither `O` nor `P-TYPE`, and a
/// file mixing `I-` with `M-`/`E-`/`S-`; sentences with a malformed span
/// are skipped and reported in [`TaggedFile::skipped`].
pub fn read_tagged(path: &Path) -> Result<TaggedFile> {
    let bytes = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
    let text = String::from_utf8(bytes)
        .map_err(|e| anyhow::anyhow!("{}: not UTF-8 ({e})", path.display()))?;
    let name = path.display();
    let mut raw: Vec<Sentence> = Vec::new();
    let mut cur: Option<Sentence> = None;
    let (mut bio, mut bmes) = (None::<usize>, None::<usize>);
    // Whether the file has tags, and the line that said so.
    let mut tagged: Option<(bool, usize)> = None;
    for (i, line) in text.lines().enumerate() {
        let n = i + 1;
        let line = line.trim_end_matches('\r');
        if line.trim().is_empty() {
            raw.extend(cur.take());
            continue;
        }
        let Some((c, t)) = line_tag(line) else {
            bail!("{name}:{n}: expected \"char TAG\" (or \"char\" without tags), found {line:?}");
        };
        let (has, first) = *tagged.get_or_insert((t.is_some(), n));
        if has != t.is_some() {
            bail!(
                "{name}:{n}: {}, but line {first} {}: a file is tagged throughout or not at all",
                if has { "no tag" } else { "a tag" },
                if has { "has one" } else { "has none" }
            );
        }
        let s = cur.get_or_insert_with(|| Sentence {
            chars: Vec::new(),
            tags: Vec::new(),
            origin: format!("{name}:{n}"),
            lines: Vec::new(),
        });
        s.chars.push(c.to_string());
        s.lines.push(n);
        let Some(t) = t else { continue };
        s.tags.push(t.to_string());
        match parse_tag(t) {
            None if t != "O" => bail!("{name}:{n}: {t:?} is not a tag (O or B-/I-/M-/E-/S-TYPE)"),
            Some(('I', _)) => {
                bio.get_or_insert(n);
            }
            Some(('M' | 'E' | 'S', _)) => {
                bmes.get_or_insert(n);
            }
            _ => {}
        }
    }
    raw.extend(cur);
    ensure!(!raw.is_empty(), "{name} is empty");
    let scheme = match (bio, bmes) {
        (Some(a), Some(b)) => {
            bail!("{name}: mixes BIO (I- at line {a}) with BMES (M-/E-/S- at line {b})")
        }
        (_, Some(_)) => Scheme::Bmes,
        _ => Scheme::Bio,
    };
    let mut sentences = Vec::with_capacity(raw.len());
    let mut skipped = Vec::new();
    for s in raw {
        match first_span_problem(&s.tags, scheme) {
            Some((i, message)) => skipped.push(SpanIssue {
                at: format!("{name}:{}", s.lines[i]),
                message,
            }),
            None => sentences.push(s),
        }
    }
    ensure!(
        !sentences.is_empty(),
        "{name}: every sentence has a malformed span (first: {})",
        skipped[0]
    );
    Ok(TaggedFile {
        sentences,
        skipped,
        scheme,
    })
}

/// Writes sentences as `char gold predicted` lines, a blank line after each
/// sentence (conlleval's layout), atomically; sentences without tags as
/// `char predicted`, one tag per character.
pub fn write_predictions(
    path: &Path,
    sentences: &[Sentence],
    predicted: &[Vec<String>],
) -> Result<()> {
    ensure!(
        sentences.len() == predicted.len(),
        "{} sentences but {} predictions",
        sentences.len(),
        predicted.len()
    );
    let mut out = String::new();
    for (s, p) in sentences.iter().zip(predicted) {
        ensure!(
            s.chars.len() == p.len(),
            "{}: {} characters but {} predicted",
            s.origin,
            s.chars.len(),
            p.len()
        );
        for (i, (c, p)) in s.chars.iter().zip(p).enumerate() {
            match s.tags.get(i) {
                Some(g) => out.push_str(&format!("{c} {g} {p}\n")),
                None => out.push_str(&format!("{c} {p}\n")),
            }
        }
        out.push('\n');
    }
    Ok(atomic_file::write_file(path, out.as_bytes())?)
}

/// Reads a `char gold predicted` file (as [`write_predictions`] writes it
/// and conlleval reads it): the gold and the predicted tag sentences.
pub fn read_predictions(path: &Path) -> Result<(TagSentences, TagSentences)> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    let (mut gold, mut pred) = (Vec::new(), Vec::new());
    let (mut g, mut p) = (Vec::new(), Vec::new());
    for (i, line) in text.lines().chain(std::iter::once("")).enumerate() {
        let fields: Vec<&str> = line.split_whitespace().collect();
        match fields[..] {
            [] => {
                if !g.is_empty() {
                    gold.push(std::mem::take(&mut g));
                    pred.push(std::mem::take(&mut p));
                }
            }
            [_, a, b] => {
                g.push(a.to_string());
                p.push(b.to_string());
            }
            _ => bail!(
                "{}:{}: expected \"char gold predicted\", found {line:?}",
                path.display(),
                i + 1
            ),
        }
    }
    ensure!(!gold.is_empty(), "{} is empty", path.display());
    Ok((gold, pred))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tags(s: &str) -> Vec<String> {
        s.split_whitespace().map(String::from).collect()
    }

    #[test]
    fn span_rules() {
        let ok = |s: &str, sc| first_span_problem(&tags(s), sc).is_none();
        assert!(ok("B-PER M-PER E-PER O S-LOC B-ORG E-ORG", Scheme::Bmes));
        assert!(ok("B-PER I-PER O B-LOC B-LOC", Scheme::Bio));
        assert!(!ok("O E-ORG", Scheme::Bmes));
        assert!(!ok("B-PER O", Scheme::Bmes));
        assert!(!ok("B-PER M-PER", Scheme::Bmes));
        assert!(!ok("B-PER E-LOC", Scheme::Bmes));
        assert!(!ok("O I-PER", Scheme::Bio));
        assert!(!ok("B-PER I-LOC", Scheme::Bio));
        assert_eq!(
            first_span_problem(&tags("S-LOC B-ORG M-ORG S-PER"), Scheme::Bmes)
                .unwrap()
                .0,
            3
        );
    }
}
