//! Gradient averaging that overlaps with backward, as DDP's reducer does.
//!
//! The parameters are split into buckets of about `bucket_bytes` (DDP's
//! default is 25 MiB) in the order backward produces their gradients (the
//! reverse of the parameter order). A hook on each parameter's gradient
//! accumulator (shim/hooks.cpp) tells us when backward has added that
//! gradient; once every gradient of a bucket is in, the bucket is flattened,
//! divided by the world size and its all-reduce started, while backward goes
//! on with the layers below. [`Reducer::finish`] starts what is left, waits,
//! and copies the means back into the gradients.
//!
//! Buckets are started strictly in order on every rank (a bucket that is
//! complete early waits for the ones before it): c10d matches collectives by
//! the order they were issued in, not by name.

use std::ffi::c_void;
use std::ops::Range;
use std::panic::AssertUnwindSafe;
use std::ptr::NonNull;
use std::sync::Mutex;

use tch::{Device, Kind, Tensor};

use crate::collectives::Pending;
use crate::error::{Error, Result};
use crate::ffi;
use crate::group::ProcessGroup;

/// DDP's default bucket size.
pub const DEFAULT_BUCKET_BYTES: usize = 25 * 1024 * 1024;

/// Averages the gradients of a fixed list of parameters over the ranks of a
/// group, one bucket at a time. Every rank must build it with the same
/// parameters (names, order, shapes, dtypes; see [`check_same_parameters`](crate::check_same_parameters)).
pub struct Reducer<'g> {
    // Boxed: the hooks hold its address.
    state: Box<Mutex<State<'g>>>,
    hooks: NonNull<ffi::RawHooks>,
}

struct State<'g> {
    group: &'g ProcessGroup,
    params: Vec<(String, Tensor)>,
    /// Parameter indices, in backward order; buckets are ranges of it.
    order: Vec<usize>,
    buckets: Vec<Range<usize>>,
    bucket_of: Vec<usize>,
    /// Gradients of each bucket still to come in this backward.
    missing: Vec<usize>,
    ready: Vec<bool>,
    /// The buckets started in this step, in order (the next to start is
    /// `started.len()`).
    started: Vec<(Tensor, Pending<'g>)>,
    /// Whether gradients arriving now start their buckets: only in the
    /// backward of a step's last micro-batch.
    armed: bool,
    error: Option<Error>,
}

impl<'g> Reducer<'g> {
    pub fn new(
        group: &'g ProcessGroup,
        params: &[(String, Tensor)],
        bucket_bytes: usize,
    ) -> Result<Reducer<'g>> {
        let context = || {
            format!(
                "rank {}/{}: preparing to average the gradients of {} parameters",
                group.rank(),
                group.world_size(),
                params.len()
            )
        };
        for (name, p) in params {
            let problem = if !p.is_floating_point() {
                format!("a {:?} parameter, not a floating-point one", p.kind())
            } else if !p.requires_grad() {
                "it does not require a gradient".into()
            } else {
                continue;
            };
            return Err(Error::Invalid {
                context: context(),
                problem: format!("parameter {name:?}: {problem}"),
            });
        }
        let order: Vec<usize> = (0..params.len()).rev().collect();
        let layout: Vec<(Kind, Device, usize)> = order
            .iter()
            .map(|&i| {
                let p = &params[i].1;
                (
                    p.kind(),
                    p.device(),
                    p.numel() * p.kind().elt_size_in_bytes(),
                )
            })
            .collect();
        let buckets = plan_buckets(&layout, bucket_bytes);
        let mut bucket_of = vec![0; params.len()];
        for (b, range) in buckets.iter().enumerate() {
            for &i in &order[range.clone()] {
                bucket_of[i] = b;
            }
        }
        let state = Box::new(Mutex::new(State {
            group,
            params: params
                .iter()
                .map(|(n, p)| (n.clone(), p.shallow_clone()))
                .collect(),
            missing: buckets.iter().map(|r| r.len()).collect(),
            order,
            buckets,
            bucket_of,
            ready: vec![false; params.len()],
            started: Vec::new(),
            armed: false,
            error: None,
        }));
        let pointers: Vec<*const torch_sys::C_tensor> =
            params.iter().map(|(_, p)| p.as_ptr()).collect();
        let ctx = &*state as *const Mutex<State> as *mut c_void;
        let mut raw = std::ptr::null_mut();
        ffi::call(|err| unsafe {
            ffi::nezha_hooks_register(
                pointers.as_ptr(),
                pointers.len() as i64,
                gradient_ready,
                ctx,
                &mut raw,
                err,
            )
        })
        .map_err(|cause| Error::C10d {
            context: format!("{}: registering the gradient hooks", context()),
            cause,
        })?;
        let hooks = NonNull::new(raw).expect("the shim returned success with null hooks");
        Ok(Reducer { state, hooks })
    }

    /// How many buckets the parameters make.
    pub fn buckets(&self) -> usize {
        self.lock().buckets.len()
    }

    /// How many buckets have started their all-reduce since the last
    /// [`finish`](Reducer::finish).
    pub fn started(&self) -> usize {
        self.lock().started.len()
    }

    /// Call before the backward of a step's last micro-batch: each bucket
    /// starts its all-reduce as soon as backward has produced it.
    pub fn arm(&self) {
        self.lock().armed = true;
    }

    /// Starts the buckets backward did not (all of them, without [`arm`](Reducer::arm)),
    /// waits for every all-reduce and leaves each gradient replaced by its
    /// mean over the ranks. Every parameter must have a gradient.
    pub fn finish(&self) -> Result<()> {
        self.lock().finish(false)
    }

    /// For a rank without a complete step (its data ended): takes part in
    /// the same collectives as the ranks that have one, sending zeros for
    /// missing gradients, so that nobody waits on it; the caller then
    /// discards the gradients.
    pub fn finish_without_step(&self) -> Result<()> {
        self.lock().finish(true)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State<'g>> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl Drop for Reducer<'_> {
    fn drop(&mut self) {
        // SAFETY: from nezha_hooks_register, freed once; afterwards no hook
        // refers to `state` any more.
        unsafe { ffi::nezha_hooks_free(self.hooks.as_ptr()) }
    }
}

/// Called by the hook on a parameter's gradient accumulator, on the thread
/// that runs that part of backward (the caller's on the CPU, an autograd
/// device thread on a GPU, while the caller waits in backward).
extern "C" fn gradient_ready(ctx: *mut c_void, index: i64) {
    // SAFETY: `ctx` is the boxed state, alive until the hooks are removed.
    let state = unsafe { &*(ctx as *const Mutex<State>) };
    // A panic must not unwind into libtorch; it would only come from a bug
    // here, and is kept as an error for `finish`.
    let outcome = std::panic::catch_unwind(AssertUnwindSafe(|| {
        let mut s = state.lock().unwrap_or_else(|e| e.into_inner());
        s.gradient_ready(index as usize);
    }));
    if outcome.is_err() {
        let mut s = state.lock().unwrap_or_else(|e| e.into_inner());
        s.error.get_or_insert(Error::Invalid {
            context: "averaging gradients during backward".into(),
            problem: "the gradient hook panicked".into(),
        });
    }
}

impl State<'_> {
    fn gradient_ready(&mut self, i: usize) {
        if !self.armed || self.error.is_some() || self.ready[i] {
            return;
        }
        self.ready[i] = true;
        self.missing[self.bucket_of[i]] -= 1;
        while self.started.len() < self.buckets.len() && self.missing[self.started.len()] == 0 {
            if let Err(e) = self.start_next(false) {
                self.error = Some(e);
                return;
            }
        }
    }

    fn finish(&mut self, without_step: bool) -> Result<()> {
        self.armed = false;
        let mut result = self.error.take().map_or(Ok(()), Err);
        while result.is_ok() && self.started.len() < self.buckets.len() {
            result = self.start_next(without_step);
        }
        let started = std::mem::take(&mut self.started);
        for (b, (flat, pending)) in started.into_iter().enumerate() {
            // Waited for even after an error: c10d may still write into `flat`.
            let waited = pending.wait();
            if result.is_ok() {
                result = waited;
                if result.is_ok() {
                    self.copy_back(b, &flat);
                }
            }
        }
        self.ready.iter_mut().for_each(|r| *r = false);
        self.missing = self.buckets.iter().map(|r| r.len()).collect();
        result
    }

    fn copy_back(&self, b: usize, flat: &Tensor) {
        let _guard = tch::no_grad_guard();
        let mut offset = 0;
        for &i in &self.order[self.buckets[b].clone()] {
            let p = &self.params[i].1;
            let n = p.numel() as i64;
            let mut g = p.grad();
            if g.defined() {
                g.copy_(&flat.narrow(0, offset, n).view_as(&g));
            }
            offset += n;
        }
    }

    /// Flattens the next bucket, divides it by the world size (as DDP,
    /// so that half precision does not overflow in the sum) and starts its
    /// all-reduce.
    fn start_next(&mut self, zeros_for_missing: bool) -> Result<()> {
        let b = self.started.len();
        let _guard = tch::no_grad_guard();
        let mut parts = Vec::with_capacity(self.buckets[b].len());
        for &i in &self.order[self.buckets[b].clone()] {
            let (name, p) = &self.params[i];
            let g = p.grad();
            if g.defined() {
                parts.push(g.reshape([-1]));
            } else if zeros_for_missing {
                parts.push(Tensor::zeros([p.numel() as i64], (p.kind(), p.device())));
            } else {
                return Err(Error::Invalid {
                    context: format!(
                        "rank {}/{}: averaging the gradients of {} parameters",
                        self.group.rank(),
                        self.group.world_size(),
                        self.params.len()
                    ),
                    problem: format!(
                        "parameter {name:?} has no gradient (every rank must have one for every \
                         parameter, or the buckets would differ between ranks)"
                    ),
                });
            }
        }
        let mut flat = Tensor::cat(&parts, 0);
        flat /= self.group.world_size() as f64;
        let pending = self
            .group
            .start_all_reduce_sum(std::slice::from_ref(&flat))?;
        self.started.push((flat, pending));
        Ok(())
    }
}

/// Splits consecutive tensors (dtype, device, bytes) into buckets: a bucket
/// holds one dtype on one device, and grows until the next tensor would take
/// it past `bucket_bytes`. A tensor larger than that is a bucket of its own.
fn plan_buckets(layout: &[(Kind, Device, usize)], bucket_bytes: usize) -> Vec<Range<usize>> {
    let mut buckets = Vec::new();
    let mut start = 0;
    let mut bytes = 0;
    for (i, &(kind, device, size)) in layout.iter().enumerate() {
        let (k0, d0, _) = layout[start];
        let fits = i == start || (kind == k0 && device == d0 && bytes + size <= bucket_bytes);
        if !fits {
            buckets.push(start..i);
            start = i;
            bytes = 0;
        }
        bytes += size;
    }
    if start < layout.len() {
        buckets.push(start..layout.len());
    }
    buckets
}

#[cfg(test)]
mod tests {
    use super::*;

    const F: Kind = Kind::Float;
    const D: Kind = Kind::Double;
    const CPU: Device = Device::Cpu;

    #[test]
    fn buckets_fill_up_to_the_limit_and_no_further() {
        let layout = [
            (F, CPU, 40),
            (F, CPU, 60),
            (F, CPU, 1),
            (F, CPU, 99),
            (F, CPU, 100),
        ];
        assert_eq!(plan_buckets(&layout, 100), vec![0..2, 2..4, 4..5]);
    }

    #[test]
    fn a_tensor_above_the_limit_gets_a_bucket_of_its_own() {
        let layout = [(F, CPU, 10), (F, CPU, 500), (F, CPU, 10)];
        assert_eq!(plan_buckets(&layout, 100), vec![0..1, 1..2, 2..3]);
    }

    #[test]
    fn dtype_or_device_changes_start_a_new_bucket() {
        let layout = [
            (F, CPU, 4),
            (D, CPU, 8),
            (D, CPU, 8),
            (D, Device::Cuda(0), 8),
            (F, CPU, 4),
        ];
        assert_eq!(plan_buckets(&layout, 1 << 20), vec![0..1, 1..3, 3..4, 4..5]);
    }

    #[test]
    fn no_tensors_no_buckets() {
        assert!(plan_buckets(&[], 100).is_empty());
    }
}
