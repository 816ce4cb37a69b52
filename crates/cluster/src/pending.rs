//! Packets for a host this node does not know, held while the registry is
//! asked where the host is, and the hosts known to be nowhere.
//!
//! As with plugin routes in the forwarding core: the packet path never
//! waits, one lookup per host runs at a time, a few packets wait for its
//! answer and the rest are dropped; an answer of "nowhere" is remembered
//! for the cache expiration so a flood to an unknown host costs no lookups.
//! No I/O, no clock.

use std::collections::HashMap;
use std::time::Duration;

use bytes::Bytes;
use rgost_forward::DropReason;
use tokio::time::Instant;

use crate::mirror::Key;

/// Packets held per host while its lookup runs.
pub const MAX_HELD_PER_HOST: usize = 4;
/// Lookups running at once; more misses are dropped.
pub const MAX_LOOKUPS: usize = 256;
/// Hosts remembered as nowhere.
const MAX_ABSENT: usize = 65_536;
/// A lookup unanswered for this long is given up.
const LOOKUP_MAX_AGE: Duration = Duration::from_secs(10);

/// What to do with a packet for an unknown host.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Miss {
    /// Held; start a lookup for the host.
    Start,
    /// Held; a lookup runs already.
    Held,
    /// Dropped.
    Drop(DropReason),
}

/// Held packets and hosts known to be nowhere.
#[derive(Debug, Default)]
pub struct Pending {
    lookups: HashMap<Key, (Vec<Bytes>, Instant)>,
    absent: HashMap<Key, Instant>,
}

impl Pending {
    /// Nothing held.
    pub fn new() -> Pending {
        Pending::default()
    }

    /// A packet for `key`, which the core does not know.
    pub fn miss(&mut self, key: &Key, packet: Bytes, now: Instant) -> Miss {
        if let Some(until) = self.absent.get(key) {
            if *until > now {
                return Miss::Drop(DropReason::NoHost);
            }
            self.absent.remove(key);
        }
        if let Some((held, since)) = self.lookups.get_mut(key) {
            if now.saturating_duration_since(*since) < LOOKUP_MAX_AGE {
                if held.len() >= MAX_HELD_PER_HOST {
                    return Miss::Drop(DropReason::PluginPendingFull);
                }
                held.push(packet);
                return Miss::Held;
            }
            // Given up: start again.
            *held = vec![packet];
            *since = now;
            return Miss::Start;
        }
        if self.lookups.len() >= MAX_LOOKUPS {
            return Miss::Drop(DropReason::PluginPendingFull);
        }
        self.lookups.insert(key.clone(), (vec![packet], now));
        Miss::Start
    }

    /// The lookup for `key` answered: returns the packets held. With
    /// `found` false the host is remembered as nowhere until `now + ttl`.
    pub fn answered(&mut self, key: &Key, found: bool, now: Instant, ttl: Duration) -> Vec<Bytes> {
        if !found {
            if self.absent.len() >= MAX_ABSENT {
                self.absent.retain(|_, until| *until > now);
            }
            if self.absent.len() < MAX_ABSENT {
                self.absent.insert(key.clone(), now + ttl);
            }
        }
        self.lookups.remove(key).map(|(held, _)| held).unwrap_or_default()
    }

    /// The host registered somewhere (or here): it is no longer nowhere.
    pub fn known(&mut self, key: &Key) {
        self.absent.remove(key);
    }

    /// Lookups running.
    pub fn running(&self) -> usize {
        self.lookups.len()
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use rgost_relay::TunnelId;

    use super::*;

    fn key(h: &str) -> Key {
        (TunnelId::ZERO, Arc::from(h))
    }

    #[tokio::test(start_paused = true)]
    async fn a_few_wait_the_rest_drop_and_nowhere_is_remembered() {
        let mut p = Pending::new();
        let t = Instant::now();
        let ttl = Duration::from_secs(1);
        assert_eq!(p.miss(&key("h"), Bytes::from_static(b"1"), t), Miss::Start);
        for _ in 1..MAX_HELD_PER_HOST {
            assert_eq!(p.miss(&key("h"), Bytes::from_static(b"2"), t), Miss::Held);
        }
        assert_eq!(p.miss(&key("h"), Bytes::from_static(b"3"), t), Miss::Drop(DropReason::PluginPendingFull));
        assert_eq!(p.answered(&key("h"), false, t, ttl).len(), MAX_HELD_PER_HOST);
        assert_eq!(p.miss(&key("h"), Bytes::new(), t + Duration::from_millis(999)), Miss::Drop(DropReason::NoHost));
        assert_eq!(p.miss(&key("h"), Bytes::new(), t + ttl), Miss::Start, "asked again after the expiration");
        assert_eq!(p.answered(&key("h"), true, t + ttl, ttl).len(), 1);
        assert_eq!(p.miss(&key("h"), Bytes::new(), t + ttl), Miss::Start, "found: not remembered as nowhere");
        p.known(&key("h"));
    }

    #[tokio::test(start_paused = true)]
    async fn lookups_are_bounded_and_given_up() {
        let mut p = Pending::new();
        let t = Instant::now();
        for i in 0..MAX_LOOKUPS {
            assert_eq!(p.miss(&key(&i.to_string()), Bytes::new(), t), Miss::Start);
        }
        assert_eq!(p.miss(&key("more"), Bytes::new(), t), Miss::Drop(DropReason::PluginPendingFull));
        assert_eq!(p.miss(&key("0"), Bytes::new(), t + LOOKUP_MAX_AGE), Miss::Start, "a stuck lookup starts again");
        assert_eq!(p.running(), MAX_LOOKUPS);
    }
}
