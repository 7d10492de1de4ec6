//! What every fine-tuning loop shares with the reference's `create_optimizer`:
//! the schedule sized from the data, and one AdamWeightDecay update.

use anyhow::{Context, Result};
use nezha_train::optim::{clip_global_norm, AdamWeightDecay, Schedule};
use tch::Tensor;

/// The reference's `num_train_steps = int(len(train) / batch * epochs)`
/// with `warmup_proportion` of it warming up; also the batches per epoch
/// (the remainder is dropped).
pub fn schedule(
    examples: usize,
    batch_size: usize,
    epochs: usize,
    learning_rate: f64,
    warmup_proportion: f64,
) -> Result<(Schedule, usize)> {
    let steps_per_epoch = examples / batch_size;
    let total = (examples as f64 / batch_size as f64 * epochs as f64) as u64;
    let warmup = (total as f64 * warmup_proportion) as u64;
    let schedule = Schedule::new(learning_rate, warmup, total);
    schedule.validate().context("learning-rate schedule")?;
    Ok((schedule, steps_per_epoch))
}

/// Clips, applies the update unless a gradient is non-finite (then counts a
/// skip and leaves the weights alone), and zeroes the gradients.
pub fn apply(
    params: &[(String, Tensor)],
    optimizer: &mut AdamWeightDecay,
    schedule: &Schedule,
    max_grad_norm: f64,
    step: &mut u64,
    skipped: &mut u64,
) -> Result<()> {
    if clip_global_norm(params, max_grad_norm).is_finite() {
        optimizer.step(params, schedule.lr(*step), *step)?;
        *step += 1;
    } else {
        *skipped += 1;
    }
    for (_, p) in params {
        let mut g = p.grad();
        if g.defined() {
            let _ = g.zero_();
        }
    }
    Ok(())
}
