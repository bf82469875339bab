//! The process's own resources: its memory (for `/debug`, `/metrics`, `analyze` and the
//! store benchmark) and its open-file limit. A leaf: nothing of the system.

/// The process's peak resident set size (VmHWM), in bytes.
pub fn peak_rss_bytes() -> u64 {
    proc_status_bytes("VmHWM:")
}

/// The process's current resident set size (VmRSS), in bytes.
pub fn rss_bytes() -> u64 {
    proc_status_bytes("VmRSS:")
}

/// A kB field of /proc/self/status, in bytes (0 where there is no /proc).
fn proc_status_bytes(field: &str) -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with(field))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|kb| kb.parse::<u64>().ok())
        })
        .map_or(0, |kb| kb * 1024)
}

/// Tunes glibc's malloc for a long-running process whose allocations are freed out of
/// order (no-op where malloc is not glibc's; an explicit `MALLOC_*` environment setting wins):
/// - two arenas: by default it makes up to eight per core, and each of tapir's threads
///   (arbiters, the store, sled's pool, HTTP workers) ends up freeing into its own, which
///   kept about a fifth of a full-speed replay's resident memory as fragmentation (157
///   against 122 MB after two minutes); two cost no measurable throughput;
/// - a fixed 128 KiB mmap threshold: glibc raises it to the size of each large block it
///   frees (up to 32 MiB), after which buffers of that size (a store block and its
///   compression, a grown queue) are carved from the heap and leave holes it cannot give
///   back; kept fixed, they are mapped and unmapped whole. A full-speed replay with the
///   store averaged 80 instead of 105 MB over its first minute.
pub fn tune_malloc() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        let unset = |name| std::env::var_os(name).is_none();
        // SAFETY: mallopt only sets allocator parameters; called once at start.
        unsafe {
            if unset("MALLOC_ARENA_MAX") {
                libc::mallopt(libc::M_ARENA_MAX, 2);
            }
            if unset("MALLOC_MMAP_THRESHOLD_") {
                libc::mallopt(libc::M_MMAP_THRESHOLD, MMAP_THRESHOLD_BYTES);
            }
        }
    }
}

/// Allocations at least this large are mapped on their own (glibc's initial threshold).
#[cfg(all(target_os = "linux", target_env = "gnu"))]
const MMAP_THRESHOLD_BYTES: libc::c_int = 128 * 1024;

/// How often a server hands the heap's free pages back to the system.
pub const TRIM_HEAP_EVERY: std::time::Duration = std::time::Duration::from_secs(5);

/// Starts a thread that hands glibc's free heap pages back to the system every `every`
/// (`malloc_trim`). Batches, flows and records of a full-speed capture are freed in a
/// different order than they were made, so freed memory sits in holes that glibc keeps
/// resident: in a full-speed replay with the store, glibc held 34 MB free in its main arena
/// after 90 s, and one `malloc_trim` gave 16 MB of it back. A trim takes a few
/// milliseconds. Nothing to do where malloc is not glibc's.
pub fn trim_heap_periodically(every: std::time::Duration) {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        let spawned = std::thread::Builder::new()
            .name("heap-trim".into())
            .stack_size(64 * 1024)
            .spawn(move || {
                loop {
                    std::thread::sleep(every);
                    // SAFETY: malloc_trim only returns free memory; it is thread-safe.
                    unsafe {
                        libc::malloc_trim(0);
                    }
                }
            });
        if let Err(e) = spawned {
            eprintln!(
                "tapir: the heap trimmer did not start ({e}); memory is still freed, only less promptly"
            );
        }
    }
    #[cfg(not(all(target_os = "linux", target_env = "gnu")))]
    let _ = every;
}

/// Raises the open-file limit to its hard maximum (at most 65,536): every connection the
/// HTTP gate holds is a descriptor, and the default soft limit (1,024) is below what
/// `max_connections` allows.
pub fn raise_file_limit() {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: plain system calls on a struct of the right type.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) == 0 && limit.rlim_cur < limit.rlim_max
        {
            limit.rlim_cur = limit.rlim_max.min(65_536);
            libc::setrlimit(libc::RLIMIT_NOFILE, &limit);
        }
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn rss_is_read_and_the_peak_is_at_least_the_current() {
        let now = super::rss_bytes();
        assert!(now > 0);
        assert!(super::peak_rss_bytes() >= now);
    }
}
