//! Evaluation as the reference's `run_pretraining.py` does it with
//! `--do_eval`: its `model_fn`'s `metric_fn` over fixed batches, dropout
//! off. The quantities and their weights are the reference's:
//! `tf.metrics.accuracy` and `tf.metrics.mean` of the masked-LM predictions
//! weighted by `masked_lm_weights`, the same unweighted over sequences for
//! next-sentence prediction, and the estimator's `loss`, the mean over
//! batches of each batch's total loss.

use anyhow::{Context, Result};
use nezha_stages::Batch;
use serde::{Deserialize, Serialize};
use tch::{Kind, Tensor};

use crate::model::{pretraining_loss, Mode, NezhaForPreTraining, PreTrainingInputs};

/// The reference's `eval_results.txt` quantities.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct EvalMetrics {
    pub masked_lm_accuracy: f64,
    pub masked_lm_loss: f64,
    pub next_sentence_accuracy: f64,
    pub next_sentence_loss: f64,
    /// Mean over batches of `masked_lm_loss + next_sentence_loss` as the
    /// training loss computes them.
    pub loss: f64,
    pub global_step: u64,
    /// Batches and sequences evaluated.
    pub batches: u64,
    pub sequences: u64,
}

impl EvalMetrics {
    /// The reference's five metrics by name, in key order.
    fn metrics(&self) -> [(&'static str, f64); 5] {
        [
            ("loss", self.loss),
            ("masked_lm_accuracy", self.masked_lm_accuracy),
            ("masked_lm_loss", self.masked_lm_loss),
            ("next_sentence_accuracy", self.next_sentence_accuracy),
            ("next_sentence_loss", self.next_sentence_loss),
        ]
    }

    /// `eval_results.txt` as the reference writes it: `key = value` lines
    /// in key order (`for key in sorted(result.keys())`), the metrics as
    /// `str()` of numpy float32 prints them (shortest round-trip digits).
    pub fn to_results_txt(&self) -> String {
        let mut text = format!("global_step = {}\n", self.global_step);
        for (k, v) in self.metrics() {
            text.push_str(&format!("{k} = {:?}\n", v as f32));
        }
        text
    }

    /// The same as JSON (`eval_results.json`), the metrics at full
    /// precision.
    pub fn to_results_json(&self) -> String {
        let mut o = serde_json::Map::new();
        o.insert("global_step".into(), self.global_step.into());
        for (k, v) in self.metrics() {
            o.insert(k.into(), v.into());
        }
        let mut s =
            serde_json::to_string_pretty(&serde_json::Value::Object(o)).expect("plain JSON values");
        s.push('\n');
        s
    }
}

/// Weighted sums over the batches, divided once at the end.
#[derive(Default)]
struct Sums {
    mlm_weight: f64,
    mlm_hits: f64,
    mlm_nll: f64,
    sequences: f64,
    nsp_hits: f64,
    nsp_nll: f64,
    batch_loss: f64,
    batches: u64,
}

fn scalar(t: &Tensor) -> f64 {
    t.double_value(&[])
}

/// The metrics of `model` on `batches` at `global_step`, dropout off.
pub fn evaluate(
    model: &NezhaForPreTraining,
    batches: &[Batch],
    compute: Kind,
    global_step: u64,
) -> Result<EvalMetrics> {
    let mode = Mode {
        train: false,
        compute,
    };
    let c = &model.config;
    let mut s = Sums::default();
    tch::no_grad(|| -> Result<()> {
        for (i, batch) in batches.iter().enumerate() {
            let inputs = PreTrainingInputs::from_batch(
                batch,
                c.vocab_size,
                c.type_vocab_size,
                model.device(),
            )
            .with_context(|| {
                format!(
                    "eval batch {i} (sequences {} to {} in input order) does not fit the model",
                    i * batch.size,
                    (i + 1) * batch.size - 1
                )
            })?;
            // The training loss's parts are the batch's means; the metrics
            // weigh them back into sums over all batches.
            let loss = pretraining_loss(&model.forward(&inputs, mode), &inputs);
            let w = scalar(&inputs.masked_lm_weights.sum(Kind::Double));
            let n = batch.size as f64;
            s.mlm_weight += w;
            s.mlm_hits += scalar(&loss.mlm_accuracy) * w;
            // loss.rs divides by Σw + 1e-5, as the reference's loss does.
            s.mlm_nll += scalar(&loss.mlm) * (w + 1e-5);
            s.sequences += n;
            s.nsp_hits += scalar(&loss.nsp_accuracy) * n;
            s.nsp_nll += scalar(&loss.nsp) * n;
            s.batch_loss += scalar(&loss.total);
            s.batches += 1;
        }
        Ok(())
    })?;
    // tf.metrics.* of nothing is 0 (its division is a safe div).
    let div = |a: f64, b: f64| if b > 0.0 { a / b } else { 0.0 };
    Ok(EvalMetrics {
        masked_lm_accuracy: div(s.mlm_hits, s.mlm_weight),
        masked_lm_loss: div(s.mlm_nll, s.mlm_weight),
        next_sentence_accuracy: div(s.nsp_hits, s.sequences),
        next_sentence_loss: div(s.nsp_nll, s.sequences),
        loss: div(s.batch_loss, s.batches as f64),
        global_step,
        batches: s.batches,
        sequences: s.sequences as u64,
    })
}
