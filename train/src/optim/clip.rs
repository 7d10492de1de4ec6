//! Global-norm gradient clipping (spec §4 "Gradients").

use tch::{Device, Kind, Tensor};

use super::fused_cpu::sum_of_squares;

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

/// Scales the flat gradient buffer `g` by `max_norm / max(‖g‖, max_norm)`.
/// On the CPU the norm is summed in f64 (see [`sum_of_squares`]).
///
/// The reference forces the norm to 1.0 when a gradient is not finite and
/// then applies the update anyway unless loss scaling is on; here a
/// non-finite step leaves the gradients as they are and reports it, so that
/// the caller skips the update and weights are never corrupted.
pub fn clip_flat(g: &mut Tensor, max_norm: f64) -> ClipOutcome {
    tch::no_grad(|| {
        // One host sync per step: the skip decision needs it.
        let norm = if g.device() == Device::Cpu {
            sum_of_squares(g).sqrt()
        } else {
            g.norm().double_value(&[])
        };
        if !norm.is_finite() {
            return ClipOutcome { norm: None };
        }
        let scale = max_norm / norm.max(max_norm);
        if scale < 1.0 {
            let _ = g.f_mul_scalar_(scale).expect("scaling gradients");
        }
        ClipOutcome { norm: Some(norm) }
    })
}

/// [`clip_flat`] on the parameters' own gradients, each scaled in place
/// (per-parameter norms: no flat copy, which on the CPU is the faster way).
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
        let norm = if grads[0].device() == Device::Cpu {
            grads.iter().map(sum_of_squares).sum::<f64>().sqrt()
        } else {
            let norms: Vec<Tensor> = grads
                .iter()
                .map(|g| g.norm().to_kind(Kind::Double))
                .collect();
            // One host sync per step: the skip decision needs it.
            Tensor::stack(&norms, 0)
                .square()
                .sum(Kind::Double)
                .sqrt()
                .double_value(&[])
        };
        if !norm.is_finite() {
            return ClipOutcome { norm: None };
        }
        if norm > max_norm {
            for g in &grads {
                let _ = g
                    .shallow_clone()
                    .f_mul_scalar_(max_norm / norm)
                    .expect("scaling gradient");
            }
        }
        ClipOutcome { norm: Some(norm) }
    })
}
