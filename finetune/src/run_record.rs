//! What a fine-tuning run keeps beside its weights so that a later run can
//! predict with them alone (`--do_predict --init_checkpoint OUTPUT_DIR`):
//! `finetune.json` with the task and the settings that shape its inputs
//! (file layout and columns, sequence length, casing, windows), and a copy
//! of the vocabulary, `vocab.txt`. The weights file carries the model
//! config, the head and the label names; `label_list.txt` repeats the
//! labels for people, as the reference's `output_dir/label_list.txt`.

use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use nezha_stages::atomic_file;
use serde::{Deserialize, Serialize};

pub const RECORD_FILE: &str = "finetune.json";
pub const VOCAB_FILE: &str = "vocab.txt";

/// `finetune.json`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RunRecord {
    /// classify, ner or mrc.
    pub task: String,
    pub max_seq_length: usize,
    pub do_lower_case: bool,
    /// classify: the file layout (`--task_name`) and its columns.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub task_name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub text_a: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub text_b: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub label_column: Option<String>,
    /// mrc: the windows.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub doc_stride: Option<usize>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_query_length: Option<usize>,
}

/// A run directory's record, read.
#[derive(Clone, Debug, PartialEq)]
pub struct Found {
    pub record: RunRecord,
    /// The directory that holds it.
    pub dir: PathBuf,
}

impl RunRecord {
    /// The record of the fine-tuning run that wrote `init_checkpoint`: the
    /// directory itself, the directory of its weights file, or the run
    /// directory above a `checkpoints/step-N.safetensors`. `None` when there
    /// is none (a pretrained model, a TF or Hugging Face checkpoint).
    pub fn beside(init_checkpoint: &Path) -> Result<Option<Found>> {
        let mut candidates = vec![init_checkpoint.to_path_buf()];
        if let Some(parent) = init_checkpoint.parent() {
            candidates.push(parent.to_path_buf());
            if parent.file_name().is_some_and(|n| n == "checkpoints") {
                candidates.extend(parent.parent().map(Path::to_path_buf));
            }
        }
        for dir in candidates {
            let path = dir.join(RECORD_FILE);
            if !path.is_file() {
                continue;
            }
            let text = std::fs::read_to_string(&path)
                .with_context(|| format!("reading {}", path.display()))?;
            let record: RunRecord = serde_json::from_str(&text)
                .with_context(|| format!("{}: not a fine-tuning record", path.display()))?;
            return Ok(Some(Found { record, dir }));
        }
        Ok(None)
    }

    /// Checks that the record is of `task`.
    pub fn expect_task(found: &Found, task: &str) -> Result<()> {
        if found.record.task != task {
            bail!(
                "{} records a `nezha finetune {}` run, not {task}",
                found.dir.join(RECORD_FILE).display(),
                found.record.task
            );
        }
        Ok(())
    }

    /// Writes `finetune.json` and a copy of `vocab` into `dir`.
    pub fn write(&self, dir: &Path, vocab: &Path) -> Result<()> {
        atomic_file::write_file(
            &dir.join(RECORD_FILE),
            (serde_json::to_string_pretty(self)? + "\n").as_bytes(),
        )?;
        let words = std::fs::read(vocab).with_context(|| format!("reading {}", vocab.display()))?;
        atomic_file::write_file(&dir.join(VOCAB_FILE), &words)?;
        Ok(())
    }
}

/// A setting of the run being predicted with, against the one given now:
/// equal, or absent on one side; else the input layout would differ from
/// the training's, which is refused.
pub fn same_layout<T: PartialEq + std::fmt::Debug>(
    found: &Found,
    key: &str,
    trained: Option<T>,
    given: Option<T>,
) -> Result<Option<T>> {
    match (trained, given) {
        (Some(t), Some(g)) if t != g => bail!(
            "the model in {} was trained with {key} {t:?}, this run says {g:?}: \
             its inputs must have the training's layout",
            found.dir.display()
        ),
        (t, g) => Ok(g.or(t)),
    }
}
