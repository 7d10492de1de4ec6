//! The reference optimizers, schedule and clipping (spec §4).

pub mod adam;
pub mod clip;
pub mod lamb;
pub mod schedule;

use anyhow::{bail, Result};
use serde::{Deserialize, Serialize};
use tch::Tensor;

pub use adam::AdamWeightDecay;
pub use clip::{clip_global_norm, ClipOutcome};
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

/// First and second moments, one pair per parameter, in parameter order.
/// Checkpoint names follow the reference's slots: `<param>/lamb_m` etc.
pub struct Moments {
    m_suffix: &'static str,
    v_suffix: &'static str,
    names: Vec<String>,
    m: Vec<Tensor>,
    v: Vec<Tensor>,
}

impl Moments {
    pub fn zeros(
        params: &[(String, Tensor)],
        m_suffix: &'static str,
        v_suffix: &'static str,
    ) -> Moments {
        let zeros = |t: &Tensor| tch::no_grad(|| t.zeros_like().to_kind(tch::Kind::Float));
        Moments {
            m_suffix,
            v_suffix,
            names: params.iter().map(|(n, _)| n.clone()).collect(),
            m: params.iter().map(|(_, t)| zeros(t)).collect(),
            v: params.iter().map(|(_, t)| zeros(t)).collect(),
        }
    }

    fn pair_mut(&mut self, i: usize, name: &str) -> Result<(&mut Tensor, &mut Tensor)> {
        if self.names.get(i).map(String::as_str) != Some(name) {
            bail!("optimizer state is for other parameters (expected {name} at slot {i})");
        }
        Ok((&mut self.m[i], &mut self.v[i]))
    }

    /// `(name/m_suffix, m)` and `(name/v_suffix, v)` for every parameter.
    pub fn named(&self) -> Vec<(String, Tensor)> {
        let mut out = Vec::with_capacity(2 * self.names.len());
        for (i, n) in self.names.iter().enumerate() {
            out.push((format!("{n}/{}", self.m_suffix), self.m[i].shallow_clone()));
            out.push((format!("{n}/{}", self.v_suffix), self.v[i].shallow_clone()));
        }
        out
    }

    /// Restores every moment from `source`; all must be present with the
    /// right shapes, and nothing is changed unless all are.
    pub fn load(&mut self, source: &[(String, Tensor)]) -> Result<()> {
        let find = |key: &str, like: &Tensor| -> Result<Tensor> {
            let Some((_, t)) = source.iter().find(|(n, _)| n == key) else {
                bail!("optimizer slot {key} is missing");
            };
            if t.size() != like.size() {
                bail!(
                    "optimizer slot {key} has shape {:?}, expected {:?}",
                    t.size(),
                    like.size()
                );
            }
            Ok(t.to_kind(tch::Kind::Float).to_device(like.device()))
        };
        let mut new_m = Vec::with_capacity(self.m.len());
        let mut new_v = Vec::with_capacity(self.v.len());
        for (i, n) in self.names.iter().enumerate() {
            new_m.push(find(&format!("{n}/{}", self.m_suffix), &self.m[i])?);
            new_v.push(find(&format!("{n}/{}", self.v_suffix), &self.v[i])?);
        }
        let expected = 2 * self.names.len();
        if source.len() != expected {
            bail!(
                "optimizer state has {} slots, this model needs {expected}",
                source.len()
            );
        }
        self.m = new_m;
        self.v = new_v;
        Ok(())
    }
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
