//! JSON laid out byte for byte as Python's `json.dumps(value, indent=4)`
//! writes it, for the files the reference scripts write that way
//! (`run_squad.py`'s `write_predictions`): four-space indent, `": "` after
//! keys, non-ASCII characters escaped as `\uXXXX` (`ensure_ascii`, the
//! default) or kept ([`Ascii::Keep`], `ensure_ascii=False`), and floats as
//! Python's `repr` (`1e-05`, `0.0001`, `3.0`).
//! Object keys keep the order they are serialised in, as Python's dicts.

use std::io::{self, Write};

use serde::ser::{Serialize, SerializeMap, Serializer};
use serde_json::ser::{Formatter, PrettyFormatter};

/// Python's `repr` of a finite float: the shortest digits that read back
/// the same, positional for decimal exponents −4 to 15, else `d.ddde±XX`.
pub fn float_repr(x: f64) -> String {
    if !x.is_finite() {
        // json.dumps writes these (allow_nan=True): not JSON, but Python's.
        return if x.is_nan() {
            "NaN".into()
        } else if x > 0.0 {
            "Infinity".into()
        } else {
            "-Infinity".into()
        };
    }
    let sci = format!("{:e}", x.abs());
    let (mantissa, exp) = sci.split_once('e').expect("{:e} has an exponent");
    let exp: i32 = exp.parse().expect("{:e} exponent is an integer");
    let digits: String = mantissa.chars().filter(|c| *c != '.').collect();
    let sign = if x.is_sign_negative() { "-" } else { "" };
    if (-4..16).contains(&exp) {
        let body = if exp >= 0 {
            let int_len = exp as usize + 1;
            let padded = format!("{digits:0<int_len$}");
            let (int, frac) = padded.split_at(int_len);
            format!("{int}.{}", if frac.is_empty() { "0" } else { frac })
        } else {
            format!("0.{}{digits}", "0".repeat((-exp - 1) as usize))
        };
        format!("{sign}{body}")
    } else {
        let (d0, rest) = digits.split_at(1);
        let frac = if rest.is_empty() {
            String::new()
        } else {
            format!(".{rest}")
        };
        let esign = if exp < 0 { '-' } else { '+' };
        format!("{sign}{d0}{frac}e{esign}{:02}", exp.abs())
    }
}

/// serde_json's pretty layout with Python's escapes and float repr.
struct PythonFormatter<'a>(PrettyFormatter<'a>, Ascii);

/// `json.dumps`'s `ensure_ascii`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Ascii {
    /// `ensure_ascii=True` (the default): non-ASCII as `\uXXXX`.
    Escape,
    /// `ensure_ascii=False`: non-ASCII written as it is (UTF-8).
    Keep,
}

impl Formatter for PythonFormatter<'_> {
    fn write_f64<W: ?Sized + Write>(&mut self, w: &mut W, value: f64) -> io::Result<()> {
        w.write_all(float_repr(value).as_bytes())
    }
    fn write_f32<W: ?Sized + Write>(&mut self, w: &mut W, value: f32) -> io::Result<()> {
        self.write_f64(w, f64::from(value))
    }
    fn write_string_fragment<W: ?Sized + Write>(&mut self, w: &mut W, s: &str) -> io::Result<()> {
        if self.1 == Ascii::Keep {
            return w.write_all(s.as_bytes());
        }
        let mut units = [0u16; 2];
        for c in s.chars() {
            // Python's ensure_ascii escapes everything outside ' '..='~'
            // (serde has escaped the controls below ' ' already).
            if c.is_ascii() && c != '\x7f' {
                w.write_all(&[c as u8])?;
            } else {
                for u in c.encode_utf16(&mut units) {
                    write!(w, "\\u{u:04x}")?;
                }
            }
        }
        Ok(())
    }
    fn begin_array<W: ?Sized + Write>(&mut self, w: &mut W) -> io::Result<()> {
        self.0.begin_array(w)
    }
    fn end_array<W: ?Sized + Write>(&mut self, w: &mut W) -> io::Result<()> {
        self.0.end_array(w)
    }
    fn begin_array_value<W: ?Sized + Write>(&mut self, w: &mut W, first: bool) -> io::Result<()> {
        self.0.begin_array_value(w, first)
    }
    fn end_array_value<W: ?Sized + Write>(&mut self, w: &mut W) -> io::Result<()> {
        self.0.end_array_value(w)
    }
    fn begin_object<W: ?Sized + Write>(&mut self, w: &mut W) -> io::Result<()> {
        self.0.begin_object(w)
    }
    fn end_object<W: ?Sized + Write>(&mut self, w: &mut W) -> io::Result<()> {
        self.0.end_object(w)
    }
    fn begin_object_key<W: ?Sized + Write>(&mut self, w: &mut W, first: bool) -> io::Result<()> {
        self.0.begin_object_key(w, first)
    }
    fn begin_object_value<W: ?Sized + Write>(&mut self, w: &mut W) -> io::Result<()> {
        self.0.begin_object_value(w)
    }
    fn end_object_value<W: ?Sized + Write>(&mut self, w: &mut W) -> io::Result<()> {
        self.0.end_object_value(w)
    }
}

/// A JSON object whose keys keep the given order.
pub struct Ordered<K, V>(pub Vec<(K, V)>);

impl<K: Serialize, V: Serialize> Serialize for Ordered<K, V> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut m = s.serialize_map(Some(self.0.len()))?;
        for (k, v) in &self.0 {
            m.serialize_entry(k, v)?;
        }
        m.end()
    }
}

/// `json.dumps(value, indent=4, ensure_ascii=…) + "\n"`.
pub fn dumps(value: &impl Serialize, ascii: Ascii) -> serde_json::Result<Vec<u8>> {
    let mut out = Vec::new();
    let mut ser = serde_json::Serializer::with_formatter(
        &mut out,
        PythonFormatter(PrettyFormatter::with_indent(b"    "), ascii),
    );
    value.serialize(&mut ser)?;
    out.push(b'\n');
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn floats_are_pythons_repr() {
        for (x, want) in [
            (0.0, "0.0"),
            (-0.0, "-0.0"),
            (3.0, "3.0"),
            (0.1, "0.1"),
            (1e-5, "1e-05"),
            (0.0001, "0.0001"),
            (-2.5e-7, "-2.5e-07"),
            (123456.789, "123456.789"),
            (1e16, "1e+16"),
            (1.5e300, "1.5e+300"),
            (f64::from(0.1f32), "0.10000000149011612"),
        ] {
            assert_eq!(float_repr(x), want);
        }
    }

    #[test]
    fn layout_is_json_dumps_indent_4() {
        let v = Ordered(vec![
            ("q2", vec![Ordered(vec![("text", "刘备")])]),
            ("q1", vec![]),
        ]);
        let got = String::from_utf8(dumps(&v, Ascii::Escape).unwrap()).unwrap();
        // json.dumps({"q2": [{"text": "刘备"}], "q1": []}, indent=4) + "\n"
        let want = "{\n    \"q2\": [\n        {\n            \"text\": \"\\u5218\\u5907\"\n        }\n    ],\n    \"q1\": []\n}\n";
        assert_eq!(got, want);
        // The same with ensure_ascii=False.
        let got = String::from_utf8(dumps(&v, Ascii::Keep).unwrap()).unwrap();
        assert_eq!(got, want.replace("\\u5218\\u5907", "刘备"));
    }
}
