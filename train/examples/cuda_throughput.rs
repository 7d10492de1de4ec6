//! Training throughput and model-FLOPs utilisation on a CUDA GPU: NEZHA
//! `large` (by default) at sequence 128, batch 64, bf16 matrix products with
//! f32 master weights, LAMB — the full training step as `trainer::train`
//! runs it (forward, TF losses, backward, clip, LAMB), on a fixed batch so
//! that data loading is not measured.
//!
//!     source scripts/libtorch.sh
//!     CARGO_TARGET_DIR=target-train cargo run -p nezha-train --release --example cuda_throughput -- \
//!         [--config large] [--batch 64] [--seq 128] [--precision bf16] [--steps 20] [--peak-tflops 989]
//!         [--layers N] [--check-lamb]
//!
//! MFU counts the model's matrix FLOPs (below) per sequence, ×3 for forward
//! plus backward, against the GPU's dense peak for the precision (989 TFLOP/s
//! bf16 for an H100/H200 SXM; pass --peak-tflops for other GPUs).

use std::time::Instant;

use anyhow::{bail, Context, Result};
use nezha_stages::Batch;
use nezha_train::model::{
    pretraining_loss, Mode, NezhaConfig, NezhaForPreTraining, PreTrainingInputs,
};
use nezha_train::optim::{clip_flat, Lamb, Optimizer, OptimizerConfig, OptimizerKind};
use nezha_train::trainer::Precision;
use tch::{Device, Tensor};

/// Forward matrix FLOPs of one sequence of `l` tokens with `p` predictions:
/// per token and layer, Q/K/V/output projections 8H², feed-forward 4HI,
/// scores and context 4LH, and the two relative-position products 4LH; the
/// MLM head on the p predicted rows (2H² + 2HV each), the pooler 2H².
pub fn forward_flops(c: &NezhaConfig, l: i64, p: i64) -> f64 {
    let (h, i, v) = (
        c.hidden_size as f64,
        c.intermediate_size as f64,
        c.vocab_size as f64,
    );
    let (l, p) = (l as f64, p as f64);
    let per_token_layer = 8.0 * h * h + 4.0 * h * i + 8.0 * l * h;
    l * c.num_hidden_layers as f64 * per_token_layer + p * (2.0 * h * h + 2.0 * h * v) + 2.0 * h * h
}

fn arg<T: std::str::FromStr>(args: &[String], name: &str, default: T) -> Result<T> {
    match args.iter().position(|a| a == name) {
        None => Ok(default),
        Some(i) => args
            .get(i + 1)
            .and_then(|v| v.parse().ok())
            .with_context(|| format!("{name} needs a value")),
    }
}

fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let config: String = arg(&args, "--config", "large".to_string())?;
    let b: usize = arg(&args, "--batch", 64)?;
    let l: usize = arg(&args, "--seq", 128)?;
    let p: usize = arg(&args, "--predictions", 20)?;
    let steps: usize = arg(&args, "--steps", 20)?;
    let peak: f64 = arg(&args, "--peak-tflops", 989.0)?;
    let precision = match arg(&args, "--precision", "bf16".to_string())?.as_str() {
        "bf16" => Precision::Bf16,
        "fp16" => Precision::Fp16,
        "fp32" => Precision::Fp32,
        other => bail!("--precision {other}: expected bf16, fp16 or fp32"),
    };
    if !tch::Cuda::is_available() {
        bail!("no CUDA device visible to libtorch");
    }
    let device = Device::Cuda(0);
    tch::manual_seed(0);
    let mut cfg = NezhaConfig::preset(&config)?;
    // Fewer layers for kernel-level profiling (e.g. under Nsight Compute).
    cfg.num_hidden_layers = arg(&args, "--layers", cfg.num_hidden_layers)?;
    let model = NezhaForPreTraining::new(&cfg, device)?;
    let params = model.params.handles();
    let mut optimizer = Optimizer::new(OptimizerKind::Lamb, OptimizerConfig::default(), &params);

    let mut batch = Batch::with_capacity(b, l, p);
    batch.size = b;
    for r in 0..b {
        for i in 0..l {
            batch
                .input_ids
                .push(1 + ((r * 7919 + i * 104729) % (cfg.vocab_size as usize - 1)) as i64);
            batch.input_mask.push(1);
            batch.segment_ids.push((i >= l / 2) as i64);
        }
        for j in 0..p {
            batch.masked_lm_positions.push(1 + (j * (l - 2) / p) as i64);
            batch
                .masked_lm_ids
                .push(((r + j) * 31 % cfg.vocab_size as usize) as i64);
            batch.masked_lm_weights.push(1.0);
        }
        batch.next_sentence_labels.push((r % 2) as i64);
    }
    let inputs =
        PreTrainingInputs::from_batch(&batch, cfg.vocab_size, cfg.type_vocab_size, device)?;
    let mode = Mode {
        train: true,
        compute: precision.compute_kind(),
    };
    // fp16 would need loss scaling for real training; for timing, a fixed
    // scale of 1 does the same work.
    let mut step = |s: u64, phases: bool| {
        train_step(&model, &inputs, mode, &params, &mut optimizer, s, phases)
    };
    for s in 0..3 {
        step(s, false)?;
    }
    if args.iter().any(|a| a == "--check-lamb") {
        if let Optimizer::Lamb(lamb) = &mut optimizer {
            check_fused_lamb(&model, &inputs, mode, &params, lamb)?;
        }
    }
    let mut step = |s: u64, phases: bool| {
        train_step(&model, &inputs, mode, &params, &mut optimizer, s, phases)
    };
    tch::Cuda::synchronize(0);
    let t0 = Instant::now();
    let mut last = 0.0;
    for s in 0..steps as u64 {
        last = step(3 + s, false)?.0;
    }
    tch::Cuda::synchronize(0);
    let secs = t0.elapsed().as_secs_f64();
    let (_, ph) = step(3 + steps as u64, true)?;
    let seq_per_s = (steps * b) as f64 / secs;
    let flops = 3.0 * forward_flops(&cfg, l as i64, p as i64);
    println!(
        "{config} b{b} L{l} {precision:?}: {:.1} ms/step, {seq_per_s:.1} sequences/s, {:.3e} FLOP/sequence, MFU {:.1}% of {peak} TFLOP/s (last loss {last:.4})",
        1e3 * secs / steps as f64,
        flops,
        100.0 * seq_per_s * flops / (peak * 1e12)
    );
    println!(
        "  one synchronised step: forward+loss {:.1} ms, backward {:.1} ms, clip+LAMB {:.1} ms",
        1e3 * ph[0],
        1e3 * ph[1],
        1e3 * ph[2]
    );
    Ok(())
}

/// One training step as the trainer runs it: forward, TF losses, backward,
/// and the trainer's update (clip and LAMB on the flat gradient). With
/// `phases`, synchronises
/// after each phase and returns their durations (forward+loss, backward,
/// clip+LAMB) in seconds.
fn train_step(
    model: &NezhaForPreTraining,
    inputs: &PreTrainingInputs,
    mode: Mode,
    params: &[(String, Tensor)],
    optimizer: &mut Optimizer,
    s: u64,
    phases: bool,
) -> Result<(f64, [f64; 3])> {
    let sync = || {
        if phases {
            tch::Cuda::synchronize(0);
        }
    };
    let t0 = Instant::now();
    let out = model.forward(inputs, mode);
    let loss = pretraining_loss(&out, inputs);
    sync();
    let t1 = t0.elapsed().as_secs_f64();
    loss.total.backward();
    sync();
    let t2 = t0.elapsed().as_secs_f64();
    optimizer.clip_and_step(params, 1.0, 1.0, 1e-4, s)?;
    optimizer.zero_grads(params);
    sync();
    let t3 = t0.elapsed().as_secs_f64();
    Ok((loss.total.double_value(&[]), [t1, t2 - t1, t3 - t2]))
}

/// One LAMB step two ways from the same state, the fused CUDA kernels and
/// libtorch operators, and the largest difference of the resulting weights
/// relative to the largest weight (they differ only in the summation order
/// of the norms).
fn check_fused_lamb(
    model: &NezhaForPreTraining,
    inputs: &PreTrainingInputs,
    mode: Mode,
    params: &[(String, Tensor)],
    lamb: &mut Lamb,
) -> Result<()> {
    let out = model.forward(inputs, mode);
    pretraining_loss(&out, inputs).total.backward();
    let mut g = lamb.moments().flat_grads(params).context("no gradient")?;
    clip_flat(&mut g, 1.0);
    let snapshot = |lamb: &Lamb| -> Vec<Tensor> {
        let moments = lamb.moments().named().into_iter().map(|(_, t)| t);
        params
            .iter()
            .map(|(_, p)| p.detach())
            .chain(moments)
            .map(|t| t.copy())
            .collect()
    };
    let restore = |lamb: &Lamb, saved: &[Tensor]| {
        let moments = lamb.moments().named().into_iter().map(|(_, t)| t);
        let live: Vec<Tensor> = params
            .iter()
            .map(|(_, p)| p.detach())
            .chain(moments)
            .collect();
        tch::no_grad(|| {
            for (l, s) in live.iter().zip(saved) {
                l.shallow_clone().copy_(s);
            }
        });
    };
    let before = snapshot(lamb);
    let step = 100;
    lamb.step_flat(params, &g, 1e-3, step)?;
    let fused = snapshot(lamb);
    restore(lamb, &before);
    let (bc1, bc2) = lamb.bias_corrections(step);
    lamb.step_flat_ops(&g, 1e-3, bc1, bc2)?;
    let ops = snapshot(lamb);
    let mut worst: f64 = 0.0;
    for (i, (a, b)) in fused.iter().zip(&ops).enumerate().take(params.len()) {
        let scale = b.abs().max().double_value(&[]).max(1e-12);
        let diff = (a - b).abs().max().double_value(&[]) / scale;
        if diff > worst {
            worst = diff;
            println!("  {}: fused vs operators {diff:.3e} relative", params[i].0);
        }
    }
    let changed = (&fused[0] - &before[0]).abs().max().double_value(&[]);
    println!("fused LAMB vs operator LAMB: worst {worst:.3e} relative (an update moved weights by up to {changed:.3e})");
    let _ = g.zero_();
    Ok(())
}
