//! Trains a small NEZHA on synthetic batches (a repeated pattern it can
//! learn), to see the progress bar, metrics, TensorBoard events and plot.
//!
//!     cargo run -p nezha-train --release --example synthetic -- OUT_DIR [STEPS [DEVICE [PRECISION]]]
//!
//! DEVICE is cpu (default), cuda or cuda:N; PRECISION fp32 (default), bf16 or fp16.

use anyhow::{Context, Result};
use nezha_stages::Batch;
use nezha_train::model::NezhaConfig;
use nezha_train::optim::Schedule;
use nezha_train::trainer::{self, TrainConfig};

fn batch(seed: u64) -> Batch {
    let (size, len, p) = (8, 32, 5);
    let mut b = Batch::with_capacity(size, len, p);
    b.size = size;
    let mut x = seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
    let mut rnd = |n: u64| {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x % n
    };
    for r in 0..size {
        let real = 16 + rnd(17) as usize;
        let start = 1000 + rnd(50) as i64;
        for i in 0..len {
            // Arithmetic runs of ids: predictable from the neighbours.
            b.input_ids
                .push(if i < real { start + i as i64 } else { 0 });
            b.input_mask.push((i < real) as i64);
            b.segment_ids.push((i < real && i >= real / 2) as i64);
        }
        for j in 0..p {
            let pos = 1 + (j * 5 + r) % (real - 2);
            b.masked_lm_positions.push(pos as i64);
            b.masked_lm_ids.push(start + pos as i64);
            b.masked_lm_weights.push(1.0);
            b.input_ids[r * len + pos] = 103; // [MASK]
        }
        b.next_sentence_labels.push(rnd(2) as i64);
    }
    b
}

fn main() -> Result<()> {
    let mut args = std::env::args().skip(1);
    let out = args
        .next()
        .context("usage: synthetic OUT_DIR [STEPS [DEVICE [PRECISION]]]")?;
    let steps: u64 = args.next().map(|s| s.parse()).transpose()?.unwrap_or(200);
    let mut cfg = TrainConfig::new(NezhaConfig::tiny(), out);
    if let Some(device) = args.next() {
        cfg.device = device;
    }
    if let Some(p) = args.next() {
        cfg.precision = serde_json::from_value(serde_json::Value::String(p.clone()))
            .with_context(|| format!("precision {p:?}: expected fp32, bf16 or fp16"))?;
    }
    cfg.schedule = Schedule::new(5e-3, steps / 10, steps);
    cfg.save_every = (steps / 4).max(1);
    let summary = trainer::train(&cfg, (0..).map(|i| Ok(batch(i))))?;
    let last = summary.metrics.last().context("no steps ran")?;
    println!(
        "{} steps, final loss {:.4} (mlm acc {:.3}), checkpoint {}",
        summary.step,
        last.loss,
        last.mlm_acc,
        summary
            .last_checkpoint
            .map(|p| p.display().to_string())
            .unwrap_or_default()
    );
    Ok(())
}
