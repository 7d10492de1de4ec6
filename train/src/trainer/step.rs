//! One optimizer step in two parts: [`Run::accumulate`] runs the step's
//! micro-batches forward and backward (gradients add up in the parameters),
//! and [`Run::reduce_and_step`] averages the gradients over the ranks,
//! exchanges the step's statistics, and applies the update (or, when some
//! rank's data ended inside the step, discards it).

use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use nezha_stages::Batch;
use tch::{Device, Tensor};

use super::checkpoint::TrainState;
use super::config::TrainConfig;
use super::dropout_seed;
use super::losses::{DeviceLossSums, LossSums};
use super::parallel::{Collectives, StepStats};
use crate::model::{pretraining_loss, Mode, NezhaForPreTraining, PreTrainingInputs};
use crate::optim::{ClipOutcome, Optimizer};

/// What every step of one run uses.
pub(super) struct Run<'a> {
    pub cfg: &'a TrainConfig,
    pub model: &'a NezhaForPreTraining,
    pub mode: Mode,
    pub device: Device,
    pub params: &'a [(String, Tensor)],
    pub rank: usize,
    pub world: usize,
    /// In a data-parallel run (even of one process).
    pub collectives: Option<Collectives<'a>>,
    /// The schedule's learning rate is multiplied by this (the world size
    /// with `scale_lr_by_world_size`, else 1).
    pub lr_factor: f64,
}

/// One step's micro-batches on this rank, their gradients accumulated.
pub(super) struct Accumulated {
    /// Micro-batches taken: `grad_accumulation`, or fewer where the data
    /// ended.
    pub batches: u64,
    pub sequences: usize,
    pub losses: DeviceLossSums,
    /// Time spent waiting for the data iterator.
    pub wait: Duration,
}

/// What became of a step after the exchange between ranks.
pub(super) enum Stepped {
    /// Some rank (this one, or another) had fewer micro-batches than a
    /// step: nothing was applied and the gradients are cleared.
    DataEnded {
        /// This rank's micro-batches that were not applied.
        dropped: u64,
        /// Ranks that ran short.
        ranks_short: usize,
    },
    /// The update was applied, or skipped for non-finite gradients
    /// (`clip.is_finite()` false).
    Done(Applied),
}

pub(super) struct Applied {
    /// Loss sums over every rank's micro-batches.
    pub sums: LossSums,
    /// Sequences over every rank.
    pub sequences: f64,
    /// The learning rate of the update.
    pub lr: f64,
    pub clip: ClipOutcome,
    /// Some rank was asked to stop (`super::interrupt`): every rank stops
    /// after this step.
    pub interrupted: bool,
}

impl Run<'_> {
    /// Runs up to `grad_accumulation` batches forward and backward, each
    /// loss scaled by `loss_scale / grad_accumulation`, advancing
    /// `state.batches_consumed`. With overlap on, the gradient averager is
    /// armed before the last backward so that buckets go out as they fill.
    pub fn accumulate<I>(
        &self,
        batches: &mut I,
        state: &mut TrainState,
        loss_scale: f64,
    ) -> Result<Accumulated>
    where
        I: Iterator<Item = Result<Batch>>,
    {
        let cfg = self.cfg;
        let accum = cfg.grad_accumulation as u64;
        let mut acc = Accumulated {
            batches: 0,
            sequences: 0,
            losses: DeviceLossSums::zeros(self.device),
            wait: Duration::ZERO,
        };
        while acc.batches < accum {
            let tw = Instant::now();
            let next = batches.next();
            acc.wait += tw.elapsed();
            let Some(batch) = next else { break };
            let index = state.batches_consumed;
            let batch = batch.with_context(|| format!("reading batch {index}"))?;
            let inputs = PreTrainingInputs::from_batch(
                &batch,
                cfg.model.vocab_size,
                cfg.model.type_vocab_size,
                self.device,
            )
            .with_context(|| format!("batch {index}"))?;
            tch::manual_seed(dropout_seed(
                cfg.seed,
                index * self.world as u64 + self.rank as u64,
            ));
            let out = self.model.forward(&inputs, self.mode);
            let loss = pretraining_loss(&out, &inputs);
            if acc.batches + 1 == accum && cfg.overlap_all_reduce {
                if let Some(c) = &self.collectives {
                    c.arm();
                }
            }
            (&loss.total * (loss_scale / accum as f64)).backward();
            acc.losses.add(&loss);
            acc.sequences += batch.size;
            state.batches_consumed += 1;
            acc.batches += 1;
        }
        Ok(acc)
    }

    /// Averages the gradients over the ranks and sums the step's
    /// statistics; then, if every rank had a full step, unscales, clips and
    /// applies the update (advancing `state.step`, or counting a skipped
    /// step), updates the loss scale, and clears the gradients.
    pub fn reduce_and_step(
        &self,
        acc: Accumulated,
        optimizer: &mut Optimizer,
        state: &mut TrainState,
        loss_scale: f64,
    ) -> Result<Stepped> {
        let cfg = self.cfg;
        let full = acc.batches == cfg.grad_accumulation as u64;
        let mut stats = StepStats {
            full: full as u64 as f64,
            interrupted: super::interrupt::requested() as u64 as f64,
            sums: LossSums::default(),
            sequences: acc.sequences as f64,
            positions: vec![0.0; self.world],
            device: self.device,
        };
        stats.positions[self.rank] = state.batches_consumed as f64;
        // Before the statistics: every rank issues its collectives in the
        // same order, and the full ranks' buckets may already be under way.
        if let Some(c) = &self.collectives {
            c.average(full, state.step)?;
        }
        // Alone, the sums stay on the device until after the update.
        let reduced = match &self.collectives {
            Some(c) => {
                stats.sums = acc.losses.read()?;
                stats = c.reduce(&stats, state.step)?;
                Some(stats.sums)
            }
            None => None,
        };
        if stats.full < self.world as f64 {
            optimizer.zero_grads(self.params);
            return Ok(Stepped::DataEnded {
                dropped: acc.batches,
                ranks_short: self.world - stats.full as usize,
            });
        }
        state.rank_positions = match self.collectives {
            Some(_) => stats.positions.iter().map(|&p| p as u64).collect(),
            None => vec![state.batches_consumed],
        };
        let lr = cfg.schedule.lr(state.step) * self.lr_factor;
        let clip =
            optimizer.clip_and_step(self.params, loss_scale, cfg.max_grad_norm, lr, state.step)?;
        if clip.is_finite() {
            state.step += 1;
        } else {
            state.skipped_steps += 1;
        }
        if let Some(s) = &mut state.loss_scaler {
            s.update(clip.is_finite());
        }
        optimizer.zero_grads(self.params);
        let sums = match reduced {
            Some(sums) => sums,
            None => acc.losses.read()?,
        };
        Ok(Stepped::Done(Applied {
            sums,
            sequences: stats.sequences,
            lr,
            clip,
            interrupted: stats.interrupted > 0.0,
        }))
    }
}
