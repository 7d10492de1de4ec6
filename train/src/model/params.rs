//! The named, ordered set of trainable tensors, and their TF initialisation.
//!
//! An explicit ordered list (rather than tch's hash-map `VarStore`) keeps the
//! optimizer's slot order, checkpoint contents and initial values
//! deterministic, and lets names carry the Hugging Face dots directly.

use anyhow::{bail, Result};
use tch::{Device, Kind, Tensor};

/// How a parameter is initialised, as in the TF reference: kernels and
/// embeddings by `modeling.py` `create_initializer`, biases zero, LayerNorm
/// γ one and β zero (`docs/notes/model.md`).
#[derive(Clone, Copy, Debug)]
pub enum Init {
    /// `truncated_normal(stddev)`: normal, redrawn beyond two standard deviations.
    TruncatedNormal(f64),
    Zeros,
    Ones,
}

/// Parameters in creation order, each registered under its Hugging Face name.
pub struct ParamStore {
    device: Device,
    params: Vec<(String, Tensor)>,
}

impl ParamStore {
    pub fn new(device: Device) -> ParamStore {
        ParamStore {
            device,
            params: Vec::new(),
        }
    }

    pub fn device(&self) -> Device {
        self.device
    }

    /// Creates an f32 parameter. Random values are drawn on the CPU from
    /// libtorch's global generator, so a seed gives the same weights on any
    /// device.
    pub fn add(&mut self, name: &str, shape: &[i64], init: Init) -> Tensor {
        assert!(
            self.params.iter().all(|(n, _)| n != name),
            "parameter {name} registered twice"
        );
        let value = match init {
            Init::TruncatedNormal(std) => truncated_normal(shape, std),
            Init::Zeros => Tensor::zeros(shape, (Kind::Float, Device::Cpu)),
            Init::Ones => Tensor::ones(shape, (Kind::Float, Device::Cpu)),
        };
        let t = value.to_device(self.device).set_requires_grad(true);
        self.params.push((name.to_string(), t.shallow_clone()));
        t
    }

    /// Parameters in creation order (shallow clones share storage and grad).
    pub fn named(&self) -> &[(String, Tensor)] {
        &self.params
    }

    /// [`ParamStore::named`] as handles the caller owns: shallow clones,
    /// sharing storage and gradients with the model's.
    pub fn handles(&self) -> Vec<(String, Tensor)> {
        self.params
            .iter()
            .map(|(n, t)| (n.clone(), t.shallow_clone()))
            .collect()
    }

    pub fn get(&self, name: &str) -> Option<&Tensor> {
        self.params.iter().find(|(n, _)| n == name).map(|(_, t)| t)
    }

    /// Number of scalar parameters.
    pub fn numel(&self) -> i64 {
        self.params.iter().map(|(_, t)| t.numel() as i64).sum()
    }

    /// Overwrites every parameter from `source` (name → tensor). Every
    /// parameter must be present with the same shape; names in `source` that
    /// are not parameters are returned so the caller can decide about them.
    pub fn load(&mut self, source: &[(String, Tensor)]) -> Result<Vec<String>> {
        for (name, dst) in &self.params {
            let Some((_, src)) = source.iter().find(|(n, _)| n == name) else {
                bail!("parameter {name} is missing");
            };
            if src.size() != dst.size() {
                bail!(
                    "parameter {name} has shape {:?}, the model expects {:?}",
                    src.size(),
                    dst.size()
                );
            }
        }
        tch::no_grad(|| {
            for (name, dst) in &mut self.params {
                let (_, src) = source.iter().find(|(n, _)| n == name).unwrap();
                dst.copy_(&src.to_kind(Kind::Float).to_device(self.device));
            }
        });
        Ok(source
            .iter()
            .filter(|(n, _)| self.params.iter().all(|(p, _)| p != n))
            .map(|(n, _)| n.clone())
            .collect())
    }
}

/// TF's `truncated_normal`: values more than two standard deviations from the
/// mean are redrawn until none is left.
pub fn truncated_normal(shape: &[i64], std: f64) -> Tensor {
    let opts = (Kind::Float, Device::Cpu);
    let mut t = Tensor::randn(shape, opts);
    loop {
        let outside = t.abs().gt(2.0);
        if !bool::try_from(outside.any()).expect("scalar bool") {
            break;
        }
        t = Tensor::randn(shape, opts).where_self(&outside, &t);
    }
    t * std
}
