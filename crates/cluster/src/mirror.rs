//! This node's copy of the other nodes' registrations, and which one the
//! forwarding core must know as each host's claim.
//!
//! Each node keeps one record per (namespace, host) it has connections for:
//! the sequence number of its newest connection of that host, and a version
//! that grows with every record the node writes. Records arrive by pushed
//! events, full reads (resyncs) and lookups, in any order: a record older
//! (by version) than what is known is ignored, and a deletion leaves a
//! tombstone so that a resync read before it cannot bring the record back.
//!
//! For each host the record with the highest sequence number is the claim
//! the core gets ([`Fabric::claim_remote`](rgost_forward::Fabric::claim_remote));
//! every change of it comes back as an [`Apply`]. No I/O, no clock: time is
//! an argument.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use rgost_forward::NodeId;
use rgost_relay::TunnelId;
use tokio::time::Instant;

/// A namespace and a host name.
pub type Key = (TunnelId, Arc<str>);

/// Another node's registration of a host.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    /// The node.
    pub node: NodeId,
    /// The sequence number of that node's newest connection of the host.
    pub seq: u64,
    /// The version of the record (grows with every record the node writes).
    pub ver: u64,
    /// Where the node's link listener is reached.
    pub addr: Arc<str>,
}

/// A change of a host's claim for the forwarding core.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Apply {
    /// The namespace and host.
    pub key: Key,
    /// The claim now (node, sequence number, link address), or none.
    pub claim: Option<(NodeId, u64, Arc<str>)>,
    /// The node whose claim the core holds until now, if any (release it
    /// when `claim` is none).
    pub before: Option<NodeId>,
}

#[derive(Debug, Default)]
struct Host {
    /// One record per node, and the resync generation that last saw it.
    records: Vec<(Record, u64)>,
    /// The claim the core holds.
    applied: Option<(NodeId, u64)>,
}

#[derive(Debug)]
struct Node {
    addr: Arc<str>,
    hosts: HashSet<Key>,
    /// When its liveness key was last seen (or the node first heard of).
    seen: Instant,
}

/// The other nodes' registrations as far as this node knows them.
#[derive(Debug, Default)]
pub struct Mirror {
    hosts: HashMap<Key, Host>,
    nodes: HashMap<NodeId, Node>,
    tombstones: HashMap<(Key, NodeId), (u64, Instant)>,
    generation: u64,
}

impl Mirror {
    /// An empty mirror.
    pub fn new() -> Mirror {
        Mirror::default()
    }

    /// Records `record` for `key` (unless a newer record or deletion of that
    /// node's is known) and returns the claim change, if any.
    pub fn set(&mut self, key: Key, record: Record, now: Instant) -> Option<Apply> {
        if self.tombstones.get(&(key.clone(), Arc::clone(&record.node))).is_some_and(|(ver, _)| *ver >= record.ver) {
            return None;
        }
        let generation = self.generation;
        let host = self.hosts.entry(key.clone()).or_default();
        match host.records.iter_mut().find(|(r, _)| r.node == record.node) {
            Some((known, seen)) => {
                *seen = generation;
                if known.ver >= record.ver {
                    return None;
                }
                *known = record.clone();
            }
            None => host.records.push((record.clone(), generation)),
        }
        let node = self.nodes.entry(Arc::clone(&record.node)).or_insert_with(|| Node {
            addr: Arc::clone(&record.addr),
            hosts: HashSet::new(),
            seen: now,
        });
        node.addr = record.addr;
        node.hosts.insert(key.clone());
        self.reapply(&key)
    }

    /// Deletes `node`'s record of `key` if it is not newer than `ver`, and
    /// remembers the deletion (until [`Mirror::prune`]).
    pub fn delete(&mut self, key: Key, node: &NodeId, ver: u64, now: Instant) -> Option<Apply> {
        let tomb = self.tombstones.entry((key.clone(), Arc::clone(node))).or_insert((ver, now));
        if tomb.0 < ver {
            *tomb = (ver, now);
        }
        let host = self.hosts.get_mut(&key)?;
        let before = host.records.len();
        host.records.retain(|(r, _)| !(r.node == *node && r.ver <= ver));
        if host.records.len() == before {
            return None;
        }
        if let Some(n) = self.nodes.get_mut(node) {
            n.hosts.remove(&key);
        }
        self.reapply(&key)
    }

    /// Forgets every record of `key` (an SD plugin that no longer knows the host).
    pub fn forget(&mut self, key: &Key) -> Option<Apply> {
        let host = self.hosts.get_mut(key)?;
        for (record, _) in std::mem::take(&mut host.records) {
            if let Some(n) = self.nodes.get_mut(&record.node) {
                n.hosts.remove(key);
            }
        }
        self.reapply(key)
    }

    /// Forgets a node that is gone (its liveness key expired) and everything it registered.
    pub fn remove_node(&mut self, node: &NodeId) -> Vec<Apply> {
        let Some(gone) = self.nodes.remove(node) else { return Vec::new() };
        let mut applies = Vec::new();
        for key in gone.hosts {
            if let Some(host) = self.hosts.get_mut(&key) {
                host.records.retain(|(r, _)| r.node != *node);
            }
            applies.extend(self.reapply(&key));
        }
        applies
    }

    /// Starts a full read: records not seen by it (nor by events meanwhile)
    /// are removed by [`Mirror::sweep`].
    pub fn begin_resync(&mut self) {
        self.generation += 1;
    }

    /// Removes the records that neither the full read begun last nor an
    /// event since saw (their deletion was missed while disconnected).
    pub fn sweep(&mut self) -> Vec<Apply> {
        let generation = self.generation;
        let stale: Vec<(Key, NodeId)> = self
            .hosts
            .iter()
            .flat_map(|(key, host)| {
                host.records
                    .iter()
                    .filter(|(_, seen)| *seen < generation)
                    .map(|(r, _)| (key.clone(), Arc::clone(&r.node)))
            })
            .collect();
        let mut applies = Vec::new();
        for (key, node) in stale {
            if let Some(host) = self.hosts.get_mut(&key) {
                host.records.retain(|(r, _)| r.node != node);
            }
            if let Some(n) = self.nodes.get_mut(&node) {
                n.hosts.remove(&key);
            }
            applies.extend(self.reapply(&key));
        }
        self.nodes.retain(|_, n| !n.hosts.is_empty());
        applies
    }

    /// The node's liveness key was seen now.
    pub fn node_seen(&mut self, node: &NodeId, now: Instant) {
        if let Some(n) = self.nodes.get_mut(node) {
            n.seen = now;
        }
    }

    /// Every node's liveness counts from `now` (after a reconnection to the
    /// registry, nodes get a full lease to register again).
    pub fn reset_liveness(&mut self, now: Instant) {
        for node in self.nodes.values_mut() {
            node.seen = now;
        }
    }

    /// Nodes whose liveness key has not been seen for `lease`.
    pub fn expired_nodes(&self, now: Instant, lease: Duration) -> Vec<NodeId> {
        self.nodes
            .iter()
            .filter(|(_, n)| now.saturating_duration_since(n.seen) >= lease)
            .map(|(id, _)| Arc::clone(id))
            .collect()
    }

    /// The nodes with records here.
    pub fn nodes(&self) -> Vec<NodeId> {
        self.nodes.keys().cloned().collect()
    }

    /// A node's link address.
    pub fn addr(&self, node: &str) -> Option<&Arc<str>> {
        self.nodes.get(node).map(|n| &n.addr)
    }

    /// The claim for `key`: the record with the highest sequence number.
    pub fn best(&self, key: &Key) -> Option<&Record> {
        best(self.hosts.get(key)?)
    }

    /// The highest sequence number known.
    pub fn max_seq(&self) -> u64 {
        self.hosts.values().flat_map(|h| h.records.iter().map(|(r, _)| r.seq)).max().unwrap_or(0)
    }

    /// Hosts with records.
    pub fn len(&self) -> usize {
        self.hosts.len()
    }

    /// Whether no host has a record.
    pub fn is_empty(&self) -> bool {
        self.hosts.is_empty()
    }

    /// The hosts with records (for refreshing them).
    pub fn keys(&self) -> Vec<Key> {
        self.hosts.keys().cloned().collect()
    }

    /// Forgets tombstones older than `ttl`.
    pub fn prune(&mut self, now: Instant, ttl: Duration) {
        self.tombstones.retain(|_, (_, at)| now.saturating_duration_since(*at) < ttl);
    }

    /// Recomputes `key`'s claim; returns the change for the core.
    fn reapply(&mut self, key: &Key) -> Option<Apply> {
        let host = self.hosts.get_mut(key)?;
        let now = best(host).map(|r| (Arc::clone(&r.node), r.seq, Arc::clone(&r.addr)));
        let applied = now.as_ref().map(|(node, seq, _)| (Arc::clone(node), *seq));
        if applied == host.applied {
            if host.records.is_empty() {
                self.hosts.remove(key);
            }
            return None;
        }
        let before = std::mem::replace(&mut host.applied, applied).map(|(node, _)| node);
        if host.records.is_empty() {
            self.hosts.remove(key);
        }
        Some(Apply { key: key.clone(), claim: now, before })
    }
}

fn best(host: &Host) -> Option<&Record> {
    // Ties (equal numbers only come from SD plugins) go to the lowest node id, so every node picks the same.
    host.records.iter().map(|(r, _)| r).max_by(|a, b| a.seq.cmp(&b.seq).then_with(|| b.node.cmp(&a.node)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(host: &str) -> Key {
        (TunnelId::ZERO, Arc::from(host))
    }

    fn rec(node: &str, seq: u64, ver: u64) -> Record {
        Record { node: Arc::from(node), seq, ver, addr: Arc::from(format!("{node}:7443")) }
    }

    fn claim(apply: Option<Apply>) -> Option<(String, u64)> {
        apply.and_then(|a| a.claim).map(|(node, seq, _)| (node.to_string(), seq))
    }

    #[tokio::test(start_paused = true)]
    async fn the_highest_number_is_the_claim_and_versions_order_updates() {
        let mut m = Mirror::new();
        let t = Instant::now();
        assert_eq!(claim(m.set(key("h"), rec("b", 5, 1), t)), Some(("b".into(), 5)));
        assert_eq!(m.set(key("h"), rec("b", 5, 1), t), None, "known: no change");
        assert_eq!(claim(m.set(key("h"), rec("c", 7, 1), t)), Some(("c".into(), 7)), "a newer registration elsewhere");
        assert_eq!(m.set(key("h"), rec("b", 6, 2), t), None, "still older than c's");
        // c's newest connection closed; its standby (3) is older than b's (6).
        let change = m.set(key("h"), rec("c", 3, 2), t).unwrap();
        assert_eq!(change.before.as_deref(), Some("c"));
        assert_eq!(claim(Some(change)), Some(("b".into(), 6)));
        assert_eq!(m.set(key("h"), rec("c", 9, 1), t), None, "an old version of c's record is ignored");
        let change = m.delete(key("h"), &Arc::from("b"), 3, t).unwrap();
        assert_eq!(claim(Some(change)), Some(("c".into(), 3)));
        assert_eq!(m.set(key("h"), rec("b", 6, 2), t), None, "a deleted record does not come back from a stale read");
        let gone = m.delete(key("h"), &Arc::from("c"), 2, t).unwrap();
        assert_eq!((gone.claim, gone.before.as_deref()), (None, Some("c")));
        assert!(m.is_empty());
        assert_eq!(
            claim(m.set(key("h"), rec("b", 8, 4), t)),
            Some(("b".into(), 8)),
            "a newer version after the deletion"
        );
        m.prune(t + Duration::from_secs(61), Duration::from_secs(60));
        assert!(m.tombstones.is_empty());
    }

    #[tokio::test(start_paused = true)]
    async fn a_full_read_removes_what_it_did_not_see() {
        let mut m = Mirror::new();
        let t = Instant::now();
        m.set(key("a"), rec("b", 1, 1), t);
        m.set(key("x"), rec("b", 2, 2), t);
        m.begin_resync();
        // The read sees a; an event during it brings y; x's deletion was missed.
        m.set(key("a"), rec("b", 1, 1), t);
        m.set(key("y"), rec("c", 3, 1), t);
        let removed = m.sweep();
        assert_eq!(removed.len(), 1);
        assert_eq!(removed[0].key, key("x"));
        assert!(m.best(&key("a")).is_some() && m.best(&key("y")).is_some());
        assert_eq!(m.max_seq(), 3);
    }

    #[tokio::test(start_paused = true)]
    async fn a_node_whose_liveness_expired_is_forgotten() {
        let mut m = Mirror::new();
        let t = Instant::now();
        let lease = Duration::from_secs(5);
        m.set(key("h1"), rec("b", 1, 1), t);
        m.set(key("h2"), rec("b", 2, 2), t);
        m.set(key("h2"), rec("c", 1, 1), t);
        m.node_seen(&Arc::from("c"), t + Duration::from_secs(4));
        assert!(m.expired_nodes(t + Duration::from_secs(4), lease).is_empty());
        assert_eq!(m.expired_nodes(t + lease, lease), vec![Arc::<str>::from("b")]);
        let applies = m.remove_node(&Arc::from("b"));
        assert_eq!(applies.len(), 2);
        assert_eq!(m.best(&key("h2")).map(|r| &*r.node), Some("c"));
        assert!(m.best(&key("h1")).is_none());
        m.reset_liveness(t + Duration::from_secs(9));
        assert!(m.expired_nodes(t + Duration::from_secs(13), lease).is_empty());
        assert_eq!(m.addr("c").map(|a| &**a), Some("c:7443"));
        assert_eq!(claim(m.forget(&key("h2"))), None);
        assert!(m.is_empty());
    }

    #[tokio::test(start_paused = true)]
    async fn equal_numbers_pick_the_same_node_everywhere() {
        let t = Instant::now();
        let mut one = Mirror::new();
        one.set(key("h"), rec("b", 0, 1), t);
        one.set(key("h"), rec("a", 0, 1), t);
        let mut two = Mirror::new();
        two.set(key("h"), rec("a", 0, 1), t);
        two.set(key("h"), rec("b", 0, 1), t);
        assert_eq!(one.best(&key("h")), two.best(&key("h")));
    }
}
