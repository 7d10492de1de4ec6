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

use anyhow::{ensure, Result};
use nezha_train::model::Mode;
use serde::Serialize;
use tch::{Device, Tensor};

use super::data::Sentence;
use super::features::{char_tags, TagFeatures, TagMap, SPECIAL_TAGS};
use super::token_metric::{token_scores, TokenScores};
use crate::config::FinetuneConfig;
use crate::heads::token_classification::{token_loss_mean, IGNORE_LABEL};
use crate::metrics::{entity_scores, EntityScores};
use crate::model::{HeadOutput, NezhaForFinetuning};
use crate::padding::{mask, padded};

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

/// What one epoch did, for the metrics log.
pub type NerEpochReport = crate::epochs::EpochReport<NerScores>;

/// The epochs run; the model holds the weights of the best dev entity F1.
pub type NerOutcome = crate::epochs::Outcome<NerScores>;

/// `(input_ids, input_mask, segment_ids, tag_ids)`, padded to the longest;
/// padding is labelled [`IGNORE_LABEL`].
fn batch_tensors(batch: &[&TagFeatures], device: Device) -> (Tensor, Tensor, Tensor, Tensor) {
    let ids: Vec<&[i64]> = batch.iter().map(|f| f.input_ids.as_slice()).collect();
    let tags: Vec<&[i64]> = batch.iter().map(|f| f.tag_ids.as_slice()).collect();
    let input_ids = padded(&ids, 0, device);
    let segment_ids = input_ids.zeros_like();
    (
        input_ids,
        mask(&ids, device),
        segment_ids,
        padded(&tags, IGNORE_LABEL, device),
    )
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

/// Predicted per-character tags of every sentence, which may have no tags
/// (eval mode).
pub fn predict(
    model: &NezhaForFinetuning,
    sentences: &[Sentence],
    data: &[TagFeatures],
    tags: &TagMap,
    batch_size: usize,
) -> Result<Vec<Vec<String>>> {
    ensure!(!data.is_empty(), "nothing to predict");
    ensure!(
        sentences.len() == data.len(),
        "{} sentences but {} encoded",
        sentences.len(),
        data.len()
    );
    ensure!(batch_size > 0, "batch size must be positive");
    let mut out = Vec::with_capacity(data.len());
    tch::no_grad(|| -> Result<()> {
        for (k, chunk) in data.chunks(batch_size).enumerate() {
            let refs: Vec<&TagFeatures> = chunk.iter().collect();
            let b = batch_tensors(&refs, model.device());
            let p = logits(model, &b, Mode::eval())?
                .argmax(-1, false)
                .to_device(Device::Cpu);
            for (j, f) in chunk.iter().enumerate() {
                let row: Vec<i64> =
                    Vec::try_from(p.get(j as i64).narrow(0, 0, f.input_ids.len() as i64))?;
                let s = &sentences[k * batch_size + j];
                out.push(char_tags(f, s.chars.len(), &row, tags));
            }
        }
        Ok(())
    })?;
    Ok(out)
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
    if let Some(s) = sentences.iter().find(|s| !s.is_tagged()) {
        anyhow::bail!("{}: no tags, and evaluation needs a tagged file", s.origin);
    }
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

/// Fine-tunes `model` on `train`, evaluating `dev` (sentences and their
/// features, if given) after each epoch; on return the model holds the best
/// epoch's weights (the last epoch's without dev).
pub fn fine_tune(
    model: &mut NezhaForFinetuning,
    train: &[TagFeatures],
    dev: Option<(&[Sentence], &[TagFeatures])>,
    tags: &TagMap,
    cfg: &FinetuneConfig,
    mut on_epoch: impl FnMut(&NerEpochReport) -> Result<()>,
) -> Result<NerOutcome> {
    let k = model.architecture.num_labels().unwrap_or(0);
    ensure!(
        k == tags.len() as i64,
        "the model tags {k} labels, the data {}",
        tags.len()
    );
    let on_dev = dev.map(|(sentences, dev)| {
        move |model: &NezhaForFinetuning| {
            let (_, scores) = evaluate(model, sentences, dev, tags, cfg.eval_batch_size)?;
            let f1 = scores.entity.f1;
            Ok((scores, f1))
        }
    });
    crate::epochs::fine_tune(
        model,
        train,
        "training sentences",
        cfg,
        |model, batch, mode| {
            let t = batch_tensors(batch, model.device());
            Ok(token_loss_mean(&logits(model, &t, mode)?, &t.3))
        },
        on_dev
            .as_ref()
            .map(|f| f as crate::epochs::Evaluate<'_, NerScores>),
        &mut on_epoch,
    )
}
