//! Counters: drops by reason and connection events. Lock-free.

use std::sync::atomic::{AtomicU64, Ordering};

pub use rgost_forward::DropReason;

/// Server-wide counters.
#[derive(Debug, Default)]
pub struct Stats {
    drops: [AtomicU64; DropReason::COUNT],
    forwarded: AtomicU64,
    accepted: AtomicU64,
    refused: AtomicU64,
}

impl Stats {
    /// Counts one dropped packet.
    pub fn drop_packet(&self, reason: DropReason) {
        self.drop_packets(reason, 1);
    }

    /// Counts `n` dropped packets.
    pub fn drop_packets(&self, reason: DropReason, n: u64) {
        if let Some(counter) = self.drops.get(reason.index()) {
            counter.fetch_add(n, Ordering::Relaxed);
        }
    }

    /// Counts `n` forwarded packets (called once per read batch).
    pub fn forwarded(&self, n: u64) {
        self.forwarded.fetch_add(n, Ordering::Relaxed);
    }

    /// Counts an accepted handshake.
    pub fn accepted(&self) {
        self.accepted.fetch_add(1, Ordering::Relaxed);
    }

    /// Counts a refused handshake.
    pub fn refused(&self) {
        self.refused.fetch_add(1, Ordering::Relaxed);
    }

    /// Packets dropped for `reason` so far.
    pub fn drops(&self, reason: DropReason) -> u64 {
        self.drops.get(reason.index()).map_or(0, |c| c.load(Ordering::Relaxed))
    }

    /// Packets forwarded so far.
    pub fn forwarded_total(&self) -> u64 {
        self.forwarded.load(Ordering::Relaxed)
    }

    /// Handshakes accepted so far.
    pub fn accepted_total(&self) -> u64 {
        self.accepted.load(Ordering::Relaxed)
    }

    /// Handshakes refused so far.
    pub fn refused_total(&self) -> u64 {
        self.refused.load(Ordering::Relaxed)
    }

    /// `(name, count)` for every drop reason.
    pub fn drop_counts(&self) -> impl Iterator<Item = (&'static str, u64)> + '_ {
        DropReason::ALL.iter().map(|r| (r.name(), self.drops(*r)))
    }
}
