//! The `[train]` section: the trainer as the last operator of the graph.

use std::path::PathBuf;

use nezha_stages::error::Error;
use nezha_stages::params::{check_at_least, Params};
use nezha_stages::registry::Context;
use nezha_train::model::NezhaConfig;
use nezha_train::optim::{OptimizerKind, Schedule};
use nezha_train::trainer::{Precision, TrainConfig};
use serde::Deserialize;
use toml::Spanned;

/// What the trainer reads: the live stream through the bounded channel, or
/// TFRecord files already written (by `nezha` or by the reference script).
#[derive(Clone, Debug)]
pub enum TrainSource {
    Stream,
    TfRecords(Vec<PathBuf>),
}

/// Where the trainer's batches come from, and how many this run may take.
#[derive(Clone, Debug)]
pub struct TrainInput {
    pub source: TrainSource,
    /// Step at which this run ends early (`stop_after`), if any.
    pub stop_at_step: Option<u64>,
    /// Bound on joining the other processes of a data-parallel run and on
    /// each collective (`collective_timeout_s`).
    pub collective_timeout: std::time::Duration,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct TrainToml {
    /// `tiny`, `base`, `large`, or a `bert_config.json` path.
    #[serde(default = "default_model")]
    model: Spanned<String>,
    output_dir: Spanned<String>,
    steps: Spanned<i64>,
    #[serde(default)]
    warmup_steps: Option<Spanned<i64>>,
    #[serde(default = "default_lr")]
    learning_rate: Spanned<f64>,
    #[serde(default = "one")]
    decay_power: Spanned<f64>,
    #[serde(default = "default_optimizer")]
    optimizer: Spanned<String>,
    #[serde(default)]
    weight_decay: Option<Spanned<f64>>,
    #[serde(default)]
    epsilon: Option<Spanned<f64>>,
    #[serde(default = "one")]
    max_grad_norm: Spanned<f64>,
    #[serde(default = "one_i")]
    grad_accumulation: Spanned<i64>,
    #[serde(default = "default_device")]
    device: Spanned<String>,
    #[serde(default = "default_precision")]
    precision: Spanned<String>,
    #[serde(default = "default_save_every")]
    save_every: Spanned<i64>,
    #[serde(default = "default_keep")]
    keep_checkpoints: Spanned<i64>,
    #[serde(default)]
    threads: Option<Spanned<i64>>,
    #[serde(default)]
    init_checkpoint: Option<String>,
    #[serde(default = "yes")]
    tensorboard: bool,
    #[serde(default = "yes")]
    plot: bool,
    /// Read these TFRecord files instead of the live stream.
    #[serde(default)]
    tfrecords: Option<Spanned<String>>,
    /// End this run after this many optimizer steps (a checkpoint is
    /// written); `--resume` continues. The schedule still spans `steps`.
    #[serde(default)]
    stop_after: Option<Spanned<i64>>,
    /// Seconds a data-parallel process waits for the others (joining, and
    /// each collective) before it gives up and names the lost rank.
    #[serde(default = "default_collective_timeout")]
    collective_timeout_s: Spanned<i64>,
    /// Multiply the learning rate by the number of processes.
    #[serde(default)]
    scale_lr_by_world_size: bool,
    /// Start each gradient bucket's all-reduce during backward.
    #[serde(default = "yes")]
    overlap_all_reduce: bool,
}

fn default_collective_timeout() -> Spanned<i64> {
    Spanned::new(0..0, 60)
}

fn default_model() -> Spanned<String> {
    Spanned::new(0..0, "tiny".into())
}
fn default_lr() -> Spanned<f64> {
    Spanned::new(0..0, 1e-4)
}
fn one() -> Spanned<f64> {
    Spanned::new(0..0, 1.0)
}
fn one_i() -> Spanned<i64> {
    Spanned::new(0..0, 1)
}
fn default_optimizer() -> Spanned<String> {
    Spanned::new(0..0, "lamb".into())
}
fn default_device() -> Spanned<String> {
    Spanned::new(0..0, "cpu".into())
}
fn default_precision() -> Spanned<String> {
    Spanned::new(0..0, "auto".into())
}
fn default_save_every() -> Spanned<i64> {
    Spanned::new(0..0, 1000)
}
fn default_keep() -> Spanned<i64> {
    Spanned::new(0..0, 3)
}
fn yes() -> bool {
    true
}

/// Reads `[train]` into the trainer's configuration, checking every value
/// against where it is written.
pub fn parse_train(
    p: &Params,
    ctx: &Context,
    resume: bool,
) -> Result<(TrainConfig, TrainInput), Error> {
    let t: TrainToml = p.parse()?;
    let model = match t.model.get_ref().as_str() {
        name @ ("tiny" | "base" | "large") => NezhaConfig::preset(name).expect("known preset"),
        path => NezhaConfig::from_json_file(&ctx.resolve(path))
            .map_err(|e| p.invalid(&t.model, "model", format!("{e:#}")))?,
    };
    let steps = check_at_least(p, &t.steps, "steps", 1)? as u64;
    let warmup = match &t.warmup_steps {
        Some(w) => check_at_least(p, w, "warmup_steps", 0)? as u64,
        None => steps / 10,
    };
    if warmup >= steps {
        let span = t.warmup_steps.as_ref().map_or(t.steps.span(), |w| w.span());
        return Err(p.error(
            span,
            format!("[train] warmup_steps ({warmup}) must be below steps ({steps})"),
        ));
    }
    let mut schedule = Schedule::new(*t.learning_rate.get_ref(), warmup, steps);
    schedule.power = *t.decay_power.get_ref();
    schedule
        .validate()
        .map_err(|e| p.invalid(&t.learning_rate, "learning_rate/decay_power", e))?;

    let mut cfg = TrainConfig::new(model, ctx.resolve(t.output_dir.get_ref()));
    cfg.schedule = schedule;
    cfg.optimizer = match t.optimizer.get_ref().as_str() {
        "lamb" => OptimizerKind::Lamb,
        "adam" => OptimizerKind::AdamWeightDecay,
        other => {
            return Err(p.invalid(
                &t.optimizer,
                "optimizer",
                format!("{other:?}: expected \"lamb\" or \"adam\""),
            ))
        }
    };
    if let Some(wd) = &t.weight_decay {
        cfg.optimizer_config.weight_decay = *wd.get_ref();
    }
    if let Some(eps) = &t.epsilon {
        if *eps.get_ref() <= 0.0 {
            return Err(p.invalid(eps, "epsilon", "must be positive"));
        }
        cfg.optimizer_config.epsilon = *eps.get_ref();
    }
    if *t.max_grad_norm.get_ref() <= 0.0 {
        return Err(p.invalid(&t.max_grad_norm, "max_grad_norm", "must be positive"));
    }
    cfg.max_grad_norm = *t.max_grad_norm.get_ref();
    cfg.grad_accumulation = check_at_least(p, &t.grad_accumulation, "grad_accumulation", 1)? as u32;
    cfg.seed = ctx.seed;
    cfg.device = t.device.get_ref().clone();
    let on_cuda = cfg.device.starts_with("cuda");
    cfg.precision = match t.precision.get_ref().as_str() {
        // bf16 autocast is the default on CUDA; CPU runs in fp32.
        "auto" if on_cuda => Precision::Bf16,
        "auto" | "fp32" => Precision::Fp32,
        "bf16" => Precision::Bf16,
        "fp16" => Precision::Fp16,
        other => {
            return Err(p.invalid(
                &t.precision,
                "precision",
                format!("{other:?}: expected auto, fp32, bf16 or fp16"),
            ))
        }
    };
    if !on_cuda && cfg.precision != Precision::Fp32 {
        return Err(p.invalid(
            &t.precision,
            "precision",
            "reduced precision needs device = \"cuda\"; CPU trains in fp32",
        ));
    }
    cfg.save_every = check_at_least(p, &t.save_every, "save_every", 1)? as u64;
    cfg.keep_checkpoints = check_at_least(p, &t.keep_checkpoints, "keep_checkpoints", 1)?;
    if let Some(th) = &t.threads {
        cfg.threads = Some(check_at_least(p, th, "threads", 1)? as i32);
    }
    cfg.init_checkpoint = t.init_checkpoint.as_deref().map(|c| ctx.resolve(c));
    cfg.vocab_file = ctx.vocab.as_ref().map(|v| v.path.clone());
    cfg.tensorboard = t.tensorboard;
    cfg.plot = t.plot;
    cfg.scale_lr_by_world_size = t.scale_lr_by_world_size;
    cfg.overlap_all_reduce = t.overlap_all_reduce;
    cfg.resume = resume;
    cfg.validate()
        .map_err(|e| p.error(p.span.clone(), format!("[train] {e:#}")))?;

    let source = match &t.tfrecords {
        None => TrainSource::Stream,
        Some(spec) => {
            let resolved: Vec<String> = spec
                .get_ref()
                .split(',')
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(|s| ctx.resolve(s).to_string_lossy().into_owned())
                .collect();
            let files = nezha_stages::ingest::resolve_inputs(&resolved.join(","))
                .map_err(|e| p.invalid(spec, "tfrecords", e))?;
            TrainSource::TfRecords(files)
        }
    };
    let stop_at_step = match &t.stop_after {
        Some(n) => Some(check_at_least(p, n, "stop_after", 1)? as u64),
        None => None,
    };
    let timeout = check_at_least(p, &t.collective_timeout_s, "collective_timeout_s", 1)?;
    Ok((
        cfg,
        TrainInput {
            source,
            stop_at_step,
            collective_timeout: std::time::Duration::from_secs(timeout as u64),
        },
    ))
}
