//! The validated runtime model.

use std::net::IpAddr;
use std::time::Duration;

use ipnet::IpNet;
use rgost_routing::Route;
use uuid::Uuid;

/// Default TUN MTU (GOST's code uses 1420).
pub const DEFAULT_MTU: u16 = 1420;
/// Default bound on reading a router handshake.
pub const DEFAULT_READ_TIMEOUT: Duration = Duration::from_secs(10);
/// Default dial timeout.
pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// Everything rgost runs.
#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    /// Services in file order (file services first, then `-L` ones).
    pub services: Vec<Service>,
    /// Routers by name, in file order.
    pub routers: Vec<RouterConfig>,
    /// Ingresses by name, in file order.
    pub ingresses: Vec<IngressConfig>,
}

/// One service.
#[derive(Debug, Clone, PartialEq)]
pub struct Service {
    /// The service's name (`service-0`, ... when not given).
    pub name: String,
    /// What it does.
    pub kind: ServiceKind,
}

/// What a service does.
#[derive(Debug, Clone, PartialEq)]
pub enum ServiceKind {
    /// `handler: router` (server side).
    Router(RouterService),
    /// `listener: tun` + `handler: tun` (client side).
    Tun(TunService),
}

/// A router server.
#[derive(Debug, Clone, PartialEq)]
pub struct RouterService {
    /// Where to listen. An empty host (`:8443`) means every address, IPv4 and IPv6.
    pub listen: ListenAddr,
    /// The listener type.
    pub listener: ListenerKind,
    /// Bound on reading the handshake (`readTimeout`, default 10 s).
    pub read_timeout: Duration,
    /// The default router's name (`router`), used when the client's router id names no router.
    pub default_router: Option<String>,
    /// The ingress name (`ingress`).
    pub ingress: Option<String>,
}

/// A listen address.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ListenAddr {
    /// The address, or `None` for every address (dual stack).
    pub ip: Option<IpAddr>,
    /// The port.
    pub port: u16,
}

/// Listener types rgost implements.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ListenerKind {
    /// Plain TCP.
    Tcp,
}

/// A TUN client service.
#[derive(Debug, Clone, PartialEq)]
pub struct TunService {
    /// The device.
    pub tun: TunSettings,
    /// The host name reported to the router (the forwarder node's addr).
    pub host: String,
    /// The chain used to reach the router server.
    pub chain: Chain,
}

/// TUN listener metadata.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TunSettings {
    /// `name`.
    pub name: Option<String>,
    /// `net`: device addresses with prefix.
    pub addrs: Vec<IpNet>,
    /// `mtu`.
    pub mtu: u16,
    /// `route` (gateway = `gw`) and `routes` ("CIDR gateway") merged in that order.
    pub routes: Vec<TunRouteSetting>,
    /// `gw`.
    pub gateway: Option<IpAddr>,
    /// `dns` servers.
    pub dns: Vec<IpAddr>,
}

/// One route into the TUN device.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TunRouteSetting {
    /// Destination.
    pub dst: IpNet,
    /// Gateway, if any.
    pub gateway: Option<IpAddr>,
}

/// A chain: rgost supports exactly one hop; its nodes are alternatives tried in turn.
#[derive(Debug, Clone, PartialEq)]
pub struct Chain {
    /// The chain's name.
    pub name: String,
    /// The hop's nodes (at least one).
    pub nodes: Vec<Node>,
}

/// One node of a hop.
#[derive(Debug, Clone, PartialEq)]
pub struct Node {
    /// The node's name.
    pub name: String,
    /// `host:port` of the router server.
    pub addr: String,
    /// The connector.
    pub connector: RouterConnector,
    /// The dialer.
    pub dialer: DialerKind,
    /// Dial timeout (`connectTimeout` on the dialer or connector, default 10 s).
    pub connect_timeout: Duration,
}

/// The `router` connector's settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RouterConnector {
    /// `router.id`.
    pub router_id: Option<Uuid>,
    /// Credentials from the URL's userinfo or the connector's `auth`.
    pub auth: Option<Credentials>,
}

/// User name and password.
#[derive(Clone, PartialEq, Eq)]
pub struct Credentials {
    /// User name.
    pub username: String,
    /// Password.
    pub password: String,
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Credentials").field("username", &self.username).finish_non_exhaustive()
    }
}

/// Dialer types rgost implements.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DialerKind {
    /// Plain TCP.
    Tcp,
}

/// A router (routing table) definition.
#[derive(Debug, Clone, PartialEq)]
pub struct RouterConfig {
    /// Its name (a UUID string for a namespace, or any name for a default router).
    pub name: String,
    /// Inline routes in order.
    pub routes: Vec<Route>,
}

/// An ingress definition.
#[derive(Debug, Clone, PartialEq)]
pub struct IngressConfig {
    /// Its name.
    pub name: String,
    /// Inline rules: host name -> endpoint namespace.
    pub rules: Vec<(String, Uuid)>,
}

/// Why a config was rejected. Its message names where (file or command-line
/// flag), the key path (e.g. `services[0].listener.metadata.net`) and the
/// offending value.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// The file could not be read.
    #[error("{origin}: cannot read: {reason}")]
    Read {
        /// File path.
        origin: String,
        /// The OS error text.
        reason: String,
    },
    /// The text is not valid YAML/JSON or does not fit the schema.
    #[error("{origin}: {message}")]
    Syntax {
        /// File path or flag.
        origin: String,
        /// The parser's message, with line and column.
        message: String,
    },
    /// A value is malformed (bad CIDR, UUID, port, duration...).
    #[error("{origin}: {key}: invalid value {value:?}: {reason}")]
    Invalid {
        /// File path or flag.
        origin: String,
        /// Key path.
        key: String,
        /// The value as given.
        value: String,
        /// What is wrong.
        reason: String,
    },
    /// A key or type rgost does not implement.
    #[error("{origin}: {key}: {value:?} is not supported by rgost{}", if .hint.is_empty() { String::new() } else { format!(" ({})", .hint) })]
    Unsupported {
        /// File path or flag.
        origin: String,
        /// Key path.
        key: String,
        /// The value (type name, section name...).
        value: String,
        /// What is supported instead.
        hint: String,
    },
    /// A required key is missing.
    #[error("{origin}: {key}: missing{}", if .hint.is_empty() { String::new() } else { format!(" ({})", .hint) })]
    Missing {
        /// File path or flag.
        origin: String,
        /// Key path.
        key: String,
        /// What is expected.
        hint: String,
    },
    /// A reference names nothing (a chain, router or ingress that is not defined).
    #[error("{origin}: {key}: {value:?} is not defined")]
    Undefined {
        /// File path or flag.
        origin: String,
        /// Key path.
        key: String,
        /// The name referred to.
        value: String,
    },
}
