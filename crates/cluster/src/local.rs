//! This node's own registrations, and what the registry must be told.
//!
//! The server reports every connection that registers or closes; this
//! module keeps them per (namespace, host) and marks the host dirty. The
//! registry then writes one record per dirty host: the newest connection's
//! sequence number (drawing numbers for connections that have none), or a
//! deletion when no connection is left. Everything is kept while the
//! registry is out of reach, and everything is written again when it is
//! back. No I/O, no clock.

use std::collections::{HashMap, HashSet};

use rgost_forward::ConnId;

use crate::mirror::Key;

/// One local connection of a host.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Conn {
    /// The server's connection id.
    pub id: ConnId,
    /// Its connector id (sent to the client), as text.
    pub connector: String,
    /// When it registered, in milliseconds since the Unix epoch.
    pub since_ms: u64,
    /// Its sequence number, once drawn.
    pub seq: Option<u64>,
}

#[derive(Debug, Default)]
struct Host {
    /// In registration order: the last is the newest.
    conns: Vec<Conn>,
    /// The sequence number the registry holds for this node, if any.
    published: Option<u64>,
}

/// What to write for a dirty host.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Plan {
    /// Nothing (already written).
    Nothing,
    /// Delete this node's record.
    Delete,
    /// Draw `count` numbers (for the connections without one, oldest
    /// first) and write the last, for the newest connection.
    Draw {
        /// How many numbers.
        count: u64,
        /// The newest connection.
        newest: Conn,
    },
    /// Write this number again (a standby took over, or the registry lost the record).
    Put {
        /// The newest connection.
        newest: Conn,
    },
}

/// This node's registrations.
#[derive(Debug, Default)]
pub struct Local {
    hosts: HashMap<Key, Host>,
    dirty: HashSet<Key>,
}

impl Local {
    /// No registrations.
    pub fn new() -> Local {
        Local::default()
    }

    /// A connection registered.
    pub fn add(&mut self, key: Key, conn: Conn) {
        self.hosts.entry(key.clone()).or_default().conns.push(conn);
        self.dirty.insert(key);
    }

    /// A connection closed.
    pub fn remove(&mut self, key: &Key, id: ConnId) {
        if let Some(host) = self.hosts.get_mut(key) {
            host.conns.retain(|c| c.id != id);
            self.dirty.insert(key.clone());
        }
    }

    /// The dirty hosts, taken (the caller writes each, or marks it dirty again).
    pub fn take_dirty(&mut self) -> Vec<Key> {
        self.dirty.drain().collect()
    }

    /// Whether some host waits to be written.
    pub fn has_dirty(&self) -> bool {
        !self.dirty.is_empty()
    }

    /// Marks `key` dirty again (its write failed, or its record was lost).
    pub fn mark(&mut self, key: Key) {
        if self.hosts.contains_key(&key) {
            self.dirty.insert(key);
        }
    }

    /// The registry lost everything (or this node reconnected to it):
    /// every host is written again.
    pub fn republish_all(&mut self) {
        for (key, host) in &mut self.hosts {
            host.published = None;
            self.dirty.insert(key.clone());
        }
    }

    /// What `key` needs.
    pub fn plan(&self, key: &Key) -> Plan {
        let Some(host) = self.hosts.get(key) else { return Plan::Nothing };
        let Some(newest) = host.conns.last() else {
            return if host.published.is_some() { Plan::Delete } else { Plan::Nothing };
        };
        match newest.seq {
            None => Plan::Draw {
                count: host.conns.iter().filter(|c| c.seq.is_none()).count() as u64,
                newest: newest.clone(),
            },
            Some(seq) if host.published == Some(seq) => Plan::Nothing,
            Some(_) => Plan::Put { newest: newest.clone() },
        }
    }

    /// Numbers up to `last` were drawn for `key`'s connections without one:
    /// assigns them oldest first and returns (connection, number) pairs.
    /// Connections that registered since the plan get none (they are dirty).
    pub fn drawn(&mut self, key: &Key, count: u64, last: u64) -> Vec<(ConnId, u64)> {
        let Some(host) = self.hosts.get_mut(key) else { return Vec::new() };
        let first = last + 1 - count.min(last + 1);
        let mut assigned = Vec::new();
        for (seq, conn) in (first..).zip(host.conns.iter_mut().filter(|c| c.seq.is_none()).take(count as usize)) {
            conn.seq = Some(seq);
            assigned.push((conn.id, seq));
        }
        assigned
    }

    /// The registry now holds `seq` for `key` (or nothing).
    pub fn published(&mut self, key: &Key, seq: Option<u64>) {
        if let Some(host) = self.hosts.get_mut(key) {
            host.published = seq;
            if host.conns.is_empty() && seq.is_none() {
                self.hosts.remove(key);
            }
        }
    }

    /// Hosts whose record the registry holds (to renew their lease).
    pub fn published_keys(&self) -> Vec<Key> {
        self.hosts.iter().filter(|(_, h)| h.published.is_some()).map(|(k, _)| k.clone()).collect()
    }

    /// The newest connection of `key`, if any.
    pub fn newest(&self, key: &Key) -> Option<&Conn> {
        self.hosts.get(key).and_then(|h| h.conns.last())
    }

    /// The highest sequence number held.
    pub fn max_seq(&self) -> u64 {
        self.hosts.values().flat_map(|h| h.conns.iter().filter_map(|c| c.seq)).max().unwrap_or(0)
    }

    /// Hosts with connections or a record.
    pub fn len(&self) -> usize {
        self.hosts.len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.hosts.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use rgost_relay::TunnelId;

    use super::*;

    fn key() -> Key {
        (TunnelId::ZERO, Arc::from("h"))
    }

    fn conn(id: ConnId) -> Conn {
        Conn { id, connector: format!("c{id}"), since_ms: id, seq: None }
    }

    #[test]
    fn numbers_are_drawn_oldest_first_and_the_newest_is_written() {
        let mut l = Local::new();
        l.add(key(), conn(1));
        l.add(key(), conn(2));
        assert_eq!(l.take_dirty(), vec![key()]);
        assert_eq!(l.plan(&key()), Plan::Draw { count: 2, newest: conn(2) });
        assert_eq!(l.drawn(&key(), 2, 11), vec![(1, 10), (2, 11)]);
        l.published(&key(), Some(11));
        assert_eq!(l.plan(&key()), Plan::Nothing);
        assert_eq!(l.max_seq(), 11);
        // The newest closes: the standby's number is written.
        l.remove(&key(), 2);
        assert_eq!(l.take_dirty(), vec![key()]);
        assert!(matches!(l.plan(&key()), Plan::Put { newest } if newest.seq == Some(10)));
        l.published(&key(), Some(10));
        // The last one closes: the record is deleted, then the host forgotten.
        l.remove(&key(), 1);
        assert_eq!(l.plan(&key()), Plan::Delete);
        l.published(&key(), None);
        assert!(l.is_empty());
    }

    #[test]
    fn a_connection_that_comes_and_goes_before_any_write_writes_nothing() {
        let mut l = Local::new();
        l.add(key(), conn(1));
        l.remove(&key(), 1);
        assert_eq!(l.plan(&key()), Plan::Nothing);
        l.published(&key(), None);
        assert!(l.is_empty());
    }

    #[test]
    fn everything_is_written_again_after_a_reconnection() {
        let mut l = Local::new();
        l.add(key(), conn(1));
        l.take_dirty();
        l.drawn(&key(), 1, 4);
        l.published(&key(), Some(4));
        assert_eq!(l.published_keys(), vec![key()]);
        l.republish_all();
        assert_eq!(l.take_dirty(), vec![key()]);
        assert!(matches!(l.plan(&key()), Plan::Put { newest } if newest.seq == Some(4)));
        // A registration between a plan and its answer waits for the next round.
        l.add(key(), conn(2));
        assert_eq!(l.drawn(&key(), 0, 5), vec![]);
        assert!(l.has_dirty());
    }
}
