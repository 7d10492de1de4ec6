//! AdamWeightDecay as the reference's fine-tuning optimizer (spec §4): Adam
//! moments without bias correction, decoupled weight decay. Updated on flat
//! buffers like LAMB.

use anyhow::Result;
use tch::{Kind, Tensor};

use super::{decay_per_param, decays, update_moments, Moments, OptimizerConfig};

pub struct AdamWeightDecay {
    pub config: OptimizerConfig,
    moments: Moments,
    decay: Tensor,
}

impl AdamWeightDecay {
    pub fn new(config: OptimizerConfig, params: &[(String, Tensor)]) -> AdamWeightDecay {
        let moments = Moments::zeros(params, "adam_m", "adam_v");
        let decay = decay_per_param(params, &config);
        AdamWeightDecay {
            decay: moments.per_param(&decay),
            moments,
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
    pub fn step(&mut self, params: &[(String, Tensor)], lr: f64, step: u64) -> Result<()> {
        let on_gpu = params.first().is_some_and(|(_, p)| p.device().is_cuda());
        if on_gpu {
            if let Some(g) = self.moments.flat_grads(params) {
                return self.step_flat(params, &g, lr, step);
            }
        }
        self.step_per_tensor(params, lr)
    }

    pub fn step_flat(
        &mut self,
        params: &[(String, Tensor)],
        g: &Tensor,
        lr: f64,
        _step: u64,
    ) -> Result<()> {
        self.moments.check(params)?;
        let c = &self.config;
        self.moments.check_aliased(params)?;
        tch::no_grad(|| {
            let mut w = self.moments.w.shallow_clone();
            let mut m = self.moments.m.shallow_clone();
            let mut v = self.moments.v.shallow_clone();
            update_moments(&mut m, &mut v, g, c)?;
            let decayed = w.copy();
            self.moments.scale_rows(&decayed, &self.decay)?;
            let update = &m / (v.sqrt() + c.epsilon) + decayed;
            let _ = w.f_sub_(&(update * lr))?;
            Ok(())
        })
    }

    /// One parameter at a time; a parameter without gradient is not touched.
    pub fn step_per_tensor(&mut self, params: &[(String, Tensor)], lr: f64) -> Result<()> {
        self.moments.check(params)?;
        let c = &self.config;
        tch::no_grad(|| {
            for (i, (name, w)) in params.iter().enumerate() {
                let g = w.grad();
                if !g.defined() {
                    continue;
                }
                let (mut m, mut v) = self.moments.pair(i, name)?;
                update_moments(&mut m, &mut v, &g, c)?;
                let mut update = &m / (v.sqrt() + c.epsilon);
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
