//! Outgoing node links: one per node this node sends packets to.
//!
//! A link owns a queue bounded in bytes (`nodeQueueBytes`) and a task that
//! dials the node, proves the secret and checks the node's proof (see
//! [`crate::auth`]), then writes everything queued in one go, many packets
//! per write, a destination frame only where the destination changes
//! ([`crate::frame`]). A link that fails is dialed again with backoff;
//! while it is down its packets are dropped (`node_unreachable`) rather
//! than delivered seconds late, and what was queued when it failed is
//! dropped too.

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use arc_swap::ArcSwapOption;
use bytes::Bytes;
use rgost_config::DialerKind;
use rgost_forward::{DropReason, NodeId};
use rgost_relay::TunnelId;
use rgost_transport::readahead::ReadAhead;
use rgost_transport::{FrameWriter, ReadHalf as ConnRead, WriteHalf as ConnWrite};
use tokio::io::{AsyncReadExt, AsyncWriteExt, Join};
use tokio::sync::Notify;
use tokio_rustls::TlsConnector;
use tokio_rustls::client::TlsStream;
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

use crate::auth::{Secret, Side};
use crate::frame::{self, FrameError, Hello, MAX_HELLO};
use crate::stats::Stats;
use crate::{lock, tls};

/// Bound on dialing a node.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// Bound on the TLS handshake and the hellos.
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// Bytes charged per queued packet beyond its length.
const PACKET_OVERHEAD: usize = 64;
/// First reconnection delay ceiling; doubles per failure up to [`RETRY_CAP`].
const RETRY_FIRST: Duration = Duration::from_millis(200);
/// Longest reconnection delay: a node that restarts is linked again within it.
const RETRY_CAP: Duration = Duration::from_secs(2);
/// Destination frames a link keeps encoded.
const DEST_CACHE: usize = 4096;

type Tls = TlsStream<Join<ReadAhead<ConnRead>, ConnWrite>>;

/// Why a link could not be established.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum LinkError {
    /// The node could not be reached.
    #[error(transparent)]
    Dial(#[from] rgost_transport::DialError),
    /// The TLS handshake, or reading or writing the hellos, failed.
    #[error("TLS or hello: {0}")]
    Io(#[from] std::io::Error),
    /// The TLS session could not export keying material.
    #[error("TLS exporter: {0}")]
    Export(#[from] rustls::Error),
    /// The node's hello is malformed.
    #[error("hello: {0}")]
    Hello(#[from] FrameError),
    /// The node did not prove that it holds the cluster's secret.
    #[error("node {node} did not prove the cluster's secret (a different nodeSecret?)")]
    Auth {
        /// The node id it claimed.
        node: String,
    },
    /// The handshake did not finish in time.
    #[error("no handshake within {HANDSHAKE_TIMEOUT:?}")]
    Timeout,
}

/// A packet for a host on the link's node.
type Item = (TunnelId, Arc<str>, Bytes);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// Dialing: packets are queued.
    Connecting,
    /// Established.
    Up,
    /// Failed, waiting to dial again: packets are dropped.
    Down,
}

#[derive(Debug)]
struct Queue {
    items: VecDeque<Item>,
    /// Bytes charged for queued packets and packets being written.
    charged: usize,
    state: State,
}

/// The link to one node.
#[derive(Debug)]
struct Link {
    addr: Arc<str>,
    queue: Mutex<Queue>,
    ready: Notify,
    limit: usize,
    up: AtomicBool,
    cancel: CancellationToken,
}

impl Link {
    fn push(&self, router: TunnelId, host: &Arc<str>, packet: Bytes) -> Result<(), DropReason> {
        let charge = packet.len() + PACKET_OVERHEAD;
        let mut queue = lock(&self.queue);
        if queue.state == State::Down {
            return Err(DropReason::NodeUnreachable);
        }
        if queue.charged + charge > self.limit {
            return Err(DropReason::QueueFull);
        }
        queue.charged += charge;
        let was_empty = queue.items.is_empty();
        queue.items.push_back((router, Arc::clone(host), packet));
        drop(queue);
        if was_empty {
            self.ready.notify_one();
        }
        Ok(())
    }

    /// Waits for packets, moves them into `batch` and returns their charge.
    async fn take(&self, batch: &mut VecDeque<Item>) -> usize {
        loop {
            {
                let mut queue = lock(&self.queue);
                if !queue.items.is_empty() {
                    std::mem::swap(&mut queue.items, batch);
                    return batch.iter().map(|(_, _, p)| p.len() + PACKET_OVERHEAD).sum();
                }
            }
            self.ready.notified().await;
        }
    }

    fn written(&self, charge: usize) {
        let mut queue = lock(&self.queue);
        queue.charged = queue.charged.saturating_sub(charge);
    }

    /// Sets the state; leaving `Up` or `Connecting` for `Down` drops what is
    /// queued. Returns the packets dropped.
    fn set_state(&self, state: State) -> u64 {
        let mut queue = lock(&self.queue);
        queue.state = state;
        self.up.store(state == State::Up, Ordering::Relaxed);
        if state != State::Down {
            return 0;
        }
        let dropped = std::mem::take(&mut queue.items);
        let charge: usize = dropped.iter().map(|(_, _, p)| p.len() + PACKET_OVERHEAD).sum();
        queue.charged = queue.charged.saturating_sub(charge);
        dropped.len() as u64
    }
}

/// What every link needs to dial and authenticate.
struct Dialing {
    me: NodeId,
    secret: Arc<Secret>,
    tls: TlsConnector,
    stats: Arc<Stats>,
}

impl std::fmt::Debug for Dialing {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Dialing").field("me", &self.me).finish_non_exhaustive()
    }
}

/// The links of this node, by node.
#[derive(Debug)]
pub struct Links {
    map: RwLock<HashMap<NodeId, Arc<Link>>>,
    /// The link used last: consecutive packets of a batch mostly go to one
    /// node, and this costs one atomic load instead of a lock and a hash.
    last: ArcSwapOption<(NodeId, Arc<Link>)>,
    dialing: Arc<Dialing>,
    limit: usize,
    shutdown: CancellationToken,
}

impl Links {
    /// No links yet. Each link dials as `me` and proves `secret`.
    pub(crate) fn new(
        me: NodeId,
        secret: Arc<Secret>,
        tls: Arc<rustls::ClientConfig>,
        limit: usize,
        stats: Arc<Stats>,
        shutdown: CancellationToken,
    ) -> Links {
        let dialing = Arc::new(Dialing { me, secret, tls: TlsConnector::from(tls), stats });
        Links { map: RwLock::default(), last: ArcSwapOption::empty(), dialing, limit, shutdown }
    }

    /// Makes sure a link to `node` at `addr` exists (it dials at once).
    pub(crate) fn ensure(&self, node: &NodeId, addr: &Arc<str>) {
        if self.read().get(node).is_some_and(|l| l.addr == *addr) {
            return;
        }
        let mut map = self.map.write().unwrap_or_else(|p| p.into_inner());
        if map.get(node).is_some_and(|l| l.addr == *addr) {
            return;
        }
        let link = Arc::new(Link {
            addr: Arc::clone(addr),
            queue: Mutex::new(Queue { items: VecDeque::new(), charged: 0, state: State::Connecting }),
            ready: Notify::new(),
            limit: self.limit,
            up: AtomicBool::new(false),
            cancel: self.shutdown.child_token(),
        });
        if let Some(old) = map.insert(Arc::clone(node), Arc::clone(&link)) {
            old.cancel.cancel();
        }
        self.last.store(None);
        drop(map);
        let span = tracing::info_span!("link", node = %node, addr = %addr);
        tokio::spawn(run(link, Arc::clone(&self.dialing)).instrument(span));
    }

    /// Closes the link to `node` (the node is gone).
    pub(crate) fn remove(&self, node: &str) {
        let removed = self.map.write().unwrap_or_else(|p| p.into_inner()).remove(node);
        self.last.store(None);
        if let Some(link) = removed {
            link.cancel.cancel();
        }
    }

    /// Queues `packet` for `host` in namespace `router` on `node`'s link.
    pub(crate) fn push(&self, node: &str, router: TunnelId, host: &Arc<str>, packet: Bytes) -> Result<(), DropReason> {
        if let Some(last) = &*self.last.load()
            && *last.0 == *node
            && !last.1.cancel.is_cancelled()
        {
            return last.1.push(router, host, packet);
        }
        let found = self.read().get_key_value(node).map(|(id, link)| (Arc::clone(id), Arc::clone(link)));
        match found {
            Some((id, link)) => {
                let result = link.push(router, host, packet);
                self.last.store(Some(Arc::new((id, link))));
                result
            }
            None => Err(DropReason::NodeUnreachable),
        }
    }

    /// Links up now.
    pub(crate) fn up(&self) -> usize {
        self.read().values().filter(|l| l.up.load(Ordering::Relaxed)).count()
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, HashMap<NodeId, Arc<Link>>> {
        self.map.read().unwrap_or_else(|p| p.into_inner())
    }
}

/// Keeps one link up until it is cancelled.
async fn run(link: Arc<Link>, dialing: Arc<Dialing>) {
    let mut failures: u32 = 0;
    loop {
        link.set_state(State::Connecting);
        let attempt = tokio::select! {
            () = link.cancel.cancelled() => return,
            attempt = connect(&link.addr, &dialing) => attempt,
        };
        let lost = match attempt {
            Ok((tls, peer)) => {
                link.set_state(State::Up);
                tracing::info!(remote_node = %peer, "node link up");
                failures = 0;
                let end = pump(&link, tls, &dialing.stats).await;
                let dropped = link.set_state(State::Down);
                dialing.stats.drops_n(DropReason::NodeUnreachable, dropped);
                if link.cancel.is_cancelled() {
                    return;
                }
                tracing::warn!(reason = %end.map_or_else(|e| e.to_string(), |()| "closed by the other node".to_owned()), "node link lost");
                true
            }
            Err(e) => {
                let dropped = link.set_state(State::Down);
                dialing.stats.drops_n(DropReason::NodeUnreachable, dropped);
                if matches!(e, LinkError::Auth { .. }) {
                    dialing.stats.link_refused();
                }
                // Said once per streak of failures; the rest at debug.
                if failures == 0 {
                    tracing::warn!(error = %e, "cannot link to node; retrying");
                } else {
                    tracing::debug!(error = %e, failures, "cannot link to node");
                }
                failures = failures.saturating_add(1);
                false
            }
        };
        // A link that was up is dialed again at once (the node may only have
        // closed it); failures back off.
        let delay = if lost { Duration::ZERO } else { backoff(failures) };
        tokio::select! {
            () = link.cancel.cancelled() => return,
            () = tokio::time::sleep(delay) => {}
        }
    }
}

/// Delay after `failures` failed dials: 0.1-0.2 s, 0.2-0.4 s, ... up to 1-2 s.
fn backoff(failures: u32) -> Duration {
    let factor = 1u32.checked_shl(failures.saturating_sub(1).min(8)).unwrap_or(u32::MAX);
    let ceiling = RETRY_FIRST.saturating_mul(factor).min(RETRY_CAP);
    ceiling / 2 + (ceiling / 2).mul_f64(fastrand::f64())
}

/// Dials `addr`, runs TLS and the hellos; returns the session and the node's id.
async fn connect(addr: &str, dialing: &Dialing) -> Result<(Tls, String), LinkError> {
    let dialer = rgost_transport::Dialer::new(addr, &DialerKind::Tcp)
        .map_err(|e| LinkError::Io(std::io::Error::other(e.to_string())))?;
    let conn = dialer.dial(CONNECT_TIMEOUT).await?;
    // TLS reads the socket 4 KiB at a time: read ahead in larger chunks.
    let io = tokio::io::join(ReadAhead::new(conn.reader), conn.writer);
    let handshake = async {
        let mut tls = dialing.tls.connect(tls::server_name(), io).await?;
        let exported = tls::exported(tls.get_ref().1)?;
        let hello =
            Hello { node: dialing.me.to_string(), proof: dialing.secret.prove(Side::Dialer, &exported, &dialing.me) };
        let mut out = Vec::new();
        hello.encode(&mut out);
        tls.write_all(&out).await?;
        tls.flush().await?;
        let (welcome, extra) = read_hello(&mut tls).await?;
        if !extra.is_empty() || !dialing.secret.check(Side::Listener, &exported, &welcome.node, &welcome.proof) {
            return Err(LinkError::Auth { node: welcome.node });
        }
        Ok((tls, welcome.node))
    };
    tokio::time::timeout(HANDSHAKE_TIMEOUT, handshake).await.map_err(|_| LinkError::Timeout)?
}

/// Reads one hello (reading no further than its end can be); returns it
/// and the bytes that followed it in the last read.
pub(crate) async fn read_hello<R: tokio::io::AsyncRead + Unpin>(r: &mut R) -> Result<(Hello, Vec<u8>), LinkError> {
    let mut buf = Vec::with_capacity(MAX_HELLO);
    let mut chunk = [0u8; MAX_HELLO];
    loop {
        if let Some((hello, used)) = Hello::decode(&buf)? {
            return Ok((hello, buf.split_off(used)));
        }
        // A buffer of MAX_HELLO bytes always decodes (or fails), so there is room.
        let n = r.read(&mut chunk[..MAX_HELLO - buf.len()]).await?;
        if n == 0 {
            return Err(LinkError::Io(std::io::ErrorKind::UnexpectedEof.into()));
        }
        buf.extend_from_slice(&chunk[..n]);
    }
}

/// Writes what is queued until the link fails or is cancelled. The other
/// node never sends after its hello: anything read (or the end of the
/// stream) means the link is over.
async fn pump(link: &Link, tls: Tls, stats: &Stats) -> Result<(), LinkError> {
    let (mut reader, mut writer) = tokio::io::split(tls);
    let mut out = FrameWriter::default();
    let mut batch = VecDeque::new();
    let mut frames: Vec<Bytes> = Vec::new();
    let mut dests: HashMap<(TunnelId, Arc<str>), Bytes> = HashMap::new();
    let mut current: Option<(TunnelId, Arc<str>)> = None;
    let mut probe = [0u8; 1];
    loop {
        let charge = tokio::select! {
            () = link.cancel.cancelled() => {
                let _ = tokio::time::timeout(Duration::from_secs(1), writer.shutdown()).await;
                return Ok(());
            }
            read = reader.read(&mut probe) => {
                return match read {
                    Ok(0) => Ok(()),
                    Ok(_) => Err(LinkError::Io(std::io::Error::other("unexpected bytes from the node"))),
                    Err(e) => Err(LinkError::Io(e)),
                };
            }
            charge = link.take(&mut batch) => charge,
        };
        let (mut packets, mut bytes) = (0u64, 0u64);
        for (router, host, packet) in batch.drain(..) {
            if current.as_ref().is_none_or(|(r, h)| *r != router || *h != host) {
                if dests.len() >= DEST_CACHE {
                    dests.clear();
                }
                let dest = dests
                    .entry((router, Arc::clone(&host)))
                    .or_insert_with(|| Bytes::from(frame::dest(router, &host)))
                    .clone();
                frames.push(dest);
                current = Some((router, host));
            }
            packets += 1;
            bytes += packet.len() as u64;
            frames.push(packet);
        }
        let written = tokio::select! {
            () = link.cancel.cancelled() => Err(std::io::ErrorKind::Interrupted.into()),
            written = out.write_all(&mut writer, &frames) => written,
        };
        frames.clear();
        link.written(charge);
        match written {
            Ok(_) => stats.sent(packets, bytes),
            Err(e) => {
                stats.drops_n(DropReason::NodeUnreachable, packets);
                return Err(LinkError::Io(e));
            }
        }
        if lock(&link.queue).items.is_empty() {
            out.shrink();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_grows_to_its_cap() {
        assert!(backoff(1) <= RETRY_FIRST && backoff(1) >= RETRY_FIRST / 2);
        for failures in 0..50 {
            assert!(backoff(failures) <= RETRY_CAP);
        }
        assert!(backoff(40) >= RETRY_CAP / 2);
    }

    fn link(limit: usize) -> Link {
        Link {
            addr: Arc::from("b:1"),
            queue: Mutex::new(Queue { items: VecDeque::new(), charged: 0, state: State::Connecting }),
            ready: Notify::new(),
            limit,
            up: AtomicBool::new(false),
            cancel: CancellationToken::new(),
        }
    }

    #[tokio::test]
    async fn the_queue_is_bounded_in_bytes_and_emptied_when_the_link_fails() {
        let l = link(3 * (100 + PACKET_OVERHEAD));
        let host: Arc<str> = Arc::from("h");
        for _ in 0..3 {
            l.push(TunnelId::ZERO, &host, Bytes::from(vec![0x45; 100])).unwrap();
        }
        assert_eq!(l.push(TunnelId::ZERO, &host, Bytes::from(vec![0x45; 100])), Err(DropReason::QueueFull));
        let mut batch = VecDeque::new();
        let charge = l.take(&mut batch).await;
        assert_eq!((batch.len(), charge), (3, 3 * 164));
        assert_eq!(
            l.push(TunnelId::ZERO, &host, Bytes::from(vec![0x45; 100])),
            Err(DropReason::QueueFull),
            "still charged"
        );
        l.written(charge);
        l.push(TunnelId::ZERO, &host, Bytes::from(vec![0x45; 100])).unwrap();
        assert_eq!(l.set_state(State::Down), 1);
        assert_eq!(l.push(TunnelId::ZERO, &host, Bytes::new()), Err(DropReason::NodeUnreachable));
        assert_eq!(lock(&l.queue).charged, 0);
    }
}
