//! Fine-tuning a tagger as `run_classifier_ner.py` does, in the loop of
//! [`crate::classify::train`]: AdamWeightDecay with 10% warmup and linear
//! decay over `int(len(train) / batch · epochs)` steps, global-norm
//! clipping at 1.0, dev evaluated after every epoch and the best epoch (by
//! entity F1) kept.
//!
//! The loss is the mean cross-entropy over the real positions, `X`,
//! `[CLS]` and `[SEP]` included as in the reference. The reference sums it
//! over all `B·L` positions, padding included; with batches padded only to
//! their longest sentence that sum would depend on the batch, so it is not
//! reproduced (the sum over padding also only teaches the model to predict
//! the padding label where it never has to).

use std::time::Instant;

use anyhow::{ensure, Result};
use nezha_train::model::Mode;
use nezha_train::optim::{AdamWeightDecay, OptimizerConfig};
use serde::Serialize;
use tch::{Device, Tensor};

use super::data::Sentence;
use super::features::{char_tags, TagFeatures, TagMap, SPECIAL_TAGS};
use super::token_metric::{token_scores, TokenScores};
use crate::classify::data::shuffle;
use crate::classify::ClassifyConfig;
use crate::heads::token_classification::{token_loss_mean, IGNORE_LABEL};
use crate::metrics::{entity_scores, EntityScores};
use crate::model::{HeadOutput, NezhaForFinetuning};

/// Hyper-parameters: the classifier's, with `scripts/run_seq_labelling.sh`'s
/// batch of 16 and 10 epochs.
pub fn ner_defaults() -> ClassifyConfig {
    ClassifyConfig {
        batch_size: 16,
        epochs: 10,
        ..ClassifyConfig::default()
    }
}

/// Scores of one evaluation.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct NerScores {
    /// The headline: seqeval's exact-span scores over characters.
    pub entity: EntityScores,
    /// The reference's token-level metric over pieces.
    pub token: TokenScores,
    /// Mean cross-entropy per position.
    pub loss: f64,
    pub sentences: usize,
}

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct NerEpochReport {
    pub epoch: usize,
    pub global_step: u64,
    pub skipped_steps: u64,
    pub train_loss: f64,
    pub learning_rate: f64,
    pub dev: NerScores,
    pub seconds: f64,
}

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct NerOutcome {
    pub epochs: Vec<NerEpochReport>,
    /// Best dev entity F1, earliest on ties.
    pub best_epoch: usize,
}

/// `(input_ids, input_mask, segment_ids, tag_ids)`, padded to the longest;
/// padding is labelled [`IGNORE_LABEL`].
fn batch_tensors(batch: &[&TagFeatures], device: Device) -> (Tensor, Tensor, Tensor, Tensor) {
    let len = batch.iter().map(|f| f.input_ids.len()).max().unwrap_or(1);
    let (mut ids, mut mask, mut tags) = (Vec::new(), Vec::new(), Vec::new());
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
        tags.extend(
            f.tag_ids
                .iter()
                .copied()
                .chain(std::iter::repeat_n(IGNORE_LABEL, pad)),
        );
    }
    let shape = [batch.len() as i64, len as i64];
    let t = |v: Vec<i64>| Tensor::from_slice(&v).reshape(shape).to_device(device);
    let seg = vec![0i64; ids.len()];
    (t(ids), t(mask), t(seg), t(tags))
}

fn logits(
    model: &NezhaForFinetuning,
    b: &(Tensor, Tensor, Tensor, Tensor),
    mode: Mode,
) -> Result<Tensor> {
    match model.forward(&b.0, &b.1, &b.2, None, mode) {
        HeadOutput::Token(l) => Ok(l),
        _ => anyhow::bail!("the model does not have a token classification head"),
    }
}

fn batch_seed(seed: u64, batch: u64) -> i64 {
    let mut z = seed ^ batch.wrapping_mul(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    (z ^ (z >> 31)) as i64
}

/// Predicted per-character tags of every sentence, and the scores.
pub fn evaluate(
    model: &NezhaForFinetuning,
    sentences: &[Sentence],
    data: &[TagFeatures],
    tags: &TagMap,
    batch_size: usize,
) -> Result<(Vec<Vec<String>>, NerScores)> {
    ensure!(!data.is_empty(), "nothing to evaluate");
    ensure!(
        sentences.len() == data.len(),
        "{} sentences but {} encoded",
        sentences.len(),
        data.len()
    );
    ensure!(batch_size > 0, "batch size must be positive");
    let mut pred_tags = Vec::with_capacity(data.len());
    let (mut gold_ids, mut pred_ids) = (Vec::new(), Vec::new());
    let (mut loss_sum, mut positions) = (0.0, 0usize);
    tch::no_grad(|| -> Result<()> {
        for (k, chunk) in data.chunks(batch_size).enumerate() {
            let refs: Vec<&TagFeatures> = chunk.iter().collect();
            let b = batch_tensors(&refs, model.device());
            let l = logits(model, &b, Mode::eval())?;
            let n: usize = chunk.iter().map(|f| f.input_ids.len()).sum();
            loss_sum += token_loss_mean(&l, &b.3).double_value(&[]) * n as f64;
            positions += n;
            let p = l.argmax(-1, false).to_device(Device::Cpu);
            for (j, f) in chunk.iter().enumerate() {
                let row: Vec<i64> =
                    Vec::try_from(p.get(j as i64).narrow(0, 0, f.input_ids.len() as i64))?;
                let s = &sentences[k * batch_size + j];
                pred_tags.push(char_tags(f, s.chars.len(), &row, tags));
                gold_ids.extend(&f.tag_ids);
                pred_ids.extend(row);
            }
        }
        Ok(())
    })?;
    let gold: Vec<Vec<String>> = sentences.iter().map(|s| s.tags.clone()).collect();
    let is_entity = |id: i64| {
        let n = tags.names[id as usize].as_str();
        n != "O" && !SPECIAL_TAGS.contains(&n)
    };
    let scores = NerScores {
        entity: entity_scores(&gold, &pred_tags)?,
        token: token_scores(&gold_ids, &pred_ids, is_entity)?,
        loss: loss_sum / positions as f64,
        sentences: data.len(),
    };
    Ok((pred_tags, scores))
}

/// Fine-tunes `model` on `train`, evaluating `dev` after each epoch; on
/// return the model holds the best epoch's weights.
#[allow(clippy::too_many_arguments)]
pub fn fine_tune(
    model: &mut NezhaForFinetuning,
    train: &[TagFeatures],
    dev_sentences: &[Sentence],
    dev: &[TagFeatures],
    tags: &TagMap,
    cfg: &ClassifyConfig,
    mut on_epoch: impl FnMut(&NerEpochReport) -> Result<()>,
) -> Result<NerOutcome> {
    ensure!(
        cfg.batch_size > 0 && cfg.epochs > 0,
        "batch_size and epochs must be positive"
    );
    ensure!(
        train.len() >= cfg.batch_size,
        "{} training sentences do not fill one batch of {}",
        train.len(),
        cfg.batch_size
    );
    ensure!(
        (0.0..1.0).contains(&cfg.warmup_proportion),
        "warmup_proportion {} must be in [0, 1)",
        cfg.warmup_proportion
    );
    let k = model.architecture.num_labels().unwrap_or(0);
    ensure!(
        k == tags.len() as i64,
        "the model tags {k} labels, the data {}",
        tags.len()
    );
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
            let refs: Vec<&TagFeatures> = b.iter().map(|&i| &train[i]).collect();
            let t = batch_tensors(&refs, model.device());
            tch::manual_seed(batch_seed(cfg.seed, batches));
            batches += 1;
            let loss = token_loss_mean(&logits(model, &t, Mode::train())?, &t.3);
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
        let (_, scores) = evaluate(model, dev_sentences, dev, tags, cfg.eval_batch_size)?;
        let report = NerEpochReport {
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
            .is_none_or(|(_, f, _)| report.dev.entity.f1 > *f)
        {
            let copy = params.iter().map(|(_, p)| p.detach().copy()).collect();
            best = Some((epoch, report.dev.entity.f1, copy));
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
    Ok(NerOutcome {
        epochs: reports,
        best_epoch,
    })
}
