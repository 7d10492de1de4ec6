//! The reference optimizers, schedule and clipping: NEZHA-TensorFlow's
//! `optimization.py` (`create_optimizer`, `LAMBOptimizer`,
//! `AdamWeightDecayOptimizer`) at huawei-noah/Pretrained-Language-Model
//! commit 0598f02d7fc4eaa7b4cbc1e9d7ab18bc875c24f9, which every "the
//! reference" below means; `docs/notes/optimizer.md` sums up its arithmetic
//! and where this code departs from it.

pub mod adam;
pub mod clip;
mod cpu_threads;
mod flat;
mod fused_cpu;
#[cfg(feature = "cuda")]
mod fused_lamb;
pub mod lamb;
pub mod schedule;

use anyhow::Result;
use serde::{Deserialize, Serialize};
use tch::Tensor;

pub use adam::AdamWeightDecay;
pub use clip::{clip_flat, clip_global_norm, ClipOutcome};
pub use flat::Moments;
pub use lamb::Lamb;
pub use schedule::Schedule;

/// Hyper-parameters shared by LAMB and AdamWeightDecay; defaults are the
/// reference's.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct OptimizerConfig {
    pub beta1: f64,
    pub beta2: f64,
    pub epsilon: f64,
    pub weight_decay: f64,
    /// Parameters whose name contains any of these get no weight decay. The
    /// reference's regexes are plain words, so substring search is the same.
    pub exclude_from_weight_decay: Vec<String>,
}

impl Default for OptimizerConfig {
    fn default() -> OptimizerConfig {
        OptimizerConfig {
            beta1: 0.9,
            beta2: 0.999,
            epsilon: 1e-6,
            weight_decay: 0.01,
            exclude_from_weight_decay: vec!["LayerNorm".into(), "layer_norm".into(), "bias".into()],
        }
    }
}

/// Whether `name` gets weight decay.
pub fn decays(name: &str, c: &OptimizerConfig) -> bool {
    c.weight_decay != 0.0
        && !c
            .exclude_from_weight_decay
            .iter()
            .any(|x| name.contains(x.as_str()))
}

/// Per parameter (in `params` order): the weight decay its update gets, 0
/// when the reference excludes it.
fn decay_per_param(params: &[(String, Tensor)], c: &OptimizerConfig) -> Vec<f32> {
    params
        .iter()
        .map(|(n, _)| {
            if decays(n, c) {
                c.weight_decay as f32
            } else {
                0.0
            }
        })
        .collect()
}

/// Adam's moments, in place: `m = β₁m + (1−β₁)g`, `v = β₂v + (1−β₂)g²`.
fn update_moments(m: &mut Tensor, v: &mut Tensor, g: &Tensor, c: &OptimizerConfig) -> Result<()> {
    let _ = m.f_mul_scalar_(c.beta1)?.f_add_(&(g * (1.0 - c.beta1)))?;
    let _ = v
        .f_mul_scalar_(c.beta2)?
        .f_add_(&(g.square() * (1.0 - c.beta2)))?;
    Ok(())
}

/// Either optimizer behind one interface, so the trainer can hold either.
pub enum Optimizer {
    Lamb(Lamb),
    AdamWeightDecay(AdamWeightDecay),
}

/// Which optimizer a run uses.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OptimizerKind {
    Lamb,
    AdamWeightDecay,
}

impl Optimizer {
    pub fn new(
        kind: OptimizerKind,
        config: OptimizerConfig,
        params: &[(String, Tensor)],
    ) -> Optimizer {
        match kind {
            OptimizerKind::Lamb => Optimizer::Lamb(Lamb::new(config, params)),
            OptimizerKind::AdamWeightDecay => {
                Optimizer::AdamWeightDecay(AdamWeightDecay::new(config, params))
            }
        }
    }

    pub fn step(&mut self, params: &[(String, Tensor)], lr: f64, step: u64) -> Result<()> {
        match self {
            Optimizer::Lamb(o) => o.step(params, lr, step),
            Optimizer::AdamWeightDecay(o) => o.step(params, lr, step),
        }
    }

    /// One update from `grads`, the flat (clipped) gradients as
    /// [`Optimizer::flat_grads`] makes them.
    pub fn step_flat(
        &mut self,
        params: &[(String, Tensor)],
        grads: &Tensor,
        lr: f64,
        step: u64,
    ) -> Result<()> {
        match self {
            Optimizer::Lamb(o) => o.step_flat(params, grads, lr, step),
            Optimizer::AdamWeightDecay(o) => o.step_flat(params, grads, lr, step),
        }
    }

    /// One update as the trainer makes it from the gradients backward left
    /// (multiplied by `loss_scale`): unscaled, clipped to global norm
    /// `max_norm`, then the step — on the flat gradient buffer (a few
    /// kernels or fused loops), or one parameter at a time when some
    /// parameter has no gradient. Non-finite gradients leave the weights and
    /// moments as they are; the outcome says so.
    pub fn clip_and_step(
        &mut self,
        params: &[(String, Tensor)],
        loss_scale: f64,
        max_norm: f64,
        lr: f64,
        step: u64,
    ) -> Result<ClipOutcome> {
        let clip = match self.flat_grads(params) {
            Some(mut g) => {
                if loss_scale != 1.0 {
                    let _ = g.f_mul_scalar_(1.0 / loss_scale)?;
                }
                let clip = clip_flat(&mut g, max_norm);
                if clip.is_finite() {
                    self.step_flat(params, &g, lr, step)?;
                }
                clip
            }
            None => {
                if loss_scale != 1.0 {
                    tch::no_grad(|| {
                        for (_, p) in params {
                            let g = p.grad();
                            if g.defined() {
                                let _ = g.shallow_clone().f_mul_scalar_(1.0 / loss_scale);
                            }
                        }
                    });
                }
                let clip = clip_global_norm(params, max_norm);
                if clip.is_finite() {
                    self.step(params, lr, step)?;
                }
                clip
            }
        };
        Ok(clip)
    }

    /// Zeroes the parameters' gradients for the next step (see
    /// [`Moments::zero_grads`]).
    pub fn zero_grads(&self, params: &[(String, Tensor)]) {
        self.moments().zero_grads(params);
    }

    /// The parameters' gradients in the flat layout `step_flat` takes, or
    /// `None` when some parameter has no gradient.
    pub fn flat_grads(&self, params: &[(String, Tensor)]) -> Option<Tensor> {
        self.moments().flat_grads(params)
    }

    pub fn moments(&self) -> &Moments {
        match self {
            Optimizer::Lamb(o) => o.moments(),
            Optimizer::AdamWeightDecay(o) => o.moments(),
        }
    }

    pub fn moments_mut(&mut self) -> &mut Moments {
        match self {
            Optimizer::Lamb(o) => o.moments_mut(),
            Optimizer::AdamWeightDecay(o) => o.moments_mut(),
        }
    }
}
