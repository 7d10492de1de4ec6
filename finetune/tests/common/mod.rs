//! Shared by the fine-tuning tests: a synthetic task and a tiny model.

#![allow(dead_code)]

use nezha_finetune::checkpoint::Architecture;
use nezha_finetune::classify::Features;
use nezha_finetune::NezhaForFinetuning;
use nezha_train::model::NezhaConfig;
use tch::Device;

/// Label 1 iff token 7 occurs: learnable only through the encoder.
pub fn synthetic(n: usize, seed: u64) -> Vec<Features> {
    let mut state = seed;
    let mut next = move |m: u64| {
        state = state
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (state >> 33) % m
    };
    (0..n)
        .map(|i| {
            let len = 4 + next(12) as usize;
            let mut ids: Vec<i64> = (0..len).map(|_| 8 + next(50) as i64).collect();
            let label = i % 2;
            if label == 1 {
                let at = next(len as u64) as usize;
                ids[at] = 7;
            }
            let mut input_ids = vec![1];
            input_ids.extend(ids);
            input_ids.push(2);
            Features {
                segment_ids: vec![0; input_ids.len()],
                input_ids,
                label,
            }
        })
        .collect()
}

pub fn tiny() -> NezhaConfig {
    NezhaConfig {
        vocab_size: 60,
        hidden_size: 32,
        num_hidden_layers: 2,
        num_attention_heads: 2,
        intermediate_size: 64,
        max_relative_position: 16,
        ..NezhaConfig::tiny()
    }
}

/// [`tiny`] over the whole bert-base-chinese vocab (data/vocab.txt), for
/// tests that tokenize real Chinese text.
pub fn tiny_chinese() -> NezhaConfig {
    NezhaConfig {
        vocab_size: 21128,
        num_hidden_layers: 1,
        ..tiny()
    }
}

pub fn model() -> NezhaForFinetuning {
    tch::manual_seed(1);
    NezhaForFinetuning::new(
        &tiny(),
        Architecture::SequenceClassification { num_labels: 2 },
        Device::Cpu,
    )
    .unwrap()
}
