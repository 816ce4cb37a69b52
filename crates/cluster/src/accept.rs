//! Incoming node links: the `entrypoint` listener.
//!
//! A connection must finish TLS and send a hello that proves the cluster's
//! secret for this session within [`HANDSHAKE_TIMEOUT`]; otherwise it is
//! closed and logged, and nothing it sent is used. An authenticated link
//! carries destination and packet frames ([`crate::frame`]); each packet is
//! delivered to a connection of this node only (the forwarding core's
//! [`View::deliver_local`](rgost_forward::View::deliver_local)), never sent
//! on to another node, so a packet crosses at most one link.

use std::net::SocketAddr;
use std::sync::Arc;

use bytes::Bytes;
use futures_util::FutureExt;
use rgost_forward::{Action, DropReason, Routes, packet};
use rgost_relay::TunnelId;
use rgost_transport::readahead::ReadAhead;
use rgost_transport::{FrameReader, Incoming, Listener};
use tokio::io::AsyncWriteExt;
use tokio::time::Instant;
use tokio_rustls::TlsAcceptor;
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

use crate::auth::{Secret, Side};
use crate::frame::{self, Hello, Payload};
use crate::link::{HANDSHAKE_TIMEOUT, LinkError, read_hello};
use crate::{Deliver, Inner, tls};

/// Incoming links in their handshake at once.
const MAX_HANDSHAKES: usize = 256;
/// Reads taken without waiting after the one that waited, per batch.
const EXTRA_READS: usize = 3;

/// Accepts node links until `shutdown`.
pub(crate) async fn serve<C: Deliver>(
    inner: Arc<Inner<C>>,
    listener: Listener,
    config: Arc<rustls::ServerConfig>,
    secret: Arc<Secret>,
    shutdown: CancellationToken,
) {
    let acceptor = TlsAcceptor::from(config);
    // Whoever reaches the entrypoint can open connections: only so many
    // may be in their handshake at once, the rest are closed at accept.
    let handshakes = Arc::new(tokio::sync::Semaphore::new(MAX_HANDSHAKES));
    loop {
        let incoming = tokio::select! {
            () = shutdown.cancelled() => return,
            incoming = listener.accept() => incoming,
        };
        match incoming {
            Ok(incoming) => {
                let Ok(permit) = Arc::clone(&handshakes).try_acquire_owned() else {
                    tracing::debug!(remote = %incoming.peer, "too many node link handshakes at once; closed");
                    continue;
                };
                let span = tracing::info_span!("node link", remote = %incoming.peer);
                let (inner, acceptor, secret, shutdown) =
                    (Arc::clone(&inner), acceptor.clone(), Arc::clone(&secret), shutdown.clone());
                tokio::spawn(
                    async move {
                        tokio::select! {
                            () = shutdown.cancelled() => {}
                            () = handle(inner, incoming, acceptor, secret, permit) => {}
                        }
                    }
                    .instrument(span),
                );
            }
            Err(e) => {
                tracing::warn!(error = %e, "node link accept failed");
                tokio::time::sleep(std::time::Duration::from_millis(50)).await;
            }
        }
    }
}

/// Why an incoming link ended.
#[derive(Debug, thiserror::Error)]
enum End {
    #[error(transparent)]
    Handshake(#[from] LinkError),
    #[error("the node sent a malformed frame: {0}")]
    Frame(#[from] frame::FrameError),
    #[error("a packet before any destination")]
    NoDestination,
    #[error("{0}")]
    Io(#[from] std::io::Error),
}

async fn handle<C: Deliver>(
    inner: Arc<Inner<C>>,
    incoming: Incoming,
    acceptor: TlsAcceptor,
    secret: Arc<Secret>,
    permit: tokio::sync::OwnedSemaphorePermit,
) {
    let remote = incoming.peer;
    let handshake = async {
        let conn = incoming.upgrade().await.map_err(LinkError::Io)?;
        // TLS reads the socket 4 KiB at a time: read ahead in larger chunks.
        let reader = ReadAhead::new(conn.reader);
        let mut tls = acceptor.accept(tokio::io::join(reader, conn.writer)).await.map_err(LinkError::Io)?;
        let exported = tls::exported(tls.get_ref().1).map_err(LinkError::Export)?;
        let (hello, rest) = read_hello(&mut tls).await?;
        if !secret.check(Side::Dialer, &exported, &hello.node, &hello.proof) {
            return Err(LinkError::Auth { node: hello.node });
        }
        let welcome =
            Hello { node: inner.node.to_string(), proof: secret.prove(Side::Listener, &exported, &inner.node) };
        let mut out = Vec::new();
        welcome.encode(&mut out);
        tls.write_all(&out).await?;
        tls.flush().await?;
        Ok((tls, hello.node, rest))
    };
    let (tls, peer, rest) = match tokio::time::timeout(HANDSHAKE_TIMEOUT, handshake).await {
        Ok(Ok(done)) => done,
        Ok(Err(e)) => {
            if matches!(e, LinkError::Auth { .. }) {
                inner.stats.link_refused();
                tracing::warn!(%remote, error = %e, "node link refused: authentication failed; closed, nothing it sent is used");
            } else {
                tracing::warn!(%remote, error = %e, "node link refused: handshake failed; closed");
            }
            return;
        }
        Err(_) => {
            tracing::warn!(%remote, "node link refused: no handshake within {HANDSHAKE_TIMEOUT:?}; closed");
            return;
        }
    };
    drop(permit);
    tracing::info!(remote_node = %peer, "node link accepted");
    let (mut reader, writer) = tokio::io::split(tls);
    let result = receive(&inner, &mut reader, FrameReader::with_initial(&rest), remote).await;
    drop(writer);
    match result {
        Ok(()) => tracing::info!(remote_node = %peer, "node link closed"),
        Err(e) => tracing::warn!(remote_node = %peer, error = %e, "node link closed"),
    }
}

/// Where the current destination's packets go.
struct Target<C> {
    router: TunnelId,
    host: Arc<str>,
    /// The local connection, resolved at the first packet of each read.
    conn: Option<Option<C>>,
}

/// Reads frames and delivers their packets until the link ends.
async fn receive<C: Deliver, R: tokio::io::AsyncRead + Unpin>(
    inner: &Inner<C>,
    reader: &mut R,
    mut frames: FrameReader,
    remote: SocketAddr,
) -> Result<(), End> {
    let mut target: Option<Target<C>> = None;
    let mut batch: Vec<(C, Bytes)> = Vec::new();
    let mut ended = false;
    loop {
        let buffer_size = frames.buffer_size();
        let (mut read, mut read_bytes, mut delivered) = (0u64, 0u64, 0usize);
        while let Some(bytes) = frames.next_packet() {
            match frame::payload(&bytes)? {
                Payload::Dest { router, host } => {
                    let host = std::str::from_utf8(host).map_err(|_| frame::FrameError::BadFrame)?;
                    target = Some(Target { router, host: Arc::from(host), conn: None });
                }
                Payload::Packet => {
                    let target = target.as_mut().ok_or(End::NoDestination)?;
                    read += 1;
                    read_bytes += bytes.len() as u64;
                    if let Err(reason) = packet::check(&bytes) {
                        inner.stats.dropped(reason);
                        continue;
                    }
                    let conn = target.conn.get_or_insert_with(|| resolve(inner, target.router, &target.host));
                    match conn {
                        Some(conn) => {
                            delivered += bytes.len();
                            batch.push((conn.clone(), bytes));
                        }
                        None => inner.stats.dropped(DropReason::NotLocal),
                    }
                }
            }
        }
        inner.stats.received(read, read_bytes);
        // As on client connections: a read that delivers less than half of
        // its buffer copies what it delivers, so that few small packets
        // queued at a slow receiver do not pin whole buffers.
        let copy = delivered * 2 < buffer_size;
        for (conn, packet) in batch.drain(..) {
            let packet = if copy { Bytes::copy_from_slice(&packet) } else { packet };
            if let Err(reason) = conn.deliver(packet) {
                inner.stats.dropped(reason);
            }
        }
        // Who receives may change between reads.
        if let Some(target) = target.as_mut() {
            target.conn = None;
        }
        if ended {
            tracing::debug!(%remote, "node link ended by the other node");
            return Ok(());
        }
        if !frames.fill(reader).await? {
            ended = true;
            continue;
        }
        // TLS hands over one record (at most 16 KiB) per read: take what
        // else has arrived too, so a batch is as large as on a client
        // connection (fewer wake-ups of the receivers' writers, fewer copies).
        for _ in 0..EXTRA_READS {
            match frames.fill(reader).now_or_never() {
                Some(Ok(true)) => {}
                Some(Ok(false)) => {
                    ended = true;
                    break;
                }
                Some(Err(e)) => return Err(e.into()),
                None => break,
            }
        }
    }
}

/// The local connection that receives `host`'s packets now, if any.
fn resolve<C: Deliver>(inner: &Inner<C>, router: TunnelId, host: &str) -> Option<C> {
    let namespace = inner.fabric.namespace(&router)?;
    let view = namespace.view(Routes::None, false, Instant::now().into_std());
    match view.deliver_local(host) {
        Action::Deliver(_, conn) => Some(conn.clone()),
        _ => None,
    }
}
