//! AdamWeightDecay as the reference's fine-tuning optimizer
//! (`AdamWeightDecayOptimizer.apply_gradients` in NEZHA-TensorFlow's
//! `optimization.py`, Google BERT's class; `docs/notes/optimizer.md`): Adam
//! moments without bias correction, decoupled weight decay. Updated on flat
//! buffers like LAMB: by one fused loop on the CPU, with libtorch operators
//! on a GPU.

use anyhow::Result;
use tch::{Device, Kind, Tensor};

use super::fused_cpu::FusedCpu;
use super::{decay_per_param, decays, update_moments, Moments, OptimizerConfig};

pub struct AdamWeightDecay {
    pub config: OptimizerConfig,
    moments: Moments,
    /// Per parameter in layout order: its weight decay.
    decay: Vec<f32>,
    /// The same on the buffers' device, for the operator path.
    decay_tensor: Tensor,
    /// The fused CPU loop's chunks of the flat buffers.
    cpu: FusedCpu,
}

impl AdamWeightDecay {
    pub fn new(config: OptimizerConfig, params: &[(String, Tensor)]) -> AdamWeightDecay {
        let moments = Moments::zeros(params, "adam_m", "adam_v");
        let decay = moments.in_layout_order(&decay_per_param(params, &config));
        AdamWeightDecay {
            cpu: FusedCpu::new(&moments),
            decay_tensor: moments.layout_tensor(&decay),
            decay,
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
        match self.moments.flat_grads(params) {
            Some(g) => self.step_flat(params, &g, lr, step),
            None => self.step_per_tensor(params, lr),
        }
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
        if g.device() == Device::Cpu {
            return self.cpu.adam(&self.moments, g, &self.decay, c, lr);
        }
        tch::no_grad(|| {
            let mut w = self.moments.w.shallow_clone();
            let mut m = self.moments.m.shallow_clone();
            let mut v = self.moments.v.shallow_clone();
            update_moments(&mut m, &mut v, g, c)?;
            let decayed = w.copy();
            self.moments.scale_rows(&decayed, &self.decay_tensor)?;
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
