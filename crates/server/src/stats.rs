//! Counters: drops by reason and connection events. Lock-free.

use std::sync::atomic::{AtomicU64, Ordering};

/// Why a packet was not delivered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DropReason {
    /// A zero-length frame.
    Empty,
    /// Not an IPv4/IPv6 packet, or a truncated header.
    NotIp,
    /// No route for the destination in the namespace's router.
    NoRoute,
    /// The route's gateway host has no connection.
    NoHost,
    /// The receiving connection's queue is full (it is not reading fast enough).
    QueueFull,
    /// The receiving connection closed meanwhile.
    Closed,
    /// The source address does not route back to the sending host.
    Spoofed,
    /// A plugin lookup could not take the packet (too many held or in flight).
    Unresolved,
}

impl DropReason {
    const ALL: [DropReason; 8] = [
        DropReason::Empty,
        DropReason::NotIp,
        DropReason::NoRoute,
        DropReason::NoHost,
        DropReason::QueueFull,
        DropReason::Closed,
        DropReason::Spoofed,
        DropReason::Unresolved,
    ];

    /// A short name for logs and metrics.
    pub fn name(self) -> &'static str {
        match self {
            DropReason::Empty => "empty",
            DropReason::NotIp => "not_ip",
            DropReason::NoRoute => "no_route",
            DropReason::NoHost => "no_host",
            DropReason::QueueFull => "queue_full",
            DropReason::Closed => "closed",
            DropReason::Spoofed => "spoofed",
            DropReason::Unresolved => "unresolved",
        }
    }
}

/// Server-wide counters.
#[derive(Debug, Default)]
pub struct Stats {
    drops: [AtomicU64; 8],
    forwarded: AtomicU64,
    accepted: AtomicU64,
    refused: AtomicU64,
}

impl Stats {
    /// Counts one dropped packet.
    pub fn drop_packet(&self, reason: DropReason) {
        self.drops[reason as usize].fetch_add(1, Ordering::Relaxed);
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
        self.drops[reason as usize].load(Ordering::Relaxed)
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
