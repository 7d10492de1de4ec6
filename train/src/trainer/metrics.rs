//! Per-step metrics: one JSON object per line in `metrics.jsonl`, and, at
//! the steps the run evaluates, `{"step": N, "eval": {...}}` lines with the
//! held-out metrics.

use std::fs::{File, OpenOptions};
use std::io::{BufRead, BufReader, Write};
use std::path::Path;

use anyhow::{Context, Result};
use nezha_stages::atomic_file;
use serde::{Deserialize, Serialize};

use crate::eval::EvalMetrics;

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct StepMetrics {
    /// Optimizer updates applied after this step (the reference's global_step).
    pub step: u64,
    /// Mean over the step's micro-batches.
    pub loss: f64,
    pub mlm_loss: f64,
    pub nsp_loss: f64,
    pub mlm_acc: f64,
    pub nsp_acc: f64,
    /// The learning rate this step used.
    pub lr: f64,
    /// Global gradient norm before clipping; null when not finite.
    pub grad_norm: Option<f64>,
    /// True when the update was skipped for non-finite gradients.
    pub skipped: bool,
    pub loss_scale: f64,
    /// Sequences per second over this step's wall time.
    pub seq_per_s: f64,
    /// Fraction of this step's wall time spent waiting for batches.
    pub data_wait_frac: f64,
    /// Batches taken from the iterator so far.
    pub batches: u64,
    pub elapsed_s: f64,
}

/// An evaluation line of `metrics.jsonl`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct EvalLine {
    pub step: u64,
    pub eval: EvalMetrics,
}

/// The step a line of either kind is about.
fn step_of(line: &str) -> Option<u64> {
    #[derive(Deserialize)]
    struct Step {
        step: u64,
    }
    serde_json::from_str::<Step>(line).ok().map(|s| s.step)
}

fn is_eval(line: &str) -> bool {
    serde_json::from_str::<EvalLine>(line).is_ok()
}

pub struct MetricsLog {
    file: File,
}

impl MetricsLog {
    /// Opens `path` for appending. With `keep_through = Some(step)` (resume)
    /// lines for later steps — written after that checkpoint by a run that
    /// then stopped — are dropped first, so each step appears once.
    pub fn open(path: &Path, keep_through: Option<u64>) -> Result<MetricsLog> {
        if let (Some(last), true) = (keep_through, path.exists()) {
            let reader = BufReader::new(
                File::open(path).with_context(|| format!("reading {}", path.display()))?,
            );
            let mut kept = String::new();
            for line in reader.lines() {
                let line = line?;
                let Some(step) = step_of(&line) else {
                    continue; // a line cut short by a crash
                };
                if step <= last {
                    kept.push_str(&line);
                    kept.push('\n');
                }
            }
            atomic_file::write_file(path, kept.as_bytes())?;
        }
        let file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .with_context(|| format!("opening {}", path.display()))?;
        Ok(MetricsLog { file })
    }

    pub fn write(&mut self, m: &StepMetrics) -> Result<()> {
        self.write_line(m)
    }

    pub fn write_eval(&mut self, e: &EvalLine) -> Result<()> {
        self.write_line(e)
    }

    fn write_line(&mut self, value: &impl Serialize) -> Result<()> {
        let mut line = serde_json::to_string(value)?;
        line.push('\n');
        self.file.write_all(line.as_bytes())?;
        self.file.flush()?;
        Ok(())
    }
}

/// Reads a metrics file back (for plots and tests): the step lines, and
/// the evaluation lines.
pub fn read_all(path: &Path) -> Result<(Vec<StepMetrics>, Vec<EvalLine>)> {
    let reader =
        BufReader::new(File::open(path).with_context(|| format!("reading {}", path.display()))?);
    let (mut steps, mut evals) = (Vec::new(), Vec::new());
    for (i, l) in reader.lines().enumerate() {
        let l = l?;
        let at = || format!("{}:{}: not a metrics line", path.display(), i + 1);
        if is_eval(&l) {
            evals.push(serde_json::from_str(&l).with_context(at)?);
        } else {
            steps.push(serde_json::from_str(&l).with_context(at)?);
        }
    }
    Ok((steps, evals))
}

/// The step lines of a metrics file.
pub fn read(path: &Path) -> Result<Vec<StepMetrics>> {
    Ok(read_all(path)?.0)
}
