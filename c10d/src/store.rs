//! The TCPStore rendezvous: rank 0 serves it, every rank connects to it.

use std::ffi::CString;
use std::net::{SocketAddr, TcpStream, ToSocketAddrs};
use std::ptr::NonNull;
use std::time::{Duration, Instant};

use crate::error::{timeout_ms, Error, Result};
use crate::ffi;

/// A c10d `TCPStore`: where ranks meet and exchange small values.
pub struct Store {
    raw: NonNull<ffi::RawStore>,
    addr: String,
    port: u16,
    timeout: Duration,
}

// SAFETY: c10d::TCPStore serialises its client socket behind a mutex, and
// the handle is only an owning reference to it.
unsafe impl Send for Store {}
unsafe impl Sync for Store {}

impl Store {
    /// Serves (`is_master`) or joins the store at `addr:port`. The master waits
    /// until `world_size - 1` clients joined, a client retries connecting:
    /// both give up after `timeout`, which also bounds every later `get`.
    pub fn new(
        addr: &str,
        port: u16,
        world_size: usize,
        is_master: bool,
        timeout: Duration,
    ) -> Result<Store> {
        let context = if is_master {
            format!(
                "serving the TCPStore on {addr}:{port} for {world_size} ranks (timeout {timeout:?})"
            )
        } else {
            format!("joining the TCPStore at {addr}:{port} (world size {world_size}, timeout {timeout:?})")
        };
        let invalid = |problem: String| Error::Invalid {
            context: context.clone(),
            problem,
        };
        if world_size == 0 || i32::try_from(world_size).is_err() {
            return Err(invalid(format!(
                "world size {world_size} is not in 1..=i32::MAX"
            )));
        }
        let ms = timeout_ms(&context, timeout)?;
        static LOGGING: std::sync::Once = std::sync::Once::new();
        // SAFETY: no arguments; c10 only reads the environment.
        LOGGING.call_once(|| unsafe { ffi::nezha_c10d_init_logging() });
        if !is_master {
            wait_for_listener(addr, port, Instant::now() + timeout).map_err(invalid)?;
        }
        let host = CString::new(addr).map_err(|_| invalid("address contains a NUL byte".into()))?;
        let mut raw = std::ptr::null_mut();
        ffi::call(|err| unsafe {
            ffi::nezha_store_new(
                host.as_ptr(),
                port,
                world_size as i64,
                is_master as i32,
                ms,
                &mut raw,
                err,
            )
        })
        .map_err(|cause| Error::C10d {
            context: context.clone(),
            cause,
        })?;
        Ok(Store {
            raw: NonNull::new(raw).expect("the shim returned success with a null store"),
            addr: addr.to_string(),
            port,
            timeout,
        })
    }

    /// Sets `key` to `value` for every rank to read.
    pub fn set(&self, key: &str, value: &[u8]) -> Result<()> {
        let context = format!("setting store key {key:?} at {}:{}", self.addr, self.port);
        let k = self.key(&context, key)?;
        ffi::call(|err| unsafe {
            ffi::nezha_store_set(
                self.raw.as_ptr(),
                k.as_ptr(),
                value.as_ptr(),
                value.len(),
                err,
            )
        })
        .map_err(|cause| Error::C10d { context, cause })
    }

    /// The value of `key`, waiting up to the store's timeout for some rank to
    /// set it.
    pub fn get(&self, key: &str) -> Result<Vec<u8>> {
        let context = format!(
            "getting store key {key:?} at {}:{} (timeout {:?})",
            self.addr, self.port, self.timeout
        );
        let k = self.key(&context, key)?;
        let mut data: *mut u8 = std::ptr::null_mut();
        let mut len = 0usize;
        ffi::call(|err| unsafe {
            ffi::nezha_store_get(self.raw.as_ptr(), k.as_ptr(), &mut data, &mut len, err)
        })
        .map_err(|cause| Error::C10d { context, cause })?;
        // SAFETY: on success the shim hands over a malloc'd buffer of `len`
        // bytes (never null), which is freed right after the copy.
        let value = unsafe { std::slice::from_raw_parts(data, len) }.to_vec();
        unsafe { ffi::nezha_c10d_free_bytes(data) };
        Ok(value)
    }

    /// The address this store serves or joined.
    pub fn addr(&self) -> &str {
        &self.addr
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    pub fn timeout(&self) -> Duration {
        self.timeout
    }

    pub(crate) fn raw(&self) -> *mut ffi::RawStore {
        self.raw.as_ptr()
    }

    fn key(&self, context: &str, key: &str) -> Result<CString> {
        CString::new(key).map_err(|_| Error::Invalid {
            context: context.to_string(),
            problem: "key contains a NUL byte".into(),
        })
    }
}

impl Drop for Store {
    fn drop(&mut self) {
        // SAFETY: `raw` came from nezha_store_new and is released once. Groups
        // built on this store hold their own reference to it.
        unsafe { ffi::nezha_store_free(self.raw.as_ptr()) }
    }
}

/// Returns once something accepts TCP connections at `addr:port`, or says why
/// not at `deadline`.
///
/// c10d's client alone would overrun the timeout: after a connection attempt
/// that lasts the whole timeout it sleeps a random backoff and tries once
/// more. Waiting for the master's port here first keeps a rank that cannot
/// reach the master within its timeout, and c10d then connects at once.
fn wait_for_listener(addr: &str, port: u16, deadline: Instant) -> Result<(), String> {
    let mut last = String::from("no attempt finished");
    loop {
        // Resolved on each try: the master's name may only appear in DNS
        // once its node is up.
        let targets: Vec<SocketAddr> = match (addr, port).to_socket_addrs() {
            Ok(a) => a.collect(),
            Err(e) => {
                last = format!("cannot resolve {addr}: {e}");
                Vec::new()
            }
        };
        for target in targets {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                break;
            }
            match TcpStream::connect_timeout(&target, left.min(Duration::from_secs(1))) {
                Ok(_) => return Ok(()),
                Err(e) => last = format!("connecting to {target}: {e}"),
            }
        }
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(format!(
                "the master did not accept connections in time (last error: {last})"
            ));
        }
        std::thread::sleep(left.min(Duration::from_millis(100)));
    }
}
