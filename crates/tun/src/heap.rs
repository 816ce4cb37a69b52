//! Giving the allocator's free memory back to the system.

/// Returns the allocator's free memory to the kernel wherever it lies.
///
/// glibc gives memory back by itself only from the top of a heap: one live
/// allocation there keeps everything freed below it resident, so after a
/// burst (megabytes queued for receivers that then left) a process can stay
/// at its peak size with the memory unused. Cheap when little is free; a
/// no-op with other C libraries.
#[allow(unsafe_code)] // the workspace denies it; this crate is where the platform's calls live
pub fn release_free_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: malloc_trim takes no pointers; it walks the allocator's own
    // free lists under the allocator's locks, so it is safe from any thread.
    unsafe {
        libc::malloc_trim(0);
    }
}

#[cfg(all(test, target_os = "linux", target_env = "gnu"))]
mod tests {
    use super::*;

    /// Resident memory of this process, in KiB.
    fn rss_kib() -> usize {
        let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
        status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .unwrap_or(0)
    }

    #[test]
    fn memory_freed_below_a_live_allocation_goes_back() {
        // On a thread of its own (its own heap): 48 MiB in read-buffer-sized
        // blocks, touched, then one small allocation above them that stays.
        let rss = std::thread::spawn(|| {
            let blocks: Vec<Vec<u8>> = (0..768).map(|i| vec![i as u8; 64 * 1024]).collect();
            let top = vec![1u8; 64 * 1024];
            drop(blocks);
            let freed = rss_kib();
            release_free_memory();
            let released = rss_kib();
            drop(top);
            (freed, released)
        })
        .join();
        let (freed, released) = rss.unwrap_or((0, 0));
        assert!(released + 32 * 1024 < freed, "resident memory went from {freed} KiB to only {released} KiB");
    }
}
