//! LAMB exactly as NEZHA-TensorFlow's `LAMBOptimizer.apply_gradients`
//! (`optimization.py`, at the commit [`crate::optim`] names; formulas in
//! `docs/notes/optimizer.md`), including
//! its departures from the LAMB paper: ε inside the square root and weight
//! decay always included in the trust-ratio denominator, the ratio clipped to
//! [0, 10], and bias correction with t = global_step + 1.
//!
//! All parameters are updated together on the flat buffers: on a GPU by two
//! fused kernels (`fused_lamb.rs`), on the CPU by two fused parallel loops
//! (`fused_cpu.rs`). The same update written with libtorch operators, on
//! the flat buffers and one parameter at a time, is kept: the first is the
//! yardstick of the fused kernels, the second serves steps in which some
//! parameter has no gradient.

use anyhow::Result;
use tch::{Device, Kind, Tensor};

use super::fused_cpu::FusedCpu;
use super::{decay_per_param, decays, update_moments, Moments, OptimizerConfig};

pub struct Lamb {
    pub config: OptimizerConfig,
    moments: Moments,
    /// Per parameter in layout order: the weight decay its update gets (0
    /// when excluded).
    decay: Vec<f32>,
    /// The same on the buffers' device, for the operator path.
    decay_tensor: Tensor,
    /// The fused CPU loops' chunks of the flat buffers.
    cpu: FusedCpu,
    /// The fused CUDA kernels, compiled on the first GPU step.
    #[cfg(feature = "cuda")]
    fused: Option<super::fused_lamb::FusedLamb>,
}

impl Lamb {
    pub fn new(config: OptimizerConfig, params: &[(String, Tensor)]) -> Lamb {
        let moments = Moments::zeros(params, "lamb_m", "lamb_v");
        let decay = moments.in_layout_order(&decay_per_param(params, &config));
        Lamb {
            cpu: FusedCpu::new(&moments),
            decay_tensor: moments.layout_tensor(&decay),
            decay,
            moments,
            config,
            #[cfg(feature = "cuda")]
            fused: None,
        }
    }

    pub fn moments(&self) -> &Moments {
        &self.moments
    }

    pub fn moments_mut(&mut self) -> &mut Moments {
        &mut self.moments
    }

    /// One update from the (already clipped) gradients in `params`, at
    /// learning rate `lr` and 0-based global step `step`.
    pub fn step(&mut self, params: &[(String, Tensor)], lr: f64, step: u64) -> Result<()> {
        match self.moments.flat_grads(params) {
            Some(g) => self.step_flat(params, &g, lr, step),
            None => self.step_per_tensor(params, lr, step),
        }
    }

    /// `(1 − β₁ᵗ, 1 − β₂ᵗ)` with `t = step + 1`, as the reference.
    pub fn bias_corrections(&self, step: u64) -> (f64, f64) {
        let (c, t) = (&self.config, (step + 1) as f64);
        (1.0 - c.beta1.powf(t), 1.0 - c.beta2.powf(t))
    }

    /// [`Lamb::step`] with the gradients given flat, as
    /// [`Moments::flat_grads`] lays them out.
    pub fn step_flat(
        &mut self,
        params: &[(String, Tensor)],
        g: &Tensor,
        lr: f64,
        step: u64,
    ) -> Result<()> {
        self.moments.check(params)?;
        self.moments.check_aliased(params)?;
        let (bc1, bc2) = self.bias_corrections(step);
        #[cfg(feature = "cuda")]
        if g.device().is_cuda() {
            let fused = match self.fused.take() {
                Some(f) => f,
                None => super::fused_lamb::FusedLamb::new(&self.moments, &self.decay_tensor)?,
            };
            let result = fused.step(&self.moments, g, &self.config, lr, bc1, bc2);
            self.fused = Some(fused);
            return result;
        }
        if g.device() == Device::Cpu {
            return self
                .cpu
                .lamb(&self.moments, g, &self.decay, &self.config, lr, bc1, bc2);
        }
        self.step_flat_ops(g, lr, bc1, bc2)
    }

    /// [`Lamb::step_flat`] with libtorch operators (the yardstick of the
    /// fused loops and kernels), given the step's bias corrections.
    pub fn step_flat_ops(&mut self, g: &Tensor, lr: f64, bc1: f64, bc2: f64) -> Result<()> {
        let c = &self.config;
        tch::no_grad(|| {
            let mut w = self.moments.w.shallow_clone();
            let mut m = self.moments.m.shallow_clone();
            let mut v = self.moments.v.shallow_clone();
            update_moments(&mut m, &mut v, g, c)?;
            let mh = &m / bc1;
            let vh = &v / bc2;
            let norms = |x: &Tensor| self.moments.sums_of_squares(x).sqrt();
            let w_norm = norms(&w);
            let g_norm = norms(g);
            let ghat_norm = norms(&(&mh / (&vh + c.epsilon).sqrt() + &w * c.weight_decay));
            let ok = w_norm.gt(0.0).logical_and(&g_norm.gt(0.0));
            let trust = (&w_norm / ghat_norm)
                .where_self(&ok, &w_norm.ones_like())
                .clamp(0.0, 10.0);
            let decayed = w.copy();
            self.moments.scale_rows(&decayed, &self.decay_tensor)?;
            let update = mh / (vh.sqrt() + c.epsilon) + decayed;
            self.moments.scale_rows(&update, &(trust * lr))?;
            let _ = w.f_sub_(&update)?;
            Ok(())
        })
    }

    /// The same update one parameter at a time; used when some parameter has
    /// no gradient, which (as in the reference) leaves it and its moments
    /// untouched.
    pub fn step_per_tensor(
        &mut self,
        params: &[(String, Tensor)],
        lr: f64,
        step: u64,
    ) -> Result<()> {
        self.moments.check(params)?;
        let (bc1, bc2) = self.bias_corrections(step);
        let c = &self.config;
        tch::no_grad(|| {
            for (i, (name, w)) in params.iter().enumerate() {
                let g = w.grad();
                if !g.defined() {
                    continue;
                }
                let (mut m, mut v) = self.moments.pair(i, name)?;
                update_moments(&mut m, &mut v, &g, c)?;
                let mh = &m / bc1;
                let vh = &v / bc2;
                let w_norm = w.norm();
                let g_norm = g.norm();
                let ghat_norm = (&mh / (&vh + c.epsilon).sqrt() + w * c.weight_decay).norm();
                let ok = w_norm.gt(0.0).logical_and(&g_norm.gt(0.0));
                let trust = (&w_norm / ghat_norm)
                    .where_self(&ok, &w_norm.ones_like())
                    .clamp(0.0, 10.0);
                let mut update = mh / (vh.sqrt() + c.epsilon);
                if decays(name, c) {
                    update += w * c.weight_decay;
                }
                let mut w = w.shallow_clone();
                let _ = w.f_sub_(&(update * trust * lr).to_kind(Kind::Float))?;
            }
            Ok(())
        })
    }
}
