//! Fixtures the trainer's tests share.
#![allow(dead_code)] // each test binary uses its own part of this module

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
