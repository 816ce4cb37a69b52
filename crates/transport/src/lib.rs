//! Transports: how bytes get between a router client and server.
//!
//! A transport yields a [`Conn`]: independent read and write halves (so a
//! reader task and a writer task never contend) and the peer's address.
//! Only plain TCP exists so far; other listeners and dialers plug in here.
#![forbid(unsafe_code)]

use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::time::Duration;

use rgost_config::{DialerKind, ListenAddr, ListenerKind};
use socket2::{Domain, Protocol, SockRef, Socket, TcpKeepalive, Type};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpListener, TcpStream};

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
        f.debug_struct("Conn")
            .field("peer", &self.peer)
            .finish_non_exhaustive()
    }
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
    /// The connection did not complete within the timeout.
    #[error("connecting to {addr} timed out after {timeout:?}")]
    Timeout {
        /// The address as configured.
        addr: String,
        /// The timeout.
        timeout: Duration,
    },
}

/// Idle time before TCP keepalive probes start, and their interval.
const KEEPALIVE_IDLE: Duration = Duration::from_secs(15);
const KEEPALIVE_INTERVAL: Duration = Duration::from_secs(5);
const KEEPALIVE_RETRIES: u32 = 3;
/// How long sent data may stay unacknowledged before the connection is
/// declared dead (TCP_USER_TIMEOUT): a vanished peer frees its host name and
/// a client behind a dead path reconnects.
const USER_TIMEOUT: Duration = Duration::from_secs(30);

/// A bound listener.
#[derive(Debug)]
pub struct Listener {
    inner: TcpListener,
}

impl Listener {
    /// Binds `addr`. An empty host listens on every address: IPv6 and IPv4
    /// on one dual-stack socket, or IPv4 only where IPv6 is unavailable.
    pub fn bind(addr: ListenAddr, kind: ListenerKind) -> io::Result<Listener> {
        match kind {
            ListenerKind::Tcp => {}
        }
        let socket = match addr.ip {
            Some(ip) => tcp_socket(SocketAddr::new(ip, addr.port), false)?,
            None => tcp_socket(
                SocketAddr::new(IpAddr::V6(Ipv6Addr::UNSPECIFIED), addr.port),
                true,
            )
            .or_else(|_| {
                tcp_socket(
                    SocketAddr::new(IpAddr::V4(Ipv4Addr::UNSPECIFIED), addr.port),
                    false,
                )
            })?,
        };
        let inner = TcpListener::from_std(socket.into())?;
        Ok(Listener { inner })
    }

    /// The bound address.
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.inner.local_addr()
    }

    /// Accepts the next connection. Errors concern only that one attempt
    /// (e.g. the peer reset before accept, or too many open files) and the
    /// listener stays usable.
    pub async fn accept(&self) -> io::Result<Conn> {
        let (stream, peer) = self.inner.accept().await?;
        Ok(tcp_conn(stream, peer))
    }
}

/// Dials `addr` (`host:port`) with `kind`, bounded by `timeout`.
pub async fn dial(addr: &str, kind: DialerKind, timeout: Duration) -> Result<Conn, DialError> {
    match kind {
        DialerKind::Tcp => {}
    }
    let attempt = async {
        let addrs = tokio::net::lookup_host(addr)
            .await
            .map_err(|source| DialError::Resolve {
                addr: addr.to_owned(),
                source,
            })?;
        let mut last = None;
        for target in addrs {
            match TcpStream::connect(target).await {
                Ok(stream) => return Ok(tcp_conn(stream, target)),
                Err(e) => last = Some(e),
            }
        }
        Err(DialError::Connect {
            addr: addr.to_owned(),
            source: last.unwrap_or_else(|| io::Error::new(io::ErrorKind::NotFound, "no addresses")),
        })
    };
    tokio::time::timeout(timeout, attempt)
        .await
        .map_err(|_| DialError::Timeout {
            addr: addr.to_owned(),
            timeout,
        })?
}

fn tcp_socket(addr: SocketAddr, dual_stack: bool) -> io::Result<Socket> {
    let socket = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))?;
    if dual_stack {
        socket.set_only_v6(false)?;
    }
    socket.set_reuse_address(true)?;
    socket.set_nonblocking(true)?;
    socket.bind(&addr.into())?;
    socket.listen(1024)?;
    Ok(socket)
}

/// Applies the socket options every tunnel connection wants and splits it.
fn tcp_conn(stream: TcpStream, peer: SocketAddr) -> Conn {
    // Packets are already batched by us; Nagle would only add latency.
    if let Err(e) = stream.set_nodelay(true) {
        tracing::debug!(remote = %peer, error = %e, "cannot set TCP_NODELAY");
    }
    let keepalive = TcpKeepalive::new()
        .with_time(KEEPALIVE_IDLE)
        .with_interval(KEEPALIVE_INTERVAL)
        .with_retries(KEEPALIVE_RETRIES);
    let sock = SockRef::from(&stream);
    if let Err(e) = sock.set_tcp_keepalive(&keepalive) {
        tracing::debug!(remote = %peer, error = %e, "cannot set TCP keepalive");
    }
    if let Err(e) = sock.set_tcp_user_timeout(Some(USER_TIMEOUT)) {
        tracing::debug!(remote = %peer, error = %e, "cannot set TCP_USER_TIMEOUT");
    }
    let (reader, writer) = stream.into_split();
    Conn {
        reader: Box::new(reader),
        writer: Box::new(writer),
        peer,
    }
}

pub mod framed;

pub use framed::{FrameReader, FrameWriter};
