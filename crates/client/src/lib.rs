//! The routing tunnel's TUN client (`listener: tun`, `handler: tun`).
//!
//! [`Client::start`] creates the TUN device (its addresses and routes stay up
//! for the client's whole life); [`Client::run`] keeps one connection to a
//! router server (one of the hop's nodes, picked by the [`selector`]),
//! reconnecting with [`backoff`], and pumps packets between
//! the device and the connection ([`session`]); the connection's handshake
//! is in [`handshake`]. On shutdown the device and its routes are removed.
//!
//! The device uses TUN segmentation offload when the kernel allows it
//! (the tun listener's `offload: false`, or `RGOST_TUN_OFFLOAD=0`, turns it off): reads are split and writes
//! coalesced inside [`rgost_tun`], so frames on the wire stay ordinary
//! MTU-sized IP packets either way.
#![forbid(unsafe_code)]

pub mod backoff;
pub mod handshake;
pub mod selector;
pub mod session;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use rgost_config::TunService;
use rgost_relay::{Addr, Host};
use rgost_transport::Dialer;
use rgost_tun::{RecvBatch, Tun, TunConfig, TunError, TunRoute};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::backoff::Backoff;
use crate::selector::NodeSelector;
use crate::session::SessionEnd;

/// TUN segmentation offload (GSO/GRO, see [`rgost_tun`]): the tun
/// listener's `offload` key (on by default), unless the environment variable
/// `RGOST_TUN_OFFLOAD` says otherwise (`0`/`false`/`off`/`no` turns it off,
/// `1`/`true`/`on`/`yes` on; anything else leaves the key's choice). Frames
/// on the wire are the same either way (ordinary MTU-sized packets).
fn offload_wanted(configured: bool) -> bool {
    offload_override(std::env::var("RGOST_TUN_OFFLOAD").ok().as_deref()).unwrap_or(configured)
}

/// What a `RGOST_TUN_OFFLOAD` value forces, if anything.
fn offload_override(value: Option<&str>) -> Option<bool> {
    match value?.trim() {
        "0" | "false" | "off" | "no" => Some(false),
        "1" | "true" | "on" | "yes" => Some(true),
        _ => None,
    }
}

/// Why a client stopped with an error.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ClientError {
    /// A node's transport could not be prepared (TLS files).
    #[error("node {node}: {source}")]
    Transport {
        /// The node's name.
        node: String,
        /// Why.
        #[source]
        source: rgost_transport::TransportError,
    },
    /// The TUN device could not be set up or removed.
    #[error(transparent)]
    Tun(#[from] TunError),
    /// Reading the TUN device failed for good.
    #[error("reading TUN device {name}: {source}")]
    TunRead {
        /// The device.
        name: String,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
}

/// A client's connection counters, for metrics.
#[derive(Debug, Default)]
pub struct ClientStats {
    connected: AtomicBool,
    sessions: AtomicU64,
    failed: AtomicU64,
}

impl ClientStats {
    /// Whether a session with the router server is up now.
    pub fn connected(&self) -> bool {
        self.connected.load(Ordering::Relaxed)
    }

    /// Sessions established after the first one: reconnects.
    pub fn reconnects(&self) -> u64 {
        self.sessions.load(Ordering::Relaxed).saturating_sub(1)
    }

    /// Sessions established.
    pub fn sessions(&self) -> u64 {
        self.sessions.load(Ordering::Relaxed)
    }

    /// Connection attempts that failed (dial or handshake).
    pub fn failed(&self) -> u64 {
        self.failed.load(Ordering::Relaxed)
    }
}

/// A TUN client with its device created.
#[derive(Debug)]
pub struct Client {
    service: TunService,
    dialers: Vec<Dialer>,
    tun: Tun,
    stats: Arc<ClientStats>,
}

impl Client {
    /// Creates the TUN device (addresses, MTU, routes).
    pub async fn start(service: TunService) -> Result<Client, ClientError> {
        let dialers = service
            .chain
            .nodes
            .iter()
            .map(|node| {
                Dialer::new(&node.addr, &node.dialer)
                    .map(|d| d.with_keepalive(node.keepalive))
                    .map_err(|source| ClientError::Transport { node: node.name.clone(), source })
            })
            .collect::<Result<Vec<_>, _>>()?;
        if !service.tun.dns.is_empty() {
            tracing::warn!("tun: dns is not applied by rgost; configure the resolver yourself");
        }
        let config = TunConfig {
            name: service.tun.name.clone(),
            addrs: service.tun.addrs.clone(),
            mtu: service.tun.mtu,
            routes: service.tun.routes.iter().map(|r| TunRoute { dst: r.dst, gateway: r.gateway }).collect(),
            offload: offload_wanted(service.tun.offload),
        };
        let tun = Tun::create(&config).await?;
        tracing::info!(
            device = tun.name(),
            net = ?service.tun.addrs,
            routes = ?service.tun.routes.iter().map(|r| r.dst).collect::<Vec<_>>(),
            mtu = tun.mtu(),
            "TUN device up"
        );
        Ok(Client { service, dialers, tun, stats: Arc::default() })
    }

    /// The client's connection counters.
    pub fn stats(&self) -> Arc<ClientStats> {
        Arc::clone(&self.stats)
    }

    /// The device's name.
    pub fn device(&self) -> &str {
        self.tun.name()
    }

    /// Relays until `shutdown` fires, reconnecting as needed, then closes the
    /// connection and removes the device and its routes.
    pub async fn run(self, shutdown: CancellationToken) -> Result<(), ClientError> {
        let Client { service, dialers, tun, stats } = self;
        let result = connect_loop(&service, &dialers, &tun, &shutdown, &stats).await;
        stats.connected.store(false, Ordering::Relaxed);
        let name = tun.name().to_owned();
        tun.close().await?;
        tracing::info!(device = %name, "TUN device removed");
        result.map_err(|source| ClientError::TunRead { name, source })
    }
}

/// Keeps a session up until shutdown; fails only if the device does.
///
/// The hop's nodes are alternatives (router servers of one cluster):
/// each round tries them one after the other, as the selector orders them,
/// without waiting in between, and only a round in which every node failed
/// waits (backoff). A lost session counts as a failure of its node, so a
/// client whose node died is on another one at the next attempt.
async fn connect_loop(
    service: &TunService,
    dialers: &[Dialer],
    tun: &Tun,
    shutdown: &CancellationToken,
    stats: &ClientStats,
) -> Result<(), std::io::Error> {
    let mut backoff = Backoff::default();
    let mut tun_batch = RecvBatch::new(tun.mtu());
    let src = source_addr(service, tun.offload());
    let nodes = &service.chain.nodes;
    if nodes.is_empty() || dialers.is_empty() {
        tracing::error!("chain {} has no nodes", service.chain.name);
        shutdown.cancelled().await;
        return Ok(());
    }
    let mut selector = NodeSelector::new(&service.chain.selector, nodes.len(), &service.host);
    loop {
        let mut tried = vec![false; nodes.len()];
        // The ceiling of the wait after this round, from its last failure.
        let mut cap = backoff::CAP;
        while let Some(index) = selector.pick(Instant::now(), &tried) {
            tried[index] = true;
            let (Some(node), Some(dialer)) = (nodes.get(index), dialers.get(index)) else { continue };
            let attempt = tokio::select! {
                () = shutdown.cancelled() => return Ok(()),
                r = handshake::connect(node, dialer, &service.host, src.clone()) => r,
            };
            match attempt {
                Ok(connected) => {
                    selector.succeeded(index);
                    tracing::info!(
                        host = %service.host,
                        remote = %node.addr,
                        connector = %connected.connector_id,
                        "connected to router server"
                    );
                    let started = Instant::now();
                    stats.sessions.fetch_add(1, Ordering::Relaxed);
                    stats.connected.store(true, Ordering::Relaxed);
                    // Packets queued while disconnected are stale: drop them.
                    session::drain_tun(tun, &mut tun_batch).await?;
                    let end = session::relay(connected, tun, &mut tun_batch, shutdown).await;
                    stats.connected.store(false, Ordering::Relaxed);
                    match end {
                        SessionEnd::Tun(e) => return Err(e),
                        _ if shutdown.is_cancelled() => return Ok(()),
                        _ => {}
                    }
                    tracing::warn!(host = %service.host, remote = %node.addr, reason = %end, "connection lost");
                    if started.elapsed() >= backoff::HEALTHY_SESSION {
                        backoff.reset();
                    }
                    selector.failed(index, Instant::now());
                    cap = backoff::CAP;
                }
                Err(e) => {
                    stats.failed.fetch_add(1, Ordering::Relaxed);
                    tracing::warn!(host = %service.host, remote = %node.addr, error = %e, "cannot connect to router server");
                    selector.failed(index, Instant::now());
                    // While nothing listens (a restarting server) retries stay frequent.
                    cap = if server_down(&e) { backoff::SERVER_DOWN_CAP } else { backoff::CAP };
                }
            }
        }
        let delay = backoff.next_delay_capped(cap);
        tracing::debug!(?delay, "reconnecting after delay");
        tokio::select! {
            () = shutdown.cancelled() => return Ok(()),
            () = tokio::time::sleep(delay) => {}
        }
    }
}

/// Whether nothing listens at the server's address (it is restarting): then
/// retries stay frequent, while other failures back off further.
fn server_down(error: &handshake::ConnectError) -> bool {
    matches!(
        error,
        handshake::ConnectError::Dial(rgost_transport::DialError::Connect { source, .. })
            if source.kind() == std::io::ErrorKind::ConnectionRefused
    )
}

/// The ASSOCIATE source: the device's first address with port 0, as GOST
/// sends. With offload, named `ADDR/gso` instead: rgost's request for GSO
/// frames (super-packets), which GOST's server and older rgost servers only
/// log (see [`rgost_relay::gso`]).
fn source_addr(service: &TunService, gso: bool) -> Addr {
    let addr = service.tun.addrs.first().map(|n| n.addr());
    if gso {
        let name = format!(
            "{}{}",
            addr.map_or_else(|| "0.0.0.0".to_owned(), |a| a.to_string()),
            rgost_relay::gso::ADVERTISE_SUFFIX
        );
        return Addr { host: Host::Domain(name.into_bytes()), port: 0 };
    }
    let host = match addr {
        Some(std::net::IpAddr::V4(ip)) => Host::Ipv4(ip),
        Some(std::net::IpAddr::V6(ip)) => Host::Ipv6(ip),
        None => Host::Ipv4(std::net::Ipv4Addr::UNSPECIFIED),
    };
    Addr { host, port: 0 }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_environment_overrides_the_offload_key() {
        assert_eq!(offload_override(None), None);
        assert_eq!(offload_override(Some("0")), Some(false));
        assert_eq!(offload_override(Some("off")), Some(false));
        assert_eq!(offload_override(Some("1")), Some(true));
        assert_eq!(offload_override(Some(" yes ")), Some(true));
        assert_eq!(offload_override(Some("")), None);
        assert_eq!(offload_override(Some("maybe")), None);
    }
}
