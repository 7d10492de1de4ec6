//! A c10d process group: which backend, which rank, and whether it still works.

use std::cell::RefCell;
use std::ffi::CString;
use std::ptr::NonNull;
use std::time::Duration;

use crate::error::{timeout_ms, Error, Result};
use crate::ffi;
use crate::store::Store;

/// Which collective library moves the bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Backend {
    /// Gloo over TCP, for CPU tensors.
    Gloo,
    /// NCCL, for CUDA tensors (the `nccl` feature).
    Nccl,
}

impl Backend {
    pub fn name(self) -> &'static str {
        match self {
            Backend::Gloo => "gloo",
            Backend::Nccl => "nccl",
        }
    }
}

/// The network device Gloo binds and advertises to its peers.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum GlooDevice {
    /// torch's default: the address this host's name resolves to, or the
    /// loopback address when it does not resolve.
    Default,
    /// A network interface by name, e.g. "eth0".
    Interface(String),
    /// The address a host name or literal address resolves to.
    Hostname(String),
}

impl GlooDevice {
    /// `GLOO_SOCKET_IFNAME` when set (as torch.distributed reads it; only its
    /// first interface, since one device is used), else [`GlooDevice::Default`].
    pub fn from_env() -> GlooDevice {
        match std::env::var("GLOO_SOCKET_IFNAME") {
            Ok(names) if !names.is_empty() => {
                GlooDevice::Interface(names.split(',').next().unwrap_or_default().to_string())
            }
            _ => GlooDevice::Default,
        }
    }
}

/// One rank's membership of a process group.
///
/// Collectives must be issued in the same order on every rank, which is why
/// the group is `Send` but not `Sync`: one thread issues them.
pub struct ProcessGroup {
    raw: NonNull<ffi::RawGroup>,
    backend: Backend,
    rank: usize,
    world_size: usize,
    timeout: Duration,
    /// The first collective failure, after which the group refuses work.
    broken: RefCell<Option<String>>,
}

// SAFETY: c10d backends take their own locks when work is enqueued; the
// handle only owns a reference. `RefCell` keeps the group !Sync.
unsafe impl Send for ProcessGroup {}

impl ProcessGroup {
    /// A Gloo group on [`GlooDevice::from_env`]. Every rank of `world_size`
    /// must call this with its own `rank` and a store joined at the same
    /// address; `timeout` bounds the connection setup and every collective.
    pub fn gloo(
        store: &Store,
        rank: usize,
        world_size: usize,
        timeout: Duration,
    ) -> Result<ProcessGroup> {
        Self::gloo_on(store, rank, world_size, timeout, &GlooDevice::from_env())
    }

    /// A Gloo group bound to `device`.
    pub fn gloo_on(
        store: &Store,
        rank: usize,
        world_size: usize,
        timeout: Duration,
        device: &GlooDevice,
    ) -> Result<ProcessGroup> {
        let context = format!(
            "rank {rank}/{world_size}: creating the gloo group on {device:?} \
             (store {}:{}, timeout {timeout:?})",
            store.addr(),
            store.port()
        );
        let ms = check_args(&context, rank, world_size, timeout)?;
        let (kind, name) = match device {
            GlooDevice::Default => (0, String::new()),
            GlooDevice::Interface(n) => (1, n.clone()),
            GlooDevice::Hostname(n) => (2, n.clone()),
        };
        let name = CString::new(name).map_err(|_| Error::Invalid {
            context: context.clone(),
            problem: "device name contains a NUL byte".into(),
        })?;
        let mut raw = std::ptr::null_mut();
        ffi::call(|err| unsafe {
            ffi::nezha_group_gloo_new(
                store.raw(),
                rank as i64,
                world_size as i64,
                ms,
                kind,
                name.as_ptr(),
                &mut raw,
                err,
            )
        })
        .map_err(|cause| Error::C10d { context, cause })?;
        Ok(Self::wrap(raw, Backend::Gloo, rank, world_size, timeout))
    }

    /// An NCCL group for CUDA tensors. Not exercised by the tests of this
    /// crate, which run without a GPU; it is known to compile and link only.
    #[cfg(feature = "nccl")]
    pub fn nccl(
        store: &Store,
        rank: usize,
        world_size: usize,
        timeout: Duration,
    ) -> Result<ProcessGroup> {
        let context = format!(
            "rank {rank}/{world_size}: creating the nccl group (store {}:{}, timeout {timeout:?})",
            store.addr(),
            store.port()
        );
        let ms = check_args(&context, rank, world_size, timeout)?;
        let mut raw = std::ptr::null_mut();
        ffi::call(|err| unsafe {
            ffi::nezha_group_nccl_new(
                store.raw(),
                rank as i64,
                world_size as i64,
                ms,
                &mut raw,
                err,
            )
        })
        .map_err(|cause| Error::C10d { context, cause })?;
        Ok(Self::wrap(raw, Backend::Nccl, rank, world_size, timeout))
    }

    fn wrap(
        raw: *mut ffi::RawGroup,
        backend: Backend,
        rank: usize,
        world_size: usize,
        timeout: Duration,
    ) -> ProcessGroup {
        ProcessGroup {
            raw: NonNull::new(raw).expect("the shim returned success with a null group"),
            backend,
            rank,
            world_size,
            timeout,
            broken: RefCell::new(None),
        }
    }

    pub fn backend(&self) -> Backend {
        self.backend
    }

    pub fn rank(&self) -> usize {
        self.rank
    }

    pub fn world_size(&self) -> usize {
        self.world_size
    }

    /// The bound on each call's collectives, counted from the call.
    pub fn timeout(&self) -> Duration {
        self.timeout
    }

    /// The first failure, if a collective of this group has failed.
    pub fn failure(&self) -> Option<String> {
        self.broken.borrow().clone()
    }

    pub(crate) fn raw(&self) -> *mut ffi::RawGroup {
        self.raw.as_ptr()
    }

    /// `Err(Broken)` once a collective has failed.
    pub(crate) fn check_usable(&self, context: &str) -> Result<()> {
        match &*self.broken.borrow() {
            Some(first) => Err(Error::Broken {
                context: context.to_string(),
                first: first.clone(),
            }),
            None => Ok(()),
        }
    }

    pub(crate) fn mark_broken(&self, error: &Error) {
        let mut broken = self.broken.borrow_mut();
        if broken.is_none() {
            *broken = Some(error.to_string());
        }
    }
}

fn check_args(context: &str, rank: usize, world_size: usize, timeout: Duration) -> Result<i64> {
    if world_size == 0 || i32::try_from(world_size).is_err() || rank >= world_size {
        return Err(Error::Invalid {
            context: context.to_string(),
            problem: format!("rank {rank} is not in 0..{world_size} (world size up to i32::MAX)"),
        });
    }
    timeout_ms(context, timeout)
}

impl Drop for ProcessGroup {
    fn drop(&mut self) {
        // SAFETY: `raw` came from the shim and is released once; work still
        // in flight holds its own references.
        unsafe { ffi::nezha_group_free(self.raw.as_ptr()) }
    }
}
