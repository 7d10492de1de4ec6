//! Fine-tuning a sentence classifier as `run_classifier.py` does:
//! AdamWeightDecay (no bias correction, weight decay 0.01 except LayerNorm
//! and biases), linear warmup over the first 10% of
//! `int(len(train) / batch · epochs)` steps then linear decay, global-norm
//! clipping at 1.0, mean cross-entropy; then, as the reference's
//! `read_tf_events.py` picks the best dev checkpoint, dev is evaluated after
//! every epoch and the best epoch's weights are what the model holds at the
//! end.
//!
//! Dropout masks are drawn from libtorch's generator seeded per batch from
//! the config's seed, so a run is reproducible.
//!
//! Batches are padded to their longest example rather than to
//! `max_seq_length`: padded keys get an attention weight of exactly zero and
//! relative positions depend only on distances, so real positions compute
//! the same values, at a fraction of the cost on a CPU.

use std::time::Instant;

use anyhow::{ensure, Result};
use nezha_train::model::Mode;
use nezha_train::optim::{AdamWeightDecay, OptimizerConfig};
use serde::Serialize;
use tch::{Device, Tensor};

use super::data::shuffle;
use super::features::Features;
use crate::heads::classification::classification_loss;
use crate::metrics::{accuracy, macro_f1};
use crate::model::{HeadOutput, NezhaForFinetuning};

/// Hyper-parameters; the defaults are `run_classifier.py`'s flags.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct ClassifyConfig {
    pub batch_size: usize,
    pub eval_batch_size: usize,
    pub learning_rate: f64,
    pub epochs: usize,
    pub warmup_proportion: f64,
    pub max_grad_norm: f64,
    /// Seeds the example order of each epoch and the dropout masks.
    pub seed: u64,
}

impl Default for ClassifyConfig {
    fn default() -> ClassifyConfig {
        ClassifyConfig {
            batch_size: 32,
            eval_batch_size: 8,
            learning_rate: 3e-5,
            epochs: 3,
            warmup_proportion: 0.1,
            max_grad_norm: 1.0,
            seed: 12345,
        }
    }
}

/// Scores of one evaluation.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Scores {
    pub accuracy: f64,
    pub macro_f1: f64,
    /// Mean cross-entropy.
    pub loss: f64,
    pub examples: usize,
}

/// What one epoch did, for the metrics log.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct EpochReport {
    /// 1-based.
    pub epoch: usize,
    /// Optimizer updates applied so far.
    pub global_step: u64,
    /// Updates skipped because a gradient was not finite.
    pub skipped_steps: u64,
    /// Mean training loss over the epoch's batches.
    pub train_loss: f64,
    pub learning_rate: f64,
    pub dev: Scores,
    pub seconds: f64,
}

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Outcome {
    pub epochs: Vec<EpochReport>,
    /// The epoch whose weights the model now holds (best dev accuracy,
    /// earliest on ties).
    pub best_epoch: usize,
}

/// Pads a batch to its longest example: `(input_ids, input_mask,
/// segment_ids, labels)`.
fn batch_tensors(batch: &[&Features], device: Device) -> (Tensor, Tensor, Tensor, Tensor) {
    let len = batch.iter().map(|f| f.input_ids.len()).max().unwrap_or(1);
    let (mut ids, mut mask, mut seg) = (Vec::new(), Vec::new(), Vec::new());
    for f in batch {
        let pad = len - f.input_ids.len();
        ids.extend(
            f.input_ids
                .iter()
                .copied()
                .chain(std::iter::repeat_n(0, pad)),
        );
        mask.extend(
            std::iter::repeat_n(1i64, f.input_ids.len()).chain(std::iter::repeat_n(0, pad)),
        );
        seg.extend(
            f.segment_ids
                .iter()
                .copied()
                .chain(std::iter::repeat_n(0, pad)),
        );
    }
    let shape = [batch.len() as i64, len as i64];
    let t = |v: Vec<i64>| Tensor::from_slice(&v).reshape(shape).to_device(device);
    let labels: Vec<i64> = batch.iter().map(|f| f.label as i64).collect();
    (
        t(ids),
        t(mask),
        t(seg),
        Tensor::from_slice(&labels).to_device(device),
    )
}

fn logits(
    model: &NezhaForFinetuning,
    b: &(Tensor, Tensor, Tensor, Tensor),
    mode: Mode,
) -> Result<Tensor> {
    match model.forward(&b.0, &b.1, &b.2, None, mode) {
        HeadOutput::Sequence(l) => Ok(l),
        _ => anyhow::bail!("the model does not have a sentence classification head"),
    }
}

/// The dropout seed of the `batch`-th training batch.
fn batch_seed(seed: u64, batch: u64) -> i64 {
    let mut z = seed ^ batch.wrapping_mul(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    (z ^ (z >> 31)) as i64
}

/// Predicted label ids and scores (eval mode, no dropout).
pub fn evaluate(
    model: &NezhaForFinetuning,
    data: &[Features],
    batch_size: usize,
) -> Result<(Vec<usize>, Scores)> {
    ensure!(!data.is_empty(), "nothing to evaluate");
    ensure!(batch_size > 0, "batch size must be positive");
    let mut pred = Vec::with_capacity(data.len());
    let mut loss_sum = 0.0;
    tch::no_grad(|| -> Result<()> {
        for chunk in data.chunks(batch_size) {
            let refs: Vec<&Features> = chunk.iter().collect();
            let b = batch_tensors(&refs, model.device());
            let l = logits(model, &b, Mode::eval())?;
            loss_sum += classification_loss(&l, &b.3).double_value(&[]) * chunk.len() as f64;
            let p: Vec<i64> = Vec::try_from(l.argmax(-1, false).to_device(Device::Cpu))?;
            pred.extend(p.into_iter().map(|x| x as usize));
        }
        Ok(())
    })?;
    let gold: Vec<usize> = data.iter().map(|f| f.label).collect();
    let scores = Scores {
        accuracy: accuracy(&gold, &pred)?,
        macro_f1: macro_f1(&gold, &pred)?,
        loss: loss_sum / data.len() as f64,
        examples: data.len(),
    };
    Ok((pred, scores))
}

/// Fine-tunes `model` on `train`, evaluating `dev` after each epoch;
/// `on_epoch` sees each report as it is made (for logs and progress). On
/// return the model holds the best epoch's weights.
pub fn fine_tune(
    model: &mut NezhaForFinetuning,
    train: &[Features],
    dev: &[Features],
    cfg: &ClassifyConfig,
    mut on_epoch: impl FnMut(&EpochReport) -> Result<()>,
) -> Result<Outcome> {
    ensure!(
        cfg.batch_size > 0 && cfg.epochs > 0,
        "batch_size and epochs must be positive"
    );
    ensure!(
        train.len() >= cfg.batch_size,
        "{} training examples do not fill one batch of {}",
        train.len(),
        cfg.batch_size
    );
    ensure!(
        (0.0..1.0).contains(&cfg.warmup_proportion),
        "warmup_proportion {} must be in [0, 1)",
        cfg.warmup_proportion
    );
    let k = model.architecture.num_labels().unwrap_or(0) as usize;
    if let Some(bad) = train.iter().chain(dev).find(|f| f.label >= k) {
        anyhow::bail!(
            "label id {} is outside the classifier's {k} labels",
            bad.label
        );
    }
    // The reference: num_train_steps = int(len(train) / batch * epochs),
    // batches drop their remainder.
    let (schedule, steps_per_epoch) = crate::step::schedule(
        train.len(),
        cfg.batch_size,
        cfg.epochs,
        cfg.learning_rate,
        cfg.warmup_proportion,
    )?;
    let total = schedule.total_steps;
    let bar = crate::step::progress(total);

    let params = model.trainable();
    let mut optimizer = AdamWeightDecay::new(OptimizerConfig::default(), &params);
    let mut batches = 0u64;
    let mut order: Vec<usize> = (0..train.len()).collect();
    let (mut step, mut skipped) = (0u64, 0u64);
    let mut reports = Vec::new();
    let mut best: Option<(usize, f64, Vec<Tensor>)> = None;
    for epoch in 1..=cfg.epochs {
        let started = Instant::now();
        shuffle(&mut order, cfg.seed.wrapping_add(epoch as u64));
        let mut loss_sum = 0.0;
        for b in order.chunks_exact(cfg.batch_size).take(steps_per_epoch) {
            if step >= total {
                break;
            }
            let refs: Vec<&Features> = b.iter().map(|&i| &train[i]).collect();
            let t = batch_tensors(&refs, model.device());
            // Dropout masks are a function of (seed, batch), whatever ran
            // before on libtorch's global generator.
            tch::manual_seed(batch_seed(cfg.seed, batches));
            batches += 1;
            let loss = classification_loss(&logits(model, &t, Mode::train())?, &t.3);
            loss.backward();
            loss_sum += loss.double_value(&[]);
            crate::step::apply(
                &params,
                &mut optimizer,
                &schedule,
                cfg.max_grad_norm,
                &mut step,
                &mut skipped,
            )?;
            crate::step::show(&bar, step, epoch, cfg.epochs, &loss);
        }
        let (_, scores) = evaluate(model, dev, cfg.eval_batch_size)?;
        let report = EpochReport {
            epoch,
            global_step: step,
            skipped_steps: skipped,
            train_loss: loss_sum / steps_per_epoch as f64,
            learning_rate: schedule.lr(step),
            dev: scores,
            seconds: started.elapsed().as_secs_f64(),
        };
        if best
            .as_ref()
            .is_none_or(|(_, acc, _)| report.dev.accuracy > *acc)
        {
            let copy = params.iter().map(|(_, p)| p.detach().copy()).collect();
            best = Some((epoch, report.dev.accuracy, copy));
        }
        bar.suspend(|| on_epoch(&report))?;
        reports.push(report);
    }
    let (best_epoch, _, weights) = best.expect("at least one epoch ran");
    tch::no_grad(|| {
        for ((_, p), w) in params.iter().zip(&weights) {
            p.shallow_clone().copy_(w);
        }
    });
    bar.finish_and_clear();
    Ok(Outcome {
        epochs: reports,
        best_epoch,
    })
}
