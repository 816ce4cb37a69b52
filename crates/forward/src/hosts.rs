//! Who receives for a host name: the namespaces of one router service and
//! the connections registered in them.
//!
//! A (namespace, host) pair may be registered by several connections. The
//! newest one receives (as Tailscale's DERP does): a client whose old TCP
//! connection died behind a NAT gets its traffic back as soon as it
//! reconnects, without waiting for keepalive to notice. Older connections
//! stay registered as standbys and take over, newest first, when the one
//! receiving closes. In a cluster, every registration gets a sequence
//! number from a counter all nodes share ([`Fabric::set_seq`]), and the
//! host's newest registration on other nodes is recorded as a claim with
//! its number ([`Fabric::claim_remote`]): the claim receives when it is
//! newer than the newest local connection. A local connection whose number
//! is not known yet (just registered, or the shared counter is out of
//! reach) counts as the newest: it registered after everything this node
//! has heard of.
//!
//! Registering and unregistering cost the same however many hosts exist:
//! each takes the service's namespace lock and one namespace's host lock for
//! an O(1) map update. Readers (the packet path) take the namespace's host
//! lock for reading once per batch of packets.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, RwLock, RwLockReadGuard, RwLockWriteGuard};

use rgost_relay::TunnelId;

use crate::lookup::Answers;

/// A connection's id, unique within a [`Fabric`].
pub type ConnId = u64;

/// Another node of a cluster, by the name it registers under.
pub type NodeId = Arc<str>;

/// The namespaces of one router service.
#[derive(Debug)]
pub struct Fabric<C> {
    namespaces: Mutex<HashMap<TunnelId, Arc<Namespace<C>>>>,
    next_conn: AtomicU64,
}

impl<C> Default for Fabric<C> {
    fn default() -> Self {
        Fabric { namespaces: Mutex::default(), next_conn: AtomicU64::new(1) }
    }
}

/// One routing namespace (a router id) and the hosts registered in it.
#[derive(Debug)]
pub struct Namespace<C> {
    id: TunnelId,
    pub(crate) hosts: RwLock<HashMap<Arc<str>, HostEntry<C>>>,
    pub(crate) answers: Mutex<Answers>,
}

/// The registrations of one host name in one namespace.
#[derive(Debug)]
pub(crate) struct HostEntry<C> {
    /// Local connections in registration order: the last is the newest.
    local: Vec<Local<C>>,
    /// The newest registration of the host on another node, if any.
    remote: Option<Claim>,
}

/// A local connection of a host.
#[derive(Debug)]
struct Local<C> {
    id: ConnId,
    conn: C,
    /// Its cluster-wide sequence number, once known.
    seq: Option<u64>,
}

/// Another node's registration of a host.
#[derive(Debug, Clone)]
struct Claim {
    node: NodeId,
    seq: u64,
}

/// Who receives a host's packets.
#[derive(Debug, PartialEq, Eq)]
pub enum Owner<'a, C> {
    /// A local connection.
    Local(ConnId, &'a C),
    /// The node the host is connected to.
    Node(&'a NodeId),
}

impl<C> HostEntry<C> {
    fn new() -> Self {
        HostEntry { local: Vec::new(), remote: None }
    }

    /// The newest registration receives: the claim of another node when its
    /// number is above the newest local connection's, else that connection
    /// (also while its own number is not known).
    pub(crate) fn owner(&self) -> Option<Owner<'_, C>> {
        match (&self.remote, self.local.last()) {
            (Some(claim), Some(local)) if local.seq.is_some_and(|seq| seq < claim.seq) => {
                Some(Owner::Node(&claim.node))
            }
            (_, Some(local)) => Some(Owner::Local(local.id, &local.conn)),
            (Some(claim), None) => Some(Owner::Node(&claim.node)),
            (None, None) => None,
        }
    }

    pub(crate) fn newest_local(&self) -> Option<(ConnId, &C)> {
        self.local.last().map(|l| (l.id, &l.conn))
    }

    fn local_owner(&self) -> Option<ConnId> {
        match self.owner() {
            Some(Owner::Local(id, _)) => Some(id),
            _ => None,
        }
    }

    fn owner_id(&self) -> Option<OwnerId> {
        self.owner().map(|o| match o {
            Owner::Local(id, _) => OwnerId::Local(id),
            Owner::Node(node) => OwnerId::Node(Arc::clone(node)),
        })
    }

    fn is_empty(&self) -> bool {
        self.local.is_empty() && self.remote.is_none()
    }
}

/// Proof of a registration; hand it back to [`Fabric::unregister`].
#[derive(Debug)]
pub struct Registration<C> {
    /// The namespace the connection is in.
    pub namespace: Arc<Namespace<C>>,
    /// The host name it registered.
    pub host: Arc<str>,
    /// Its connection id.
    pub conn: ConnId,
    /// Whether this registration created the namespace.
    pub new_namespace: bool,
    /// The local connection that received for this host until now and is a standby from now on.
    pub displaced: Option<ConnId>,
}

/// What an unregistration changed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Unregistered {
    /// The standby that receives for the host from now on, if the closed
    /// connection was receiving and a standby is left.
    pub successor: Option<ConnId>,
    /// Whether no connection of the host is left here.
    pub host_gone: bool,
}

impl<C> Fabric<C> {
    /// An empty fabric.
    pub fn new() -> Self {
        Fabric::default()
    }

    /// Registers a new connection as `host` in namespace `id` (created if
    /// needed); it receives for `host` from now on. `make` builds the
    /// connection's handle from its id and, when the host already has local
    /// connections, the newest of them (to share per-host state).
    pub fn register(
        &self,
        id: TunnelId,
        host: Arc<str>,
        make: impl FnOnce(ConnId, Option<&C>) -> C,
    ) -> Registration<C> {
        let conn = self.next_conn.fetch_add(1, Ordering::Relaxed);
        let mut namespaces = self.lock();
        let (namespace, new_namespace) = match namespaces.get(&id) {
            Some(ns) => (Arc::clone(ns), false),
            None => {
                let ns = Arc::new(Namespace::new(id));
                namespaces.insert(id, Arc::clone(&ns));
                (ns, true)
            }
        };
        let displaced = {
            let mut hosts = namespace.write();
            let entry = hosts.entry(Arc::clone(&host)).or_insert_with(HostEntry::new);
            let displaced = entry.local_owner();
            let handle = make(conn, entry.newest_local().map(|(_, c)| c));
            // Without a number yet it is the newest, also over another node's claim.
            entry.local.push(Local { id: conn, conn: handle, seq: None });
            displaced
        };
        drop(namespaces);
        Registration { namespace, host, conn, new_namespace, displaced }
    }

    /// Removes a registration at once; forgets the namespace when nothing is left in it.
    pub fn unregister(&self, reg: &Registration<C>) -> Unregistered {
        let mut namespaces = self.lock();
        let namespace = &reg.namespace;
        let (result, empty) = {
            let mut hosts = namespace.write();
            let mut result = Unregistered { successor: None, host_gone: true };
            if let Some(entry) = hosts.get_mut(&reg.host) {
                let was_owner = entry.local_owner() == Some(reg.conn);
                entry.local.retain(|l| l.id != reg.conn);
                if was_owner {
                    result.successor = entry.local_owner();
                }
                result.host_gone = entry.local.is_empty();
                if entry.is_empty() {
                    hosts.remove(&reg.host);
                }
            }
            (result, hosts.is_empty())
        };
        if empty && namespaces.get(&namespace.id).is_some_and(|ns| Arc::ptr_eq(ns, namespace)) {
            namespaces.remove(&namespace.id);
        }
        result
    }

    /// Records the cluster-wide sequence number of local connection `conn`
    /// of `host` in namespace `id`. Returns who receives for the host now
    /// when that changed (another node's claim turned out newer), `None`
    /// when nothing changed or the connection is gone.
    pub fn set_seq(&self, id: TunnelId, host: &str, conn: ConnId, seq: u64) -> Option<OwnerId> {
        let namespace = self.namespace(&id)?;
        let mut hosts = namespace.write();
        let entry = hosts.get_mut(host)?;
        let before = entry.owner_id();
        entry.local.iter_mut().find(|l| l.id == conn)?.seq = Some(seq);
        let after = entry.owner_id();
        (before != after).then_some(after).flatten()
    }

    /// Records `node`'s registration of `host` in namespace `id`, with its
    /// sequence number, as the host's newest on other nodes (it replaces
    /// the claim recorded before, whatever its node). It receives the
    /// host's packets while it is newer than the newest local connection
    /// (the rule in the module docs), until [`Fabric::release_remote`].
    pub fn claim_remote(&self, id: TunnelId, host: Arc<str>, node: NodeId, seq: u64) {
        let mut namespaces = self.lock();
        let namespace = Arc::clone(namespaces.entry(id).or_insert_with(|| Arc::new(Namespace::new(id))));
        drop(namespaces);
        let mut hosts = namespace.write();
        hosts.entry(host).or_insert_with(HostEntry::new).remote = Some(Claim { node, seq });
    }

    /// Forgets `node`'s claim on `host` in namespace `id` (the host left that
    /// node); local standbys, if any, receive again.
    pub fn release_remote(&self, id: TunnelId, host: &str, node: &str) {
        let mut namespaces = self.lock();
        let Some(namespace) = namespaces.get(&id).cloned() else { return };
        let empty = {
            let mut hosts = namespace.write();
            if let Some(entry) = hosts.get_mut(host)
                && entry.remote.as_ref().is_some_and(|c| &*c.node == node)
            {
                entry.remote = None;
                if entry.is_empty() {
                    hosts.remove(host);
                }
            }
            hosts.is_empty()
        };
        if empty {
            namespaces.remove(&id);
        }
    }

    /// The namespace `id`, if it exists.
    pub fn namespace(&self, id: &TunnelId) -> Option<Arc<Namespace<C>>> {
        self.lock().get(id).cloned()
    }

    /// Every namespace, in no particular order.
    pub fn namespaces(&self) -> Vec<Arc<Namespace<C>>> {
        self.lock().values().cloned().collect()
    }

    /// Local connections registered as `host` in namespace `id`.
    pub fn connections(&self, id: &TunnelId, host: &str) -> usize {
        self.namespace(id).map_or(0, |ns| ns.read().get(host).map_or(0, |e| e.local.len()))
    }

    fn lock(&self) -> MutexGuard<'_, HashMap<TunnelId, Arc<Namespace<C>>>> {
        // Every update leaves the map consistent, so a panicked holder does not poison it for us.
        self.namespaces.lock().unwrap_or_else(|p| p.into_inner())
    }
}

impl<C> Namespace<C> {
    fn new(id: TunnelId) -> Self {
        Namespace { id, hosts: RwLock::default(), answers: Mutex::default() }
    }

    /// The namespace's id (the router id its clients sent).
    pub fn id(&self) -> TunnelId {
        self.id
    }

    /// Who receives for `host` now.
    pub fn owner(&self, host: &str) -> Option<OwnerId> {
        self.read().get(host).and_then(HostEntry::owner_id)
    }

    /// Each host with its local connections (oldest first) and the node
    /// that claims it, if any.
    pub fn hosts(&self) -> Vec<HostInfo> {
        self.read()
            .iter()
            .map(|(host, e)| HostInfo {
                host: Arc::clone(host),
                connections: e.local.iter().map(|l| l.id).collect(),
                node: e.remote.as_ref().map(|c| Arc::clone(&c.node)),
            })
            .collect()
    }

    /// Calls `f` with every local connection: its host, id and handle.
    pub fn for_each_connection(&self, mut f: impl FnMut(&Arc<str>, ConnId, &C)) {
        for (host, entry) in self.read().iter() {
            for local in &entry.local {
                f(host, local.id, &local.conn);
            }
        }
    }

    pub(crate) fn read(&self) -> RwLockReadGuard<'_, HashMap<Arc<str>, HostEntry<C>>> {
        self.hosts.read().unwrap_or_else(|p| p.into_inner())
    }

    fn write(&self) -> RwLockWriteGuard<'_, HashMap<Arc<str>, HostEntry<C>>> {
        self.hosts.write().unwrap_or_else(|p| p.into_inner())
    }
}

/// Who receives for a host, by id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OwnerId {
    /// A local connection.
    Local(ConnId),
    /// Another node.
    Node(NodeId),
}

/// A host's registrations, for status pages.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostInfo {
    /// The host name.
    pub host: Arc<str>,
    /// Its local connections, oldest first (the last one is the newest).
    pub connections: Vec<ConnId>,
    /// The node holding the host's newest registration elsewhere, if any
    /// (it receives when newer than the newest local connection).
    pub node: Option<NodeId>,
}

#[cfg(test)]
mod tests {
    use super::*;

    const NS: TunnelId = TunnelId::ZERO;

    fn reg(fabric: &Fabric<u64>, host: &str) -> Registration<u64> {
        fabric.register(NS, Arc::from(host), |id, _| id)
    }

    #[test]
    fn the_newest_connection_receives_and_standbys_take_over_newest_first() {
        let fabric = Fabric::new();
        let a = reg(&fabric, "h2");
        assert!(a.new_namespace);
        assert_eq!(a.displaced, None);
        let b = reg(&fabric, "h2");
        assert_eq!(b.displaced, Some(a.conn));
        let c = reg(&fabric, "h2");
        assert_eq!(c.displaced, Some(b.conn));
        let ns = fabric.namespace(&NS).unwrap();
        assert_eq!(ns.owner("h2"), Some(OwnerId::Local(c.conn)));
        // A standby closing changes nothing.
        assert_eq!(fabric.unregister(&b), Unregistered { successor: None, host_gone: false });
        assert_eq!(ns.owner("h2"), Some(OwnerId::Local(c.conn)));
        // The receiver closing hands over to the newest standby.
        assert_eq!(fabric.unregister(&c), Unregistered { successor: Some(a.conn), host_gone: false });
        assert_eq!(ns.owner("h2"), Some(OwnerId::Local(a.conn)));
        assert_eq!(fabric.unregister(&a), Unregistered { successor: None, host_gone: true });
        assert!(fabric.namespace(&NS).is_none(), "an empty namespace is forgotten");
    }

    #[test]
    fn make_sees_the_hosts_newest_connection() {
        let fabric: Fabric<(u64, u64)> = Fabric::new();
        let first = fabric.register(NS, Arc::from("h"), |id, existing| {
            assert!(existing.is_none());
            (id, id)
        });
        let _second = fabric.register(NS, Arc::from("h"), |id, existing| (id, existing.map_or(0, |e| e.1)));
        let third = fabric.register(NS, Arc::from("h"), |id, existing| (id, existing.map_or(0, |e| e.1)));
        let ns = fabric.namespace(&NS).unwrap();
        let hosts = ns.read();
        let entry = hosts.get("h").unwrap();
        assert!(entry.local.iter().all(|l| l.conn.1 == first.conn), "all share the first's state");
        assert_eq!(entry.newest_local().map(|(id, _)| id), Some(third.conn));
    }

    #[test]
    fn the_registration_with_the_highest_number_receives_across_nodes() {
        let fabric = Fabric::new();
        let a = reg(&fabric, "h");
        let ns = fabric.namespace(&NS).unwrap();
        let node_b = || OwnerId::Node(Arc::from("node-b"));
        // A claim beats a connection whose number is lower...
        assert_eq!(fabric.set_seq(NS, "h", a.conn, 5), None, "no claim yet: nothing changes");
        fabric.claim_remote(NS, Arc::from("h"), Arc::from("node-b"), 7);
        assert_eq!(ns.owner("h"), Some(node_b()));
        // ...and a connection whose number is higher beats the claim.
        fabric.claim_remote(NS, Arc::from("h"), Arc::from("node-b"), 4);
        assert_eq!(ns.owner("h"), Some(OwnerId::Local(a.conn)));
        // A new local connection is the newest until its number says otherwise.
        fabric.claim_remote(NS, Arc::from("h"), Arc::from("node-b"), 9);
        assert_eq!(ns.owner("h"), Some(node_b()));
        let b = reg(&fabric, "h");
        assert_eq!(b.displaced, None, "the claim was receiving, not a local connection");
        assert_eq!(ns.owner("h"), Some(OwnerId::Local(b.conn)));
        assert_eq!(fabric.set_seq(NS, "h", b.conn, 11), None);
        assert_eq!(ns.owner("h"), Some(OwnerId::Local(b.conn)));
        // The claim is still recorded: when b closes, a (5) is older than it (9).
        assert_eq!(fabric.unregister(&b), Unregistered { successor: None, host_gone: false });
        assert_eq!(ns.owner("h"), Some(node_b()));
        // A release from a node that does not hold the claim changes nothing.
        fabric.release_remote(NS, "h", "node-c");
        assert_eq!(ns.owner("h"), Some(node_b()));
        fabric.release_remote(NS, "h", "node-b");
        assert_eq!(ns.owner("h"), Some(OwnerId::Local(a.conn)));
        // A number that arrives after a newer claim hands the host over.
        let c = reg(&fabric, "h");
        fabric.claim_remote(NS, Arc::from("h"), Arc::from("node-b"), 20);
        assert_eq!(ns.owner("h"), Some(OwnerId::Local(c.conn)), "number not known yet");
        assert_eq!(fabric.set_seq(NS, "h", c.conn, 19), Some(node_b()));
        assert_eq!(fabric.set_seq(NS, "gone", c.conn, 1), None, "unknown host");
        // Closing every local connection leaves the claim, and the namespace.
        fabric.unregister(&a);
        fabric.unregister(&c);
        assert_eq!(ns.owner("h"), Some(node_b()));
        fabric.release_remote(NS, "h", "node-b");
        assert!(fabric.namespace(&NS).is_none());
        // A claim alone keeps a namespace until released.
        fabric.claim_remote(NS, Arc::from("x"), Arc::from("node-b"), 1);
        assert!(fabric.namespace(&NS).is_some());
        fabric.release_remote(NS, "x", "node-b");
        assert!(fabric.namespace(&NS).is_none());
    }

    #[test]
    fn a_standby_takes_over_only_from_a_local_owner() {
        let fabric = Fabric::new();
        let a = reg(&fabric, "h");
        let b = reg(&fabric, "h");
        fabric.set_seq(NS, "h", a.conn, 1);
        fabric.set_seq(NS, "h", b.conn, 2);
        fabric.claim_remote(NS, Arc::from("h"), Arc::from("node-b"), 3);
        // The node receives: b closing hands nothing over.
        assert_eq!(fabric.unregister(&b), Unregistered { successor: None, host_gone: false });
        fabric.claim_remote(NS, Arc::from("h"), Arc::from("node-b"), 0);
        let c = reg(&fabric, "h");
        fabric.set_seq(NS, "h", c.conn, 4);
        assert_eq!(fabric.unregister(&c), Unregistered { successor: Some(a.conn), host_gone: false });
    }

    #[test]
    fn a_registration_in_a_namespace_being_emptied_is_not_lost() {
        let fabric = Fabric::new();
        let a = reg(&fabric, "h1");
        let ns_before = fabric.namespace(&NS).unwrap();
        fabric.unregister(&a);
        let b = reg(&fabric, "h2");
        assert!(b.new_namespace);
        assert!(!Arc::ptr_eq(&ns_before, &b.namespace));
        assert_eq!(fabric.connections(&NS, "h2"), 1);
        // Unregistering through the stale namespace must not remove the live one.
        fabric.unregister(&a);
        assert_eq!(fabric.connections(&NS, "h2"), 1);
    }
}
