//! Hands the memory glibc's malloc keeps after it is freed back to the system, every
//! few seconds, while a pipeline runs.
//!
//! glibc's mmap threshold rises to the largest mapped block freed (up to 32 MiB), so the
//! batches, pages and buffers of a few MiB that the pipeline frees all the time are then
//! carved from its heaps, and the freed room stays resident: on a long run the resident
//! set climbs while the live heap stays level (docs/performance.md, "What grows").
//! `malloc_trim(0)` gives back every whole free page of every arena.
//!
//! With the trim thread keeping memory level, malloc need not give memory back at every
//! `free` as well: [`start`] also sets the thresholds that glibc otherwise reaches only
//! part of the way through a run (see [`THRESHOLDS`]), so that the room a batch frees is
//! used again by the next one instead of returned to the system and faulted back in,
//! page by page, a moment later.

use std::time::Duration;

/// The `mallopt` settings made with the trim thread: blocks from 32 MiB up are mapped
/// on their own (glibc's own ceiling for the threshold it raises as mapped blocks are
/// freed; setting it keeps it there from the start); free room at the top of a heap is
/// returned once it passes 64 MiB (glibc's default follows the mmap threshold, 128 KiB
/// at the start) and a heap grows 16 MiB beyond what it needs at a time. The trim thread
/// hands back whatever is kept every `pipeline.heap-trim-interval`. On the file job,
/// 20% fewer page faults and 1.5 to 3.5% less CPU (docs/performance.md, "Over the
/// line"). Not made when `GLIBC_TUNABLES` sets any `glibc.malloc.` tunable: the
/// operator's settings stand.
#[cfg(all(target_os = "linux", target_env = "gnu", not(feature = "jemalloc")))]
const THRESHOLDS: [(libc::c_int, libc::c_int); 3] = [
    (libc::M_MMAP_THRESHOLD, 32 << 20),
    (libc::M_TRIM_THRESHOLD, 64 << 20),
    (libc::M_TOP_PAD, 16 << 20),
];

/// Sets malloc's [`THRESHOLDS`] and starts a thread that trims glibc's heaps every
/// `every`; nothing on other allocators (jemalloc with the `jemalloc` feature, musl,
/// macOS), which do not keep memory so.
pub(crate) fn start(every: Duration) {
    #[cfg(all(target_os = "linux", target_env = "gnu", not(feature = "jemalloc")))]
    {
        if !operator_tuned(std::env::var("GLIBC_TUNABLES").ok().as_deref()) {
            for (param, value) in THRESHOLDS {
                if !set(param, value) {
                    tracing::warn!(
                        param,
                        value,
                        "glibc refused a malloc setting; its default stands"
                    );
                }
            }
        }
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

/// Whether `GLIBC_TUNABLES` (its value, if set) sets any of malloc's tunables.
#[cfg_attr(
    not(all(target_os = "linux", target_env = "gnu", not(feature = "jemalloc"))),
    allow(dead_code)
)]
fn operator_tuned(tunables: Option<&str>) -> bool {
    tunables.is_some_and(|t| t.split(':').any(|kv| kv.starts_with("glibc.malloc.")))
}

#[cfg(all(target_os = "linux", target_env = "gnu", not(feature = "jemalloc")))]
#[expect(
    unsafe_code,
    reason = "mallopt is C; it takes two integers and has no precondition"
)]
fn set(param: libc::c_int, value: libc::c_int) -> bool {
    // SAFETY: mallopt takes the arena lock itself; it returns 0 for a value it refuses.
    unsafe { libc::mallopt(param, value) == 1 }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_operators_malloc_tunables_are_left_alone() {
        assert!(!operator_tuned(None));
        assert!(!operator_tuned(Some("")));
        assert!(!operator_tuned(Some("glibc.pthread.rseq=0")));
        assert!(operator_tuned(Some("glibc.malloc.arena_max=1")));
        assert!(operator_tuned(Some(
            "glibc.pthread.rseq=0:glibc.malloc.trim_threshold=1"
        )));
    }

    #[cfg(all(target_os = "linux", target_env = "gnu", not(feature = "jemalloc")))]
    #[test]
    fn glibc_takes_every_threshold() {
        for (param, value) in THRESHOLDS {
            assert!(set(param, value), "mallopt({param}, {value}) refused");
        }
    }
}
