//! Answers of a plugin router, cached per (namespace, address), and the
//! packets held while a lookup runs.
//!
//! The packet path never waits for a plugin: an address that is not cached
//! starts one lookup (concurrent misses join it), a few packets wait for its
//! answer and the rest are dropped. Both addresses of a packet go through
//! this cache: the destination for the route, and the source for the source
//! check. Every answer, "no route" included, is reused for the router's TTL.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;

/// Packets held per address while its lookup runs; more are dropped.
pub const MAX_HELD_PER_ADDRESS: usize = 4;
/// Bytes held per namespace while lookups run; more are dropped.
pub const MAX_HELD_BYTES: usize = 1 << 20;
/// Lookups running at once per namespace; misses beyond it are dropped.
pub const MAX_LOOKUPS_IN_FLIGHT: usize = 256;
/// Addresses cached per namespace.
pub const MAX_CACHED: usize = 65_536;
/// Addresses a reader keeps in its own cache before starting over.
const READER_CACHE_MAX: usize = 1024;
/// A lookup unanswered for this long is given up (its packets are dropped);
/// the connection code bounds every lookup well below it.
const PENDING_MAX_AGE: Duration = Duration::from_secs(60);

/// A plugin router as the core sees it: which one (answers of another
/// router are never reused) and how long its answers stay valid.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Plugin {
    /// Identifies the router; a namespace's cache is cleared when its router changes.
    pub key: u64,
    /// How long an answer is reused.
    pub ttl: Duration,
}

/// A packet held for a lookup, with the host that sent it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Held {
    /// The packet (a copy: it does not pin the reader's buffer).
    pub packet: Bytes,
    /// The sending connection's host name (for the source check).
    pub sender: Arc<str>,
}

/// A namespace's shared cache.
#[derive(Debug, Default)]
pub(crate) struct Answers {
    key: Option<u64>,
    entries: HashMap<IpAddr, Entry>,
    in_flight: usize,
    held_bytes: usize,
}

#[derive(Debug)]
enum Entry {
    Ready { gateway: Option<Arc<str>>, expires: Instant },
    Pending { held: Vec<Held>, since: Instant },
}

/// What the cache knows of one address.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Known {
    /// The gateway (or no route).
    Answer(Option<Arc<str>>),
    /// A lookup runs; `start` when this call created it (the caller must start it).
    Pending { start: bool },
    /// No lookup can be started now (too many in flight, cache full).
    Busy,
}

impl Answers {
    /// What is known of `addr` for router `plugin`; starts a lookup on a miss.
    pub(crate) fn query(&mut self, plugin: Plugin, addr: IpAddr, now: Instant) -> (Known, Option<Instant>) {
        self.switch_to(plugin.key);
        match self.entries.get(&addr) {
            Some(Entry::Ready { gateway, expires }) if *expires > now => {
                return (Known::Answer(gateway.clone()), Some(*expires));
            }
            Some(Entry::Pending { since, .. }) if now.saturating_duration_since(*since) < PENDING_MAX_AGE => {
                return (Known::Pending { start: false }, None);
            }
            _ => {}
        }
        if self.in_flight >= MAX_LOOKUPS_IN_FLIGHT {
            return (Known::Busy, None);
        }
        if self.entries.len() >= MAX_CACHED && !self.entries.contains_key(&addr) {
            self.evict(now);
            if self.entries.len() >= MAX_CACHED {
                return (Known::Busy, None);
            }
        }
        if let Some(Entry::Pending { held, .. }) =
            self.entries.insert(addr, Entry::Pending { held: Vec::new(), since: now })
        {
            // A lookup given up: its packets go.
            self.release(&held);
        } else {
            self.in_flight += 1;
        }
        (Known::Pending { start: true }, None)
    }

    /// Holds `held` until `addr`'s lookup answers; `false` when it cannot be held.
    pub(crate) fn hold(&mut self, addr: IpAddr, held: Held) -> bool {
        let bytes = held.packet.len();
        if self.held_bytes + bytes > MAX_HELD_BYTES {
            return false;
        }
        match self.entries.get_mut(&addr) {
            Some(Entry::Pending { held: list, .. }) if list.len() < MAX_HELD_PER_ADDRESS => {
                list.push(held);
                self.held_bytes += bytes;
                true
            }
            _ => false,
        }
    }

    /// Records the answer for `addr` and returns the packets held for it.
    pub(crate) fn answer(
        &mut self,
        plugin: Plugin,
        addr: IpAddr,
        gateway: Option<Arc<str>>,
        now: Instant,
    ) -> Vec<Held> {
        if self.key != Some(plugin.key) {
            // The namespace's router changed while the lookup ran: the answer is
            // stale, and the cache was cleared with the packets it held.
            return Vec::new();
        }
        let previous = self.entries.insert(addr, Entry::Ready { gateway, expires: now + plugin.ttl });
        match previous {
            Some(Entry::Pending { held, .. }) => {
                self.in_flight = self.in_flight.saturating_sub(1);
                self.release(&held);
                held
            }
            _ => Vec::new(),
        }
    }

    fn release(&mut self, held: &[Held]) {
        self.held_bytes = self.held_bytes.saturating_sub(held.iter().map(|h| h.packet.len()).sum());
    }

    fn switch_to(&mut self, key: u64) {
        if self.key != Some(key) {
            *self = Answers { key: Some(key), ..Answers::default() };
        }
    }

    fn evict(&mut self, now: Instant) {
        self.entries.retain(|_, e| match e {
            Entry::Ready { expires, .. } => *expires > now,
            Entry::Pending { .. } => true,
        });
    }
}

/// A reader's own cache of plugin answers in front of its namespace's, so
/// packets to a known address take no lock. Lives as long as the connection.
#[derive(Debug, Default)]
pub struct ReaderCache {
    key: Option<u64>,
    entries: HashMap<IpAddr, (Option<Arc<str>>, Instant)>,
    /// Addresses answered from a cache (this one or the namespace's) since
    /// the last [`ReaderCache::take_hits`]: counted here, where no other
    /// thread looks, and handed to the connection's counters once per batch.
    pub(crate) hits: u64,
}

impl ReaderCache {
    /// The cache hits counted since the last call.
    pub fn take_hits(&mut self) -> u64 {
        std::mem::take(&mut self.hits)
    }

    pub(crate) fn get(&mut self, key: u64, addr: IpAddr, now: Instant) -> Option<Option<Arc<str>>> {
        if self.key != Some(key) {
            self.key = Some(key);
            self.entries.clear();
            return None;
        }
        self.entries.get(&addr).filter(|(_, expires)| *expires > now).map(|(g, _)| g.clone())
    }

    pub(crate) fn put(&mut self, addr: IpAddr, gateway: Option<Arc<str>>, expires: Instant) {
        if self.entries.len() >= READER_CACHE_MAX {
            self.entries.clear();
        }
        self.entries.insert(addr, (gateway, expires));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const P: Plugin = Plugin { key: 1, ttl: Duration::from_secs(1) };

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    fn held(n: u8) -> Held {
        Held { packet: Bytes::from(vec![n; 100]), sender: Arc::from("h1") }
    }

    #[test]
    fn one_lookup_per_address_a_few_held_then_cached_for_the_ttl() {
        let t0 = Instant::now();
        let mut answers = Answers::default();
        let a = ip("10.0.0.2");
        assert_eq!(answers.query(P, a, t0).0, Known::Pending { start: true });
        assert_eq!(answers.query(P, a, t0).0, Known::Pending { start: false }, "joins the running lookup");
        for n in 0..MAX_HELD_PER_ADDRESS as u8 {
            assert!(answers.hold(a, held(n)));
        }
        assert!(!answers.hold(a, held(9)), "the fifth packet is dropped");
        let released = answers.answer(P, a, Some(Arc::from("h2")), t0);
        assert_eq!(released.len(), MAX_HELD_PER_ADDRESS);
        assert_eq!(answers.held_bytes, 0);
        assert_eq!(answers.in_flight, 0);
        let (known, expires) = answers.query(P, a, t0 + Duration::from_millis(999));
        assert_eq!(known, Known::Answer(Some(Arc::from("h2"))));
        assert_eq!(expires, Some(t0 + P.ttl));
        assert_eq!(answers.query(P, a, t0 + P.ttl).0, Known::Pending { start: true }, "expired");
    }

    #[test]
    fn lookups_in_flight_are_bounded() {
        let t0 = Instant::now();
        let mut answers = Answers::default();
        for i in 0..MAX_LOOKUPS_IN_FLIGHT as u32 {
            assert_eq!(answers.query(P, IpAddr::from(i.to_be_bytes()), t0).0, Known::Pending { start: true });
        }
        assert_eq!(answers.query(P, ip("200.0.0.1"), t0).0, Known::Busy);
        answers.answer(P, ip("0.0.0.0"), None, t0);
        assert_eq!(answers.query(P, ip("200.0.0.1"), t0).0, Known::Pending { start: true });
    }

    #[test]
    fn a_new_router_clears_the_cache_and_ignores_late_answers() {
        let t0 = Instant::now();
        let mut answers = Answers::default();
        let a = ip("10.0.0.2");
        answers.query(P, a, t0);
        answers.hold(a, held(1));
        let other = Plugin { key: 2, ..P };
        assert_eq!(answers.query(other, a, t0).0, Known::Pending { start: true });
        assert!(answers.answer(P, a, Some(Arc::from("old")), t0).is_empty(), "an answer of the old router");
        assert_eq!(answers.query(other, a, t0).0, Known::Pending { start: false });
    }

    #[test]
    fn a_lookup_never_answered_is_given_up() {
        let t0 = Instant::now();
        let mut answers = Answers::default();
        let a = ip("10.0.0.2");
        answers.query(P, a, t0);
        assert!(answers.hold(a, held(1)));
        assert_eq!(answers.query(P, a, t0 + PENDING_MAX_AGE).0, Known::Pending { start: true });
        assert_eq!(answers.held_bytes, 0);
        assert_eq!(answers.in_flight, 1);
    }
}
