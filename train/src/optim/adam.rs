//! AdamWeightDecay as the reference's fine-tuning optimizer (spec §4): Adam
//! moments without bias correction, decoupled weight decay.

use anyhow::Result;
use tch::{Kind, Tensor};

use super::{decays, Moments, OptimizerConfig};

pub struct AdamWeightDecay {
    pub config: OptimizerConfig,
    moments: Moments,
}

impl AdamWeightDecay {
    pub fn new(config: OptimizerConfig, params: &[(String, Tensor)]) -> AdamWeightDecay {
        AdamWeightDecay {
            moments: Moments::zeros(params, "adam_m", "adam_v"),
            config,
        }
    }

    pub fn moments(&self) -> &Moments {
        &self.moments
    }

    pub fn moments_mut(&mut self) -> &mut Moments {
        &mut self.moments
    }

    /// `u = m/(√v + ε) + wd·w`, `w −= lr·u`. The step number is unused: the
    /// reference applies no bias correction.
    pub fn step(&mut self, params: &[(String, Tensor)], lr: f64, _step: u64) -> Result<()> {
        let c = &self.config;
        tch::no_grad(|| {
            for (i, (name, w)) in params.iter().enumerate() {
                let g = w.grad();
                if !g.defined() {
                    continue;
                }
                let (m, v) = self.moments.pair_mut(i, name)?;
                let _ = m.f_mul_scalar_(c.beta1)?.f_add_(&(&g * (1.0 - c.beta1)))?;
                let _ = v
                    .f_mul_scalar_(c.beta2)?
                    .f_add_(&(g.square() * (1.0 - c.beta2)))?;
                let mut update = &*m / (v.sqrt() + c.epsilon);
                if decays(name, c) {
                    update += w * c.weight_decay;
                }
                let mut w = w.shallow_clone();
                let _ = w.f_sub_(&(update * lr).to_kind(Kind::Float))?;
            }
            Ok(())
        })
    }
}
