//! Hands the memory glibc's malloc keeps after it is freed back to the system, every
//! few seconds, while a pipeline runs.
//!
//! glibc's mmap threshold rises to the largest mapped block freed (up to 32 MiB), so the
//! batches, pages and buffers of a few MiB that the pipeline frees all the time are then
//! carved from its heaps, and the freed room stays resident: on a long run the resident
//! set climbs while the live heap stays level (docs/performance.md, "What grows").
//! `malloc_trim(0)` gives back every whole free page of every arena.

use std::time::Duration;

/// Starts a thread that trims glibc's heaps every `every`; nothing on other allocators
/// (jemalloc with the `jemalloc` feature, musl, macOS), which do not keep memory so.
pub(crate) fn start(every: Duration) {
    #[cfg(all(target_os = "linux", target_env = "gnu", not(feature = "jemalloc")))]
    {
        let spawned = std::thread::Builder::new()
            .name("malloc-trim".into())
            .spawn(move || {
                loop {
                    std::thread::sleep(every);
                    trim();
                }
            });
        if let Err(e) = spawned {
            tracing::warn!(error = %e, "cannot start the thread that trims the heap: memory freed is kept");
        }
    }
    #[cfg(not(all(target_os = "linux", target_env = "gnu", not(feature = "jemalloc"))))]
    let _ = every;
}

#[cfg(all(target_os = "linux", target_env = "gnu", not(feature = "jemalloc")))]
#[expect(
    unsafe_code,
    reason = "malloc_trim is C; it takes no pointer and has no precondition"
)]
fn trim() {
    // SAFETY: malloc_trim takes a size and locks each arena itself while it trims it.
    unsafe {
        libc::malloc_trim(0);
    }
}
