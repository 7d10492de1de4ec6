//! The two parameterised building blocks every module uses, and the forward
//! mode they run in.
//!
//! Mixed precision is explicit rather than libtorch autocast (which tch can
//! only switch on with fp16 on CUDA): master weights stay f32, matrix products
//! run in `Mode::compute` (weights cast per call, so gradients reach the f32
//! masters), and layer norm, softmax and losses run in f32 as autocast would.
//! With `compute = Float` every cast is a no-op.

use tch::{Kind, Tensor};

use super::params::{Init, ParamStore};

/// How a forward pass runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Mode {
    /// Dropout on (training) or off (evaluation).
    pub train: bool,
    /// Kind of the matrix products: `Float`, `BFloat16` or `Half`.
    pub compute: Kind,
}

impl Mode {
    pub fn eval() -> Mode {
        Mode {
            train: false,
            compute: Kind::Float,
        }
    }

    pub fn train() -> Mode {
        Mode {
            train: true,
            compute: Kind::Float,
        }
    }
}

/// `y = x Wᵀ + b` with `W` stored `[out, in]` as PyTorch does.
pub struct Linear {
    pub weight: Tensor,
    pub bias: Tensor,
}

impl Linear {
    pub fn new(ps: &mut ParamStore, prefix: &str, d_in: i64, d_out: i64, std: f64) -> Linear {
        Linear {
            weight: ps.add(
                &format!("{prefix}.weight"),
                &[d_out, d_in],
                Init::TruncatedNormal(std),
            ),
            bias: ps.add(&format!("{prefix}.bias"), &[d_out], Init::Zeros),
        }
    }

    pub fn forward(&self, x: &Tensor, mode: Mode) -> Tensor {
        let c = mode.compute;
        x.to_kind(c)
            .linear(&self.weight.to_kind(c), Some(self.bias.to_kind(c)))
    }
}

/// Layer norm over the last dimension, computed and returned in f32.
pub struct LayerNorm {
    pub weight: Tensor,
    pub bias: Tensor,
    pub eps: f64,
}

impl LayerNorm {
    pub fn new(ps: &mut ParamStore, prefix: &str, dim: i64, eps: f64) -> LayerNorm {
        LayerNorm {
            weight: ps.add(&format!("{prefix}.weight"), &[dim], Init::Ones),
            bias: ps.add(&format!("{prefix}.bias"), &[dim], Init::Zeros),
            eps,
        }
    }

    pub fn forward(&self, x: &Tensor) -> Tensor {
        let dim = *x.size().last().expect("layer norm of a scalar");
        x.to_kind(Kind::Float).layer_norm(
            [dim],
            Some(&self.weight),
            Some(&self.bias),
            self.eps,
            true,
        )
    }
}
