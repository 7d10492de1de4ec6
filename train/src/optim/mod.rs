//! The reference optimizers, schedule and clipping (spec §4).

pub mod adam;
pub mod clip;
pub mod lamb;
pub mod schedule;

use anyhow::{bail, Result};
use serde::{Deserialize, Serialize};
use tch::Tensor;

pub use adam::AdamWeightDecay;
pub use clip::{clip_flat, clip_global_norm, ClipOutcome};
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

/// Parameters of one size, stored back to back in the flat layout, so that
/// their slice of a flat buffer is a `[count, numel]` matrix.
struct Group {
    /// Offset of the group in a flat buffer.
    offset: i64,
    /// Position of its first parameter in layout order.
    first: i64,
    count: i64,
    numel: i64,
}

/// First and second moments of every parameter, stored as two flat f32
/// buffers so that the optimizer updates all parameters with a few
/// whole-buffer kernels, and exposed per parameter as views. The flat layout
/// puts parameters of equal size next to each other: per-parameter norms are
/// then one row-reduction per size group (about ten groups for NEZHA)
/// instead of one kernel per parameter. Checkpoint names follow the
/// reference's slots: `<param>/lamb_m` etc.
pub struct Moments {
    m_suffix: &'static str,
    v_suffix: &'static str,
    names: Vec<String>,
    shapes: Vec<Vec<i64>>,
    /// Parameter indices in layout order.
    order: Vec<usize>,
    /// Flat offset of each parameter (by parameter index).
    offsets: Vec<i64>,
    groups: Vec<Group>,
    m: Tensor,
    v: Tensor,
}

impl Moments {
    pub fn zeros(
        params: &[(String, Tensor)],
        m_suffix: &'static str,
        v_suffix: &'static str,
    ) -> Moments {
        let device = params.first().map_or(tch::Device::Cpu, |(_, t)| t.device());
        let numel = |i: usize| params[i].1.numel() as i64;
        let mut order: Vec<usize> = (0..params.len()).collect();
        order.sort_by_key(|&i| numel(i));
        let mut offsets = vec![0i64; params.len()];
        let mut groups: Vec<Group> = Vec::new();
        let mut total = 0i64;
        for (pos, &i) in order.iter().enumerate() {
            offsets[i] = total;
            match groups.last_mut() {
                Some(g) if g.numel == numel(i) => g.count += 1,
                _ => groups.push(Group {
                    offset: total,
                    first: pos as i64,
                    count: 1,
                    numel: numel(i),
                }),
            }
            total += numel(i);
        }
        let zeros = || Tensor::zeros([total], (tch::Kind::Float, device));
        Moments {
            m_suffix,
            v_suffix,
            names: params.iter().map(|(n, _)| n.clone()).collect(),
            shapes: params.iter().map(|(_, t)| t.size()).collect(),
            order,
            offsets,
            groups,
            m: zeros(),
            v: zeros(),
        }
    }

    /// Parameter `i`'s slice of a flat buffer, in the parameter's shape.
    fn view(&self, flat: &Tensor, i: usize) -> Tensor {
        let n: i64 = self.shapes[i].iter().product();
        flat.narrow(0, self.offsets[i], n)
            .view(self.shapes[i].as_slice())
    }

    /// Views of parameter `i`'s moments; writing to them writes the buffers.
    fn pair(&self, i: usize, name: &str) -> Result<(Tensor, Tensor)> {
        if self.names.get(i).map(String::as_str) != Some(name) {
            bail!("optimizer state is for other parameters (expected {name} at slot {i})");
        }
        Ok((self.view(&self.m, i), self.view(&self.v, i)))
    }

    /// Checks that `params` are the parameters these moments were made for.
    fn check(&self, params: &[(String, Tensor)]) -> Result<()> {
        if params.len() != self.names.len() {
            bail!(
                "optimizer state has {} parameters, {} given",
                self.names.len(),
                params.len()
            );
        }
        for (i, (name, t)) in params.iter().enumerate() {
            if self.names[i] != *name || self.shapes[i] != t.size() {
                bail!(
                    "optimizer state is for other parameters (slot {i}: {} {:?}, given {name} {:?})",
                    self.names[i],
                    self.shapes[i],
                    t.size()
                );
            }
        }
        Ok(())
    }

    /// Number of scalars over all parameters.
    pub fn total(&self) -> i64 {
        self.m.numel() as i64
    }

    /// One f32 value per parameter (by parameter index), in layout order.
    fn per_param(&self, values: &[f32]) -> Tensor {
        let v: Vec<f32> = self.order.iter().map(|&i| values[i]).collect();
        Tensor::from_slice(&v).to_device(self.m.device())
    }

    /// The tensors `f(param)` concatenated flat in layout order (f32).
    fn flatten(&self, params: &[(String, Tensor)], f: impl Fn(&Tensor) -> Tensor) -> Tensor {
        let parts: Vec<Tensor> = self
            .order
            .iter()
            .map(|&i| f(&params[i].1).reshape([-1]))
            .collect();
        Tensor::cat(&parts, 0).to_kind(tch::Kind::Float)
    }

    /// The parameters' gradients flat in layout order, or `None` when some
    /// parameter has none.
    pub fn flat_grads(&self, params: &[(String, Tensor)]) -> Option<Tensor> {
        if params.iter().any(|(_, p)| !p.grad().defined()) {
            return None;
        }
        Some(tch::no_grad(|| self.flatten(params, |p| p.grad())))
    }

    /// Per-parameter sums of squares of a flat buffer, in layout order.
    fn sums_of_squares(&self, x: &Tensor) -> Tensor {
        let parts: Vec<Tensor> = self
            .groups
            .iter()
            .map(|g| {
                x.narrow(0, g.offset, g.count * g.numel)
                    .view([g.count, g.numel])
                    .square()
                    .sum_dim_intlist([1i64].as_slice(), false, tch::Kind::Float)
            })
            .collect();
        Tensor::cat(&parts, 0)
    }

    /// Multiplies each parameter's slice of `flat` by its entry of
    /// `per_param` (layout order), in place.
    fn scale_rows(&self, flat: &Tensor, per_param: &Tensor) -> Result<()> {
        for g in &self.groups {
            let mut rows = flat
                .narrow(0, g.offset, g.count * g.numel)
                .view([g.count, g.numel]);
            let factor = per_param.narrow(0, g.first, g.count).unsqueeze(1);
            let _ = rows.f_mul_(&factor)?;
        }
        Ok(())
    }

    /// Copies a flat layout-order buffer back into the parameters.
    fn write_back(&self, params: &[(String, Tensor)], flat: &Tensor) {
        for (i, (_, p)) in params.iter().enumerate() {
            p.shallow_clone().copy_(&self.view(flat, i));
        }
    }

    /// `(name/m_suffix, m)` and `(name/v_suffix, v)` for every parameter.
    pub fn named(&self) -> Vec<(String, Tensor)> {
        let mut out = Vec::with_capacity(2 * self.names.len());
        for (i, n) in self.names.iter().enumerate() {
            out.push((format!("{n}/{}", self.m_suffix), self.view(&self.m, i)));
            out.push((format!("{n}/{}", self.v_suffix), self.view(&self.v, i)));
        }
        out
    }

    /// Restores every moment from `source`; all must be present with the
    /// right shapes, and nothing is changed unless all are.
    pub fn load(&mut self, source: &[(String, Tensor)]) -> Result<()> {
        let expected = 2 * self.names.len();
        if source.len() != expected {
            bail!(
                "optimizer state has {} slots, this model needs {expected}",
                source.len()
            );
        }
        let mut found = Vec::with_capacity(expected);
        for (i, n) in self.names.iter().enumerate() {
            for suffix in [self.m_suffix, self.v_suffix] {
                let key = format!("{n}/{suffix}");
                let Some((_, t)) = source.iter().find(|(k, _)| *k == key) else {
                    bail!("optimizer slot {key} is missing");
                };
                if t.size() != self.shapes[i] {
                    bail!(
                        "optimizer slot {key} has shape {:?}, expected {:?}",
                        t.size(),
                        self.shapes[i]
                    );
                }
                found.push(t);
            }
        }
        tch::no_grad(|| {
            for i in 0..self.names.len() {
                self.view(&self.m, i).copy_(found[2 * i]);
                self.view(&self.v, i).copy_(found[2 * i + 1]);
            }
        });
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
