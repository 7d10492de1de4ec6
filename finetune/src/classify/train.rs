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

use anyhow::{ensure, Result};
use nezha_train::model::Mode;
use serde::Serialize;
use tch::{Device, Tensor};

use super::features::Features;
use crate::config::FinetuneConfig;
use crate::heads::classification::classification_loss;
use crate::metrics::{accuracy, macro_f1};
use crate::model::{HeadOutput, NezhaForFinetuning};
use crate::padding::{mask, padded};

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
pub type EpochReport = crate::epochs::EpochReport<Scores>;

/// The epochs run; the model holds the weights of the best dev accuracy.
pub type Outcome = crate::epochs::Outcome<Scores>;

/// Pads a batch to its longest example: `(input_ids, input_mask,
/// segment_ids, labels)`.
fn batch_tensors(batch: &[&Features], device: Device) -> (Tensor, Tensor, Tensor, Tensor) {
    let ids: Vec<&[i64]> = batch.iter().map(|f| f.input_ids.as_slice()).collect();
    let seg: Vec<&[i64]> = batch.iter().map(|f| f.segment_ids.as_slice()).collect();
    let labels: Vec<i64> = batch.iter().map(|f| f.label as i64).collect();
    (
        padded(&ids, 0, device),
        mask(&ids, device),
        padded(&seg, 0, device),
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

/// Fine-tunes `model` on `train`, evaluating `dev` (if given) after each
/// epoch; `on_epoch` sees each report as it is made (for logs and
/// progress). On return the model holds the best epoch's weights (the last
/// epoch's without dev).
pub fn fine_tune(
    model: &mut NezhaForFinetuning,
    train: &[Features],
    dev: Option<&[Features]>,
    cfg: &FinetuneConfig,
    mut on_epoch: impl FnMut(&EpochReport) -> Result<()>,
) -> Result<Outcome> {
    let k = model.architecture.num_labels().unwrap_or(0) as usize;
    if let Some(bad) = train
        .iter()
        .chain(dev.unwrap_or_default())
        .find(|f| f.label >= k)
    {
        anyhow::bail!(
            "label id {} is outside the classifier's {k} labels",
            bad.label
        );
    }
    let on_dev = dev.map(|dev| {
        move |model: &NezhaForFinetuning| {
            let (_, scores) = evaluate(model, dev, cfg.eval_batch_size)?;
            let accuracy = scores.accuracy;
            Ok((scores, accuracy))
        }
    });
    crate::epochs::fine_tune(
        model,
        train,
        "training examples",
        cfg,
        |model, batch, mode| {
            let t = batch_tensors(batch, model.device());
            Ok(classification_loss(&logits(model, &t, mode)?, &t.3))
        },
        on_dev
            .as_ref()
            .map(|f| f as crate::epochs::Evaluate<'_, Scores>),
        &mut on_epoch,
    )
}
