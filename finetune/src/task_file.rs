//! Task files: `nezha finetune <task> --config task.toml` reads the same
//! settings as the flags from one `[classify]`, `[ner]` or `[mrc]` table,
//! under the flags' names (`data_dir`, `learning_rate`, …). Relative paths
//! are relative to the file. A flag given on the command line overrides the
//! file. Mistakes are reported as `file:line:column: [task] key: …`, like
//! the pipeline file's.
//!
//! Every key is optional here: a key the file leaves out is the flag's, and
//! failing that the default of [`crate::config`], which `cli` applies.

use std::path::{Path, PathBuf};

use anyhow::{anyhow, Context, Result};
use nezha_stages::params::{line_col, Params};
use serde::Deserialize;
use toml::de::{DeTable, DeValue};
use toml::Spanned;

use crate::checkpoint::Format;
use crate::classify::Layout;
use crate::config::Task;

/// Every setting a task file may hold; which ones a task accepts is checked
/// after parsing, so that a key of another task is named as such.
#[derive(Deserialize, Debug, Default)]
#[serde(deny_unknown_fields)]
pub struct TaskFile {
    pub data_dir: Option<String>,
    pub vocab_file: Option<String>,
    pub init_checkpoint: Option<String>,
    pub init_format: Option<Spanned<String>>,
    pub bert_config_file: Option<String>,
    pub output_dir: Option<String>,
    pub export_hf: Option<String>,
    pub do_train: Option<bool>,
    pub do_eval: Option<bool>,
    pub do_predict: Option<bool>,
    pub max_seq_length: Option<usize>,
    pub train_batch_size: Option<usize>,
    pub eval_batch_size: Option<usize>,
    pub predict_batch_size: Option<usize>,
    pub learning_rate: Option<f64>,
    pub num_train_epochs: Option<f64>,
    pub save_checkpoints_steps: Option<u64>,
    pub warmup_proportion: Option<f64>,
    pub do_lower_case: Option<bool>,
    pub seed: Option<u64>,
    pub threads: Option<i32>,
    pub device: Option<String>,
    pub precision: Option<String>,
    pub no_test: Option<bool>,
    // classify
    pub task_name: Option<Spanned<String>>,
    pub text_a: Option<Spanned<String>>,
    pub text_b: Option<Spanned<String>>,
    pub label_column: Option<Spanned<String>>,
    // mrc
    pub train_file: Option<Spanned<String>>,
    pub predict_file: Option<Spanned<String>>,
    pub doc_stride: Option<Spanned<usize>>,
    pub max_query_length: Option<Spanned<usize>>,
    pub n_best_size: Option<Spanned<usize>>,
    pub max_answer_length: Option<Spanned<usize>>,
}

/// A task file, parsed and checked for `task`, with the values that need
/// their position resolved.
#[derive(Debug, Default)]
pub struct Loaded {
    pub file: TaskFile,
    /// The file's directory, which relative paths are relative to.
    pub base: PathBuf,
    pub init_format: Option<Format>,
    pub task_name: Option<Layout>,
}

impl Loaded {
    /// A path setting, resolved against the file's directory.
    pub fn path(&self, value: &Option<String>) -> Option<PathBuf> {
        value.as_ref().map(|p| self.base.join(p))
    }
}

/// The task a task file is for: the name of its one table, so that
/// `nezha finetune --config task.toml` needs no task on the command line.
pub fn task_of(path: &Path) -> Result<&'static str> {
    let src = read(path)?;
    let doc = parse(path, &src)?;
    let (name, _) = one_table(path, &src, &doc, None)?;
    Ok(Task::ALL
        .iter()
        .map(|t| t.name())
        .find(|t| *t == name)
        .expect("one_table checked it"))
}

/// The file's one table and its name: a task's (`task`'s, if given), and
/// nothing else in the file. Keys are looked at in file order, so the error
/// names the first one out of place.
fn one_table<'d, 'a>(
    path: &Path,
    src: &str,
    doc: &'d Spanned<DeTable<'a>>,
    task: Option<&str>,
) -> Result<(&'d str, &'d Spanned<DeValue<'a>>)> {
    let at = |span: std::ops::Range<usize>, message| error_at(path, src, span.start, message);
    let wanted =
        |name: &str| task.map_or(Task::ALL.iter().any(|t| t.name() == name), |t| t == name);
    let mut entries: Vec<_> = doc.get_ref().iter().collect();
    entries.sort_by_key(|(k, _)| k.span().start);
    let mut table = None;
    for (k, v) in entries {
        let name = k.get_ref().as_ref();
        if table.is_none() && wanted(name) && matches!(v.get_ref(), DeValue::Table(_)) {
            table = Some((name, v));
            continue;
        }
        return Err(at(
            k.span(),
            match task {
                Some(t) => format!(
                    "`{name}`: a task file for `nezha finetune {t}` holds one [{t}] table and \
                     nothing else"
                ),
                None => format!(
                    "`{name}`: a task file holds one [classify], [ner] or [mrc] table and \
                     nothing else"
                ),
            },
        ));
    }
    table.ok_or_else(|| match task {
        Some(t) => at(0..0, format!("no [{t}] table")),
        None => anyhow!("{}: no [classify], [ner] or [mrc] table", path.display()),
    })
}

fn read(path: &Path) -> Result<String> {
    std::fs::read_to_string(path)
        .with_context(|| format!("reading the task file {}", path.display()))
}

fn parse<'a>(path: &Path, src: &'a str) -> Result<Spanned<DeTable<'a>>> {
    DeTable::parse(src).map_err(|e| {
        error_at(
            path,
            src,
            e.span().map_or(0, |s| s.start),
            e.message().into(),
        )
    })
}

/// `file:line:col: message` for byte `offset` of the file.
fn error_at(path: &Path, src: &str, offset: usize, message: String) -> anyhow::Error {
    let (line, col) = line_col(src, offset);
    anyhow!("{}:{line}:{col}: {message}", path.display())
}

/// Reads `path` as the task file of `task` (classify, ner or mrc).
pub fn load(path: &Path, task: &str) -> Result<Loaded> {
    let src = read(path)?;
    let doc = parse(path, &src)?;
    let (_, section) = one_table(path, &src, &doc, Some(task))?;
    let at = |span: std::ops::Range<usize>, message| error_at(path, &src, span.start, message);
    let params = Params::new(path, &src, task, section)?;
    let file: TaskFile = params.parse()?;

    let not_for = |key: &str, span: std::ops::Range<usize>, owner: &str| {
        at(
            span,
            format!("[{task}] {key}: a setting of `nezha finetune {owner}`, not of {task}"),
        )
    };
    if task != "classify" {
        for (key, v) in [
            ("task_name", &file.task_name),
            ("text_a", &file.text_a),
            ("text_b", &file.text_b),
            ("label_column", &file.label_column),
        ] {
            if let Some(v) = v {
                return Err(not_for(key, v.span(), "classify"));
            }
        }
    }
    if task != "mrc" {
        for (key, v) in [
            ("doc_stride", &file.doc_stride),
            ("max_query_length", &file.max_query_length),
            ("n_best_size", &file.n_best_size),
            ("max_answer_length", &file.max_answer_length),
        ] {
            if let Some(v) = v {
                return Err(not_for(key, v.span(), "mrc"));
            }
        }
        for (key, v) in [
            ("train_file", &file.train_file),
            ("predict_file", &file.predict_file),
        ] {
            if let Some(v) = v {
                return Err(not_for(key, v.span(), "mrc"));
            }
        }
    }
    let init_format = file
        .init_format
        .as_ref()
        .map(|v| {
            v.get_ref()
                .parse::<Format>()
                .map_err(|e| params.invalid(v, "init_format", e))
        })
        .transpose()?;
    let task_name = file
        .task_name
        .as_ref()
        .map(|v| {
            v.get_ref()
                .parse::<Layout>()
                .map_err(|e| params.invalid(v, "task_name", e))
        })
        .transpose()?;
    let base = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."))
        .to_path_buf();
    Ok(Loaded {
        file,
        base,
        init_format,
        task_name,
    })
}
