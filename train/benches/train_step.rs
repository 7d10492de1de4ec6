//! One NEZHA pretraining step on the CPU — forward, TF losses, backward,
//! global-norm clipping, LAMB — timed for a model config at a batch shape,
//! then the same step in Python with Hugging Face's NezhaForPreTraining on the
//! same libtorch and thread count (benches/hf_train_step.py), in the same run.
//!
//!     source scripts/libtorch.sh
//!     CARGO_TARGET_DIR=target-train cargo bench -p nezha-train --bench train_step
//!
//! Environment: NEZHA_BENCH_CONFIG (base), NEZHA_BENCH_BATCH (8),
//! NEZHA_BENCH_SEQ (128), NEZHA_BENCH_STEPS (3 timed, after 1 warm-up),
//! NEZHA_BENCH_THREADS (the machine's cores), NEZHA_HF_PYTHON (a python with
//! torch 2.13.0 and transformers 4.57.6; default ~/.cache/nezha/hf/bin/python;
//! "none" skips the Python side).

use std::process::Command;
use std::time::Instant;

use nezha_stages::Batch;
use nezha_train::model::{
    pretraining_loss, Mode, NezhaConfig, NezhaForPreTraining, PreTrainingInputs,
};
use nezha_train::optim::{Optimizer, OptimizerConfig, OptimizerKind};
use tch::Device;

fn env<T: std::str::FromStr>(name: &str, default: T) -> T {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn batch(b: usize, l: usize, p: usize, vocab: i64) -> Batch {
    let mut x: u64 = 0x2545_f491_4f6c_dd1d;
    let mut rnd = |n: u64| {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x % n
    };
    let mut out = Batch::with_capacity(b, l, p);
    out.size = b;
    for _ in 0..b {
        let n = l - rnd((l / 4) as u64) as usize;
        for i in 0..l {
            out.input_ids.push(if i < n {
                1 + rnd(vocab as u64 - 1) as i64
            } else {
                0
            });
            out.input_mask.push((i < n) as i64);
            out.segment_ids.push((i >= l / 2 && i < n) as i64);
        }
        for j in 0..p {
            out.masked_lm_positions.push(1 + (j * (l / 2) / p) as i64);
            out.masked_lm_ids.push(rnd(vocab as u64) as i64);
            out.masked_lm_weights.push(1.0);
        }
        out.next_sentence_labels.push(rnd(2) as i64);
    }
    out
}

fn main() -> anyhow::Result<()> {
    let config_name: String = env("NEZHA_BENCH_CONFIG", "base".to_string());
    let (b, l, p) = (
        env("NEZHA_BENCH_BATCH", 8usize),
        env("NEZHA_BENCH_SEQ", 128usize),
        20usize,
    );
    let steps: usize = env("NEZHA_BENCH_STEPS", 3);
    let cores = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1);
    let threads: i32 = env("NEZHA_BENCH_THREADS", cores as i32);
    tch::set_num_threads(threads);
    tch::manual_seed(0);

    let cfg = NezhaConfig::preset(&config_name)?;
    let model = NezhaForPreTraining::new(&cfg, Device::Cpu)?;
    let params = model.params.handles();
    let mut optimizer = Optimizer::new(OptimizerKind::Lamb, OptimizerConfig::default(), &params);
    let inputs = PreTrainingInputs::from_batch(
        &batch(b, l, p, cfg.vocab_size),
        cfg.vocab_size,
        2,
        Device::Cpu,
    )?;
    println!(
        "nezha-train {config_name} ({:.1}M parameters) b{b} L{l} P{p}, {threads} threads, fp32 CPU",
        model.params.numel() as f64 / 1e6
    );

    let mut times = Vec::new();
    for s in 0..=steps {
        let t0 = Instant::now();
        let out = model.forward(&inputs, Mode::train());
        let loss = pretraining_loss(&out, &inputs);
        let t_fwd = t0.elapsed();
        loss.total.backward();
        let t_bwd = t0.elapsed();
        let clip = optimizer.clip_and_step(&params, 1.0, 1.0, 1e-4, s as u64)?;
        assert!(clip.is_finite());
        optimizer.zero_grads(&params);
        let total = t0.elapsed();
        if s > 0 {
            println!(
                "  step {s}: {:.3} s (forward+loss {:.3}, backward {:.3}, clip+LAMB {:.3}), loss {:.4}",
                total.as_secs_f64(),
                t_fwd.as_secs_f64(),
                (t_bwd - t_fwd).as_secs_f64(),
                (total - t_bwd).as_secs_f64(),
                loss.total.double_value(&[])
            );
            times.push(total.as_secs_f64());
        }
    }
    times.sort_by(f64::total_cmp);
    let med = times[times.len() / 2];
    println!(
        "nezha-train  {config_name} b{b} L{l} threads {threads}: median {med:.3} s/step, {:.2} seq/s; best {:.3} s/step",
        b as f64 / med,
        times[0]
    );
    drop(optimizer);
    drop(model);

    let python = std::env::var("NEZHA_HF_PYTHON").unwrap_or_else(|_| {
        let cache = std::env::var("XDG_CACHE_HOME")
            .unwrap_or_else(|_| format!("{}/.cache", std::env::var("HOME").unwrap_or_default()));
        format!("{cache}/nezha/hf/bin/python")
    });
    if python == "none" {
        println!("Python baseline skipped (NEZHA_HF_PYTHON=none)");
        return Ok(());
    }
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/benches/hf_train_step.py");
    let status = Command::new(&python)
        .args([
            script,
            "--config",
            &config_name,
            "--batch",
            &b.to_string(),
            "--seq",
            &l.to_string(),
        ])
        .args([
            "--threads",
            &threads.to_string(),
            "--steps",
            &steps.to_string(),
        ])
        .env("PYTHONWARNINGS", "ignore")
        .status();
    match status {
        Ok(s) if s.success() => {}
        Ok(s) => println!("Python baseline failed ({s}); see its output above"),
        Err(e) => println!("Python baseline not run: cannot start {python}: {e}"),
    }
    Ok(())
}
