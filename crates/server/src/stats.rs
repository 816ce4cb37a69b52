//! Counters. The packet path only touches counters of its own connection,
//! once per batch; totals are summed when someone asks ([`crate::Server::totals`]).

use std::collections::HashMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::SystemTime;

use rgost_relay::{Status, TunnelId};
use tokio::time::Instant;

pub use rgost_forward::DropReason;

/// Namespaces whose closed connections' traffic is remembered apart; the
/// rest is added up under the zero id (a client can make up any number of
/// router ids).
const RETIRED_NAMESPACES: usize = 10_000;

/// One connection's counters.
#[derive(Debug)]
pub struct ConnStats {
    /// When it was registered (wall clock, for status pages).
    pub since: SystemTime,
    /// When it was registered (for durations).
    pub started: Instant,
    packets_in: AtomicU64,
    bytes_in: AtomicU64,
    /// Of the packets in: GSO frames (super-packets of rgost peers).
    gso_in: AtomicU64,
    packets_forwarded: AtomicU64,
    bytes_forwarded: AtomicU64,
    packets_out: AtomicU64,
    bytes_out: AtomicU64,
    /// Packets it sent that were dropped, by reason.
    drops: [AtomicU64; DropReason::COUNT],
    /// Packets for it that were dropped (its queue or budgets were full).
    dropped_to: AtomicU64,
    /// Plugin route answers its reader found cached.
    plugin_cache_hits: AtomicU64,
}

impl Default for ConnStats {
    fn default() -> Self {
        ConnStats {
            since: SystemTime::now(),
            started: Instant::now(),
            packets_in: AtomicU64::new(0),
            bytes_in: AtomicU64::new(0),
            gso_in: AtomicU64::new(0),
            packets_forwarded: AtomicU64::new(0),
            bytes_forwarded: AtomicU64::new(0),
            packets_out: AtomicU64::new(0),
            bytes_out: AtomicU64::new(0),
            drops: Default::default(),
            dropped_to: AtomicU64::new(0),
            plugin_cache_hits: AtomicU64::new(0),
        }
    }
}

fn add(counter: &AtomicU64, n: u64) {
    if n > 0 {
        counter.fetch_add(n, Ordering::Relaxed);
    }
}

fn get(counter: &AtomicU64) -> u64 {
    counter.load(Ordering::Relaxed)
}

impl ConnStats {
    /// Counts one batch read from the connection (packets, bytes, GSO
    /// frames among them) and what became of it.
    pub fn batch(&self, read: (u64, u64, u64), forwarded: (u64, u64), drops: &DropCounts) {
        add(&self.packets_in, read.0);
        add(&self.bytes_in, read.1);
        add(&self.gso_in, read.2);
        add(&self.packets_forwarded, forwarded.0);
        add(&self.bytes_forwarded, forwarded.1);
        for (counter, n) in self.drops.iter().zip(drops.0) {
            add(counter, n);
        }
    }

    /// Counts packets written to the connection.
    pub fn written(&self, packets: u64, bytes: u64) {
        add(&self.packets_out, packets);
        add(&self.bytes_out, bytes);
    }

    /// Counts packets for this connection that were dropped.
    pub fn dropped_to(&self, n: u64) {
        add(&self.dropped_to, n);
    }

    /// Counts plugin answers found cached (taken from the reader's cache once per batch).
    pub fn plugin_cache_hits(&self, n: u64) {
        add(&self.plugin_cache_hits, n);
    }

    /// The counters now.
    pub fn totals(&self) -> Totals {
        let mut totals = Totals {
            packets_in: get(&self.packets_in),
            bytes_in: get(&self.bytes_in),
            gso_in: get(&self.gso_in),
            packets_forwarded: get(&self.packets_forwarded),
            bytes_forwarded: get(&self.bytes_forwarded),
            packets_out: get(&self.packets_out),
            bytes_out: get(&self.bytes_out),
            dropped_to: get(&self.dropped_to),
            plugin_cache_hits: get(&self.plugin_cache_hits),
            ..Totals::default()
        };
        for (sum, counter) in totals.drops.iter_mut().zip(&self.drops) {
            *sum = get(counter);
        }
        totals
    }
}

/// Counter values: of one connection, or summed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Totals {
    /// Packets read from clients.
    pub packets_in: u64,
    /// Their bytes (IP packets, frame headers excluded).
    pub bytes_in: u64,
    /// Of the packets in: GSO frames (each a super-packet of many segments).
    pub gso_in: u64,
    /// Packets queued for another connection.
    pub packets_forwarded: u64,
    /// Their bytes.
    pub bytes_forwarded: u64,
    /// Packets written to clients.
    pub packets_out: u64,
    /// Their bytes.
    pub bytes_out: u64,
    /// Packets dropped, by reason ([`DropReason::index`]).
    pub drops: [u64; DropReason::COUNT],
    /// Packets for a connection dropped at its queue (also in `drops`, by reason).
    pub dropped_to: u64,
    /// Plugin route answers found cached.
    pub plugin_cache_hits: u64,
}

impl Totals {
    /// Packets dropped for `reason`.
    pub fn drops(&self, reason: DropReason) -> u64 {
        self.drops.get(reason.index()).copied().unwrap_or(0)
    }

    /// `(name, count)` for every drop reason.
    pub fn drop_counts(&self) -> impl Iterator<Item = (&'static str, u64)> + '_ {
        DropReason::ALL.iter().map(|r| (r.name(), self.drops(*r)))
    }

    /// Adds `other` in.
    pub fn add(&mut self, other: &Totals) {
        self.packets_in += other.packets_in;
        self.bytes_in += other.bytes_in;
        self.gso_in += other.gso_in;
        self.packets_forwarded += other.packets_forwarded;
        self.bytes_forwarded += other.bytes_forwarded;
        self.packets_out += other.packets_out;
        self.bytes_out += other.bytes_out;
        self.dropped_to += other.dropped_to;
        self.plugin_cache_hits += other.plugin_cache_hits;
        for (sum, n) in self.drops.iter_mut().zip(other.drops) {
            *sum += n;
        }
    }
}

/// Drops counted during one batch, added to a connection's counters once.
#[derive(Debug, Default, Clone, Copy)]
pub struct DropCounts(pub(crate) [u64; DropReason::COUNT]);

impl DropCounts {
    /// Counts one drop.
    pub fn add(&mut self, reason: DropReason) {
        self.add_n(reason, 1);
    }

    /// Counts `n` drops.
    pub fn add_n(&mut self, reason: DropReason, n: u64) {
        if let Some(count) = self.0.get_mut(reason.index()) {
            *count += n;
        }
    }

    /// Drops of `reason` counted.
    pub fn get(&self, reason: DropReason) -> u64 {
        self.0.get(reason.index()).copied().unwrap_or(0)
    }
}

/// Service-wide counters: handshakes, and the traffic of connections that
/// have closed (live connections keep their own, see [`ConnStats`]).
#[derive(Debug, Default)]
pub struct Stats {
    accepted: AtomicU64,
    refused: AtomicU64,
    refused_by_status: [AtomicU64; 9],
    rate_limited: AtomicU64,
    retired: Mutex<Retired>,
}

#[derive(Debug, Default)]
struct Retired {
    totals: Totals,
    by_namespace: HashMap<TunnelId, Totals>,
}

impl Stats {
    /// Counts an accepted handshake.
    pub fn accepted(&self) {
        add(&self.accepted, 1);
    }

    /// Counts a connection that got no further than its handshake; `status`
    /// is the refusal sent, if one was (a malformed request gets none).
    pub fn refused(&self, status: Option<Status>) {
        add(&self.refused, 1);
        if let Some(counter) = status.and_then(|s| self.refused_by_status.get(usize::from(s.code()))) {
            add(counter, 1);
        }
    }

    /// Counts a connection closed at accept by the service's rate limiter
    /// (also counted by [`Stats::refused`]).
    pub fn rate_limited(&self) {
        add(&self.rate_limited, 1);
    }

    /// Connections closed at accept by the rate limiter so far.
    pub fn rate_limited_total(&self) -> u64 {
        get(&self.rate_limited)
    }

    /// Handshakes accepted so far.
    pub fn accepted_total(&self) -> u64 {
        get(&self.accepted)
    }

    /// Connections refused or failed before or in their handshake so far.
    pub fn refused_total(&self) -> u64 {
        get(&self.refused)
    }

    /// Refusals answered with `status` so far.
    pub fn refused_with(&self, status: Status) -> u64 {
        self.refused_by_status.get(usize::from(status.code())).map_or(0, get)
    }

    /// Adds the counters of a connection that closed (or of packets that
    /// belong to none, such as those held for a plugin lookup).
    pub fn retire(&self, namespace: TunnelId, totals: &Totals) {
        let mut retired = self.retired.lock().unwrap_or_else(|p| p.into_inner());
        retired.totals.add(totals);
        let full = retired.by_namespace.len() >= RETIRED_NAMESPACES;
        let key = if full && !retired.by_namespace.contains_key(&namespace) { TunnelId::ZERO } else { namespace };
        retired.by_namespace.entry(key).or_default().add(totals);
    }

    /// The closed connections' counters, in total and by namespace.
    pub fn retired(&self) -> (Totals, HashMap<TunnelId, Totals>) {
        let retired = self.retired.lock().unwrap_or_else(|p| p.into_inner());
        (retired.totals, retired.by_namespace.clone())
    }
}
