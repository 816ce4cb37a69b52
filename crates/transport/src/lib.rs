//! Transports: how bytes get between a router client and server.
//!
//! A listener accepts [`Incoming`] connections cheaply; the per-connection
//! task then runs [`Incoming::upgrade`] (TLS and/or WebSocket handshakes)
//! under its own time bound, so a slow peer never holds up the accept loop.
//! A [`Dialer`] prepared once at start dials and upgrades. Both yield a
//! [`Conn`]: independent read and write halves and the peer's address.
#![forbid(unsafe_code)]

pub mod framed;
pub mod readahead;
pub mod tls;
pub mod ws;

use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use rgost_config::{DialerKind, Keepalive, ListenAddr, ListenerKind, TlsServerSettings};
use rustls::pki_types::ServerName;
use socket2::{Domain, Protocol, SockRef, Socket, TcpKeepalive, Type};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::{TlsAcceptor, TlsConnector};

use crate::readahead::ReadAhead;

pub use framed::{FrameReader, FrameWriter};

/// The read half of a connection.
pub type ReadHalf = Box<dyn AsyncRead + Send + Unpin>;
/// The write half of a connection.
pub type WriteHalf = Box<dyn AsyncWrite + Send + Unpin>;

/// An established connection.
pub struct Conn {
    /// Bytes from the peer.
    pub reader: ReadHalf,
    /// Bytes to the peer.
    pub writer: WriteHalf,
    /// The peer's address.
    pub peer: SocketAddr,
}

impl std::fmt::Debug for Conn {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Conn").field("peer", &self.peer).finish_non_exhaustive()
    }
}

/// Why a transport could not be set up.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TransportError {
    /// TLS material is missing or invalid.
    #[error("TLS: {what}: {reason}")]
    Tls {
        /// What was being loaded or built.
        what: String,
        /// Why it failed.
        reason: String,
    },
    /// Creating, binding or listening on the socket failed.
    // Only this level's part: the OS error is `source()`, printed once by
    // whoever reports the chain.
    #[error(
        "cannot open the listening socket{}",
        if .0.kind() == io::ErrorKind::PermissionDenied {
            " (ports below 1024 need root or the CAP_NET_BIND_SERVICE capability)"
        } else {
            ""
        }
    )]
    Bind(#[source] io::Error),
}

/// Why a dial failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DialError {
    /// The address did not resolve to anything.
    #[error("cannot resolve {addr}: {source}")]
    Resolve {
        /// The address as configured.
        addr: String,
        /// The resolver's error.
        #[source]
        source: io::Error,
    },
    /// The connection was refused or failed.
    #[error("cannot connect to {addr}: {source}")]
    Connect {
        /// The address as configured.
        addr: String,
        /// The OS error.
        #[source]
        source: io::Error,
    },
    /// The TLS or WebSocket handshake failed.
    #[error("{layer} handshake with {addr} failed: {source}")]
    Handshake {
        /// "TLS" or "WebSocket".
        layer: &'static str,
        /// The address as configured.
        addr: String,
        /// The error.
        #[source]
        source: io::Error,
    },
    /// The connection did not complete within the timeout.
    #[error("connecting to {addr} timed out after {timeout:?}")]
    Timeout {
        /// The address as configured.
        addr: String,
        /// The timeout.
        timeout: Duration,
    },
}

/// Unanswered keepalive probes before the kernel declares the peer dead.
const KEEPALIVE_RETRIES: u32 = 3;
/// Unsent bytes the kernel may hold per socket (TCP_NOTSENT_LOWAT). Beyond
/// it writes wait, so a backlog builds in our small bounded queues (where
/// packets are dropped and the tunnelled flows slow down) instead of in a
/// send buffer of megabytes that delays every packet, pings included.
const NOTSENT_LOWAT: u32 = 128 * 1024;

#[derive(Clone)]
enum Upgrade {
    None,
    Tls(TlsAcceptor),
    Ws { path: Arc<str> },
    Wss { path: Arc<str>, tls: TlsAcceptor },
}

/// A bound listener.
pub struct Listener {
    inner: TcpListener,
    upgrade: Upgrade,
    keepalive: Keepalive,
}

impl std::fmt::Debug for Listener {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Listener").field("addr", &self.inner.local_addr().ok()).finish_non_exhaustive()
    }
}

/// An accepted TCP connection, not yet upgraded.
pub struct Incoming {
    stream: TcpStream,
    /// The peer's address.
    pub peer: SocketAddr,
    upgrade: Upgrade,
}

impl std::fmt::Debug for Incoming {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Incoming").field("peer", &self.peer).finish_non_exhaustive()
    }
}

impl Listener {
    /// Binds `addr`. An empty host listens on every address: IPv6 and IPv4
    /// on one dual-stack socket, or IPv4 only where IPv6 is unavailable.
    /// TLS material is loaded here, so bad files stop the start.
    pub fn bind(addr: ListenAddr, spec: &ListenerKind) -> Result<Listener, TransportError> {
        let acceptor = |tls: &TlsServerSettings| -> Result<TlsAcceptor, TransportError> {
            let (config, generated) = tls::server_config(tls)?;
            if generated {
                tracing::warn!("TLS: no certFile/keyFile: using a self-signed certificate generated at start");
            }
            Ok(TlsAcceptor::from(config))
        };
        let upgrade = match spec {
            ListenerKind::Tcp => Upgrade::None,
            ListenerKind::Tls(tls) => Upgrade::Tls(acceptor(tls)?),
            ListenerKind::Ws { path } => Upgrade::Ws { path: Arc::from(path.as_str()) },
            ListenerKind::Wss { path, tls } => Upgrade::Wss { path: Arc::from(path.as_str()), tls: acceptor(tls)? },
        };
        let socket = match addr.ip {
            Some(ip) => tcp_socket(SocketAddr::new(ip, addr.port), false),
            None => tcp_socket(SocketAddr::new(IpAddr::V6(Ipv6Addr::UNSPECIFIED), addr.port), true)
                .or_else(|_| tcp_socket(SocketAddr::new(IpAddr::V4(Ipv4Addr::UNSPECIFIED), addr.port), false)),
        }
        .map_err(TransportError::Bind)?;
        let inner = TcpListener::from_std(socket.into()).map_err(TransportError::Bind)?;
        Ok(Listener { inner, upgrade, keepalive: Keepalive::default() })
    }

    /// Dead-peer detection for accepted connections (default: [`Keepalive::default`]).
    pub fn with_keepalive(mut self, keepalive: Keepalive) -> Listener {
        self.keepalive = keepalive;
        self
    }

    /// The bound address.
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.inner.local_addr()
    }

    /// Accepts the next TCP connection. Errors concern only that one attempt
    /// (e.g. too many open files) and the listener stays usable.
    pub async fn accept(&self) -> io::Result<Incoming> {
        let (stream, peer) = self.inner.accept().await?;
        tune(&stream, peer, &self.keepalive);
        Ok(Incoming { stream, peer, upgrade: self.upgrade.clone() })
    }
}

impl Incoming {
    /// Runs the listener's handshakes (none for tcp). The caller bounds the time.
    pub async fn upgrade(self) -> io::Result<Conn> {
        let Incoming { stream, peer, upgrade } = self;
        match upgrade {
            Upgrade::None => Ok(split_tcp(stream, peer)),
            Upgrade::Tls(acceptor) => Ok(split(acceptor.accept(ReadAhead::new(stream)).await?, peer)),
            Upgrade::Ws { path } => Ok(split(ws_accept(stream, &path).await?, peer)),
            Upgrade::Wss { path, tls } => {
                let stream = tls.accept(ReadAhead::new(stream)).await?;
                Ok(split(ws_accept(stream, &path).await?, peer))
            }
        }
    }
}

async fn ws_accept<S: AsyncRead + AsyncWrite + Unpin>(stream: S, path: &str) -> io::Result<ws::WsStream<S>> {
    use tokio_tungstenite::tungstenite::handshake::server::{ErrorResponse, Request, Response};
    let expected = path.to_owned();
    // The callback's signature is tungstenite's; its error type is not ours to shrink.
    #[allow(clippy::result_large_err)]
    let check = move |request: &Request, response: Response| -> Result<Response, ErrorResponse> {
        if request.uri().path() == expected {
            Ok(response)
        } else {
            let mut refusal = ErrorResponse::new(Some("not found".to_owned()));
            *refusal.status_mut() = tokio_tungstenite::tungstenite::http::StatusCode::NOT_FOUND;
            Err(refusal)
        }
    };
    let ws = tokio_tungstenite::accept_hdr_async_with_config(stream, check, Some(ws::config()))
        .await
        .map_err(io::Error::other)?;
    Ok(ws::WsStream::new(ws))
}

/// Dials one node, prepared once (TLS material loaded at start).
#[derive(Clone)]
pub struct Dialer {
    addr: String,
    kind: DialKind,
    keepalive: Keepalive,
}

#[derive(Clone)]
enum DialKind {
    Tcp,
    Tls { connector: TlsConnector, name: ServerName<'static> },
    Ws { url: String },
    Wss { url: String, connector: TlsConnector, name: ServerName<'static> },
}

impl std::fmt::Debug for Dialer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Dialer").field("addr", &self.addr).finish_non_exhaustive()
    }
}

impl Dialer {
    /// Prepares dialing `addr` (`host:port`) with `spec`.
    pub fn new(addr: &str, spec: &DialerKind) -> Result<Dialer, TransportError> {
        let url = |scheme: &str, path: &str, host: &Option<String>| {
            let path = if path.starts_with('/') { path.to_owned() } else { format!("/{path}") };
            format!("{scheme}://{}{path}", host.as_deref().unwrap_or(addr))
        };
        let kind = match spec {
            DialerKind::Tcp => DialKind::Tcp,
            DialerKind::Tls(tls) => {
                let (config, name) = tls::client_config(tls, addr)?;
                DialKind::Tls { connector: TlsConnector::from(config), name }
            }
            DialerKind::Ws { path, host } => DialKind::Ws { url: url("ws", path, host) },
            DialerKind::Wss { path, host, tls } => {
                let (config, name) = tls::client_config(tls, addr)?;
                DialKind::Wss { url: url("wss", path, host), connector: TlsConnector::from(config), name }
            }
        };
        Ok(Dialer { addr: addr.to_owned(), kind, keepalive: Keepalive::default() })
    }

    /// Dead-peer detection for dialed connections (default: [`Keepalive::default`]).
    pub fn with_keepalive(mut self, keepalive: Keepalive) -> Dialer {
        self.keepalive = keepalive;
        self
    }

    /// The address dialed.
    pub fn addr(&self) -> &str {
        &self.addr
    }

    /// Connects and runs the handshakes, all within `timeout`.
    pub async fn dial(&self, timeout: Duration) -> Result<Conn, DialError> {
        tokio::time::timeout(timeout, self.dial_unbounded())
            .await
            .map_err(|_| DialError::Timeout { addr: self.addr.clone(), timeout })?
    }

    async fn dial_unbounded(&self) -> Result<Conn, DialError> {
        let addr = self.addr.as_str();
        let handshake = |layer| move |source| DialError::Handshake { layer, addr: addr.to_owned(), source };
        let (stream, peer) = connect_tcp(addr, &self.keepalive).await?;
        match &self.kind {
            DialKind::Tcp => Ok(split_tcp(stream, peer)),
            DialKind::Tls { connector, name } => {
                let tls = connector.connect(name.clone(), ReadAhead::new(stream)).await.map_err(handshake("TLS"))?;
                Ok(split(tls, peer))
            }
            DialKind::Ws { url } => Ok(split(ws_connect(url, stream).await.map_err(handshake("WebSocket"))?, peer)),
            DialKind::Wss { url, connector, name } => {
                let tls = connector.connect(name.clone(), ReadAhead::new(stream)).await.map_err(handshake("TLS"))?;
                Ok(split(ws_connect(url, tls).await.map_err(handshake("WebSocket"))?, peer))
            }
        }
    }
}

async fn ws_connect<S: AsyncRead + AsyncWrite + Unpin>(url: &str, stream: S) -> io::Result<ws::WsStream<S>> {
    let (ws, _) =
        tokio_tungstenite::client_async_with_config(url, stream, Some(ws::config())).await.map_err(io::Error::other)?;
    Ok(ws::WsStream::new(ws))
}

async fn connect_tcp(addr: &str, keepalive: &Keepalive) -> Result<(TcpStream, SocketAddr), DialError> {
    let addrs =
        tokio::net::lookup_host(addr).await.map_err(|source| DialError::Resolve { addr: addr.to_owned(), source })?;
    let mut last = None;
    for target in addrs {
        match TcpStream::connect(target).await {
            Ok(stream) => {
                tune(&stream, target, keepalive);
                return Ok((stream, target));
            }
            Err(e) => last = Some(e),
        }
    }
    Err(DialError::Connect {
        addr: addr.to_owned(),
        source: last.unwrap_or_else(|| io::Error::new(io::ErrorKind::NotFound, "no addresses")),
    })
}

fn tcp_socket(addr: SocketAddr, dual_stack: bool) -> io::Result<Socket> {
    let socket = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))?;
    if dual_stack {
        socket.set_only_v6(false)?;
    }
    socket.set_reuse_address(true)?;
    socket.set_nonblocking(true)?;
    socket.bind(&addr.into())?;
    // A burst of clients must not overflow the accept queue: a dropped SYN
    // costs its client a second (the kernel caps this at net.core.somaxconn).
    socket.listen(4096)?;
    Ok(socket)
}

/// The socket options every tunnel connection wants: no Nagle, keepalive
/// probes after `period` idle (then every third of it), and TCP_USER_TIMEOUT
/// so that data unacknowledged for `user_timeout` kills the connection: a
/// vanished peer frees its host name and a client behind a dead path reconnects.
fn tune(stream: &TcpStream, peer: SocketAddr, config: &Keepalive) {
    // Packets are already batched by us; Nagle would only add latency.
    if let Err(e) = stream.set_nodelay(true) {
        tracing::debug!(remote = %peer, error = %e, "cannot set TCP_NODELAY");
    }
    let interval = (config.period / 3).max(Duration::from_secs(1));
    let keepalive =
        TcpKeepalive::new().with_time(config.period).with_interval(interval).with_retries(KEEPALIVE_RETRIES);
    let sock = SockRef::from(stream);
    if let Err(e) = sock.set_tcp_keepalive(&keepalive) {
        tracing::debug!(remote = %peer, error = %e, "cannot set TCP keepalive");
    }
    if let Err(e) = sock.set_tcp_notsent_lowat(NOTSENT_LOWAT) {
        tracing::debug!(remote = %peer, error = %e, "cannot set TCP_NOTSENT_LOWAT");
    }
    if let Err(e) = sock.set_tcp_user_timeout(Some(config.user_timeout)) {
        tracing::debug!(remote = %peer, error = %e, "cannot set TCP_USER_TIMEOUT");
    }
}

/// Plain TCP splits without a lock.
fn split_tcp(stream: TcpStream, peer: SocketAddr) -> Conn {
    let (reader, writer) = stream.into_split();
    Conn { reader: Box::new(reader), writer: Box::new(writer), peer }
}

fn split<S: AsyncRead + AsyncWrite + Send + 'static>(stream: S, peer: SocketAddr) -> Conn {
    let (reader, writer) = tokio::io::split(stream);
    Conn { reader: Box::new(reader), writer: Box::new(writer), peer }
}
