//! The shim's C ABI (shim/*.cpp). Every function returning `c_int` returns 0
//! on success and 1 on failure with `err` set to a malloc'd message.

use std::ffi::{c_char, c_int};
use torch_sys::C_tensor;

#[repr(C)]
pub(crate) struct RawStore {
    _private: [u8; 0],
}
#[repr(C)]
pub(crate) struct RawGroup {
    _private: [u8; 0],
}
#[repr(C)]
pub(crate) struct RawWork {
    _private: [u8; 0],
}
#[repr(C)]
pub(crate) struct RawHooks {
    _private: [u8; 0],
}

/// Called with the index of a parameter once backward added its gradient.
pub(crate) type ReadyFn = extern "C" fn(ctx: *mut std::ffi::c_void, index: i64);

extern "C" {
    pub(crate) fn nezha_c10d_free_string(s: *mut c_char);
    pub(crate) fn nezha_c10d_free_bytes(p: *mut u8);
    pub(crate) fn nezha_c10d_init_logging();

    pub(crate) fn nezha_store_new(
        host: *const c_char,
        port: u16,
        world_size: i64,
        is_master: c_int,
        timeout_ms: i64,
        out: *mut *mut RawStore,
        err: *mut *mut c_char,
    ) -> c_int;
    pub(crate) fn nezha_store_free(store: *mut RawStore);
    pub(crate) fn nezha_store_set(
        store: *mut RawStore,
        key: *const c_char,
        data: *const u8,
        len: usize,
        err: *mut *mut c_char,
    ) -> c_int;
    pub(crate) fn nezha_store_get(
        store: *mut RawStore,
        key: *const c_char,
        data: *mut *mut u8,
        len: *mut usize,
        err: *mut *mut c_char,
    ) -> c_int;

    pub(crate) fn nezha_group_gloo_new(
        store: *mut RawStore,
        rank: i64,
        world_size: i64,
        timeout_ms: i64,
        device_kind: c_int,
        device_name: *const c_char,
        out: *mut *mut RawGroup,
        err: *mut *mut c_char,
    ) -> c_int;
    #[cfg(feature = "nccl")]
    pub(crate) fn nezha_group_nccl_new(
        store: *mut RawStore,
        rank: i64,
        world_size: i64,
        timeout_ms: i64,
        out: *mut *mut RawGroup,
        err: *mut *mut c_char,
    ) -> c_int;
    pub(crate) fn nezha_group_free(group: *mut RawGroup);

    pub(crate) fn nezha_group_all_reduce_sum(
        group: *mut RawGroup,
        tensor: *const C_tensor,
        timeout_ms: i64,
        out: *mut *mut RawWork,
        err: *mut *mut c_char,
    ) -> c_int;
    pub(crate) fn nezha_group_broadcast(
        group: *mut RawGroup,
        tensor: *const C_tensor,
        root: i64,
        timeout_ms: i64,
        out: *mut *mut RawWork,
        err: *mut *mut c_char,
    ) -> c_int;
    pub(crate) fn nezha_group_barrier(
        group: *mut RawGroup,
        timeout_ms: i64,
        out: *mut *mut RawWork,
        err: *mut *mut c_char,
    ) -> c_int;

    pub(crate) fn nezha_work_wait(
        work: *mut RawWork,
        timeout_ms: i64,
        err: *mut *mut c_char,
    ) -> c_int;
    pub(crate) fn nezha_work_free(work: *mut RawWork);

    pub(crate) fn nezha_hooks_register(
        params: *const *const C_tensor,
        count: i64,
        ready: ReadyFn,
        ctx: *mut std::ffi::c_void,
        out: *mut *mut RawHooks,
        err: *mut *mut c_char,
    ) -> c_int;
    pub(crate) fn nezha_hooks_free(hooks: *mut RawHooks);
}

/// Runs one shim call and turns its error convention into `Err(message)`.
pub(crate) fn call(f: impl FnOnce(*mut *mut c_char) -> c_int) -> Result<(), String> {
    let mut err: *mut c_char = std::ptr::null_mut();
    if f(&mut err) == 0 {
        return Ok(());
    }
    if err.is_null() {
        // Only when malloc failed while copying the message.
        return Err("(the C++ error message could not be allocated)".into());
    }
    // SAFETY: a non-null `err` is a NUL-terminated string malloc'd by the shim
    // and owned by us from here on.
    let message = unsafe { std::ffi::CStr::from_ptr(err) }
        .to_string_lossy()
        .into_owned();
    unsafe { nezha_c10d_free_string(err) };
    Err(message)
}
