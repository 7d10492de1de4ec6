//! The `[train]` section: the trainer's settings, read over the library's
//! defaults (`TrainConfig::new`), each value checked where it is written.

use std::path::PathBuf;

use nezha_pipeline::resolve::Generation;
use nezha_pipeline::Resolved;
use nezha_stages::error::Result;
use nezha_stages::ingest::{resolve_inputs, InputList};
use nezha_stages::params::{check_at_least, Params};
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

/// `[train]` as written; an absent key keeps the library's default.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TrainToml {
    /// `tiny` (the default), `base`, `large`, or a `bert_config.json` path.
    model: Option<Spanned<String>>,
    output_dir: Spanned<String>,
    steps: Spanned<i64>,
    /// Default: a tenth of `steps`.
    warmup_steps: Option<Spanned<i64>>,
    learning_rate: Option<Spanned<f64>>,
    decay_power: Option<Spanned<f64>>,
    /// `lamb` or `adam`.
    optimizer: Option<Spanned<String>>,
    weight_decay: Option<Spanned<f64>>,
    epsilon: Option<Spanned<f64>>,
    max_grad_norm: Option<Spanned<f64>>,
    grad_accumulation: Option<Spanned<i64>>,
    device: Option<Spanned<String>>,
    /// `auto` (bf16 on CUDA, fp32 on the CPU), `fp32`, `bf16`, `fp16`.
    precision: Option<Spanned<String>>,
    save_every: Option<Spanned<i64>>,
    keep_checkpoints: Option<Spanned<i64>>,
    threads: Option<Spanned<i64>>,
    init_checkpoint: Option<String>,
    tensorboard: Option<bool>,
    plot: Option<bool>,
    /// Read these TFRecord files instead of the live stream.
    tfrecords: Option<Spanned<InputList>>,
    /// End this run after this many optimizer steps (a checkpoint is
    /// written); `--resume` continues. The schedule still spans `steps`.
    stop_after: Option<Spanned<i64>>,
    /// Seconds a data-parallel process waits for the others (joining, and
    /// each collective) before it gives up and names the lost rank.
    collective_timeout_s: Option<Spanned<i64>>,
    /// Multiply the learning rate by the number of processes.
    scale_lr_by_world_size: Option<bool>,
    /// Start each gradient bucket's all-reduce during backward.
    overlap_all_reduce: Option<bool>,
}

/// Seconds a process waits for its peers unless `collective_timeout_s` says.
const DEFAULT_COLLECTIVE_TIMEOUT_S: u64 = 60;

/// `[train]`, read.
#[derive(Clone, Debug)]
pub struct TrainSection {
    pub config: TrainConfig,
    pub input: TrainInput,
    /// The model as named: a preset or a config file's path.
    pub model: String,
}

/// Reads `[train]` into the trainer's configuration.
pub fn parse_train(p: &Params, t: TrainToml, r: &Resolved) -> Result<TrainSection> {
    let (model_config, model_name) = model(p, &t, r)?;
    let mut cfg = TrainConfig::new(model_config, r.resolve(t.output_dir.get_ref()));
    schedule(p, &t, &mut cfg.schedule)?;
    optimizer(p, &t, &mut cfg)?;
    runtime(p, &t, &mut cfg)?;
    cfg.seed = r.seed;
    cfg.init_checkpoint = t.init_checkpoint.as_deref().map(|c| r.resolve(c));
    cfg.vocab_file = Some(r.wordpiece.vocab.clone());
    cfg.validate()
        .map_err(|e| p.error(p.span.clone(), format!("[train] {e:#}")))?;
    let input = input(p, &t, r)?;
    cfg.batch_size = r.batching.map(|b| b.batch_size as u64);
    // TFRecord input and dynamic masking are one stream dealt to the ranks
    // batch by batch whatever their number (tfrecord_batches.rs,
    // registry::WorkerInfo::deal); static streaming masks depend on them.
    cfg.global_data_order = match input.source {
        TrainSource::TfRecords(_) => true,
        TrainSource::Stream => matches!(r.generation, Generation::Dynamic { .. }),
    };
    Ok(TrainSection {
        config: cfg,
        input,
        model: model_name,
    })
}

/// The model's config, and its name as the printed plan gives it (a
/// preset, or the config file's path).
fn model(p: &Params, t: &TrainToml, r: &Resolved) -> Result<(NezhaConfig, String)> {
    let (name, span) = match &t.model {
        Some(m) => (m.get_ref().as_str(), m.span()),
        None => ("tiny", p.span.clone()),
    };
    let (config, name) = match name {
        "tiny" | "base" | "large" => (NezhaConfig::preset(name), name.to_string()),
        path => {
            let path = r.resolve(path);
            (
                NezhaConfig::from_json_file(&path),
                path.display().to_string(),
            )
        }
    };
    config
        .map(|c| (c, name))
        .map_err(|e| p.error(span, format!("[train] model: {e:#}")))
}

fn schedule(p: &Params, t: &TrainToml, schedule: &mut Schedule) -> Result<()> {
    let steps = check_at_least(p, &t.steps, "steps", 1)? as u64;
    let warmup = match &t.warmup_steps {
        Some(w) => check_at_least(p, w, "warmup_steps", 0)? as u64,
        None => Schedule::default_warmup(steps),
    };
    if warmup >= steps {
        let span = t.warmup_steps.as_ref().map_or(t.steps.span(), |w| w.span());
        return Err(p.error(
            span,
            format!("[train] warmup_steps ({warmup}) must be below steps ({steps})"),
        ));
    }
    schedule.warmup_steps = warmup;
    schedule.total_steps = steps;
    if let Some(lr) = &t.learning_rate {
        schedule.init_lr = *lr.get_ref();
    }
    if let Some(power) = &t.decay_power {
        schedule.power = *power.get_ref();
    }
    Ok(())
}

fn optimizer(p: &Params, t: &TrainToml, cfg: &mut TrainConfig) -> Result<()> {
    if let Some(o) = &t.optimizer {
        cfg.optimizer = match o.get_ref().as_str() {
            "lamb" => OptimizerKind::Lamb,
            "adam" => OptimizerKind::AdamWeightDecay,
            other => {
                return Err(p.invalid(
                    o,
                    "optimizer",
                    format!("{other:?}: expected \"lamb\" or \"adam\""),
                ))
            }
        };
    }
    if let Some(wd) = &t.weight_decay {
        cfg.optimizer_config.weight_decay = *wd.get_ref();
    }
    if let Some(eps) = &t.epsilon {
        if *eps.get_ref() <= 0.0 {
            return Err(p.invalid(eps, "epsilon", "must be positive"));
        }
        cfg.optimizer_config.epsilon = *eps.get_ref();
    }
    if let Some(n) = &t.max_grad_norm {
        cfg.max_grad_norm = *n.get_ref();
    }
    if let Some(g) = &t.grad_accumulation {
        cfg.grad_accumulation = check_at_least(p, g, "grad_accumulation", 1)? as u32;
    }
    Ok(())
}

/// Device, precision, threads, checkpoints and reporting.
fn runtime(p: &Params, t: &TrainToml, cfg: &mut TrainConfig) -> Result<()> {
    if let Some(d) = &t.device {
        cfg.device = d.get_ref().clone();
    }
    let on_cuda = cfg.device.starts_with("cuda");
    // `auto`: bf16 autocast on CUDA; the CPU trains in fp32.
    cfg.precision = match &t.precision {
        None => auto_precision(on_cuda),
        Some(p_) => match p_.get_ref().as_str() {
            "auto" => auto_precision(on_cuda),
            "fp32" => Precision::Fp32,
            "bf16" => Precision::Bf16,
            "fp16" => Precision::Fp16,
            other => {
                return Err(p.invalid(
                    p_,
                    "precision",
                    format!("{other:?}: expected auto, fp32, bf16 or fp16"),
                ))
            }
        },
    };
    if let Some(precision) = t.precision.as_ref().filter(|_| !on_cuda) {
        if cfg.precision != Precision::Fp32 {
            return Err(p.invalid(
                precision,
                "precision",
                "reduced precision needs device = \"cuda\"; CPU trains in fp32",
            ));
        }
    }
    if let Some(s) = &t.save_every {
        cfg.save_every = check_at_least(p, s, "save_every", 1)? as u64;
    }
    if let Some(k) = &t.keep_checkpoints {
        cfg.keep_checkpoints = check_at_least(p, k, "keep_checkpoints", 1)?;
    }
    if let Some(th) = &t.threads {
        cfg.threads = Some(check_at_least(p, th, "threads", 1)? as i32);
    }
    cfg.tensorboard = t.tensorboard.unwrap_or(cfg.tensorboard);
    cfg.plot = t.plot.unwrap_or(cfg.plot);
    cfg.scale_lr_by_world_size = t
        .scale_lr_by_world_size
        .unwrap_or(cfg.scale_lr_by_world_size);
    cfg.overlap_all_reduce = t.overlap_all_reduce.unwrap_or(cfg.overlap_all_reduce);
    Ok(())
}

fn auto_precision(on_cuda: bool) -> Precision {
    if on_cuda {
        Precision::Bf16
    } else {
        Precision::Fp32
    }
}

fn input(p: &Params, t: &TrainToml, r: &Resolved) -> Result<TrainInput> {
    let source = match &t.tfrecords {
        None => TrainSource::Stream,
        Some(spec) => TrainSource::TfRecords(
            resolve_inputs(spec.get_ref().entries(), &r.base_dir)
                .map_err(|e| p.invalid(spec, "tfrecords", e))?,
        ),
    };
    let stop_at_step = match &t.stop_after {
        Some(n) => Some(check_at_least(p, n, "stop_after", 1)? as u64),
        None => None,
    };
    let timeout = match &t.collective_timeout_s {
        Some(s) => check_at_least(p, s, "collective_timeout_s", 1)? as u64,
        None => DEFAULT_COLLECTIVE_TIMEOUT_S,
    };
    Ok(TrainInput {
        source,
        stop_at_step,
        collective_timeout: std::time::Duration::from_secs(timeout),
    })
}
