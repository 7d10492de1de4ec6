//! The epoch loop every fine-tuning task shares, as the reference's
//! `run_*.py` scripts train: the example order reshuffled each epoch, one
//! AdamWeightDecay update per batch ([`crate::step`]), dev evaluated after
//! each epoch, and — as `read_tf_events.py` picks the best dev checkpoint —
//! the best epoch's weights what the model holds at the end. A task brings
//! its batch loss and its dev evaluation; without one (`--do_train` without
//! `--do_eval`) the last weights are kept, as the reference's Estimator
//! ends with them.
//!
//! `epochs` may be fractional, as the reference's `num_train_epochs` float:
//! the run takes `int(len(train) / batch · epochs)` steps, and its last
//! epoch stops part way.
//!
//! Dropout masks are drawn from libtorch's generator seeded per batch from
//! the config's seed, so a run is reproducible.

use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{ensure, Result};
use nezha_train::model::Mode;
use nezha_train::optim::{Optimizer, OptimizerConfig, OptimizerKind, Schedule};
use nezha_train::trainer::loss_scale::LossScaler;
use nezha_train::trainer::{LossScaleConfig, Precision};
use serde::Serialize;
use tch::Tensor;

use crate::classify::data::shuffle;
use crate::config::FinetuneConfig;
use crate::model::NezhaForFinetuning;

/// What one epoch did, for the metrics log; `dev` is the task's scores.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct EpochReport<D> {
    /// 1-based.
    pub epoch: usize,
    /// Optimizer updates applied so far.
    pub global_step: u64,
    /// Updates skipped because a gradient was not finite.
    pub skipped_steps: u64,
    /// Mean training loss over the epoch's batches.
    pub train_loss: f64,
    pub learning_rate: f64,
    /// The dev scores, when the run evaluates.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub dev: Option<D>,
    pub seconds: f64,
}

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Outcome<D> {
    pub epochs: Vec<EpochReport<D>>,
    /// The epoch whose weights the model now holds (best dev score,
    /// earliest on ties; the last epoch without dev).
    pub best_epoch: usize,
}

/// The dropout seed of the `batch`-th training batch.
fn batch_seed(seed: u64, batch: u64) -> i64 {
    let mut z = seed ^ batch.wrapping_mul(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    (z ^ (z >> 31)) as i64
}

/// Checks that `n` training items (`what`) make a run with `cfg`, before
/// anything is written: the schedule and the batches per epoch.
pub fn plan(n: usize, what: &str, cfg: &FinetuneConfig) -> Result<(Schedule, usize)> {
    ensure!(
        cfg.batch_size > 0 && cfg.epochs.is_finite() && cfg.epochs > 0.0,
        "train_batch_size and num_train_epochs must be positive (num_train_epochs {})",
        cfg.epochs
    );
    ensure!(
        n >= cfg.batch_size,
        "{n} {what} do not fill one batch of {}",
        cfg.batch_size
    );
    ensure!(
        (0.0..1.0).contains(&cfg.warmup_proportion),
        "warmup_proportion {} must be in [0, 1)",
        cfg.warmup_proportion
    );
    let (schedule, steps_per_epoch) = crate::step::schedule(
        n,
        cfg.batch_size,
        cfg.epochs,
        cfg.learning_rate,
        cfg.warmup_proportion,
    )?;
    ensure!(
        schedule.total_steps > 0,
        "{n} {what} in batches of {} for {} epoch(s) make no training step",
        cfg.batch_size,
        cfg.epochs
    );
    Ok((schedule, steps_per_epoch))
}

/// The dev evaluation of one epoch: the scores and the number that picks
/// the best epoch.
pub type Evaluate<'a, D> = &'a dyn Fn(&NezhaForFinetuning) -> Result<(D, f64)>;

/// fp16's dynamic loss scale: the trainer's (`ExponentialUpdateLossScaleManager`'s
/// growth and backoff) from 2^16, PyTorch `GradScaler`'s start, since a
/// fine-tuning run is too short to spend the dozens of skipped steps that
/// halving down from the pretraining default 2^32 takes.
pub fn fp16_loss_scale() -> LossScaleConfig {
    LossScaleConfig {
        initial: 65536.0,
        ..LossScaleConfig::default()
    }
}

/// Trains on `train` (`what` names its items in errors) with `loss` of a
/// batch in training mode (dropout on, `cfg.precision`'s matrix
/// products); after each epoch `evaluate`, if given, gives the
/// dev scores and the number that picks the best epoch, and `on_epoch` sees
/// the report.
pub fn fine_tune<T, D>(
    model: &mut NezhaForFinetuning,
    train: &[T],
    what: &str,
    cfg: &FinetuneConfig,
    loss: impl Fn(&NezhaForFinetuning, &[&T], Mode) -> Result<Tensor>,
    evaluate: Option<Evaluate<'_, D>>,
    mut on_epoch: impl FnMut(&EpochReport<D>) -> Result<()>,
) -> Result<Outcome<D>> {
    let (schedule, steps_per_epoch) = plan(train.len(), what, cfg)?;
    let total = schedule.total_steps;
    let epochs = cfg.epochs.ceil() as usize;
    let bar = crate::step::progress(total);

    let params = model.trainable();
    let mut optimizer = Optimizer::new(
        OptimizerKind::AdamWeightDecay,
        OptimizerConfig::default(),
        &params,
    );
    let mode = Mode {
        train: true,
        compute: cfg.precision.compute_kind(),
    };
    let mut scaler = (cfg.precision == Precision::Fp16).then(|| LossScaler::new(fp16_loss_scale()));
    let mut batches = 0u64;
    let mut order: Vec<usize> = (0..train.len()).collect();
    let (mut step, mut skipped) = (0u64, 0u64);
    let mut reports = Vec::new();
    let mut best: Option<(usize, f64, Vec<Tensor>)> = None;
    for epoch in 1..=epochs {
        if step >= total {
            break;
        }
        let started = Instant::now();
        shuffle(&mut order, cfg.seed.wrapping_add(epoch as u64));
        let (mut loss_sum, mut epoch_batches) = (0.0, 0usize);
        for b in order.chunks_exact(cfg.batch_size).take(steps_per_epoch) {
            if step >= total {
                break;
            }
            let batch: Vec<&T> = b.iter().map(|&i| &train[i]).collect();
            // Dropout masks are a function of (seed, batch), whatever ran
            // before on libtorch's global generator.
            tch::manual_seed(batch_seed(cfg.seed, batches));
            batches += 1;
            epoch_batches += 1;
            let loss = loss(model, &batch, mode)?;
            match &scaler {
                Some(s) => (&loss * s.scale).backward(),
                None => loss.backward(),
            }
            loss_sum += loss.double_value(&[]);
            let before = step;
            crate::step::apply(
                &params,
                &mut optimizer,
                &schedule,
                cfg.max_grad_norm,
                scaler.as_mut(),
                &mut step,
                &mut skipped,
            )?;
            if step > before {
                if let Some(c) = &cfg.checkpoints {
                    bar.suspend(|| c.after_step(model, step))?;
                }
            }
            crate::step::show(&bar, step, epoch, epochs, &loss);
            if nezha_train::trainer::interrupt::requested() {
                // Ctrl-C or SIGTERM: the step is whole; keep its weights.
                bar.finish_and_clear();
                let kept = match &cfg.checkpoints {
                    Some(c) => {
                        let path =
                            crate::step_checkpoints::StepCheckpoints::path(&c.output_dir, step);
                        if !path.exists() {
                            c.save(model, step)?;
                        }
                        format!("its weights are in {}", path.display())
                    }
                    None => "no weights kept (save_checkpoints_steps = 0)".to_string(),
                };
                return Err(nezha_train::trainer::interrupt::Stopped(format!(
                    "fine-tuning stopped after step {step}; {kept}"
                ))
                .into());
            }
        }
        let (dev, score) = match evaluate {
            Some(evaluate) => {
                let (d, s) = evaluate(model)?;
                (Some(d), s)
            }
            // No dev: every epoch outranks the one before, so the last
            // epoch's weights are kept.
            None => (None, epoch as f64),
        };
        let report = EpochReport {
            epoch,
            global_step: step,
            skipped_steps: skipped,
            train_loss: loss_sum / epoch_batches.max(1) as f64,
            learning_rate: schedule.lr(step),
            dev,
            seconds: started.elapsed().as_secs_f64(),
        };
        // Without dev the copy is not needed: the weights are the last's.
        if evaluate.is_none() {
            best = Some((epoch, score, Vec::new()));
        } else if best.as_ref().is_none_or(|(_, s, _)| score > *s) {
            let copy = params.iter().map(|(_, p)| p.detach().copy()).collect();
            best = Some((epoch, score, copy));
        }
        bar.suspend(|| on_epoch(&report))?;
        reports.push(report);
    }
    let (best_epoch, _, weights) = best.expect("at least one epoch ran");
    if !weights.is_empty() {
        tch::no_grad(|| {
            for ((_, p), w) in params.iter().zip(&weights) {
                p.shallow_clone().copy_(w);
            }
        });
    }
    bar.finish_and_clear();
    Ok(Outcome {
        epochs: reports,
        best_epoch,
    })
}

/// `metrics.jsonl`: one JSON object per line (each epoch's report, then the
/// test scores), the file rewritten whole at each line through
/// [`nezha_stages::atomic_file::write_file`], so that a reader always finds
/// a complete log of the epochs so far. (Few lines: one per epoch.)
pub struct MetricsLog {
    path: PathBuf,
    text: String,
}

impl MetricsLog {
    /// The log `metrics.jsonl` in `output_dir`; nothing is written until
    /// the first line.
    pub fn new(output_dir: &Path) -> MetricsLog {
        MetricsLog {
            path: output_dir.join("metrics.jsonl"),
            text: String::new(),
        }
    }

    /// Appends `v` as a line.
    pub fn line(&mut self, v: &impl serde::Serialize) -> Result<()> {
        self.text.push_str(&serde_json::to_string(v)?);
        self.text.push('\n');
        Ok(nezha_stages::atomic_file::write_file(
            &self.path,
            self.text.as_bytes(),
        )?)
    }
}
