//! The in-process batch the trainer consumes, in the reference feature
//! layout, and the stage that fills it.

use crate::data::Instance;
use crate::error::{Error, Result};
use crate::stage::Stage;

/// `size` instances padded to `seq_len` tokens and `max_predictions` masked
/// positions, laid out row-major as the reference's TFRecord features
/// (`input_ids`, `input_mask`, `segment_ids`, `masked_lm_positions`,
/// `masked_lm_ids`, `masked_lm_weights`, `next_sentence_labels`). Integer
/// features are `i64` because that is what libtorch indexes with.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Batch {
    pub size: usize,
    pub seq_len: usize,
    pub max_predictions: usize,
    /// `[size, seq_len]`
    pub input_ids: Vec<i64>,
    /// `[size, seq_len]`, 1 for real tokens, 0 for padding.
    pub input_mask: Vec<i64>,
    /// `[size, seq_len]`
    pub segment_ids: Vec<i64>,
    /// `[size, max_predictions]`, padded slots point at position 0.
    pub masked_lm_positions: Vec<i64>,
    /// `[size, max_predictions]`
    pub masked_lm_ids: Vec<i64>,
    /// `[size, max_predictions]`, 1.0 for real predictions, 0.0 for padding.
    pub masked_lm_weights: Vec<f32>,
    /// `[size]`, 1 when segment B is a random next segment.
    pub next_sentence_labels: Vec<i64>,
}

impl Batch {
    pub fn with_capacity(size: usize, seq_len: usize, max_predictions: usize) -> Batch {
        Batch {
            size: 0,
            seq_len,
            max_predictions,
            input_ids: Vec::with_capacity(size * seq_len),
            input_mask: Vec::with_capacity(size * seq_len),
            segment_ids: Vec::with_capacity(size * seq_len),
            masked_lm_positions: Vec::with_capacity(size * max_predictions),
            masked_lm_ids: Vec::with_capacity(size * max_predictions),
            masked_lm_weights: Vec::with_capacity(size * max_predictions),
            next_sentence_labels: Vec::with_capacity(size),
        }
    }

    /// Appends one instance as a padded row.
    pub fn push(&mut self, inst: &Instance) -> Result<()> {
        let (l, p) = (self.seq_len, self.max_predictions);
        if inst.tokens.len() > l {
            return Err(Error::data(format!(
                "instance of {} tokens does not fit max_seq_length {l}",
                inst.tokens.len()
            )));
        }
        if inst.masked_positions.len() > p {
            return Err(Error::data(format!(
                "instance with {} masked positions does not fit max_predictions_per_seq {p}",
                inst.masked_positions.len()
            )));
        }
        let n = inst.tokens.len();
        let a = inst.segment_a_len as usize;
        self.input_ids.extend(inst.tokens.iter().map(|&t| t as i64));
        self.input_ids.extend(std::iter::repeat_n(0, l - n));
        self.input_mask.extend(std::iter::repeat_n(1, n));
        self.input_mask.extend(std::iter::repeat_n(0, l - n));
        self.segment_ids.extend(std::iter::repeat_n(0, a));
        self.segment_ids.extend(std::iter::repeat_n(1, n - a));
        self.segment_ids.extend(std::iter::repeat_n(0, l - n));
        let m = inst.masked_positions.len();
        self.masked_lm_positions
            .extend(inst.masked_positions.iter().map(|&t| t as i64));
        self.masked_lm_positions
            .extend(std::iter::repeat_n(0, p - m));
        self.masked_lm_ids
            .extend(inst.masked_labels.iter().map(|&t| t as i64));
        self.masked_lm_ids.extend(std::iter::repeat_n(0, p - m));
        self.masked_lm_weights.extend(std::iter::repeat_n(1.0, m));
        self.masked_lm_weights
            .extend(std::iter::repeat_n(0.0, p - m));
        self.next_sentence_labels.push(inst.is_random_next as i64);
        self.size += 1;
        Ok(())
    }

    /// Number of masked positions with weight 1 in the whole batch.
    pub fn num_predictions(&self) -> usize {
        self.masked_lm_weights.iter().filter(|&&w| w > 0.0).count()
    }
}

/// Groups instances into batches of exactly `batch_size`. The last, short
/// batch is dropped (as the reference input pipeline's `drop_remainder`)
/// unless `keep_remainder` is set.
pub struct Batching {
    pub batch_size: usize,
    pub seq_len: usize,
    pub max_predictions: usize,
    pub keep_remainder: bool,
    current: Batch,
}

impl Batching {
    pub fn new(
        batch_size: usize,
        seq_len: usize,
        max_predictions: usize,
        keep_remainder: bool,
    ) -> Batching {
        Batching {
            batch_size,
            seq_len,
            max_predictions,
            keep_remainder,
            current: Batch::with_capacity(batch_size, seq_len, max_predictions),
        }
    }
}

impl Stage for Batching {
    type In = Instance;
    type Out = Batch;

    fn push(&mut self, inst: Instance, emit: &mut dyn FnMut(Batch)) -> Result<()> {
        self.current.push(&inst)?;
        if self.current.size == self.batch_size {
            let fresh = Batch::with_capacity(self.batch_size, self.seq_len, self.max_predictions);
            emit(std::mem::replace(&mut self.current, fresh));
        }
        Ok(())
    }

    fn finish(&mut self, emit: &mut dyn FnMut(Batch)) -> Result<()> {
        if self.keep_remainder && self.current.size > 0 {
            emit(std::mem::take(&mut self.current));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::stage::run_all;

    fn inst(n: usize, a: u32, masked: &[u32]) -> Instance {
        Instance {
            tokens: (0..n as u32).map(|t| t + 10).collect(),
            segment_a_len: a,
            is_random_next: true,
            masked_positions: masked.to_vec(),
            masked_labels: masked.iter().map(|p| p + 100).collect(),
        }
    }

    #[test]
    fn rows_are_padded_in_reference_layout() {
        let mut b = Batch::with_capacity(1, 6, 3);
        b.push(&inst(4, 2, &[1])).unwrap();
        assert_eq!(b.input_ids, vec![10, 11, 12, 13, 0, 0]);
        assert_eq!(b.input_mask, vec![1, 1, 1, 1, 0, 0]);
        assert_eq!(b.segment_ids, vec![0, 0, 1, 1, 0, 0]);
        assert_eq!(b.masked_lm_positions, vec![1, 0, 0]);
        assert_eq!(b.masked_lm_ids, vec![101, 0, 0]);
        assert_eq!(b.masked_lm_weights, vec![1.0, 0.0, 0.0]);
        assert_eq!(b.next_sentence_labels, vec![1]);
    }

    #[test]
    fn too_long_instance_is_an_error() {
        let mut b = Batch::with_capacity(1, 3, 3);
        assert!(b.push(&inst(4, 2, &[])).is_err());
    }

    #[test]
    fn batches_are_full_and_remainder_is_dropped_by_default() {
        let items: Vec<_> = (0..5).map(|_| inst(3, 1, &[])).collect();
        let out = run_all(&mut Batching::new(2, 4, 1, false), items.clone()).unwrap();
        assert_eq!(out.iter().map(|b| b.size).collect::<Vec<_>>(), vec![2, 2]);
        let out = run_all(&mut Batching::new(2, 4, 1, true), items).unwrap();
        assert_eq!(
            out.iter().map(|b| b.size).collect::<Vec<_>>(),
            vec![2, 2, 1]
        );
    }
}
