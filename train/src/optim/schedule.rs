//! The reference learning-rate schedule (`create_optimizer` in
//! NEZHA-TensorFlow's `optimization.py`; `docs/notes/optimizer.md`): linear
//! warmup from 0, then polynomial decay to 0 at `total_steps`.

use anyhow::{bail, Result};
use serde::{Deserialize, Serialize};

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Schedule {
    /// Peak learning rate, reached at the end of warmup.
    pub init_lr: f64,
    pub warmup_steps: u64,
    pub total_steps: u64,
    /// 1.0 in the reference (linear decay).
    pub power: f64,
    /// The reference's `adj` trick: decay from `init_lr / (1 − W/T)^power`
    /// so that the decay meets the warmup line at step W instead of dropping
    /// there. For power 1 this is the reference's `adjusted_init_lr` exactly.
    pub adjust_for_warmup: bool,
}

impl Schedule {
    pub fn new(init_lr: f64, warmup_steps: u64, total_steps: u64) -> Schedule {
        Schedule {
            init_lr,
            warmup_steps,
            total_steps,
            power: 1.0,
            adjust_for_warmup: true,
        }
    }

    /// Warmup steps when none are given: a tenth of the run (the
    /// reference's 10 000 of 100 000 steps, and the `[train]` default).
    pub fn default_warmup(total_steps: u64) -> u64 {
        total_steps / 10
    }

    pub fn validate(&self) -> Result<()> {
        if self.total_steps == 0 {
            bail!("schedule total_steps must be positive");
        }
        if !(self.init_lr.is_finite() && self.init_lr >= 0.0) {
            bail!(
                "learning rate {} must be finite and non-negative",
                self.init_lr
            );
        }
        if !(self.power.is_finite() && self.power > 0.0) {
            bail!("decay power {} must be positive", self.power);
        }
        if self.adjust_for_warmup && self.warmup_steps >= self.total_steps {
            bail!(
                "warmup_steps {} must be below total_steps {} for the warmup adjustment",
                self.warmup_steps,
                self.total_steps
            );
        }
        Ok(())
    }

    /// Learning rate at 0-based global step `step`; 0 at step 0 when there
    /// is a warmup (the first update moves only the optimizer moments).
    pub fn lr(&self, step: u64) -> f64 {
        let (s, w, t) = (
            step as f64,
            self.warmup_steps as f64,
            self.total_steps as f64,
        );
        if step < self.warmup_steps {
            return self.init_lr * s / w;
        }
        let peak = if self.adjust_for_warmup {
            self.init_lr / (1.0 - w / t).powf(self.power)
        } else {
            self.init_lr
        };
        peak * (1.0 - s.min(t) / t).powf(self.power)
    }
}
