//! Router servers as one cluster: a client connects to any node, and
//! packets reach a host on whichever node it is connected to.
//!
//! * A **registry** records which node each host is connected to. rgost's
//!   engine is Redis ([`registry::redis`]): each node writes one record per
//!   host it holds, with a sequence number from a counter all nodes share
//!   (so the newest registration of a host wins on every node), under a
//!   lease it renews; changes are pushed to every node at once. GOST's SD
//!   HTTP plugin protocol is the other engine ([`registry::plugin`]). Each
//!   node keeps a copy ([`mirror`]) from which the forwarding core learns
//!   each host's claim; the packet path never waits on the registry.
//! * **Node links** ([`link`], [`accept`]) carry packets between nodes:
//!   TLS, both ends proving they hold the cluster's secret ([`auth`]),
//!   many packets per write, a bounded queue per link, reconnection with
//!   backoff. A frame names the namespace and host ([`frame`]); the
//!   receiving node only delivers to its own connections (one hop).
//!
//! The server calls [`Cluster`]: [`Cluster::registered`] and
//! [`Cluster::unregistered`] for its connections, [`Cluster::forward`] for a
//! packet the core routes to another node, and [`Cluster::lookup`] for a
//! packet to a host the core does not know. Packets from other nodes reach
//! the server's connections through the [`Deliver`] trait.
#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod accept;
pub mod auth;
pub mod frame;
pub mod link;
pub mod local;
pub mod mirror;
pub mod pending;
pub mod registry;
pub mod stats;
pub mod tls;

use std::sync::{Arc, Mutex, MutexGuard};
use std::time::SystemTime;

use bytes::Bytes;
use rgost_config::{ClusterSettings, SdBackend};
use rgost_forward::{Action, ConnId, DropReason, Fabric, NodeId, OwnerId, Routes};
use rgost_relay::TunnelId;
use tokio::sync::mpsc;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::auth::Secret;
use crate::link::Links;
use crate::mirror::{Apply, Key};
use crate::pending::{Miss, Pending};
pub use crate::stats::{Stats, Totals};

/// A connection of the server, as a node link delivers to it.
pub trait Deliver: Clone + Send + Sync + 'static {
    /// Queues `packet` for the connection, or says why it cannot.
    fn deliver(&self, packet: Bytes) -> Result<(), DropReason>;
}

/// Why a cluster node could not start.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ClusterError {
    /// The node link listener could not listen on `entrypoint`.
    #[error("cannot listen on entrypoint {addr}")]
    Bind {
        /// The address.
        addr: String,
        /// Why.
        #[source]
        source: rgost_transport::TransportError,
    },
    /// TLS for node links could not be set up.
    #[error(transparent)]
    Tls(#[from] tls::TlsError),
    /// The registry's configuration is unusable.
    #[error("sd {name}: {reason}")]
    Registry {
        /// The sd's name.
        name: String,
        /// Why.
        reason: String,
    },
}

/// What the server tells the registry.
#[derive(Debug)]
pub(crate) enum Event {
    /// A connection registered.
    Registered(Key, local::Conn),
    /// A connection closed.
    Unregistered(Key, ConnId),
    /// Where is this host?
    Lookup(Key),
}

/// This node of a cluster.
#[derive(Debug)]
pub struct Cluster<C> {
    inner: Arc<Inner<C>>,
}

impl<C> Clone for Cluster<C> {
    fn clone(&self) -> Self {
        Cluster { inner: Arc::clone(&self.inner) }
    }
}

/// State shared by the server's calls, the registry task and the links.
#[derive(Debug)]
pub(crate) struct Inner<C> {
    /// This node's id (new at every start).
    pub(crate) node: NodeId,
    /// The address other nodes dial to reach this one.
    pub(crate) advertise: Arc<str>,
    pub(crate) settings: ClusterSettings,
    pub(crate) fabric: Arc<Fabric<C>>,
    pub(crate) links: Links,
    pub(crate) events: mpsc::UnboundedSender<Event>,
    pub(crate) pending: Mutex<Pending>,
    pub(crate) stats: Arc<Stats>,
}

impl<C: Deliver> Cluster<C> {
    /// Joins the cluster: listens for node links on `entrypoint` (before
    /// anything else, so a port in use stops the start) and starts the
    /// registry. Runs until `shutdown`, then removes this node's records.
    pub async fn start(
        settings: &ClusterSettings,
        fabric: Arc<Fabric<C>>,
        shutdown: CancellationToken,
    ) -> Result<Cluster<C>, ClusterError> {
        let listener = rgost_transport::Listener::bind(settings.entrypoint, &rgost_config::ListenerKind::Tcp)
            .map_err(|source| ClusterError::Bind { addr: settings.entrypoint.to_string(), source })?;
        let node: NodeId = Arc::from(uuid::Uuid::new_v4().to_string());
        let secret = Arc::new(Secret::new(&settings.node_secret));
        let stats = Arc::new(Stats::default());
        let links = Links::new(
            Arc::clone(&node),
            Arc::clone(&secret),
            tls::client_config()?,
            settings.node_queue_bytes,
            Arc::clone(&stats),
            shutdown.clone(),
        );
        let (events, rx) = mpsc::unbounded_channel();
        let inner = Arc::new(Inner {
            node: Arc::clone(&node),
            advertise: Arc::from(settings.advertise.as_str()),
            settings: settings.clone(),
            fabric,
            links,
            events,
            pending: Mutex::new(Pending::new()),
            stats,
        });
        let server_config = tls::server_config()?;
        tracing::info!(
            node = %node,
            entrypoint = %settings.entrypoint,
            advertise = %settings.advertise,
            sd = %settings.sd.name,
            "cluster node: node link listener up"
        );
        tokio::spawn(accept::serve(Arc::clone(&inner), listener, server_config, secret, shutdown.clone()));
        match &settings.sd.backend {
            SdBackend::Redis(redis) => {
                let registry = registry::redis::Registry::new(Arc::clone(&inner), redis)
                    .map_err(|reason| ClusterError::Registry { name: settings.sd.name.clone(), reason })?;
                tokio::spawn(registry.run(rx, shutdown));
            }
            SdBackend::Plugin(plugin) => {
                let registry = registry::plugin::Registry::new(Arc::clone(&inner), plugin)
                    .map_err(|reason| ClusterError::Registry { name: settings.sd.name.clone(), reason })?;
                tokio::spawn(registry.run(rx, shutdown));
            }
        }
        Ok(Cluster { inner })
    }
}

impl<C: Deliver> Cluster<C> {
    /// This node's id in the registry (new at every start).
    pub fn node_id(&self) -> &NodeId {
        &self.inner.node
    }

    /// The forwarding core this node shares with its server.
    pub fn fabric(&self) -> &Arc<Fabric<C>> {
        &self.inner.fabric
    }

    /// Counters.
    pub fn totals(&self) -> Totals {
        self.inner.stats.totals(self.inner.links.up())
    }

    /// Connection `conn` (connector id `connector`) registered `host` in
    /// namespace `router` here. The registry records it in the background.
    pub fn registered(&self, router: TunnelId, host: &Arc<str>, conn: ConnId, connector: TunnelId) {
        let since_ms = SystemTime::now().duration_since(SystemTime::UNIX_EPOCH).map_or(0, |d| d.as_millis() as u64);
        let conn = local::Conn { id: conn, connector: connector.to_string(), since_ms, seq: None };
        lock(&self.inner.pending).known(&(router, Arc::clone(host)));
        let _ = self.inner.events.send(Event::Registered((router, Arc::clone(host)), conn));
    }

    /// Connection `conn` of `host` in namespace `router` closed.
    pub fn unregistered(&self, router: TunnelId, host: &Arc<str>, conn: ConnId) {
        let _ = self.inner.events.send(Event::Unregistered((router, Arc::clone(host)), conn));
    }

    /// Sends `packet` to `host` in namespace `router`, which is connected
    /// to `node` (the forwarding core said so).
    pub fn forward(&self, node: &NodeId, router: TunnelId, host: &Arc<str>, packet: Bytes) -> Result<(), DropReason> {
        self.inner.links.push(node, router, host, packet)
    }

    /// `packet` is for `host` in namespace `router`, which the core does
    /// not know: it waits (a few per host) while the registry is asked.
    pub fn lookup(&self, router: TunnelId, host: Arc<str>, packet: Bytes) -> Result<(), DropReason> {
        let key = (router, host);
        match lock(&self.inner.pending).miss(&key, packet, Instant::now()) {
            Miss::Start => {
                let _ = self.inner.events.send(Event::Lookup(key));
                Ok(())
            }
            Miss::Held => Ok(()),
            Miss::Drop(reason) => Err(reason),
        }
    }
}

impl<C: Deliver> Inner<C> {
    /// Gives the forwarding core the claims that changed, and makes sure
    /// there is a link to every node that now holds one.
    pub(crate) fn apply(&self, applies: impl IntoIterator<Item = Apply>) {
        for Apply { key: (router, host), claim, before } in applies {
            match claim {
                Some((node, seq, addr)) => {
                    self.links.ensure(&node, &addr);
                    tracing::debug!(host = %host, router = %router, node = %node, seq, "host claimed by another node");
                    self.fabric.claim_remote(router, host, node, seq);
                }
                None => {
                    if let Some(node) = before {
                        tracing::debug!(host = %host, router = %router, node = %node, "host released by another node");
                        self.fabric.release_remote(router, &host, &node);
                    }
                }
            }
        }
    }

    /// A lookup answered: the packets held for `key` go where the core now
    /// says (`found`: somewhere), or are dropped.
    pub(crate) fn answered(&self, key: &Key, found: bool) {
        let held = lock(&self.pending).answered(key, found, Instant::now(), self.settings.cache_expiration);
        if held.is_empty() {
            return;
        }
        let (router, host) = key;
        let owner = self.fabric.namespace(router).and_then(|ns| ns.owner(host).map(|o| (ns, o)));
        for packet in held {
            let result = match &owner {
                Some((_, OwnerId::Node(node))) => self.links.push(node, *router, host, packet),
                Some((ns, OwnerId::Local(_))) => {
                    match ns.view(Routes::None, false, Instant::now().into_std()).deliver_local(host) {
                        Action::Deliver(_, conn) => conn.deliver(packet),
                        _ => Err(DropReason::NoHost),
                    }
                }
                None => Err(DropReason::NoHost),
            };
            if let Err(reason) = result {
                self.stats.dropped(reason);
            }
        }
    }
}

/// Locks a mutex whose holders leave it consistent, ignoring poisoning.
pub(crate) fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|p| p.into_inner())
}
