//! The routing tunnel's router server (`handler: router`).
//!
//! One packet's path through this crate, file by file:
//! [`conn`] reads frames from a client and asks [`forward`] where each
//! packet goes (route table of the connection's [`namespace`], then the
//! connection registered for the gateway host); the packet is queued on that
//! connection's bounded queue, and that connection's writer in [`conn`]
//! writes it out. [`handshake`] decides whether a connection gets that far.
#![forbid(unsafe_code)]

pub mod auth;
pub mod build;
pub mod conn;
pub mod forward;
pub mod handshake;
pub mod ingress;
pub mod limits;
pub mod namespace;
pub mod router;
pub mod stats;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use rgost_config::{Config, RouterService};
use rgost_routing::{Ingress, RouteTable};

pub use ingress::IngressSource;
use rgost_transport::{Listener, TransportError};
use tokio_util::sync::CancellationToken;

pub use router::Router;
pub use stats::{DropReason, Stats};

/// Packets queued per connection before further packets to it are dropped.
pub const DEFAULT_QUEUE_PACKETS: usize = 256;

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
}

/// Everything a router service decides with; shared by all its connections.
#[derive(Debug)]
pub struct Settings {
    /// Bound on reading the handshake.
    pub read_timeout: Duration,
    /// Per-connection queue length (packets).
    pub queue_packets: usize,
    /// Routers by name.
    pub routers: HashMap<String, Arc<Router>>,
    /// The default router's name, used when the client's router id names no router.
    pub default_router: Option<String>,
    /// The authenticator, if configured: clients without valid credentials get Unauthorized.
    pub auther: Option<auth::Auther>,
    /// Which hosts each user may register (beyond GOST; off when `None`).
    pub host_binding: Option<auth::HostBinding>,
    /// The service's name (sent to an ingress plugin).
    pub service: String,
    /// The ingress, if configured.
    pub ingress: Option<IngressSource>,
    /// Drop packets whose source address does not route back to the sender.
    pub strict_source: bool,
    /// Largest handshake request accepted (bytes).
    pub max_request: usize,
    /// Connections at once, in total; more are closed at accept.
    pub max_connections: usize,
    /// Connections at once from one source address; more are closed at accept.
    pub max_connections_per_ip: usize,
}

/// Default bound on connections at once.
pub const DEFAULT_MAX_CONNECTIONS: usize = 20_000;
/// Default bound on connections at once from one address.
pub const DEFAULT_MAX_CONNECTIONS_PER_IP: usize = 512;

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
        let host_binding =
            (!service.host_binding.is_empty()).then(|| auth::HostBinding::new(service.host_binding.iter().cloned()));
        Settings {
            read_timeout: service.read_timeout,
            queue_packets: service.limits.queue_packets,
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
        }
    }
}

/// A running router service's shared state.
#[derive(Debug)]
pub struct Server {
    settings: Settings,
    namespaces: namespace::Namespaces,
    stats: Arc<Stats>,
    limits: limits::Limits,
}

impl Server {
    /// A server with these settings and no connections.
    pub fn new(settings: Settings) -> Arc<Server> {
        let limits = limits::Limits::new(settings.max_connections, settings.max_connections_per_ip);
        Arc::new(Server { settings, namespaces: namespace::Namespaces::default(), stats: Arc::default(), limits })
    }

    /// The drop and connection counters.
    pub fn stats(&self) -> &Stats {
        &self.stats
    }

    /// How many connections are registered as `host` in namespace `router_id`.
    pub fn connections(&self, router_id: &rgost_relay::TunnelId, host: &str) -> usize {
        self.namespaces.connections(router_id, host)
    }

    /// The settings.
    pub fn settings(&self) -> &Settings {
        &self.settings
    }

    /// Accepts connections on `listener` until `shutdown` fires, then closes
    /// every connection it accepted.
    pub async fn serve(self: Arc<Self>, listener: Listener, shutdown: CancellationToken) {
        let tasks = tokio_util::task::TaskTracker::new();
        loop {
            let accepted = tokio::select! {
                () = shutdown.cancelled() => break,
                accepted = listener.accept() => accepted,
            };
            match accepted {
                Ok(incoming) => {
                    // Over a limit: close at once, before any allocation for it.
                    let Some(slot) = self.limits.acquire(incoming.peer.ip()) else {
                        self.stats.refused();
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
