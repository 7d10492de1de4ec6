//! Global-norm gradient clipping, as `create_optimizer` in NEZHA-TensorFlow's
//! `optimization.py` (`tf.clip_by_global_norm` to 1.0; see
//! `docs/notes/optimizer.md`).

use tch::{Device, Kind, Tensor};

use rayon::prelude::*;

use super::cpu_threads::pool;

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

/// `Σ x²` of a tensor, accumulated in f64: libtorch's f32 norm of a whole
/// flat CPU gradient buffer (10⁸ elements) is off by over 1%, which would
/// clip by the wrong factor. On the CPU it runs on fixed chunks added up in
/// order, so the result does not depend on the thread count.
fn sum_of_squares(t: &Tensor) -> f64 {
    const CHUNK: usize = 1 << 15;
    let n = t.numel();
    if n == 0 {
        return 0.0;
    }
    if t.device() != Device::Cpu || t.kind() != Kind::Float || !t.is_contiguous() {
        return t
            .to_kind(Kind::Double)
            .square()
            .sum(Kind::Double)
            .double_value(&[]);
    }
    // SAFETY: the non-null data of a live contiguous f32 CPU tensor of n > 0
    // elements, only read while `t` is borrowed.
    let x = unsafe { std::slice::from_raw_parts(t.data_ptr() as *const f32, n) };
    let partial: Vec<f64> = pool().install(|| {
        x.par_chunks(CHUNK)
            .map(|c| c.iter().map(|&v| f64::from(v) * f64::from(v)).sum::<f64>())
            .collect()
    });
    partial.iter().sum()
}
