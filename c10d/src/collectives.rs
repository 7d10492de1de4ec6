//! All-reduce, broadcast and barrier: started on every tensor at once, then
//! waited for against one deadline, so a call never outlasts the group's
//! timeout by more than the time to notice it.

use std::ptr::NonNull;
use std::time::{Duration, Instant};

use tch::{Device, Tensor};
use torch_sys::C_tensor;

use crate::error::{Error, Result};
use crate::ffi;
use crate::group::{Backend, ProcessGroup};

/// Collectives started on a group and not yet waited for.
///
/// Dropping it without [`Pending::wait`] leaves the collectives running in
/// c10d's threads (they keep the tensors alive); whether they succeeded is
/// then never known.
#[must_use = "a collective is only known to have completed once waited for"]
pub struct Pending<'g> {
    group: &'g ProcessGroup,
    what: String,
    works: Vec<NonNull<ffi::RawWork>>,
    started: Instant,
}

impl ProcessGroup {
    /// Replaces every tensor, in place, by its sum over all ranks. Each tensor
    /// is reduced on its own (they may differ in shape and dtype); every rank
    /// must pass the same list of shapes and dtypes.
    pub fn all_reduce_sum(&self, tensors: &[Tensor]) -> Result<()> {
        self.start_all_reduce_sum(tensors)?.wait()
    }

    /// [`ProcessGroup::all_reduce_sum`] without waiting: the tensors must not
    /// be read or written until [`Pending::wait`] returned.
    pub fn start_all_reduce_sum(&self, tensors: &[Tensor]) -> Result<Pending<'_>> {
        let what = format!("all_reduce_sum of {} tensor(s)", tensors.len());
        let ms = self.op_timeout_ms();
        self.start(what, tensors, |t, out, err| unsafe {
            ffi::nezha_group_all_reduce_sum(self.raw(), t, ms, out, err)
        })
    }

    /// Overwrites every tensor, in place, with rank `root`'s.
    pub fn broadcast(&self, tensors: &[Tensor], root: usize) -> Result<()> {
        let what = format!("broadcast from rank {root} of {} tensor(s)", tensors.len());
        if root >= self.world_size() {
            return Err(Error::Invalid {
                context: self.context(&what),
                problem: format!("root {root} is not a rank of 0..{}", self.world_size()),
            });
        }
        let ms = self.op_timeout_ms();
        self.start(what, tensors, |t, out, err| unsafe {
            ffi::nezha_group_broadcast(self.raw(), t, root as i64, ms, out, err)
        })?
        .wait()
    }

    /// Returns once every rank has entered the barrier.
    pub fn barrier(&self) -> Result<()> {
        let ms = self.op_timeout_ms();
        self.start_raw("barrier".into(), 1, |_, out, err| unsafe {
            ffi::nezha_group_barrier(self.raw(), ms, out, err)
        })?
        .wait()
    }

    fn context(&self, what: &str) -> String {
        format!(
            "rank {}/{}: {} {what}",
            self.rank(),
            self.world_size(),
            self.backend().name()
        )
    }

    fn op_timeout_ms(&self) -> i64 {
        // Checked positive when the group was created.
        i64::try_from(self.timeout().as_millis()).unwrap_or(i64::MAX)
    }

    fn start(
        &self,
        what: String,
        tensors: &[Tensor],
        mut op: impl FnMut(*const C_tensor, *mut *mut ffi::RawWork, *mut *mut std::ffi::c_char) -> i32,
    ) -> Result<Pending<'_>> {
        for (i, t) in tensors.iter().enumerate() {
            if let Some(problem) = self.unfit(t) {
                return Err(Error::Invalid {
                    context: self.context(&what),
                    problem: format!("tensor {i}: {problem}"),
                });
            }
        }
        self.start_raw(what, tensors.len(), |i, out, err| {
            op(tensors[i].as_ptr(), out, err)
        })
    }

    /// Why `t` cannot take part in a collective of this backend, if it cannot.
    fn unfit(&self, t: &Tensor) -> Option<String> {
        if !t.defined() {
            return Some("undefined tensor".into());
        }
        let device = t.device();
        let right_device = match self.backend() {
            Backend::Gloo => device == Device::Cpu,
            Backend::Nccl => matches!(device, Device::Cuda(_)),
        };
        if !right_device {
            return Some(format!(
                "on {device:?}, which the {} backend does not serve",
                self.backend().name()
            ));
        }
        if t.is_sparse() {
            return Some("sparse tensors are not supported".into());
        }
        if !t.is_contiguous() {
            return Some(format!(
                "not contiguous (shape {:?}, stride {:?})",
                t.size(),
                t.stride()
            ));
        }
        None
    }

    /// Starts `count` c10d operations through `op(i, ..)`.
    fn start_raw(
        &self,
        what: String,
        count: usize,
        mut op: impl FnMut(usize, *mut *mut ffi::RawWork, *mut *mut std::ffi::c_char) -> i32,
    ) -> Result<Pending<'_>> {
        let context = self.context(&what);
        self.check_usable(&context)?;
        let mut pending = Pending {
            group: self,
            what,
            works: Vec::with_capacity(count),
            started: Instant::now(),
        };
        for i in 0..count {
            let mut raw = std::ptr::null_mut();
            if let Err(cause) = ffi::call(|err| op(i, &mut raw, err)) {
                let error = Error::C10d {
                    context: format!("{context}: starting operation {i}"),
                    cause,
                };
                // Operations 0..i are under way on this rank: the ranks no
                // longer agree on what runs next.
                self.mark_broken(&error);
                return Err(error);
            }
            pending
                .works
                .push(NonNull::new(raw).expect("the shim returned success with a null work"));
        }
        Ok(pending)
    }
}

impl Pending<'_> {
    /// Waits until every collective completed, or fails once the group's
    /// timeout has passed since they were started. A failure (a peer that
    /// left, a timeout) leaves the group refusing further collectives.
    pub fn wait(mut self) -> Result<()> {
        let group = self.group;
        let timeout = group.timeout();
        let deadline = self.started + timeout;
        let works = std::mem::take(&mut self.works);
        let mut result = Ok(());
        for (i, work) in works.iter().enumerate() {
            if result.is_err() {
                break;
            }
            let left = deadline.saturating_duration_since(Instant::now());
            // c10d reads 0 as "forever": past the deadline, only look.
            let ms = i64::try_from(left.as_millis()).unwrap_or(i64::MAX).max(1);
            if let Err(cause) =
                ffi::call(|err| unsafe { ffi::nezha_work_wait(work.as_ptr(), ms, err) })
            {
                let error = Error::C10d {
                    context: format!(
                        "{} failed on operation {i} of {} after {:.2?} (timeout {timeout:?})",
                        group.context(&self.what),
                        works.len(),
                        self.started.elapsed()
                    ),
                    cause,
                };
                group.mark_broken(&error);
                result = Err(error);
            }
        }
        free(&works);
        result
    }

    /// How long ago the collectives were started.
    pub fn elapsed(&self) -> Duration {
        self.started.elapsed()
    }
}

impl Drop for Pending<'_> {
    fn drop(&mut self) {
        free(&self.works);
    }
}

fn free(works: &[NonNull<ffi::RawWork>]) {
    for work in works {
        // SAFETY: each handle came from the shim and is freed once (`wait`
        // takes them out of `self` before Drop runs).
        unsafe { ffi::nezha_work_free(work.as_ptr()) }
    }
}
