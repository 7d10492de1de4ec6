//! glibc's allocator, set for libtorch's pattern of use.
//!
//! Every training step frees and allocates again the same large
//! activation and gradient buffers. Above glibc's mmap threshold each is
//! handed back to the kernel when freed and page-faulted in again on the
//! next step, and the heap is trimmed after each; on the bundled CPU run
//! that was 19 s of system time in a 40 s run. A fixed threshold (which
//! also stops glibc raising it on its own) and a trim threshold of 1 GB
//! keep the buffers in the heap to be reused: the same run took 31 s with
//! 5 s of system time, for about 80 MB more resident memory
//! (docs/benchmarks.md).

/// Sets the thresholds; call once, first thing in `main`.
pub fn keep_freed_buffers() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only changes glibc's tuning parameters; it is called
    // before any other thread exists.
    unsafe {
        // The largest threshold glibc accepts on 64-bit (32 MB).
        libc::mallopt(libc::M_MMAP_THRESHOLD, 32 << 20);
        libc::mallopt(libc::M_TRIM_THRESHOLD, 1 << 30);
        libc::mallopt(libc::M_TOP_PAD, 256 << 20);
    }
}
