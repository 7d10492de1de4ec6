//! Global-norm gradient clipping (spec §4 "Gradients").

use tch::{Kind, Tensor};

/// The global gradient norm before clipping; `None` when some gradient is
/// not finite.
pub struct ClipOutcome {
    pub norm: Option<f64>,
}

impl ClipOutcome {
    pub fn is_finite(&self) -> bool {
        self.norm.is_some()
    }
}

/// Scales all gradients by `max_norm / max(global_norm, max_norm)`.
///
/// The reference forces the norm to 1.0 when a gradient is not finite and
/// then applies the update anyway unless loss scaling is on; here a
/// non-finite step leaves gradients as they are and reports it, so that the
/// caller skips the update and weights are never corrupted.
pub fn clip_global_norm(params: &[(String, Tensor)], max_norm: f64) -> ClipOutcome {
    tch::no_grad(|| {
        let grads: Vec<Tensor> = params
            .iter()
            .map(|(_, p)| p.grad())
            .filter(|g| g.defined())
            .collect();
        if grads.is_empty() {
            return ClipOutcome { norm: Some(0.0) };
        }
        let sq: Vec<Tensor> = grads
            .iter()
            .map(|g| g.to_kind(Kind::Float).square().sum(Kind::Double))
            .collect();
        // One host sync per step: the skip decision needs it.
        let norm = Tensor::stack(&sq, 0)
            .sum(Kind::Double)
            .sqrt()
            .double_value(&[]);
        if !norm.is_finite() {
            return ClipOutcome { norm: None };
        }
        let scale = max_norm / norm.max(max_norm);
        if scale < 1.0 {
            for g in &grads {
                let _ = g
                    .shallow_clone()
                    .f_mul_scalar_(scale)
                    .expect("scaling gradient");
            }
        }
        ClipOutcome { norm: Some(norm) }
    })
}
