//! Stage parameters read from a TOML table, with errors that point at the
//! file, line and key.

use std::ops::Range;
use std::path::Path;

use serde::de::{DeserializeOwned, IntoDeserializer};
use toml::de::{DeTable, DeValue};
use toml::Spanned;

use crate::error::{Error, Result};

/// One `[section]` of a pipeline file: the parameters of one stage.
pub struct Params<'a> {
    pub file: &'a Path,
    pub src: &'a str,
    pub section: &'a str,
    /// Span of the whole section, for errors about the section itself.
    pub span: Range<usize>,
    table: DeTable<'a>,
}

impl<'a> Params<'a> {
    pub fn new(
        file: &'a Path,
        src: &'a str,
        section: &'a str,
        value: &Spanned<DeValue<'a>>,
    ) -> Result<Params<'a>> {
        let at = Location { file, src };
        match value.get_ref() {
            DeValue::Table(t) => Ok(Params {
                file,
                src,
                section,
                span: value.span(),
                table: t.clone(),
            }),
            _ => Err(at.error(value.span(), format!("`{section}` must be a table"))),
        }
    }

    /// Parameters from an empty table, for stages the file does not mention.
    pub fn empty(file: &'a Path, src: &'a str, section: &'a str) -> Params<'a> {
        Params {
            file,
            src,
            section,
            span: 0..0,
            table: DeTable::default(),
        }
    }

    /// Removes and returns a key the caller reads itself (such as `kind`),
    /// with its span.
    pub fn take<T: DeserializeOwned>(&mut self, key: &str) -> Result<Option<Spanned<T>>> {
        let Some(k) = self
            .table
            .keys()
            .find(|k| k.get_ref().as_ref() == key)
            .cloned()
        else {
            return Ok(None);
        };
        let v = self.table.remove(&k).expect("key just found");
        let span = v.span();
        T::deserialize(v.into_deserializer())
            .map(|t| Some(Spanned::new(span.clone(), t)))
            .map_err(|e| self.error(span, format!("[{}] {key}: {}", self.section, e.message())))
    }

    /// The keys left in the section, with where each is written.
    pub fn key_spans(&self) -> Vec<(String, Range<usize>)> {
        self.table
            .keys()
            .map(|k| (k.get_ref().to_string(), k.span()))
            .collect()
    }

    /// [`Params::take`] for a string.
    pub fn take_str(&mut self, key: &str) -> Result<Option<Spanned<String>>> {
        self.take(key)
    }

    /// Deserializes the remaining keys into the stage's own parameter type
    /// (which should `deny_unknown_fields`, so a mistyped key is reported).
    pub fn parse<T: DeserializeOwned>(&self) -> Result<T> {
        let value = Spanned::new(self.span.clone(), DeValue::Table(self.table.clone()));
        T::deserialize(value.into_deserializer()).map_err(|e| {
            let span = e.span().unwrap_or(self.span.clone());
            // Type errors point at the value but do not say whose it is.
            let key = self
                .table
                .iter()
                .find(|(k, v)| k.span().start == span.start || v.span().contains(&span.start))
                .map(|(k, _)| k.get_ref().to_string());
            match key {
                Some(k) if !e.message().contains(k.as_str()) => {
                    self.error(span, format!("[{}] {k}: {}", self.section, e.message()))
                }
                _ => self.error(span, format!("[{}] {}", self.section, e.message())),
            }
        })
    }

    /// An error about a value, pointing at where it is written.
    pub fn invalid<T>(
        &self,
        value: &Spanned<T>,
        key: &str,
        message: impl std::fmt::Display,
    ) -> Error {
        self.error(value.span(), format!("[{}] {key}: {message}", self.section))
    }

    pub fn error(&self, span: Range<usize>, message: String) -> Error {
        Location {
            file: self.file,
            src: self.src,
        }
        .error(span, message)
    }
}

/// A position in a configuration file.
pub struct Location<'a> {
    pub file: &'a Path,
    pub src: &'a str,
}

impl Location<'_> {
    pub fn error(&self, span: Range<usize>, message: String) -> Error {
        let (line, col) = line_col(self.src, span.start);
        Error::config(format!("{}:{line}:{col}: {message}", self.file.display()))
    }
}

/// 1-based line and column (in characters) of a byte offset.
pub fn line_col(src: &str, offset: usize) -> (usize, usize) {
    let before = &src[..offset.min(src.len())];
    let line = before.matches('\n').count() + 1;
    let col = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
    (line, col)
}

/// Checks that a probability lies in [0, 1].
pub fn check_probability(p: &Params, v: &Spanned<f64>, key: &str) -> Result<f64> {
    let x = *v.get_ref();
    if !(0.0..=1.0).contains(&x) {
        return Err(p.invalid(v, key, format!("{x} is not a probability in [0, 1]")));
    }
    Ok(x)
}

/// Checks that an integer is at least `min`.
pub fn check_at_least(p: &Params, v: &Spanned<i64>, key: &str, min: i64) -> Result<usize> {
    let x = *v.get_ref();
    if x < min {
        return Err(p.invalid(
            v,
            key,
            format!("{x} is too small; it must be at least {min}"),
        ));
    }
    Ok(x as usize)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(serde::Deserialize, Debug)]
    #[serde(deny_unknown_fields)]
    struct P {
        prob: Spanned<f64>,
        #[serde(default)]
        n: Option<i64>,
    }

    #[test]
    fn optional_keys_parse() {
        let src = "[m]\nprob = 0.25\nn = 3\n";
        let v = section(src, "m");
        let p: P = Params::new(Path::new("p.toml"), src, "m", &v)
            .unwrap()
            .parse()
            .unwrap();
        assert_eq!((*p.prob.get_ref(), p.n), (0.25, Some(3)));
    }

    fn section<'a>(src: &'a str, name: &str) -> Spanned<DeValue<'a>> {
        let doc = DeTable::parse(src).unwrap().into_inner();
        doc.into_iter()
            .find(|(k, _)| k.get_ref().as_ref() == name)
            .unwrap()
            .1
    }

    #[test]
    fn unknown_key_names_file_line_and_key() {
        let src = "[m]\nkind = \"x\"\nprob = 0.5\nprobb = 1\n";
        let v = section(src, "m");
        let mut p = Params::new(Path::new("p.toml"), src, "m", &v).unwrap();
        assert_eq!(p.take_str("kind").unwrap().unwrap().into_inner(), "x");
        let err = p.parse::<P>().unwrap_err().to_string();
        assert!(err.starts_with("p.toml:4:"), "{err}");
        assert!(err.contains("probb"), "{err}");
    }

    #[test]
    fn wrong_type_and_bad_value_point_at_the_value() {
        let src = "[m]\nprob = \"high\"\n";
        let v = section(src, "m");
        let err = Params::new(Path::new("p.toml"), src, "m", &v)
            .unwrap()
            .parse::<P>()
            .unwrap_err()
            .to_string();
        assert!(err.starts_with("p.toml:2:"), "{err}");

        let src = "[m]\n\nprob = 1.5\n";
        let v = section(src, "m");
        let p = Params::new(Path::new("p.toml"), src, "m", &v).unwrap();
        let parsed: P = p.parse().unwrap();
        let err = check_probability(&p, &parsed.prob, "prob")
            .unwrap_err()
            .to_string();
        assert!(err.starts_with("p.toml:3:8: [m] prob: 1.5"), "{err}");
    }

    #[test]
    fn missing_key_is_named() {
        let src = "[m]\nn = 3\n";
        let v = section(src, "m");
        let err = Params::new(Path::new("p.toml"), src, "m", &v)
            .unwrap()
            .parse::<P>()
            .unwrap_err()
            .to_string();
        assert!(err.contains("prob"), "{err}");
        assert!(err.starts_with("p.toml:1:"), "{err}");
    }
}
