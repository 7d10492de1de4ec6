//! A `Batch` from the data pipeline, checked and moved onto the device.

use anyhow::{bail, Result};
use nezha_stages::batch::Batch;
use tch::{Device, Kind, Tensor};

/// The reference's seven pretraining features as tensors.
pub struct PreTrainingInputs {
    /// `[B, L]` int64
    pub input_ids: Tensor,
    /// `[B, L]` int64, 1 real / 0 padding
    pub input_mask: Tensor,
    /// `[B, L]` int64
    pub segment_ids: Tensor,
    /// `[B, P]` int64
    pub masked_lm_positions: Tensor,
    /// `[B, P]` int64
    pub masked_lm_ids: Tensor,
    /// `[B, P]` f32
    pub masked_lm_weights: Tensor,
    /// `[B]` int64
    pub next_sentence_labels: Tensor,
}

impl PreTrainingInputs {
    /// Checks the batch's layout and value ranges against the model, so a
    /// mismatch is reported here rather than as an index error deep inside
    /// libtorch.
    pub fn from_batch(
        batch: &Batch,
        vocab_size: i64,
        type_vocab_size: i64,
        device: Device,
    ) -> Result<PreTrainingInputs> {
        let (b, l, p) = (batch.size, batch.seq_len, batch.max_predictions);
        if b == 0 || l == 0 || p == 0 {
            bail!("empty batch: size {b}, seq_len {l}, max_predictions {p}");
        }
        let lens = [
            ("input_ids", batch.input_ids.len(), b * l),
            ("input_mask", batch.input_mask.len(), b * l),
            ("segment_ids", batch.segment_ids.len(), b * l),
            (
                "masked_lm_positions",
                batch.masked_lm_positions.len(),
                b * p,
            ),
            ("masked_lm_ids", batch.masked_lm_ids.len(), b * p),
            ("masked_lm_weights", batch.masked_lm_weights.len(), b * p),
            ("next_sentence_labels", batch.next_sentence_labels.len(), b),
        ];
        for (name, got, want) in lens {
            if got != want {
                bail!("batch feature {name} has {got} values, expected {want} (size {b}, seq_len {l}, max_predictions {p})");
            }
        }
        check_range("input_ids", &batch.input_ids, vocab_size)?;
        check_range("masked_lm_ids", &batch.masked_lm_ids, vocab_size)?;
        check_range("segment_ids", &batch.segment_ids, type_vocab_size)?;
        check_range("input_mask", &batch.input_mask, 2)?;
        check_range("masked_lm_positions", &batch.masked_lm_positions, l as i64)?;
        check_range("next_sentence_labels", &batch.next_sentence_labels, 2)?;
        let (b, l, p) = (b as i64, l as i64, p as i64);
        let int = |v: &[i64], shape: &[i64]| Tensor::from_slice(v).reshape(shape).to_device(device);
        Ok(PreTrainingInputs {
            input_ids: int(&batch.input_ids, &[b, l]),
            input_mask: int(&batch.input_mask, &[b, l]),
            segment_ids: int(&batch.segment_ids, &[b, l]),
            masked_lm_positions: int(&batch.masked_lm_positions, &[b, p]),
            masked_lm_ids: int(&batch.masked_lm_ids, &[b, p]),
            masked_lm_weights: Tensor::from_slice(&batch.masked_lm_weights)
                .reshape([b, p])
                .to_kind(Kind::Float)
                .to_device(device),
            next_sentence_labels: int(&batch.next_sentence_labels, &[b]),
        })
    }

    pub fn batch_size(&self) -> i64 {
        self.input_ids.size()[0]
    }
}

fn check_range(name: &str, values: &[i64], end: i64) -> Result<()> {
    if let Some((i, v)) = values.iter().enumerate().find(|(_, &v)| v < 0 || v >= end) {
        bail!("batch feature {name}[{i}] = {v} is outside [0, {end})");
    }
    Ok(())
}
