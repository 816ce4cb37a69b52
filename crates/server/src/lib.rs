//! The routing tunnel's router server (`handler: router`).
//!
//! One packet's path through this crate, file by file: [`conn`] reads
//! frames from a client and asks the forwarding core ([`rgost_forward`])
//! where each packet goes, with the namespace's current [`router`]; it
//! queues the packet on the receiving connection's [`queue`] (bounded in
//! bytes), and that connection's writer in [`conn`] writes it out.
//! [`handshake`] decides whether a connection gets that far.
#![forbid(unsafe_code)]

pub mod auth;
pub mod bucket;
pub mod build;
pub mod conn;
pub mod control;
pub mod droplog;
pub mod events;
pub mod handshake;
pub mod ingress;
pub mod limits;
pub mod meters;
pub mod observe;
pub mod queue;
pub mod ratelimit;
pub mod reaper;
pub mod router;
pub mod service;
pub mod shaping;
pub mod stats;
pub mod status;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use arc_swap::ArcSwap;
use rgost_cluster::{Cluster, ClusterError};
use rgost_config::{ClusterSettings, Config, RouterService};
use rgost_forward::Fabric;
use rgost_relay::TunnelId;
use rgost_routing::{Ingress, RouteTable};
use rgost_transport::{Listener, TransportError};
use tokio_util::sync::CancellationToken;

pub use ingress::IngressSource;
pub use queue::QueueLimits;
pub use router::Router;
pub use stats::{DropReason, Stats, Totals};

/// Why the server could not start.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ServerError {
    /// Binding the listen address failed.
    #[error("cannot listen on {addr}")]
    Bind {
        /// The address.
        addr: String,
        /// What failed (the socket, or TLS material).
        #[source]
        source: TransportError,
    },
    /// Joining the cluster failed (its node link listener, or its registry's configuration).
    #[error("cannot join the cluster")]
    Cluster(#[source] ClusterError),
}

/// Everything a router service decides with; shared by all its connections
/// and replaced as a whole by a reload.
#[derive(Debug)]
pub struct Settings {
    /// Bound on reading the handshake, and on finishing a frame once begun.
    pub read_timeout: Duration,
    /// Bounds of each connection's queue.
    pub queue: QueueLimits,
    /// Bytes queued at most for one host across its connections.
    pub host_queue_bytes: usize,
    /// Bytes queued at most in the whole service (fixed at start).
    pub server_queue_bytes: usize,
    /// Routers by name.
    pub routers: HashMap<String, Arc<Router>>,
    /// The default router's name, used when the client's router id names no router.
    pub default_router: Option<String>,
    /// The authenticator, if configured: clients without valid credentials get Unauthorized.
    pub auther: Option<auth::Auther>,
    /// Which hosts each user may register, in which namespaces (beyond GOST; off when `None`).
    pub host_binding: Option<rgost_routing::HostBinding>,
    /// The service's name (sent to an ingress plugin).
    pub service: String,
    /// The ingress, if configured.
    pub ingress: Option<IngressSource>,
    /// Drop packets whose source address does not route back to the sending host.
    pub strict_source: bool,
    /// Largest handshake request accepted (bytes).
    pub max_request: usize,
    /// Connections at once, in total; more are closed at accept (fixed at start).
    pub max_connections: usize,
    /// Connections at once from one source address; more are closed at accept (fixed at start).
    pub max_connections_per_ip: usize,
    /// Traffic limits, rate limits and the observer.
    pub shaping: Shapers,
}

/// What limits a router service's clients and what hears about them: all
/// optional.
#[derive(Debug, Default)]
pub struct Shapers {
    /// The handler's `limiter`: paces each client.
    pub limiter: Option<Arc<shaping::TrafficLimiter>>,
    /// The service's `limiter` (GOST's listener limiter): paces each connection.
    pub service_limiter: Option<Arc<shaping::TrafficLimiter>>,
    /// The service's `rlimiter`: new connections per second, checked at accept.
    pub rate_limiter: Option<Arc<ratelimit::RateLimiter>>,
    /// The handler's `observer`: gets each client's stats every period.
    pub observer: Option<Arc<observe::Observer>>,
}

impl Shapers {
    /// The limiters of `service` from the config's inline lines. Plugins,
    /// data sources and the observer are attached by [`build::settings`].
    pub fn from_config(service: &RouterService, config: &Config) -> Shapers {
        let traffic = |name: &Option<String>| {
            let limiter = config.limiters.iter().find(|l| Some(&l.name) == name.as_ref())?;
            Some(Arc::new(shaping::TrafficLimiter::new(&limiter.name, shaping::Rules::new(&limiter.limits))))
        };
        let rate_limiter = config
            .rlimiters
            .iter()
            .find(|l| Some(&l.name) == service.shaping.rate_limiter.as_ref())
            .map(|l| Arc::new(ratelimit::RateLimiter::new(&l.name, &l.limits)));
        Shapers {
            limiter: traffic(&service.shaping.limiter),
            service_limiter: traffic(&service.shaping.service_limiter),
            rate_limiter,
            observer: None,
        }
    }
}

impl Settings {
    /// Builds the settings of `service` from the config's inline routers,
    /// ingresses and authers. The config crate has already checked that
    /// referenced names exist. Plugins and data sources are attached by the
    /// caller (see `rgost`'s service set-up), which can replace tables later.
    pub fn from_config(name: &str, service: &RouterService, config: &Config) -> Settings {
        let routers = config
            .routers
            .iter()
            .map(|r| (r.name.clone(), Arc::new(Router::table(RouteTable::new(r.routes.iter().cloned())))))
            .collect();
        let ingress = service.ingress.as_ref().and_then(|name| {
            config
                .ingresses
                .iter()
                .find(|i| &i.name == name)
                .map(|i| Ingress::new(i.rules.iter().map(|(host, id)| (host.clone(), *id.as_bytes()))))
        });
        // `auth` on the handler wins over `auther`, as in GOST.
        let auther = match (&service.auth, &service.auther) {
            (Some(c), _) => Some(auth::Auther::from_pairs([(c.username.clone(), c.password.clone())])),
            (None, Some(name)) => config.authers.iter().find(|a| &a.name == name).map(|a| {
                auth::Auther::from_pairs(
                    a.auths.iter().map(|u| (u.credentials.username.clone(), u.credentials.password.clone())),
                )
            }),
            (None, None) => None,
        };
        let host_binding = (!service.host_binding.is_empty()).then(|| {
            rgost_routing::HostBinding::new(service.host_binding.iter().map(|(user, hosts)| {
                let rules = hosts
                    .iter()
                    .filter_map(|text| {
                        rgost_routing::HostRule::parse(text)
                            .map_err(|e| tracing::warn!(user = %user, "hosts: skipping {e}"))
                            .ok()
                    })
                    .collect();
                (user.clone(), rules)
            }))
        });
        Settings {
            read_timeout: service.read_timeout,
            queue: QueueLimits { packets: service.limits.queue_packets, bytes: service.limits.queue_bytes },
            host_queue_bytes: service.limits.host_queue_bytes,
            server_queue_bytes: service.limits.server_queue_bytes,
            routers,
            default_router: service.default_router.clone(),
            auther,
            host_binding,
            service: name.to_owned(),
            ingress: ingress.map(IngressSource::rules),
            strict_source: service.strict_source,
            max_request: service.limits.max_handshake_bytes,
            max_connections: service.limits.max_connections,
            max_connections_per_ip: service.limits.max_connections_per_ip,
            shaping: Shapers::from_config(service, config),
        }
    }

    /// The router for namespace `id`: the router named by the id's UUID
    /// string, else the default router. The flag says whether it is the
    /// default standing in for a router the id does not name.
    pub fn router_for(&self, id: &TunnelId) -> Option<(&str, &Arc<Router>, bool)> {
        if let Some((name, router)) = self.routers.get_key_value(&id.to_string()) {
            return Some((name, router, false));
        }
        let name = self.default_router.as_ref()?;
        self.routers.get_key_value(name).map(|(name, router)| (name.as_str(), router, true))
    }
}

/// The settings in force, with the routers indexed by namespace id.
#[derive(Debug)]
struct Live {
    settings: Settings,
    /// Routers whose names are router ids (UUIDs).
    by_id: HashMap<TunnelId, Arc<Router>>,
    /// The default router, if it exists.
    default: Option<Arc<Router>>,
}

impl Live {
    fn new(settings: Settings) -> Live {
        let by_id = settings
            .routers
            .iter()
            .filter_map(|(name, router)| {
                // GOST matches the id's lowercase hyphenated form exactly.
                let id = TunnelId::from_uuid(*uuid::Uuid::parse_str(name).ok()?.as_bytes());
                (id.to_string() == *name).then(|| (id, Arc::clone(router)))
            })
            .collect();
        let default = settings.default_router.as_ref().and_then(|name| settings.routers.get(name)).cloned();
        Live { settings, by_id, default }
    }

    fn router(&self, id: &TunnelId) -> Option<&Arc<Router>> {
        self.by_id.get(id).or(self.default.as_ref())
    }
}

/// A connection as the forwarding core holds it: where to queue its
/// packets, and its counters.
#[derive(Debug, Clone)]
pub struct Peer {
    /// Its outgoing queue.
    pub queue: Arc<queue::Queue>,
    /// Its counters.
    pub stats: Arc<stats::ConnStats>,
    /// The peer's address.
    pub remote: std::net::SocketAddr,
    /// The connector id it was given in the handshake's reply.
    pub connector: TunnelId,
    /// Cancelling it closes the connection.
    pub done: CancellationToken,
    /// Whether it takes GSO frames (super-packets); others get them cut into packets.
    pub gso: bool,
}

impl Peer {
    /// Appends `packet` to a run queued for this peer: a GSO frame cut into
    /// ordinary packets when the peer did not negotiate them (in a fresh
    /// allocation), otherwise the packet itself, copied if `copy`.
    pub(crate) fn append_to(&self, run: &mut Vec<bytes::Bytes>, packet: bytes::Bytes, copy: bool) {
        if !self.gso && packet.first() == Some(&rgost_relay::gso::GSO_FRAME) {
            run.extend(conn::segments(&packet));
        } else {
            run.push(if copy { bytes::Bytes::copy_from_slice(&packet) } else { packet });
        }
    }
}

impl rgost_cluster::Deliver for Peer {
    fn deliver(&self, packet: bytes::Bytes) -> Result<(), DropReason> {
        let mut run = Vec::new();
        self.append_to(&mut run, packet, false);
        match self.queue.push_many(&mut run).dropped {
            (0, _) => Ok(()),
            (n, reason) => {
                self.stats.dropped_to(n);
                Err(reason.unwrap_or(DropReason::Closed))
            }
        }
    }
}

/// A running router service's shared state.
#[derive(Debug)]
pub struct Server {
    live: ArcSwap<Live>,
    fabric: Arc<Fabric<Peer>>,
    /// This server's node of a cluster (`sd`), if it is one.
    cluster: Option<Cluster<Peer>>,
    stats: Arc<Stats>,
    limits: limits::Limits,
    budget: Arc<queue::Budget>,
    reaper: reaper::Reaper,
    drop_log: droplog::DropLog,
    hooks: build::Hooks,
    started: SystemTime,
    ledger: observe::Ledger,
}

impl Server {
    /// A server with these settings and no connections.
    pub fn new(settings: Settings) -> Arc<Server> {
        Server::with_hooks(settings, build::Hooks::default())
    }

    /// A server that reports connections coming and going to `hooks`.
    pub fn with_hooks(settings: Settings, hooks: build::Hooks) -> Arc<Server> {
        Server::build(settings, hooks, Arc::new(Fabric::new()), None)
    }

    /// A server that is a node of the cluster `cluster` describes: it joins
    /// (listens for node links, starts the registry) and runs until `shutdown`.
    pub async fn clustered(
        settings: Settings,
        hooks: build::Hooks,
        cluster: &ClusterSettings,
        shutdown: &CancellationToken,
    ) -> Result<Arc<Server>, ServerError> {
        let fabric = Arc::new(Fabric::new());
        let node =
            Cluster::start(cluster, Arc::clone(&fabric), shutdown.clone()).await.map_err(ServerError::Cluster)?;
        Ok(Server::build(settings, hooks, fabric, Some(node)))
    }

    fn build(
        settings: Settings,
        hooks: build::Hooks,
        fabric: Arc<Fabric<Peer>>,
        cluster: Option<Cluster<Peer>>,
    ) -> Arc<Server> {
        let limits = limits::Limits::new(settings.max_connections, settings.max_connections_per_ip);
        let budget = Arc::new(queue::Budget::new(settings.server_queue_bytes));
        Arc::new(Server {
            live: ArcSwap::from_pointee(Live::new(settings)),
            fabric,
            cluster,
            stats: Arc::default(),
            limits,
            budget,
            reaper: reaper::Reaper::new(),
            drop_log: droplog::DropLog::default(),
            hooks,
            started: SystemTime::now(),
            ledger: observe::Ledger::default(),
        })
    }

    /// Where connections coming and going, and route changes, are reported.
    pub fn events(&self) -> &events::Events {
        &self.hooks.events
    }

    /// The counters of data sources and plugins.
    pub fn meters(&self) -> &Arc<meters::Meters> {
        &self.hooks.meters
    }

    /// When the server was created.
    pub fn started(&self) -> SystemTime {
        self.started
    }

    /// Connections held now (against `maxConnections`).
    pub fn connections_now(&self) -> usize {
        self.limits.total()
    }

    /// Puts new settings in force: the next handshake and the next batch of
    /// packets of every connection see them; connections stay. The
    /// connection limits and the service's byte budget stay as they were.
    pub fn reload(&self, settings: Settings) {
        self.live.store(Arc::new(Live::new(settings)));
        // The limiters are new: every connection chooses its buckets again.
        shaping::limits_changed();
    }

    /// The handshake counters and those of closed connections.
    pub fn stats(&self) -> &Stats {
        &self.stats
    }

    /// Every counter summed: closed connections and live ones.
    pub fn totals(&self) -> Totals {
        let (mut totals, _) = self.stats.retired();
        for namespace in self.fabric.namespaces() {
            namespace.for_each_connection(|_, _, peer| totals.add(&peer.stats.totals()));
        }
        totals
    }

    /// Local connections registered as `host` in namespace `router_id`.
    pub fn connections(&self, router_id: &TunnelId, host: &str) -> usize {
        self.fabric.connections(router_id, host)
    }

    /// The namespaces and who receives for each host.
    pub fn fabric(&self) -> &Fabric<Peer> {
        &self.fabric
    }

    /// This server's cluster node, if it is one.
    pub fn cluster(&self) -> Option<&Cluster<Peer>> {
        self.cluster.as_ref()
    }

    /// Bytes queued in the whole service now.
    pub fn queued_bytes(&self) -> usize {
        self.budget.used()
    }

    /// The settings in force.
    pub fn settings(&self) -> SettingsGuard {
        SettingsGuard(self.live.load_full())
    }

    /// Accepts connections on `listener` until `shutdown` fires, then closes
    /// every connection it accepted.
    pub async fn serve(self: Arc<Self>, listener: Listener, shutdown: CancellationToken) {
        let tasks = tokio_util::task::TaskTracker::new();
        tasks.spawn(Arc::clone(&self).summarize_drops(shutdown.clone()));
        tasks.spawn(Arc::clone(&self).observe(shutdown.clone()));
        loop {
            let accepted = tokio::select! {
                () = shutdown.cancelled() => break,
                accepted = listener.accept() => accepted,
            };
            match accepted {
                Ok(incoming) => {
                    // Over the new-connection rate: close at once, before
                    // anything is read or allocated for it.
                    if !self.admit(incoming.peer.ip()) {
                        self.stats.refused(None);
                        self.stats.rate_limited();
                        tracing::debug!(remote = %incoming.peer, "connection rate limit reached, closing");
                        continue;
                    }
                    // Over a limit: close at once, before any allocation for it.
                    let Some(slot) = self.limits.acquire(incoming.peer.ip()) else {
                        self.stats.refused(None);
                        tracing::debug!(remote = %incoming.peer, "connection limit reached, closing");
                        continue;
                    };
                    let server = Arc::clone(&self);
                    let shutdown = shutdown.clone();
                    tasks.spawn(async move {
                        server.handle(incoming, shutdown).await;
                        drop(slot);
                    });
                }
                Err(e) => {
                    // Typically EMFILE or a reset before accept: back off briefly
                    // instead of spinning.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            }
        }
        tasks.close();
        tasks.wait().await;
    }
}

impl Server {
    /// Whether the service's rate limiter admits a new connection from `ip`.
    fn admit(&self, ip: std::net::IpAddr) -> bool {
        self.live.load().settings.shaping.rate_limiter.as_ref().is_none_or(|limiter| limiter.allow(ip))
    }

    /// Chooses the buckets that pace `who` in direction `dir` now.
    pub(crate) fn repace(&self, pacer: &mut shaping::Pacer, who: &shaping::Who, dir: shaping::Dir) {
        // The generation first: a change after it moves it again, and the
        // next batch chooses again.
        let epoch = shaping::epoch();
        let live = self.live.load();
        let shapers = &live.settings.shaping;
        let mut buckets = Vec::new();
        if let Some(limiter) = &shapers.limiter {
            buckets.extend(limiter.buckets(who, shaping::Mode::Client, dir));
        }
        if let Some(limiter) = &shapers.service_limiter {
            buckets.extend(limiter.buckets(who, shaping::Mode::Conn, dir));
        }
        pacer.set(epoch, buckets);
    }

    /// Posts each client's stats to the observer every period (the
    /// observer and its period may change with a reload). Events that could
    /// not be posted are posted again before new ones are collected, as in
    /// GOST.
    async fn observe(self: Arc<Self>, shutdown: CancellationToken) {
        let mut pending: Vec<rgost_sources::ObserverEvent> = Vec::new();
        let mut failing = false;
        loop {
            let period = self.settings().shaping.observer.as_ref().map_or(Duration::from_secs(1), |o| o.period);
            tokio::select! {
                () = shutdown.cancelled() => return,
                () = tokio::time::sleep(period) => {}
            }
            let settings = self.settings();
            let Some(observer) = settings.shaping.observer.clone() else {
                pending.clear();
                continue;
            };
            if pending.is_empty() {
                pending = self.ledger.events(&settings.service, &self.open_by_client(), observer.reset_traffic);
            }
            drop(settings);
            if pending.is_empty() {
                continue;
            }
            let posted = tokio::select! {
                () = shutdown.cancelled() => return,
                posted = observer.plugin.observe(&pending) => posted,
            };
            match posted {
                Ok(()) => {
                    if std::mem::take(&mut failing) {
                        tracing::info!(observer = %observer.name, "observer works again");
                    }
                    pending.clear();
                }
                Err(e) if !failing => {
                    failing = true;
                    tracing::warn!(observer = %observer.name, events = pending.len(), "observer failed, retrying: {e}");
                }
                Err(_) => {}
            }
        }
    }

    /// Every client's open connections now: how many, bytes in and out.
    fn open_by_client(&self) -> HashMap<observe::Client, observe::Open> {
        let mut open: HashMap<observe::Client, observe::Open> = HashMap::new();
        for namespace in self.fabric.namespaces() {
            let id = namespace.id();
            namespace.for_each_connection(|host, _, peer| {
                let totals = peer.stats.totals();
                let entry = open.entry((id, Arc::clone(host))).or_default();
                entry.conns += 1;
                entry.bytes_in += totals.bytes_in;
                entry.bytes_out += totals.bytes_out;
            });
        }
        open
    }

    /// Logs the packets dropped in each minute that had any, by reason.
    async fn summarize_drops(self: Arc<Self>, shutdown: CancellationToken) {
        let mut last = self.totals();
        let mut tick = tokio::time::interval(droplog::SUMMARY_EVERY);
        tick.tick().await;
        loop {
            tokio::select! {
                () = shutdown.cancelled() => return,
                _ = tick.tick() => {}
            }
            let now = self.totals();
            let counts: Vec<String> = now
                .drop_counts()
                .zip(last.drop_counts())
                .filter(|((_, a), (_, b))| a > b)
                .map(|((name, a), (_, b))| format!("{name}={}", a - b))
                .collect();
            if !counts.is_empty() {
                tracing::info!(
                    forwarded = now.packets_forwarded - last.packets_forwarded,
                    "packets dropped in the last minute: {}",
                    counts.join(" ")
                );
            }
            last = now;
        }
    }
}

/// Binds a router service's listener. Done before anything is spawned, so a
/// port in use stops the start.
pub fn bind(service: &RouterService) -> Result<Listener, ServerError> {
    Listener::bind(service.listen, &service.listener).map(|l| l.with_keepalive(service.keepalive)).map_err(|source| {
        ServerError::Bind {
            addr: match service.listen.ip {
                Some(ip) => std::net::SocketAddr::new(ip, service.listen.port).to_string(),
                None => format!(":{}", service.listen.port),
            },
            source,
        }
    })
}

/// The settings in force at one moment (a reload does not change them under you).
#[derive(Debug)]
pub struct SettingsGuard(Arc<Live>);

impl std::ops::Deref for SettingsGuard {
    type Target = Settings;

    fn deref(&self) -> &Settings {
        &self.0.settings
    }
}
