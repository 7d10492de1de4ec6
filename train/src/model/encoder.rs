//! The layer stack. The relative table `R` is built once per forward for the
//! actual length and shared by every layer: the reference rebuilds the same
//! constant in each layer's `attention_layer` (`modeling.py`; see
//! `docs/notes/model.md`), so sharing it changes no value.

use tch::Tensor;

use super::blocks::Mode;
use super::config::NezhaConfig;
use super::layer::Layer;
use super::params::ParamStore;

pub struct Encoder {
    pub layers: Vec<Layer>,
}

impl Encoder {
    pub fn new(ps: &mut ParamStore, prefix: &str, cfg: &NezhaConfig) -> Encoder {
        Encoder {
            layers: (0..cfg.num_hidden_layers)
                .map(|i| Layer::new(ps, &format!("{prefix}.layer.{i}"), cfg))
                .collect(),
        }
    }

    pub fn forward(&self, x: &Tensor, mask_add: &Tensor, rel: &Tensor, mode: Mode) -> Tensor {
        let mut h = x.shallow_clone();
        for layer in &self.layers {
            h = layer.forward(&h, mask_add, rel, mode);
        }
        h
    }
}
