//! Counters of a reloader's reads, for metrics: how many reads of each
//! source worked or failed, and when the last good one was.

use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use tokio::time::Instant;

/// The sources a reloader reads, in the order of [`ReloadStats::snapshot`].
pub const SOURCE_KINDS: [&str; 3] = ["file", "redis", "http"];

/// A reloader's counters; shared (in an `Arc`) with whoever reports them.
#[derive(Debug, Default)]
pub struct ReloadStats {
    ok: [AtomicU64; 3],
    failed: [AtomicU64; 3],
    last_good: Mutex<[Option<Instant>; 3]>,
}

/// One source's counters at one moment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SourceCounts {
    /// `file`, `redis` or `http`.
    pub source: &'static str,
    /// Reads that gave valid entries.
    pub ok: u64,
    /// Reads that failed (or gave no valid entry).
    pub failed: u64,
    /// How long ago the last good read was, if there was one.
    pub last_good_age: Option<Duration>,
}

impl ReloadStats {
    pub(crate) fn record(&self, index: usize, ok: bool) {
        let counters = if ok { &self.ok } else { &self.failed };
        if let Some(counter) = counters.get(index) {
            counter.fetch_add(1, Ordering::Relaxed);
        }
        if ok {
            let mut last = self.last_good.lock().unwrap_or_else(|p| p.into_inner());
            if let Some(slot) = last.get_mut(index) {
                *slot = Some(Instant::now());
            }
        }
    }

    /// The counters of the sources that were read at least once.
    pub fn snapshot(&self) -> Vec<SourceCounts> {
        let last = *self.last_good.lock().unwrap_or_else(|p| p.into_inner());
        SOURCE_KINDS
            .iter()
            .enumerate()
            .map(|(i, source)| SourceCounts {
                source,
                ok: self.ok.get(i).map_or(0, |c| c.load(Ordering::Relaxed)),
                failed: self.failed.get(i).map_or(0, |c| c.load(Ordering::Relaxed)),
                last_good_age: last.get(i).copied().flatten().map(|at| at.elapsed()),
            })
            .filter(|counts| counts.ok + counts.failed > 0)
            .collect()
    }
}
