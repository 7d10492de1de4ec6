//! The reference's `--save_checkpoints_steps`: its Estimator writes
//! `model.ckpt-N` every N optimizer steps into `output_dir` and keeps the
//! newest five (`tf.estimator.RunConfig`'s `keep_checkpoint_max`). Here each
//! is our weights file `checkpoints/step-NNNNNNNN.safetensors` (with the
//! label names), loadable again with `--init_checkpoint`.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};

use crate::checkpoint::ours;
use crate::model::NezhaForFinetuning;

/// `RunConfig`'s `keep_checkpoint_max` default.
pub const KEEP: usize = 5;

/// Where and how often a fine-tuning run saves its weights while training.
#[derive(Clone, Debug, PartialEq)]
pub struct StepCheckpoints {
    /// Optimizer steps between saves.
    pub every: u64,
    /// The run's output directory; files go to its `checkpoints/`.
    pub output_dir: PathBuf,
    /// The head's label names, saved in each file's metadata.
    pub labels: Option<Vec<String>>,
}

impl StepCheckpoints {
    pub fn dir(output_dir: &Path) -> PathBuf {
        output_dir.join("checkpoints")
    }

    /// The file of step `step`.
    pub fn path(output_dir: &Path, step: u64) -> PathBuf {
        StepCheckpoints::dir(output_dir).join(format!("step-{step:08}.safetensors"))
    }

    /// Saves the model if `step` is a multiple of `every`, then deletes all
    /// but the newest [`KEEP`] (after the new one is complete).
    pub fn after_step(&self, model: &NezhaForFinetuning, step: u64) -> Result<()> {
        if self.every == 0 || !step.is_multiple_of(self.every) {
            return Ok(());
        }
        self.save(model, step)
    }

    /// Saves the model of `step`, then deletes all but the newest [`KEEP`].
    pub fn save(&self, model: &NezhaForFinetuning, step: u64) -> Result<()> {
        let dir = StepCheckpoints::dir(&self.output_dir);
        std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
        ours::write(
            &StepCheckpoints::path(&self.output_dir, step),
            &model.weights(self.labels.clone())?,
        )?;
        let mut saved: Vec<PathBuf> = std::fs::read_dir(&dir)
            .with_context(|| format!("listing {}", dir.display()))?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| {
                p.file_name()
                    .and_then(|n| n.to_str())
                    .is_some_and(|n| n.starts_with("step-") && n.ends_with(".safetensors"))
            })
            .collect();
        // Zero-padded step numbers: name order is step order.
        saved.sort();
        let old = saved.len().saturating_sub(KEEP);
        for p in &saved[..old] {
            std::fs::remove_file(p).with_context(|| format!("removing {}", p.display()))?;
        }
        Ok(())
    }
}
