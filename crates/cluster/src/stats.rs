//! A cluster node's counters.

use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};

use rgost_forward::DropReason;

/// Counters of a cluster node, updated by links and the registry.
#[derive(Debug, Default)]
pub struct Stats {
    packets_sent: AtomicU64,
    bytes_sent: AtomicU64,
    packets_received: AtomicU64,
    bytes_received: AtomicU64,
    drops: [AtomicU64; DropReason::COUNT],
    links_refused: AtomicU64,
    registry_up: AtomicBool,
    registry_errors: AtomicU64,
    records_written: AtomicU64,
    remote_hosts: AtomicUsize,
    lookups: AtomicU64,
}

/// The counters at one moment.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Totals {
    /// Packets written to node links.
    pub packets_sent: u64,
    /// Their bytes.
    pub bytes_sent: u64,
    /// Packets read from node links.
    pub packets_received: u64,
    /// Their bytes.
    pub bytes_received: u64,
    /// Packets dropped on the way to or from other nodes, by reason ([`DropReason::index`]).
    pub drops: [u64; DropReason::COUNT],
    /// Link connections closed because the other end did not prove the secret.
    pub links_refused: u64,
    /// Outgoing links up now.
    pub links_up: usize,
    /// Whether the registry is reachable now.
    pub registry_up: bool,
    /// Failed registry operations (each is retried).
    pub registry_errors: u64,
    /// Records written to the registry (registrations, renewals excluded).
    pub records_written: u64,
    /// Hosts registered on other nodes, as known here.
    pub remote_hosts: usize,
    /// Lookups of hosts not known here.
    pub lookups: u64,
}

impl Totals {
    /// Packets dropped for `reason`.
    pub fn drops(&self, reason: DropReason) -> u64 {
        self.drops.get(reason.index()).copied().unwrap_or(0)
    }
}

fn add(counter: &AtomicU64, n: u64) {
    if n > 0 {
        counter.fetch_add(n, Ordering::Relaxed);
    }
}

impl Stats {
    /// Packets written to a link.
    pub(crate) fn sent(&self, packets: u64, bytes: u64) {
        add(&self.packets_sent, packets);
        add(&self.bytes_sent, bytes);
    }

    /// Packets read from a link.
    pub(crate) fn received(&self, packets: u64, bytes: u64) {
        add(&self.packets_received, packets);
        add(&self.bytes_received, bytes);
    }

    /// One packet dropped.
    pub(crate) fn dropped(&self, reason: DropReason) {
        self.drops_n(reason, 1);
    }

    /// `n` packets dropped.
    pub(crate) fn drops_n(&self, reason: DropReason, n: u64) {
        if let Some(counter) = self.drops.get(reason.index()) {
            add(counter, n);
        }
    }

    pub(crate) fn link_refused(&self) {
        add(&self.links_refused, 1);
    }

    pub(crate) fn registry_up(&self, up: bool) {
        self.registry_up.store(up, Ordering::Relaxed);
    }

    pub(crate) fn registry_error(&self) {
        add(&self.registry_errors, 1);
    }

    pub(crate) fn written(&self, n: u64) {
        add(&self.records_written, n);
    }

    pub(crate) fn remote_hosts(&self, n: usize) {
        self.remote_hosts.store(n, Ordering::Relaxed);
    }

    pub(crate) fn lookup(&self) {
        add(&self.lookups, 1);
    }

    /// The counters now, with `links_up` counted by the caller.
    pub fn totals(&self, links_up: usize) -> Totals {
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        let mut drops = [0; DropReason::COUNT];
        for (sum, counter) in drops.iter_mut().zip(&self.drops) {
            *sum = get(counter);
        }
        Totals {
            packets_sent: get(&self.packets_sent),
            bytes_sent: get(&self.bytes_sent),
            packets_received: get(&self.packets_received),
            bytes_received: get(&self.bytes_received),
            drops,
            links_refused: get(&self.links_refused),
            links_up,
            registry_up: self.registry_up.load(Ordering::Relaxed),
            registry_errors: get(&self.registry_errors),
            records_written: get(&self.records_written),
            remote_hosts: self.remote_hosts.load(Ordering::Relaxed),
            lookups: get(&self.lookups),
        }
    }
}
