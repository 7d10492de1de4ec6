//! The JSON lines exchanged with a `command` program.

use serde::{Deserialize, Serialize};

use crate::data::Document;

#[derive(Serialize)]
struct Request<'a> {
    index: u64,
    origin: &'a str,
    lines: &'a [String],
}

#[derive(Deserialize)]
struct Answer {
    lines: Vec<String>,
}

/// The line sent for `doc`, newline included.
pub fn request_line(doc: &Document) -> String {
    let mut line = serde_json::to_string(&Request {
        index: doc.index,
        origin: &doc.origin,
        lines: &doc.lines,
    })
    .expect("a document serializes");
    line.push('\n');
    line
}

/// The lines of an answer, or why it is not one. Empty lines are dropped,
/// as ingest drops blank lines.
pub fn parse_answer(line: &str) -> Result<Vec<String>, String> {
    let answer: Answer = serde_json::from_str(line)
        .map_err(|e| format!("expected a JSON object {{\"lines\": [strings]}}, {e}"))?;
    Ok(answer
        .lines
        .into_iter()
        .filter(|l| !l.trim().is_empty())
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_are_one_json_line() {
        let doc = Document {
            index: 3,
            origin: "a.txt:1".into(),
            lines: vec!["第一\"句\"。".into(), "two".into()],
        };
        let line = request_line(&doc);
        assert!(line.ends_with('\n') && !line[..line.len() - 1].contains('\n'));
        let v: serde_json::Value = serde_json::from_str(&line).unwrap();
        assert_eq!(v["index"], 3);
        assert_eq!(v["origin"], "a.txt:1");
        assert_eq!(v["lines"][0], "第一\"句\"。");
    }

    #[test]
    fn answers_are_checked() {
        assert_eq!(
            parse_answer(r#"{"lines": ["a", " ", "b"], "extra": 1}"#).unwrap(),
            vec!["a", "b"]
        );
        assert_eq!(
            parse_answer(r#"{"lines": []}"#).unwrap(),
            Vec::<String>::new()
        );
        let err = parse_answer("not json").unwrap_err();
        assert!(err.contains("expected a JSON object"), "{err}");
        assert!(parse_answer(r#"{"lines": "a"}"#).is_err());
        assert!(parse_answer(r#"{"text": "a"}"#).is_err());
    }
}
