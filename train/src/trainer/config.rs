//! Everything a pretraining run is told, serialisable so that runs can be
//! described in a file and checkpoints can record what produced them.

use std::path::PathBuf;

use anyhow::{bail, Context, Result};
use serde::{Deserialize, Serialize};
use tch::{Device, Kind};

use crate::model::NezhaConfig;
use crate::optim::{OptimizerConfig, OptimizerKind, Schedule};

/// Numeric precision of the forward and backward passes. Weights, gradients,
/// optimizer moments and losses are always f32.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Precision {
    Fp32,
    /// bf16 matrix products; no loss scaling needed (bf16 has f32's range).
    Bf16,
    /// fp16 matrix products with dynamic loss scaling.
    Fp16,
}

impl Precision {
    pub fn compute_kind(self) -> Kind {
        match self {
            Precision::Fp32 => Kind::Float,
            Precision::Bf16 => Kind::BFloat16,
            Precision::Fp16 => Kind::Half,
        }
    }
}

/// The reference's `ExponentialUpdateLossScaleManager` settings.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct LossScaleConfig {
    pub initial: f64,
    /// Double the scale after this many finite steps in a row.
    pub growth_interval: u64,
    /// Halve it after this many non-finite steps in a row.
    pub backoff_after: u64,
}

impl Default for LossScaleConfig {
    fn default() -> LossScaleConfig {
        LossScaleConfig {
            initial: 2f64.powi(32),
            growth_interval: 1000,
            backoff_after: 2,
        }
    }
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TrainConfig {
    pub model: NezhaConfig,
    /// Checkpoints, metrics, TensorBoard events and the plot go here.
    pub output_dir: PathBuf,
    /// `total_steps` is the reference's `num_train_steps`: the run ends there.
    pub schedule: Schedule,
    pub optimizer: OptimizerKind,
    pub optimizer_config: OptimizerConfig,
    /// Global-norm clipping threshold (1.0 in the reference).
    pub max_grad_norm: f64,
    /// Micro-batches per optimizer step (gradients are averaged).
    pub grad_accumulation: u32,
    /// Seeds the initial weights and, with the batch index, every dropout mask.
    pub seed: u64,
    /// `cpu`, `cuda` or `cuda:N`.
    pub device: String,
    pub precision: Precision,
    pub loss_scale: LossScaleConfig,
    /// Optimizer steps between checkpoints (and one at the end).
    pub save_every: u64,
    /// Checkpoints kept; older ones are deleted after a new one is complete.
    pub keep_checkpoints: usize,
    /// Continue from the latest checkpoint in `output_dir` (it must exist).
    pub resume: bool,
    /// Resume from this step's checkpoint rather than the newest.
    pub resume_from: Option<u64>,
    /// On resume, skip the batches the checkpoint had consumed from the
    /// iterator. Set false when the caller already positioned its source.
    pub skip_consumed_batches: bool,
    /// Start from these weights (safetensors) instead of random ones.
    pub init_checkpoint: Option<PathBuf>,
    /// If given, its line count must equal `model.vocab_size`.
    pub vocab_file: Option<PathBuf>,
    /// libtorch intra-op threads; `None` leaves libtorch's default.
    pub threads: Option<i32>,
    pub progress_bar: bool,
    pub tensorboard: bool,
    pub plot: bool,
    /// Multiply the learning rate by the number of data-parallel processes
    /// (the TF reference multiplies by its worker count; the Ascend recipe
    /// does not). Off by default.
    #[serde(default)]
    pub scale_lr_by_world_size: bool,
    /// Data-parallel only: start each gradient bucket's all-reduce as soon
    /// as backward has produced it (DDP's overlap), rather than all of them
    /// after backward. On by default.
    #[serde(default = "yes")]
    pub overlap_all_reduce: bool,
    /// Sequences in each process's micro-batch, when the caller knows it
    /// (the pipeline's `[batching] batch_size`); recorded in checkpoints.
    #[serde(default)]
    pub batch_size: Option<u64>,
    /// Every rank's batches are its round-robin share, micro-batch by
    /// micro-batch, of one stream that does not depend on the number of
    /// processes (TFRecord input): a checkpoint then resumes on another
    /// number of processes when the global batch (processes × batch_size
    /// × grad_accumulation) is the same.
    #[serde(default)]
    pub global_data_order: bool,
}

fn yes() -> bool {
    true
}

/// `cpu`, `cuda` (device 0) or `cuda:N`, refused when libtorch cannot see
/// that device.
pub fn parse_device(name: &str) -> Result<Device> {
    let d = name.trim();
    let dev = match d {
        "cpu" => Device::Cpu,
        "cuda" => Device::Cuda(0),
        _ => match d.strip_prefix("cuda:").map(str::parse::<usize>) {
            Some(Ok(i)) => Device::Cuda(i),
            _ => bail!("device {d:?}: expected cpu, cuda or cuda:N"),
        },
    };
    if let Device::Cuda(i) = dev {
        let hint = if cfg!(feature = "cuda") {
            ""
        } else {
            " (this build has no CUDA backend: build with `--features cuda`)"
        };
        let n = tch::Cuda::device_count() as usize;
        if n == 0 {
            bail!("cuda requested but libtorch has no CUDA device (device {d}){hint}");
        }
        if i >= n {
            bail!(
                "device {d} requested but libtorch sees {n} CUDA device(s) (cuda:0 to cuda:{})",
                n - 1
            );
        }
    }
    Ok(dev)
}

impl TrainConfig {
    /// Peak learning rate by default: the pipeline's `[train]` default (the
    /// Ascend recipe's, and the NEZHA paper's for NEZHA-large); the TF
    /// reference's `run_pretraining.py` flag says 5e-5.
    pub const DEFAULT_LEARNING_RATE: f64 = 1e-4;
    /// Optimizer updates by default (the reference's `num_train_steps`).
    pub const DEFAULT_TOTAL_STEPS: u64 = 100_000;

    /// The defaults for `model`, writing into `output_dir`: those the
    /// pipeline's `[train]` section documents (it starts from them).
    /// Learning rate 1e-4 ([`TrainConfig::DEFAULT_LEARNING_RATE`]), 100 000
    /// steps of which a tenth warmup ([`Schedule::default_warmup`]) then
    /// linear decay, LAMB with [`OptimizerConfig::default`], clipping at
    /// 1.0, no accumulation, seed 12345, cpu in fp32, a checkpoint every
    /// 1000 steps with 3 kept, progress bar, TensorBoard and plot on.
    /// `docs/notes/optimizer.md` says where each comes from (mostly
    /// NEZHA-TensorFlow's `run_pretraining.py` flags and `create_optimizer`).
    pub fn new(model: NezhaConfig, output_dir: impl Into<PathBuf>) -> TrainConfig {
        let total = TrainConfig::DEFAULT_TOTAL_STEPS;
        TrainConfig {
            model,
            output_dir: output_dir.into(),
            schedule: Schedule::new(
                TrainConfig::DEFAULT_LEARNING_RATE,
                Schedule::default_warmup(total),
                total,
            ),
            optimizer: OptimizerKind::Lamb,
            optimizer_config: OptimizerConfig::default(),
            max_grad_norm: 1.0,
            grad_accumulation: 1,
            seed: 12345,
            device: "cpu".into(),
            precision: Precision::Fp32,
            loss_scale: LossScaleConfig::default(),
            save_every: 1000,
            keep_checkpoints: 3,
            resume: false,
            resume_from: None,
            skip_consumed_batches: true,
            init_checkpoint: None,
            vocab_file: None,
            threads: None,
            progress_bar: true,
            tensorboard: true,
            plot: true,
            scale_lr_by_world_size: false,
            overlap_all_reduce: true,
            batch_size: None,
            global_data_order: false,
        }
    }

    pub fn parse_device(&self) -> Result<Device> {
        parse_device(&self.device)
    }

    pub fn validate(&self) -> Result<()> {
        self.model.validate().context("model config")?;
        self.schedule.validate()?;
        if self.grad_accumulation == 0 {
            bail!("grad_accumulation must be at least 1");
        }
        if self.max_grad_norm.is_nan() || self.max_grad_norm <= 0.0 {
            bail!("max_grad_norm must be positive, got {}", self.max_grad_norm);
        }
        if self.save_every == 0 || self.keep_checkpoints == 0 {
            bail!("save_every and keep_checkpoints must be at least 1");
        }
        if self.precision == Precision::Fp16
            && (self.loss_scale.initial.is_nan() || self.loss_scale.initial < 1.0)
        {
            bail!("fp16 needs an initial loss scale of at least 1");
        }
        self.parse_device()?;
        if let Some(path) = &self.vocab_file {
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("reading vocab {}", path.display()))?;
            let lines = text.lines().count() as i64;
            if lines != self.model.vocab_size {
                bail!(
                    "model vocab_size is {} but vocab {} has {lines} entries",
                    self.model.vocab_size,
                    path.display()
                );
            }
        }
        Ok(())
    }
}
