//! One client connection: handshake, registration, then the reader (frames
//! in, routed to other connections' queues) and the writer (this
//! connection's queue out, many frames per write).

use std::sync::Arc;

use bytes::{Bytes, BytesMut};
use rgost_relay::{Response, TunnelId};
use rgost_transport::{Conn, FrameReader, FrameWriter, ReadHalf, WriteHalf};
use tokio::io::AsyncWriteExt;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

use crate::Server;
use crate::forward::{self, Origin, Verdict};
use crate::handshake::{self, Decision};
use crate::namespace::{Namespace, Peer, Registration};
use crate::stats::DropReason;

/// Packets taken off the queue per write.
const WRITE_BATCH: usize = 256;

impl Server {
    /// Serves one accepted connection to its end.
    pub(crate) async fn handle(self: Arc<Self>, conn: Conn, shutdown: CancellationToken) {
        let Conn {
            mut reader,
            mut writer,
            peer: remote,
        } = conn;
        let mut buf = BytesMut::new();
        let read = tokio::time::timeout(
            self.settings.read_timeout,
            handshake::read_request(&mut reader, &mut buf, self.settings.max_request),
        );
        let (request, used) = match read.await {
            Ok(Ok(done)) => done,
            Ok(Err(e)) => {
                // A bad version or malformed request: GOST closes without a reply.
                tracing::debug!(%remote, error = %e, "handshake failed");
                self.stats.refused();
                return;
            }
            Err(_) => {
                tracing::debug!(%remote, timeout = ?self.settings.read_timeout, "handshake timed out");
                self.stats.refused();
                return;
            }
        };
        let (host, router_id, src) =
            match handshake::decide(&request, self.settings.ingress.as_ref()) {
                Decision::Accept {
                    host,
                    router_id,
                    src,
                } => (host, router_id, src),
                Decision::Refuse { status, reason } => {
                    tracing::info!(%remote, ?status, reason, "refused");
                    self.stats.refused();
                    let mut out = Vec::new();
                    Response::error(status).encode(&mut out);
                    let _ = writer.write_all(&out).await;
                    let _ = writer.shutdown().await;
                    return;
                }
            };
        let initial = buf.split_off(used);

        let (tx, rx) = mpsc::channel(self.settings.queue_packets.max(1));
        let peer = Peer {
            id: self.namespaces.next_peer_id(),
            tx,
        };
        let reg =
            self.namespaces
                .register(&self.settings, router_id, Arc::from(host.as_str()), peer);
        let span = tracing::info_span!("conn", host = %reg.host, router = %router_id, %remote);
        self.stats.accepted();

        let connector_id = TunnelId::from_uuid(*uuid::Uuid::new_v4().as_bytes());
        let mut out = Vec::new();
        Response::ok(connector_id).encode(&mut out);
        if let Err(e) = writer.write_all(&out).await {
            tracing::debug!(parent: &span, error = %e, "cannot send handshake reply");
            self.namespaces.unregister(&reg);
            return;
        }
        tracing::info!(
            parent: &span,
            src = src.as_deref().unwrap_or("-"),
            table = reg.namespace.router.as_deref().unwrap_or("(none)"),
            "connected"
        );
        if reg.namespace.router.is_none() {
            tracing::warn!(parent: &span, "no router for this namespace and no default router: its packets have no route");
        }

        self.relay(reg, reader, writer, rx, &initial, shutdown)
            .instrument(span)
            .await;
    }

    async fn relay(
        &self,
        reg: Registration,
        reader: ReadHalf,
        writer: WriteHalf,
        rx: mpsc::Receiver<Bytes>,
        initial: &[u8],
        shutdown: CancellationToken,
    ) {
        let done = shutdown.child_token();
        let writer_task = tokio::spawn(write_queue(writer, rx, done.clone()));
        let result = tokio::select! {
            r = self.read_frames(&reg, reader, initial) => r,
            () = done.cancelled() => Ok(()),
        };
        // Remove the connection first, so no packet is queued for it any more.
        self.namespaces.unregister(&reg);
        done.cancel();
        let _ = writer_task.await;
        match result {
            Ok(()) => tracing::info!("disconnected"),
            Err(e) => tracing::info!(error = %e, "disconnected"),
        }
    }

    /// Reads frames until end of stream and routes each packet.
    async fn read_frames(
        &self,
        reg: &Registration,
        mut reader: ReadHalf,
        initial: &[u8],
    ) -> std::io::Result<()> {
        let namespace: &Namespace = &reg.namespace;
        let origin = Origin {
            host: &reg.host,
            strict_source: self.settings.strict_source,
        };
        let mut frames = FrameReader::with_initial(initial);
        loop {
            let hosts = namespace.hosts();
            let mut forwarded = 0;
            while let Some(packet) = frames.next_packet() {
                match forward::route(&packet, &namespace.table, &hosts, origin) {
                    Verdict::Deliver(peer) => match peer.tx.try_send(packet) {
                        Ok(()) => forwarded += 1,
                        Err(mpsc::error::TrySendError::Full(_)) => {
                            self.stats.drop_packet(DropReason::QueueFull)
                        }
                        Err(mpsc::error::TrySendError::Closed(_)) => {
                            self.stats.drop_packet(DropReason::Closed)
                        }
                    },
                    Verdict::Drop(reason) => {
                        tracing::trace!(
                            reason = reason.name(),
                            len = packet.len(),
                            "dropped packet"
                        );
                        self.stats.drop_packet(reason);
                    }
                }
            }
            drop(hosts);
            if forwarded > 0 {
                self.stats.forwarded(forwarded);
            }
            if !frames.fill(&mut reader).await? {
                return Ok(());
            }
        }
    }
}

/// Drains this connection's queue into its socket, many frames per write.
/// Ends (and cancels `done`) when the socket fails.
async fn write_queue(
    mut writer: WriteHalf,
    mut rx: mpsc::Receiver<Bytes>,
    done: CancellationToken,
) {
    let mut out = FrameWriter::default();
    let mut batch = Vec::with_capacity(WRITE_BATCH);
    loop {
        let n = tokio::select! {
            n = rx.recv_many(&mut batch, WRITE_BATCH) => n,
            () = done.cancelled() => break,
        };
        if n == 0 {
            break;
        }
        let written = out.write_all(&mut writer, &batch).await;
        batch.clear();
        if let Err(e) = written {
            tracing::debug!(error = %e, "write failed");
            break;
        }
        if rx.is_empty() {
            out.shrink();
        }
    }
    done.cancel();
    let _ = writer.shutdown().await;
}
