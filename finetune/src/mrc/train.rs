//! Fine-tuning for reading comprehension as `run_squad.py` does, in the
//! loop of [`crate::classify::train`]: AdamWeightDecay with 10% warmup and
//! linear decay over `int(len(windows) / batch · epochs)` steps, global-norm
//! clipping at 1.0, the loss the mean of the start and end cross-entropies
//! with the TF reference's span mask, dev answered (n-best over all of an
//! example's windows) and scored with CMRC 2018's EM/F1 after every epoch,
//! the best epoch by F1 kept.

use anyhow::{ensure, Result};
use nezha_train::model::Mode;
use serde::Serialize;
use tch::{Device, Tensor};

use super::data::MrcExample;
use super::metric::em_f1;
use super::nbest::{n_best, Candidate};
use super::windows::Window;
use crate::config::FinetuneConfig;
use crate::heads::question_answering::span_loss;
use crate::model::{HeadOutput, NezhaForFinetuning};
use crate::padding::{mask, padded};

/// How answers are searched: `run_squad.py`'s flag defaults.
#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
pub struct AnswerSearch {
    pub n_best_size: usize,
    pub max_answer_length: usize,
}

impl Default for AnswerSearch {
    fn default() -> AnswerSearch {
        AnswerSearch {
            n_best_size: 20,
            max_answer_length: 30,
        }
    }
}

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct MrcScores {
    /// CMRC 2018 exact match, × 100.
    pub em: f64,
    /// CMRC 2018 F1, × 100.
    pub f1: f64,
    pub examples: usize,
}

/// What one epoch did, for the metrics log.
pub type MrcEpochReport = crate::epochs::EpochReport<MrcScores>;

/// The epochs run; the model holds the weights of the best dev F1.
pub type MrcOutcome = crate::epochs::Outcome<MrcScores>;

/// `(input_ids, input_mask, segment_ids, span_mask, start, end)`, padded to
/// the longest window.
fn batch_tensors(batch: &[&Window], device: Device) -> [Tensor; 6] {
    let column = |f: fn(&Window) -> &[i64]| -> Vec<&[i64]> { batch.iter().map(|w| f(w)).collect() };
    let ids = column(|w| &w.input_ids);
    let pos = |f: fn(&Window) -> usize| {
        let p: Vec<i64> = batch.iter().map(|w| f(w) as i64).collect();
        Tensor::from_slice(&p).to_device(device)
    };
    [
        padded(&ids, 0, device),
        mask(&ids, device),
        padded(&column(|w| &w.segment_ids), 0, device),
        padded(&column(|w| &w.span_mask), 0, device),
        pos(|w| w.start_position),
        pos(|w| w.end_position),
    ]
}

fn logits(model: &NezhaForFinetuning, b: &[Tensor; 6], mode: Mode) -> Result<(Tensor, Tensor)> {
    match model.forward(&b[0], &b[1], &b[2], Some(&b[3]), mode) {
        HeadOutput::Span(s, e) => Ok((s, e)),
        _ => anyhow::bail!("the model does not have a question-answering head"),
    }
}

/// The n-best answers of every example, best first (eval mode); the
/// examples need no answers.
pub fn predict(
    model: &NezhaForFinetuning,
    examples: &[MrcExample],
    windows: &[Window],
    search: AnswerSearch,
    batch_size: usize,
) -> Result<Vec<Vec<Candidate>>> {
    ensure!(!examples.is_empty(), "nothing to predict");
    ensure!(batch_size > 0, "batch size must be positive");
    let mut rows: Vec<(Vec<f32>, Vec<f32>)> = Vec::with_capacity(windows.len());
    tch::no_grad(|| -> Result<()> {
        for chunk in windows.chunks(batch_size) {
            let refs: Vec<&Window> = chunk.iter().collect();
            let b = batch_tensors(&refs, model.device());
            let (s, e) = logits(model, &b, Mode::eval())?;
            let (s, e) = (s.to_device(Device::Cpu), e.to_device(Device::Cpu));
            for (j, w) in chunk.iter().enumerate() {
                let n = w.input_ids.len() as i64;
                rows.push((
                    Vec::try_from(s.get(j as i64).narrow(0, 0, n))?,
                    Vec::try_from(e.get(j as i64).narrow(0, 0, n))?,
                ));
            }
        }
        Ok(())
    })?;
    let mut out = Vec::with_capacity(examples.len());
    for (k, e) in examples.iter().enumerate() {
        let idx: Vec<usize> = (0..windows.len())
            .filter(|&i| windows[i].example == k)
            .collect();
        let ws: Vec<&Window> = idx.iter().map(|&i| &windows[i]).collect();
        let ls: Vec<(Vec<f32>, Vec<f32>)> = idx.iter().map(|&i| rows[i].clone()).collect();
        out.push(n_best(
            &e.context,
            &ws,
            &ls,
            search.n_best_size,
            search.max_answer_length,
        ));
    }
    Ok(out)
}

/// The best answer of every example and the CMRC scores (eval mode); the
/// examples must have answers.
pub fn evaluate(
    model: &NezhaForFinetuning,
    examples: &[MrcExample],
    windows: &[Window],
    search: AnswerSearch,
    batch_size: usize,
) -> Result<(Vec<String>, MrcScores)> {
    if let Some(e) = examples.iter().find(|e| e.answers.is_empty()) {
        anyhow::bail!("{}: no answers, and evaluation needs them", e.origin);
    }
    let nbest = predict(model, examples, windows, search, batch_size)?;
    let answers: Vec<String> = nbest.into_iter().map(|n| n[0].text.clone()).collect();
    let gold: Vec<Vec<String>> = examples.iter().map(|e| e.answers.clone()).collect();
    let pred: Vec<Option<String>> = answers.iter().cloned().map(Some).collect();
    let (em, f1) = em_f1(&gold, &pred)?;
    Ok((
        answers,
        MrcScores {
            em,
            f1,
            examples: examples.len(),
        },
    ))
}

/// Fine-tunes `model` on the training windows, answering `dev` (if given)
/// after each epoch; on return the model holds the best epoch's weights
/// (the last epoch's without dev).
pub fn fine_tune(
    model: &mut NezhaForFinetuning,
    train: &[Window],
    dev: Option<(&[MrcExample], &[Window])>,
    search: AnswerSearch,
    cfg: &FinetuneConfig,
    mut on_epoch: impl FnMut(&MrcEpochReport) -> Result<()>,
) -> Result<MrcOutcome> {
    let on_dev = dev.map(|(examples, windows)| {
        move |model: &NezhaForFinetuning| {
            let (_, scores) = evaluate(model, examples, windows, search, cfg.eval_batch_size)?;
            let f1 = scores.f1;
            Ok((scores, f1))
        }
    });
    crate::epochs::fine_tune(
        model,
        train,
        "training windows",
        cfg,
        |model, batch, mode| {
            let t = batch_tensors(batch, model.device());
            let (s, e) = logits(model, &t, mode)?;
            Ok(span_loss(&s, &e, &t[4], &t[5]))
        },
        on_dev
            .as_ref()
            .map(|f| f as crate::epochs::Evaluate<'_, MrcScores>),
        &mut on_epoch,
    )
}
