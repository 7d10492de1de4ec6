use crate::batch::Batch;
use crate::error::{Error, Result};

/// Checks that a batch is well formed: every feature has its full padded
/// length, real tokens form a prefix, segment ids are a 0-run then a 1-run,
/// masked positions point inside the real tokens in increasing order, and
/// labels lie in the vocab. This is what the channel sink's test consumer
/// asserts on every batch.
pub fn check_batch(b: &Batch, vocab_size: usize) -> Result<()> {
    let (n, l, p) = (b.size, b.seq_len, b.max_predictions);
    let bad = |msg: String| Err(Error::data(format!("malformed batch: {msg}")));
    for (name, len, want) in [
        ("input_ids", b.input_ids.len(), n * l),
        ("input_mask", b.input_mask.len(), n * l),
        ("segment_ids", b.segment_ids.len(), n * l),
        ("masked_lm_positions", b.masked_lm_positions.len(), n * p),
        ("masked_lm_ids", b.masked_lm_ids.len(), n * p),
        ("masked_lm_weights", b.masked_lm_weights.len(), n * p),
        ("next_sentence_labels", b.next_sentence_labels.len(), n),
    ] {
        if len != want {
            return bad(format!("{name} has {len} values, expected {want}"));
        }
    }
    for r in 0..n {
        let mask = &b.input_mask[r * l..(r + 1) * l];
        let real = mask.iter().take_while(|&&m| m == 1).count();
        if mask[real..].iter().any(|&m| m != 0) || real < 3 {
            return bad(format!(
                "row {r}: input_mask is not a prefix of at least 3 ones"
            ));
        }
        let seg = &b.segment_ids[r * l..r * l + real];
        let a = seg.iter().take_while(|&&s| s == 0).count();
        if seg[a..].iter().any(|&s| s != 1) || a < 2 || a == real {
            return bad(format!("row {r}: segment_ids are not 0s then 1s"));
        }
        if b.input_ids[r * l..(r + 1) * l]
            .iter()
            .any(|&t| t < 0 || t as usize >= vocab_size)
        {
            return bad(format!("row {r}: token id outside the vocab"));
        }
        let w = &b.masked_lm_weights[r * p..(r + 1) * p];
        let m = w.iter().take_while(|&&x| x == 1.0).count();
        if m == 0 || w[m..].iter().any(|&x| x != 0.0) {
            return bad(format!("row {r}: masked_lm_weights are not 1s then 0s"));
        }
        let pos = &b.masked_lm_positions[r * p..r * p + m];
        if pos.windows(2).any(|w| w[0] >= w[1])
            || pos.iter().any(|&x| x < 1 || x as usize >= real - 1)
        {
            return bad(format!(
                "row {r}: masked positions not increasing inside the tokens"
            ));
        }
        if b.masked_lm_ids[r * p..r * p + m]
            .iter()
            .any(|&t| t < 0 || t as usize >= vocab_size)
        {
            return bad(format!("row {r}: masked label outside the vocab"));
        }
        if !matches!(b.next_sentence_labels[r], 0 | 1) {
            return bad(format!("row {r}: next_sentence_label is not 0 or 1"));
        }
    }
    Ok(())
}

/// The test consumer of the channel sink: checks and counts batches.
#[derive(Debug, Default, Clone)]
pub struct BatchCounter {
    pub batches: u64,
    pub sequences: u64,
    pub tokens: u64,
    pub predictions: u64,
    pub random_next: u64,
    /// Predictions whose input is `[MASK]`, and those whose input is another
    /// token than the label (a random replacement), counted by
    /// [`BatchCounter::add_masks`].
    pub as_mask: u64,
    pub random_token: u64,
}

impl BatchCounter {
    pub fn add(&mut self, b: &Batch, vocab_size: usize) -> Result<()> {
        check_batch(b, vocab_size)?;
        self.batches += 1;
        self.sequences += b.size as u64;
        self.tokens += b.input_mask.iter().sum::<i64>() as u64;
        self.predictions += b.num_predictions() as u64;
        self.random_next += b.next_sentence_labels.iter().sum::<i64>() as u64;
        Ok(())
    }

    /// Counts how the predicted positions of a checked batch were masked.
    pub fn add_masks(&mut self, b: &Batch, mask: u32) {
        for r in 0..b.size {
            let p = b.max_predictions;
            let n = b.masked_lm_weights[r * p..(r + 1) * p]
                .iter()
                .take_while(|&&w| w == 1.0)
                .count();
            for k in r * p..r * p + n {
                let input = b.input_ids[r * b.seq_len + b.masked_lm_positions[k] as usize];
                if input == mask as i64 {
                    self.as_mask += 1;
                } else if input != b.masked_lm_ids[k] {
                    self.random_token += 1;
                }
            }
        }
    }

    /// The share of the tokens other than [CLS] and the two [SEP] that
    /// are predicted, replaced by [MASK], and replaced by a random token, in
    /// percent.
    pub fn mask_rates(&self) -> (f64, f64, f64) {
        let tokens = self.tokens.saturating_sub(3 * self.sequences).max(1) as f64;
        (
            100.0 * self.predictions as f64 / tokens,
            100.0 * self.as_mask as f64 / tokens,
            100.0 * self.random_token as f64 / tokens,
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::Instance;

    #[test]
    fn accepts_good_rows_and_rejects_broken_ones() {
        let inst = Instance {
            tokens: vec![101, 5, 102, 6, 7, 102],
            segment_a_len: 3,
            is_random_next: false,
            masked_positions: vec![1, 4],
            masked_labels: vec![8, 9],
        };
        let mut b = Batch::with_capacity(1, 8, 3);
        b.push(&inst).unwrap();
        check_batch(&b, 200).unwrap();
        let mut counter = BatchCounter::default();
        counter.add(&b, 200).unwrap();
        let mut masked = b.clone();
        masked.input_ids[1] = 103;
        masked.input_ids[4] = 50;
        counter.add_masks(&masked, 103);
        assert_eq!((counter.as_mask, counter.random_token), (1, 1));
        assert_eq!(
            counter.mask_rates(),
            (100.0 * 2.0 / 3.0, 100.0 / 3.0, 100.0 / 3.0)
        );
        let mut broken = b.clone();
        broken.masked_lm_positions[1] = 7;
        assert!(check_batch(&broken, 200).is_err());
        let mut broken = b.clone();
        broken.segment_ids[4] = 0;
        assert!(check_batch(&broken, 200).is_err());
        assert!(check_batch(&b, 50).is_err());
    }
}
