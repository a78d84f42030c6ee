//! Allocator tuning for the forward pass.
//!
//! candle allocates a fresh buffer for every tensor op. glibc's malloc hands
//! every freed buffer above its mmap threshold (at most 32 MB) back to the
//! kernel, and trims the heap top above 128 KB–64 MB, so the next op's
//! buffer of the same size is mapped again and every page of it faults in
//! and is zeroed by the kernel: a large share of the forward pass's wall
//! time on long inputs (figures in docs/hardening.md).
//!
//! [`tune`] raises both thresholds to 1 GiB, so freed buffers stay in the
//! heap and are reused. Only performance changes: allocation results, and so
//! every number the decoder computes, are unaffected. Memory is reused, not
//! held twice, but heap fragmentation can raise the peak on very long inputs
//! (docs/hardening.md). The process keeps up to its peak working set mapped
//! after a pass, as jemalloc/mimalloc do.
//!
//! A library does not change its process's allocator: binaries call
//! [`tune`] once at start (`attnscope`'s `main`, the Python module's init,
//! the benchmarks). Set `ATTNSCOPE_MALLOC=system` to keep glibc's defaults.
//! A no-op off glibc.

use std::sync::Once;

static TUNE: Once = Once::new();

/// Environment variable that, set to `system`, keeps the allocator's defaults.
pub const ENV: &str = "ATTNSCOPE_MALLOC";

/// Keeps freed tensor buffers in the heap (see the module docs). Idempotent;
/// returns whether this call changed glibc's settings (only the first can).
pub fn tune() -> bool {
    let mut changed = false;
    TUNE.call_once(|| {
        if std::env::var(ENV).is_ok_and(|v| v == "system") {
            return;
        }
        changed = set_thresholds();
    });
    changed
}

#[cfg(all(target_os = "linux", target_env = "gnu"))]
fn set_thresholds() -> bool {
    const ONE_GIB: libc::c_int = 1 << 30;
    // SAFETY: mallopt only changes malloc's tuning parameters; it is
    // thread-safe in glibc and takes plain integers.
    unsafe { libc::mallopt(libc::M_MMAP_THRESHOLD, ONE_GIB) == 1 && libc::mallopt(libc::M_TRIM_THRESHOLD, ONE_GIB) == 1 }
}

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
fn set_thresholds() -> bool {
    false
}
