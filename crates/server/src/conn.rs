//! One client connection: handshake, registration, then the reader (frames
//! in, routed to other connections' queues) and the writer (this
//! connection's queue out, many frames per write).

use std::net::SocketAddr;
use std::sync::Arc;

use bytes::{Bytes, BytesMut};
use rgost_relay::{Response, Status, TunnelId};
use rgost_transport::{Conn, FrameReader, FrameWriter, Incoming, ReadHalf, WriteHalf};
use tokio::io::AsyncWriteExt;
use tokio::sync::mpsc;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

use crate::Server;
use crate::forward::{self, Origin, Verdict};
use crate::handshake::{self, Associate, Refusal};
use crate::namespace::{HostMap, Namespace, Peer, Registration};
use crate::router::{LocalCache, Lookup, PluginCache, Router};
use crate::stats::DropReason;

/// Packets taken off the queue per write.
const WRITE_BATCH: usize = 256;

impl Server {
    /// Serves one accepted connection to its end.
    pub(crate) async fn handle(self: Arc<Self>, incoming: Incoming, shutdown: CancellationToken) {
        let remote = incoming.peer;
        // One deadline for the transport's handshakes (TLS, WebSocket) and the request.
        let deadline = Instant::now() + self.settings.read_timeout;
        let conn = match tokio::time::timeout_at(deadline, incoming.upgrade()).await {
            Ok(Ok(conn)) => conn,
            Ok(Err(e)) => {
                tracing::debug!(%remote, error = %e, "transport handshake failed");
                self.stats.refused();
                return;
            }
            Err(_) => {
                tracing::debug!(%remote, "transport handshake timed out");
                self.stats.refused();
                return;
            }
        };
        let Conn { mut reader, mut writer, .. } = conn;
        let mut buf = BytesMut::new();
        let read = tokio::time::timeout_at(
            deadline,
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
        let associate = match self.check(&request, remote).await {
            Ok(associate) => associate,
            Err(Refusal { status, reason }) => {
                tracing::info!(%remote, ?status, reason, "refused");
                self.stats.refused();
                let mut out = Vec::new();
                Response::error(status).encode(&mut out);
                let _ = writer.write_all(&out).await;
                let _ = writer.flush().await;
                let _ = writer.shutdown().await;
                return;
            }
        };
        let Associate { host, router_id, src } = associate;
        // Frames that came with the request; the request's buffer goes now,
        // not at the end of the connection.
        let frames = FrameReader::with_initial(buf.get(used..).unwrap_or_default());
        drop(buf);

        let (tx, rx) = mpsc::channel(self.settings.queue_packets.max(1));
        let peer = Peer { id: self.namespaces.next_peer_id(), tx };
        let reg = self.namespaces.register(&self.settings, router_id, Arc::from(host.as_str()), peer);
        let span = tracing::info_span!("conn", host = %reg.host, router = %router_id, %remote);
        self.stats.accepted();

        let connector_id = TunnelId::from_uuid(*uuid::Uuid::new_v4().as_bytes());
        let mut out = Vec::new();
        Response::ok(connector_id).encode(&mut out);
        if let Err(e) = async {
            writer.write_all(&out).await?;
            writer.flush().await
        }
        .await
        {
            tracing::debug!(parent: &span, error = %e, "cannot send handshake reply");
            self.namespaces.unregister(&reg);
            return;
        }
        tracing::info!(
            parent: &span,
            src = src.as_deref().unwrap_or("-"),
            router_name = reg.namespace.router_name.as_deref().unwrap_or("(none)"),
            "connected"
        );
        if reg.namespace.router_name.is_none() {
            tracing::warn!(parent: &span, "no router for this namespace and no default router: its packets have no route");
        }

        self.relay(reg, reader, writer, rx, frames, shutdown).instrument(span).await;
    }

    /// GOST's order of checks after the version: authentication, command,
    /// then ingress; rgost's host binding last.
    async fn check(&self, request: &rgost_relay::Request, remote: SocketAddr) -> Result<Associate, Refusal> {
        let credentials = request.associate_info().auth;
        if let Some(auther) = &self.settings.auther
            && !auther.check(&self.settings.service, credentials, remote).await
        {
            return Err(Refusal { status: Status::Unauthorized, reason: "bad or missing credentials" });
        }
        let associate = handshake::associate(request)?;
        if let Some(binding) = &self.settings.host_binding
            && !credentials.is_some_and(|(user, _)| binding.allows(user, &associate.host))
        {
            return Err(Refusal { status: Status::Forbidden, reason: "this user may not register this host name" });
        }
        if let Some(ingress) = &self.settings.ingress
            && !associate.host.is_empty()
        {
            let endpoint = ingress.lookup(&associate.host, &self.settings.service).await;
            handshake::check_ingress(&associate, endpoint)?;
        }
        Ok(associate)
    }

    async fn relay(
        &self,
        reg: Registration,
        reader: ReadHalf,
        writer: WriteHalf,
        rx: mpsc::Receiver<Bytes>,
        frames: FrameReader,
        shutdown: CancellationToken,
    ) {
        let done = shutdown.child_token();
        let writer_task = tokio::spawn(write_queue(writer, rx, done.clone()));
        let result = tokio::select! {
            r = self.read_frames(&reg, reader, frames) => r,
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
        mut frames: FrameReader,
    ) -> std::io::Result<()> {
        let namespace = &reg.namespace;
        let origin = Origin { host: &reg.host, strict_source: self.settings.strict_source };
        let mut local = LocalCache::default();
        loop {
            // One snapshot of hosts and routes per read batch.
            let hosts = namespace.hosts();
            let table = match namespace.router.as_deref() {
                Some(Router::Table(table)) => Some(table.load()),
                _ => None,
            };
            let mut memo = forward::Memo::default();
            let now = Instant::now();
            let mut forwarded = 0;
            let mut full = false;
            while let Some(packet) = frames.next_packet() {
                let verdict = match (&table, namespace.plugin()) {
                    (Some(table), _) => forward::route(&packet, table, &mut memo, &hosts, origin),
                    (None, Some(plugin)) => {
                        match self.route_by_plugin(namespace, plugin, &mut local, &hosts, &packet, now) {
                            Some(verdict) => verdict,
                            None => continue, // held until the plugin answers
                        }
                    }
                    (None, None) => Verdict::Drop(DropReason::NoRoute),
                };
                match verdict {
                    Verdict::Deliver(peer) => match peer.tx.try_send(packet) {
                        Ok(()) => forwarded += 1,
                        Err(mpsc::error::TrySendError::Full(_)) => {
                            full = true;
                            self.stats.drop_packet(DropReason::QueueFull);
                        }
                        Err(mpsc::error::TrySendError::Closed(_)) => self.stats.drop_packet(DropReason::Closed),
                    },
                    Verdict::Drop(reason) => {
                        tracing::trace!(reason = reason.name(), len = packet.len(), "dropped packet");
                        self.stats.drop_packet(reason);
                    }
                }
            }
            drop((hosts, table));
            if forwarded > 0 {
                self.stats.forwarded(forwarded);
            }
            if full {
                // A queue filled up: let its writer run before reading more.
                // A sender that always has data must not starve the writers
                // (they wait behind this task on its thread otherwise).
                tokio::task::yield_now().await;
            }
            if !frames.fill(&mut reader).await? {
                return Ok(());
            }
        }
    }

    /// Routes one packet through a plugin router: the reader's own cache,
    /// then the namespace's; `None` when the packet is held for a lookup.
    /// (The source check needs a table; plugin routers skip it.)
    fn route_by_plugin<'h>(
        &self,
        namespace: &Arc<Namespace>,
        plugin: &PluginCache,
        local: &mut LocalCache,
        hosts: &'h HostMap,
        packet: &Bytes,
        now: Instant,
    ) -> Option<Verdict<'h>> {
        let header = match forward::parse(packet) {
            Ok(header) => header,
            Err(reason) => return Some(Verdict::Drop(reason)),
        };
        let dst = header.dst();
        let gateway = match local.get(dst, now) {
            Some(gateway) => gateway,
            None => match plugin.lookup(namespace, &self.stats, dst, packet, now) {
                Lookup::Ready(gateway, expires) => {
                    local.put(dst, gateway.clone(), expires);
                    gateway
                }
                Lookup::Held => return None,
                Lookup::Dropped(reason) => return Some(Verdict::Drop(reason)),
            },
        };
        Some(match gateway {
            Some(gateway) => forward::to_gateway(hosts, &gateway, header.flow_hash()),
            None => Verdict::Drop(DropReason::NoRoute),
        })
    }
}

/// Drains this connection's queue into its socket, many frames per write.
/// Ends (and cancels `done`) when the socket fails.
async fn write_queue(mut writer: WriteHalf, mut rx: mpsc::Receiver<Bytes>, done: CancellationToken) {
    let mut out = FrameWriter::default();
    // Allocated by the first receive, not up front: an idle connection
    // should cost as little as possible (issue 5: <= 16 KiB each).
    let mut batch = Vec::new();
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
            if batch.capacity() > WRITE_BATCH / 4 {
                batch.shrink_to(WRITE_BATCH / 8);
            }
        }
    }
    done.cancel();
    let _ = writer.shutdown().await;
}
