//! LAMB exactly as NEZHA-TensorFlow's `LAMBOptimizer` (spec §4), including
//! its departures from the LAMB paper: ε inside the square root and weight
//! decay always included in the trust-ratio denominator, the ratio clipped to
//! [0, 10], and bias correction with t = global_step + 1.

use anyhow::Result;
use tch::{Kind, Tensor};

use super::{decays, Moments, OptimizerConfig};

pub struct Lamb {
    pub config: OptimizerConfig,
    moments: Moments,
}

impl Lamb {
    pub fn new(config: OptimizerConfig, params: &[(String, Tensor)]) -> Lamb {
        Lamb {
            moments: Moments::zeros(params, "lamb_m", "lamb_v"),
            config,
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
        let c = &self.config;
        let t = (step + 1) as f64;
        let bc1 = 1.0 - c.beta1.powf(t);
        let bc2 = 1.0 - c.beta2.powf(t);
        tch::no_grad(|| {
            for (i, (name, w)) in params.iter().enumerate() {
                let g = w.grad();
                if !g.defined() {
                    // As the reference: a variable without gradient is not touched.
                    continue;
                }
                let (m, v) = self.moments.pair_mut(i, name)?;
                let _ = m.f_mul_scalar_(c.beta1)?.f_add_(&(&g * (1.0 - c.beta1)))?;
                let _ = v
                    .f_mul_scalar_(c.beta2)?
                    .f_add_(&(g.square() * (1.0 - c.beta2)))?;
                let mh = &*m / bc1;
                let vh = &*v / bc2;
                let w_norm = w.norm();
                let g_norm = g.norm();
                let ghat_norm = (&mh / (&vh + c.epsilon).sqrt() + w * c.weight_decay).norm();
                // Device-side select: no host sync per parameter.
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
