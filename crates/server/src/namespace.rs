//! Routing namespaces: the connections registered under each host name,
//! isolated per router id.
//!
//! Readers (every packet) see an immutable snapshot of a namespace's host map
//! through [`ArcSwap`]: no lock on the packet path. Registration and removal
//! (rare) copy the map under one mutex shared by all namespaces, which also
//! makes "find or create the namespace, then register" atomic with respect to
//! "remove the last host, then forget the namespace".

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use arc_swap::ArcSwap;
use bytes::Bytes;
use rgost_relay::TunnelId;
use tokio::sync::mpsc;

use crate::Settings;
use crate::router::{PluginCache, Router};

/// Host name -> the connections registered under it.
pub type HostMap = HashMap<Arc<str>, Box<[Peer]>>;

/// A connection as seen by senders: where to queue packets for it.
#[derive(Debug, Clone)]
pub struct Peer {
    /// Unique per server; also the connection's rendezvous-hash seed.
    pub id: u64,
    /// Its bounded packet queue.
    pub tx: mpsc::Sender<Bytes>,
}

/// One routing namespace: the router chosen for its id and its hosts.
#[derive(Debug)]
pub struct Namespace {
    /// The router id (namespace id).
    pub id: TunnelId,
    /// The name of the router in use, if any.
    pub router_name: Option<String>,
    /// The router in use (none: every packet has no route).
    pub router: Option<Arc<Router>>,
    plugin: Option<PluginCache>,
    hosts: ArcSwap<HostMap>,
}

impl Namespace {
    /// The plugin answer cache, when the router is a plugin.
    pub fn plugin(&self) -> Option<&PluginCache> {
        self.plugin.as_ref()
    }

    /// The current host map snapshot. Load once per batch of packets.
    pub fn hosts(&self) -> arc_swap::Guard<Arc<HostMap>> {
        self.hosts.load()
    }
}

/// All namespaces of one router service.
#[derive(Debug, Default)]
pub struct Namespaces {
    map: Mutex<HashMap<TunnelId, Arc<Namespace>>>,
    next_id: AtomicU64,
}

/// Proof of a registration; hand it back to [`Namespaces::unregister`].
#[derive(Debug)]
pub struct Registration {
    /// The namespace the connection is in.
    pub namespace: Arc<Namespace>,
    /// The host name it registered.
    pub host: Arc<str>,
    /// Its peer id.
    pub peer_id: u64,
}

/// The router for `id`: the router named by the id's UUID string, else the default.
pub fn select_router(settings: &Settings, id: &TunnelId) -> Option<(String, Arc<Router>)> {
    let by_id = id.to_string();
    settings
        .routers
        .get_key_value(&by_id)
        .or_else(|| settings.default_router.as_ref().and_then(|name| settings.routers.get_key_value(name)))
        .map(|(name, table)| (name.clone(), Arc::clone(table)))
}

impl Namespaces {
    /// A fresh peer id.
    pub fn next_peer_id(&self) -> u64 {
        self.next_id.fetch_add(1, Ordering::Relaxed)
    }

    /// Registers `peer` under `host` in namespace `id`, creating the namespace
    /// (with the router [`select_router`] picks) if it does not exist.
    pub fn register(&self, settings: &Settings, id: TunnelId, host: Arc<str>, peer: Peer) -> Registration {
        let mut map = self.lock();
        let namespace = Arc::clone(map.entry(id).or_insert_with(|| {
            let (router_name, router) = select_router(settings, &id).unzip();
            let plugin = match router.as_deref() {
                Some(Router::Plugin { resolver, ttl }) => Some(PluginCache::new(Arc::clone(resolver), *ttl)),
                _ => None,
            };
            Arc::new(Namespace { id, router_name, router, plugin, hosts: ArcSwap::default() })
        }));
        let peer_id = peer.id;
        let mut hosts = HostMap::clone(&namespace.hosts.load());
        let peers = hosts.remove(&host).map(Vec::from).unwrap_or_default();
        let mut peers = peers;
        peers.push(peer);
        hosts.insert(Arc::clone(&host), peers.into_boxed_slice());
        namespace.hosts.store(Arc::new(hosts));
        Registration { namespace, host, peer_id }
    }

    /// Removes a registration at once; forgets the namespace when it has no hosts left.
    pub fn unregister(&self, reg: &Registration) {
        let mut map = self.lock();
        let namespace = &reg.namespace;
        let mut hosts = HostMap::clone(&namespace.hosts.load());
        if let Some(peers) = hosts.remove(&reg.host) {
            let rest: Vec<Peer> = peers.iter().filter(|p| p.id != reg.peer_id).cloned().collect();
            if !rest.is_empty() {
                hosts.insert(Arc::clone(&reg.host), rest.into_boxed_slice());
            }
        }
        let empty = hosts.is_empty();
        namespace.hosts.store(Arc::new(hosts));
        if empty && map.get(&namespace.id).is_some_and(|ns| Arc::ptr_eq(ns, namespace)) {
            map.remove(&namespace.id);
        }
    }

    /// Number of live namespaces.
    pub fn len(&self) -> usize {
        self.lock().len()
    }

    /// Whether there are no namespaces.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The number of connections registered under `host` in namespace `id`.
    pub fn connections(&self, id: &TunnelId, host: &str) -> usize {
        self.lock().get(id).and_then(|ns| ns.hosts.load().get(host).map(|p| p.len())).unwrap_or(0)
    }

    fn lock(&self) -> MutexGuard<'_, HashMap<TunnelId, Arc<Namespace>>> {
        // The map stays consistent even if a holder panicked: every update is a single store.
        self.map.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}
