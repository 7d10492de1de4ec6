//! Fixtures the trainer's tests share.

use nezha_stages::Batch;
use nezha_train::model::NezhaConfig;

/// A NEZHA small enough to train for a few steps inside a test.
pub fn small_model() -> NezhaConfig {
    NezhaConfig {
        vocab_size: 120,
        hidden_size: 32,
        num_hidden_layers: 2,
        num_attention_heads: 2,
        intermediate_size: 64,
        max_relative_position: 8,
        ..NezhaConfig::tiny()
    }
}

/// A 64-bit linear congruential generator (Knuth's MMIX constants): the
/// same synthetic batches on every platform and in every process.
pub struct Lcg(u64);

impl Lcg {
    const A: u64 = 6364136223846793005;
    const C: u64 = 1442695040888963407;

    pub fn new(seed: u64) -> Lcg {
        Lcg(seed.wrapping_mul(Self::A).wrapping_add(Self::C))
    }

    /// The next number in 0..n.
    pub fn below(&mut self, n: u64) -> u64 {
        self.0 = self.0.wrapping_mul(Self::A).wrapping_add(Self::C);
        (self.0 >> 33) % n
    }
}

/// Appends one synthetic sequence to `b`: random ids from 1..120 over half
/// to all of `seq_len`, segment B from the middle of the text, and
/// `predictions` masked slots of weight 1.
pub fn push_row(b: &mut Batch, rng: &mut Lcg, seq_len: usize, predictions: usize) {
    let len = seq_len / 2 + rng.below((seq_len / 2) as u64 + 1) as usize;
    for i in 0..seq_len {
        b.input_ids.push(if i < len {
            1 + rng.below(119) as i64
        } else {
            0
        });
        b.input_mask.push((i < len) as i64);
        b.segment_ids.push((i < len && i >= len / 2) as i64);
    }
    for j in 0..predictions {
        b.masked_lm_positions
            .push(1 + (j * 3) as i64 % (len as i64 - 1));
        b.masked_lm_ids.push(1 + rng.below(119) as i64);
        b.masked_lm_weights.push(1.0);
    }
    b.next_sentence_labels.push(rng.below(2) as i64);
}
