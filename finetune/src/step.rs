//! What every fine-tuning loop shares with the reference's `create_optimizer`:
//! the schedule sized from the data, and one AdamWeightDecay update made as
//! the pretraining trainer makes it (`nezha_train::optim::Optimizer`'s
//! `clip_and_step` on the flat gradient buffer, fp16's loss scale undone
//! first and updated after, as `nezha_train::trainer`'s step does).

use anyhow::{Context, Result};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use nezha_train::optim::{Optimizer, Schedule};
use nezha_train::trainer::loss_scale::LossScaler;
use tch::Tensor;

/// The reference's `num_train_steps = int(len(train) / batch * epochs)`
/// (`epochs` a float there too) with `warmup_proportion` of it warming up;
/// also the batches per epoch (the remainder is dropped).
pub fn schedule(
    examples: usize,
    batch_size: usize,
    epochs: f64,
    learning_rate: f64,
    warmup_proportion: f64,
) -> Result<(Schedule, usize)> {
    let steps_per_epoch = examples / batch_size;
    let total = (examples as f64 / batch_size as f64 * epochs) as u64;
    let warmup = (total as f64 * warmup_proportion) as u64;
    let schedule = Schedule::new(learning_rate, warmup, total);
    schedule.validate().context("learning-rate schedule")?;
    Ok((schedule, steps_per_epoch))
}

/// Unscales the gradients by the loss scale (fp16), clips, applies the
/// update unless a gradient is non-finite (then counts a skip and leaves
/// the weights alone), updates the loss scale, and zeroes the gradients.
pub fn apply(
    params: &[(String, Tensor)],
    optimizer: &mut Optimizer,
    schedule: &Schedule,
    max_grad_norm: f64,
    scaler: Option<&mut LossScaler>,
    step: &mut u64,
    skipped: &mut u64,
) -> Result<()> {
    let scale = scaler.as_ref().map_or(1.0, |s| s.scale);
    let clip = optimizer.clip_and_step(params, scale, max_grad_norm, schedule.lr(*step), *step)?;
    if clip.is_finite() {
        *step += 1;
    } else {
        *skipped += 1;
    }
    if let Some(s) = scaler {
        s.update(clip.is_finite());
    }
    optimizer.zero_grads(params);
    Ok(())
}

/// The fine-tuning progress bar on stderr (drawn only on a terminal):
/// steps, elapsed and remaining time, epoch and the last batch's loss.
pub fn progress(total_steps: u64) -> ProgressBar {
    let bar = ProgressBar::with_draw_target(Some(total_steps), ProgressDrawTarget::stderr());
    bar.set_style(
        ProgressStyle::with_template(
            "{bar:30.cyan/blue} step {pos}/{len} [{elapsed_precise} < {eta_precise}] {msg}",
        )
        .expect("valid template")
        .progress_chars("=> "),
    );
    bar
}

/// Moves the bar to `step` and shows the epoch and `loss`.
pub fn show(bar: &ProgressBar, step: u64, epoch: usize, epochs: usize, loss: &Tensor) {
    bar.set_position(step);
    if bar.is_hidden() {
        return;
    }
    bar.set_message(format!(
        "epoch {epoch}/{epochs} loss {:.4}",
        loss.double_value(&[])
    ));
}
