//! One client connection: handshake, registration, then the reader (frames
//! in, routed by the forwarding core onto other connections' queues) and the
//! writer (this connection's queue out, many frames per write). This is the
//! only place that acts on the core's [`Action`]s.

use std::collections::VecDeque;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use bytes::{Bytes, BytesMut};
use rgost_forward::{Action, Held, Namespace, NodeId, ReaderCache, Registration, Routes};
use rgost_relay::{Response, Status, TunnelId};
use rgost_transport::{Conn, FrameReader, FrameWriter, Incoming, ReadHalf, WriteHalf};
use tokio::io::AsyncWriteExt;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

use crate::droplog::DropNotes;
use crate::handshake::{self, Associate, Refusal};
use crate::queue::{Budget, Queue};
use crate::reaper::Reaper;
use crate::router::Router;
use crate::shaping::{self, Dir, Pacer, Who};
use crate::stats::{ConnStats, DropCounts, DropReason, Totals};
use crate::{Peer, Server};

/// A connection past its handshake, registered.
struct Established {
    reg: Registration<Peer>,
    queue: Arc<Queue>,
    stats: Arc<ConnStats>,
    done: CancellationToken,
    reader: ReadHalf,
    writer: WriteHalf,
    frames: FrameReader,
    span: tracing::Span,
    who: Arc<Who>,
    connector: TunnelId,
}

impl Server {
    /// Serves one accepted connection to its end.
    pub(crate) async fn handle(self: Arc<Self>, incoming: Incoming, shutdown: CancellationToken) {
        // The handshake's state (TLS, WebSocket, plugins) is large and
        // short-lived: it lives on the heap and is gone before the relay,
        // which keeps every connection's resident state small.
        let Some(established) = Box::pin(self.establish(incoming, &shutdown)).await else { return };
        let span = established.span.clone();
        self.relay(established, shutdown).instrument(span).await;
    }

    /// Runs the transport's and the relay protocol's handshakes and
    /// registers the connection; `None` when it was refused or failed.
    async fn establish(&self, incoming: Incoming, shutdown: &CancellationToken) -> Option<Established> {
        let remote = canonical(incoming.peer);
        let settings = self.settings();
        // One deadline for the transport's handshakes (TLS, WebSocket) and the request.
        let deadline = Instant::now() + settings.read_timeout;
        let conn = match tokio::time::timeout_at(deadline, incoming.upgrade()).await {
            Ok(Ok(conn)) => conn,
            Ok(Err(e)) => {
                tracing::debug!(%remote, error = %e, "transport handshake failed");
                self.stats.refused(None);
                return None;
            }
            Err(_) => {
                tracing::debug!(%remote, "transport handshake timed out");
                self.stats.refused(None);
                return None;
            }
        };
        let Conn { mut reader, mut writer, .. } = conn;
        let mut buf = BytesMut::new();
        let read =
            tokio::time::timeout_at(deadline, handshake::read_request(&mut reader, &mut buf, settings.max_request));
        let (request, used) = match read.await {
            Ok(Ok(done)) => done,
            Ok(Err(e)) => {
                // A bad version or malformed request: GOST closes without a reply.
                tracing::debug!(%remote, error = %e, "handshake failed");
                self.stats.refused(None);
                return None;
            }
            Err(_) => {
                tracing::debug!(%remote, timeout = ?settings.read_timeout, "handshake timed out");
                self.stats.refused(None);
                return None;
            }
        };
        let associate = match self.check(&settings, &request, remote).await {
            Ok(associate) => associate,
            Err(Refusal { status, reason }) => {
                tracing::info!(%remote, ?status, reason, "refused");
                self.stats.refused(Some(status));
                let mut out = Vec::new();
                Response::error(status).encode(&mut out);
                let _ = writer.write_all(&out).await;
                let _ = writer.flush().await;
                let _ = writer.shutdown().await;
                return None;
            }
        };
        let Associate { host, router_id, src, gso } = associate;
        let who = Arc::new(Who { host: Arc::from(host.as_str()), router: router_id, remote });
        // A limiter plugin is asked before the reply, so that the client's
        // first packets are already paced.
        if let Some(limiter) = &settings.shaping.limiter {
            let _ = tokio::time::timeout_at(deadline, limiter.prepare(&who)).await;
        }
        // Frames that came with the request; the request's buffer goes now,
        // not at the end of the connection.
        let frames = FrameReader::with_initial(buf.get(used..).unwrap_or_default());
        drop(buf);

        let mut connector = TunnelId::from_uuid(*uuid::Uuid::new_v4().as_bytes());
        if gso {
            // Granted only to a client that asked: others get today's bytes.
            connector.reserved[0] |= rgost_relay::gso::RESERVED_GSO;
        }
        // Ends the connection: its reader, its writer, or anyone closing it.
        let done = shutdown.child_token();
        let mut built = None;
        let reg = self.fabric.register(router_id, Arc::clone(&who.host), |_, existing: Option<&Peer>| {
            // A host's connections share one budget.
            let host_budget = existing
                .map(|p| Arc::clone(p.queue.host_budget()))
                .unwrap_or_else(|| Arc::new(Budget::new(settings.host_queue_bytes)));
            let peer = Peer {
                queue: Arc::new(Queue::new(settings.queue, host_budget, Arc::clone(&self.budget))),
                stats: Arc::default(),
                remote,
                connector,
                done: done.clone(),
                gso,
            };
            built = Some(peer.clone());
            peer
        });
        let span = tracing::info_span!("conn", host = %reg.host, router = %router_id, %remote);
        let Some(Peer { queue, stats, .. }) = built else {
            // `register` always builds the handle; nothing to serve otherwise.
            self.fabric.unregister(&reg);
            return None;
        };
        self.stats.accepted();
        if settings.shaping.observer.is_some() {
            self.ledger.connected((router_id, Arc::clone(&reg.host)));
        }
        self.log_registration(&settings, &reg, &span, src.as_deref(), connector, gso);
        self.announce_up(&settings.service, &reg, connector, remote);
        drop(settings);

        if let Some(cluster) = &self.cluster {
            cluster.registered(router_id, &reg.host, reg.conn, connector);
        }
        let mut out = Vec::new();
        Response::ok(connector).encode(&mut out);
        if let Err(e) = async {
            writer.write_all(&out).await?;
            writer.flush().await
        }
        .await
        {
            tracing::debug!(parent: &span, error = %e, "cannot send handshake reply");
            self.fabric.unregister(&reg);
            if let Some(cluster) = &self.cluster {
                cluster.unregistered(router_id, &reg.host, reg.conn);
            }
            queue.close();
            return None;
        }
        Some(Established { reg, queue, stats, done, reader, writer, frames, span, who, connector })
    }

    /// GOST's order of checks after the version: authentication, command,
    /// then ingress; rgost's host binding last.
    async fn check(
        &self,
        settings: &crate::Settings,
        request: &rgost_relay::Request,
        remote: SocketAddr,
    ) -> Result<Associate, Refusal> {
        let credentials = request.associate_info().auth;
        let accepted = match &settings.auther {
            Some(auther) => match auther.accept(&settings.service, credentials, remote).await {
                Some(accepted) => Some(accepted),
                None => return Err(Refusal { status: Status::Unauthorized, reason: "bad or missing credentials" }),
            },
            None => None,
        };
        let associate = handshake::associate(request)?;
        if let Some(ingress) = &settings.ingress {
            let endpoint = ingress.lookup(&associate.host, &settings.service).await;
            handshake::check_ingress(&associate, endpoint)?;
        }
        // The user's own rules (a data source's `hosts=`) decide for that
        // user; otherwise the config's binding, if there is one.
        let allowed = match (accepted.and_then(|a| a.hosts), &settings.host_binding) {
            (Some(rules), _) => rules.iter().any(|r| r.allows(&associate.host, &associate.router_id.uuid)),
            (None, Some(binding)) => credentials.is_some_and(|(user, _)| {
                std::str::from_utf8(user)
                    .is_ok_and(|user| binding.allows(user, &associate.host, &associate.router_id.uuid))
            }),
            (None, None) => true,
        };
        if !allowed {
            return Err(Refusal {
                status: Status::Forbidden,
                reason: "this user may not register this host name in this namespace",
            });
        }
        Ok(associate)
    }

    fn log_registration(
        &self,
        settings: &crate::Settings,
        reg: &Registration<Peer>,
        span: &tracing::Span,
        src: Option<&str>,
        connector: TunnelId,
        gso: bool,
    ) {
        let router = settings.router_for(&reg.namespace.id());
        tracing::info!(
            parent: span,
            src = src.unwrap_or("-"),
            %connector,
            gso,
            router_name = router.map_or("(none)", |(name, _, _)| name),
            "connected"
        );
        if let Some(previous) = reg.displaced {
            tracing::info!(
                parent: span,
                standby = previous,
                "host registered again: this connection receives its packets, the previous one is a standby"
            );
        }
        if reg.new_namespace {
            match router {
                Some((name, _, true)) => tracing::info!(
                    parent: span,
                    default_router = name,
                    "no router is named by this router id: the namespace uses the default router"
                ),
                Some(_) => {}
                None => tracing::warn!(
                    parent: span,
                    "no router is named by this router id and there is no default router: its packets have no route"
                ),
            }
        }
    }

    async fn relay(self: Arc<Self>, established: Established, shutdown: CancellationToken) {
        let Established { reg, queue, stats, done, mut reader, writer, frames, who, connector, .. } = established;
        let pace = (Arc::clone(&self), Arc::clone(&who));
        spawn_writer(writer, Arc::clone(&queue), Arc::clone(&stats), done.clone(), self.reaper.clone(), shutdown, pace);
        let result = tokio::select! {
            r = self.read_frames(&reg, &stats, &mut reader, frames, &who) => r,
            () = done.cancelled() => Ok(()),
        };
        // The rest happens on the teardown thread, so that thousands of
        // connections closing at once do not delay anyone's packets: remove
        // the connection first, so no packet is queued for it any more; give
        // back what its queue holds; stop the writer, which hands its socket
        // half to the same thread; close the socket.
        let server = Arc::clone(&self);
        let span = tracing::Span::current();
        self.reaper.run(move || {
            let _entered = span.enter();
            let unregistered = server.fabric.unregister(&reg);
            if let Some(cluster) = &server.cluster {
                cluster.unregistered(reg.namespace.id(), &reg.host, reg.conn);
            }
            server.announce_down(&reg, connector, who.remote, unregistered.host_gone);
            queue.close();
            done.cancel();
            drop(reader);
            let totals = stats.totals();
            server.stats.retire(reg.namespace.id(), &totals);
            if server.settings().shaping.observer.is_some() {
                server.ledger.closed((reg.namespace.id(), Arc::clone(&reg.host)), &totals, result.is_err());
            }
            let secs = stats.started.elapsed().as_secs_f64();
            let error = result.err().map(|e| e.to_string());
            tracing::info!(
                duration_s = format_args!("{secs:.1}"),
                packets_in = totals.packets_in,
                gso_frames_in = totals.gso_in,
                bytes_in = totals.bytes_in,
                packets_out = totals.packets_out,
                bytes_out = totals.bytes_out,
                error = error.as_deref().unwrap_or("-"),
                "disconnected"
            );
            if let Some(successor) = unregistered.successor {
                tracing::info!(standby = successor, "a standby connection of this host receives its packets now");
            }
        });
    }

    /// Reads frames until end of stream and forwards each packet.
    async fn read_frames(
        self: &Arc<Self>,
        reg: &Registration<Peer>,
        stats: &ConnStats,
        reader: &mut ReadHalf,
        mut frames: FrameReader,
        who: &Who,
    ) -> std::io::Result<()> {
        let mut cache = ReaderCache::default();
        // The buckets that pace what this connection sends, if any.
        let mut pacer = Pacer::new();
        let mut deliveries = Deliveries::default();
        let mut notes = DropNotes::default();
        // When the unfinished frame at the end of the buffer began.
        let mut partial_since: Option<Instant> = None;
        loop {
            let (mut read, mut read_bytes, mut gso_frames) = (0u64, 0u64, 0u64);
            let buffer_size = frames.buffer_size();
            let packets = std::iter::from_fn(|| frames.next_packet()).inspect(|p| {
                read += 1;
                read_bytes += p.len() as u64;
                gso_frames += u64::from(p.first() == Some(&rgost_relay::gso::GSO_FRAME));
            });
            let batch = self.forward(
                &reg.namespace,
                packets.map(|p| (p, &reg.host)),
                &mut cache,
                buffer_size,
                &mut deliveries,
                &mut notes,
            );
            stats.batch((read, read_bytes, gso_frames), batch.forwarded, &batch.drops);
            stats.plugin_cache_hits(cache.take_hits());
            notes.add(&batch.drops, &self.drop_log, reg.namespace.id());
            let (full, got) = (batch.full, read > 0);
            if full {
                // A queue filled up: let its writer run before reading more.
                // A sender that always has data must not starve the writers
                // (they wait behind this task on its thread otherwise).
                tokio::task::yield_now().await;
            }
            // A frame once begun must be finished within readTimeout: a
            // stalled half frame would hold its buffer forever.
            partial_since = match (frames.has_partial(), got, partial_since) {
                (false, _, _) => None,
                (true, false, Some(since)) => Some(since),
                (true, _, _) => Some(Instant::now()),
            };
            // Input limits: read no faster than the buckets allow, so TCP
            // slows the client down and nothing is dropped.
            if pacer.stale() {
                self.repace(&mut pacer, who, Dir::In);
            }
            if pacer.is_paced() && read_bytes > 0 {
                let wait = pacer.take(read_bytes);
                if !wait.is_zero() {
                    // Boxed: most connections never wait, and a timer is large.
                    Box::pin(tokio::time::sleep(wait)).await;
                    // The wait is the server's doing, not the client's.
                    partial_since = partial_since.map(|_| Instant::now());
                }
            }
            let more = match partial_since {
                None => frames.fill(reader).await?,
                Some(since) => {
                    let deadline = since + self.settings().read_timeout;
                    // Boxed: a timer is large, and most reads need none.
                    match Box::pin(tokio::time::timeout_at(deadline, frames.fill(reader))).await {
                        Ok(more) => more?,
                        Err(_) => {
                            return Err(std::io::Error::new(
                                std::io::ErrorKind::TimedOut,
                                "a frame was not completed within readTimeout",
                            ));
                        }
                    }
                }
            };
            if !more {
                return Ok(());
            }
        }
    }

    /// Routes a batch of packets with the namespace's current router and
    /// queues each where the core says: the one delivery path for packets
    /// read from a connection and for packets that waited for a plugin.
    ///
    /// Packets read from a connection are slices of one read buffer of
    /// `buffer_size` bytes, which stays allocated while any of them is
    /// queued. When less than half of it is delivered, the delivered
    /// packets are copied, so that a few small packets queued at a slow
    /// receiver cannot pin many large buffers: what a queue holds is then
    /// at most twice what it is charged.
    fn forward<'s>(
        self: &Arc<Self>,
        namespace: &Arc<Namespace<Peer>>,
        packets: impl Iterator<Item = (Bytes, &'s Arc<str>)>,
        cache: &mut ReaderCache,
        buffer_size: usize,
        deliveries: &mut Deliveries,
        notes: &mut DropNotes,
    ) -> Batch {
        let live = self.live.load();
        let router = live.router(&namespace.id());
        let table;
        let routes = match router.map(|r| &**r) {
            Some(Router::Table(current)) => {
                table = current.load();
                Routes::Table(&table)
            }
            Some(Router::Plugin { plugin, .. }) => Routes::Plugin(*plugin),
            None => Routes::None,
        };
        // A cluster node asks the registry about hosts it does not know.
        let view = namespace
            .view(routes, live.settings.strict_source, Instant::now().into_std())
            .remote_lookups(self.cluster.is_some());
        let mut drops = DropCounts::default();
        let mut batch = deliveries.take();
        let mut delivered = 0;
        for (packet, sender) in packets {
            match view.route(&packet, sender, cache) {
                Action::Deliver(_, peer) => {
                    delivered += packet.len();
                    batch.push((Target::Peer(peer), packet));
                }
                Action::Forward { node, host } => {
                    delivered += packet.len();
                    batch.push((Target::Node(node, host), packet));
                }
                Action::Lookup { host } => match &self.cluster {
                    // Held packets must not pin the read buffer.
                    Some(cluster) => {
                        if let Err(reason) = cluster.lookup(namespace.id(), host, Bytes::copy_from_slice(&packet)) {
                            drops.add(reason);
                        }
                    }
                    None => drops.add(DropReason::NoHost),
                },
                Action::Pending { start, dropped } => {
                    if let Some(reason) = dropped {
                        drops.add(reason);
                    }
                    if let Some(router) = router {
                        for addr in start.iter() {
                            self.start_lookup(namespace, router, addr);
                        }
                    }
                }
                Action::Drop(reason) => {
                    tracing::trace!(reason = reason.name(), len = packet.len(), "dropped packet");
                    if notes.wants_example(reason)
                        && let Ok(header) = rgost_relay::ip::IpHeader::new_checked(&packet[..])
                    {
                        notes.example(reason, header.dst());
                    }
                    drops.add(reason);
                }
            }
        }
        let copy = delivered * 2 < buffer_size;
        let mut out = Batch { drops, ..Batch::default() };
        // Consecutive packets for one connection are queued together.
        let mut run = std::mem::take(&mut deliveries.run);
        let mut run_peer: Option<&Peer> = None;
        for (target, packet) in batch.drain(..) {
            let peer = match target {
                Target::Peer(peer) => peer,
                Target::Node(node, host) => {
                    // GSO frames travel whole: the receiving node cuts them if its peer needs it.
                    let packet = if copy { Bytes::copy_from_slice(&packet) } else { packet };
                    let len = packet.len() as u64;
                    match self.cluster.as_ref().map(|c| c.forward(node, namespace.id(), host, packet)) {
                        Some(Ok(())) => {
                            out.forwarded.0 += 1;
                            out.forwarded.1 += len;
                        }
                        Some(Err(reason)) => out.drops.add(reason),
                        None => out.drops.add(DropReason::NoHost),
                    }
                    continue;
                }
            };
            if let Some(previous) = run_peer
                && !std::ptr::eq(previous, peer)
            {
                out.queue(previous, &mut run);
            }
            run_peer = Some(peer);
            peer.append_to(&mut run, packet, copy);
        }
        if let Some(peer) = run_peer {
            out.queue(peer, &mut run);
        }
        deliveries.run = run;
        deliveries.put(batch);
        out
    }

    /// Asks `router`'s plugin about `addr`; the answer releases the packets
    /// the core held for it, which take the same path as any packet.
    fn start_lookup(self: &Arc<Self>, namespace: &Arc<Namespace<Peer>>, router: &Arc<Router>, addr: IpAddr) {
        let Router::Plugin { resolver, plugin } = &**router else { return };
        let lookup = resolver.resolve(addr, namespace.id());
        let (server, namespace, plugin) = (Arc::clone(self), Arc::clone(namespace), *plugin);
        tokio::spawn(async move {
            let gateway = lookup.await;
            let held = namespace.answered(plugin, addr, gateway, Instant::now().into_std());
            if !held.is_empty() {
                let packets = held.iter().map(|Held { packet, sender }| (packet.clone(), sender));
                let mut notes = DropNotes::default();
                let batch = server.forward(
                    &namespace,
                    packets,
                    &mut ReaderCache::default(),
                    0,
                    &mut Deliveries::default(),
                    &mut notes,
                );
                notes.add(&batch.drops, &server.drop_log, namespace.id());
                // These packets were counted as read by their connections; what became of them is counted apart.
                let totals = Totals {
                    packets_forwarded: batch.forwarded.0,
                    bytes_forwarded: batch.forwarded.1,
                    drops: batch.drops.0,
                    ..Totals::default()
                };
                server.stats.retire(namespace.id(), &totals);
            }
        });
    }
}

/// Where a packet of a batch goes: a local connection, or a host on another node.
#[derive(Debug, Clone, Copy)]
enum Target<'a> {
    Peer(&'a Peer),
    Node(&'a NodeId, &'a Arc<str>),
}

/// The deliveries of one batch, kept between batches so that routing a
/// batch allocates nothing.
#[derive(Debug, Default)]
struct Deliveries {
    list: Vec<(Target<'static>, Bytes)>,
    /// The packets of a run for one connection.
    run: Vec<Bytes>,
}

impl Deliveries {
    /// The (empty) list, for references that live as long as one batch.
    fn take<'a>(&mut self) -> Vec<(Target<'a>, Bytes)> {
        std::mem::take(&mut self.list)
    }

    /// Gives the list back; what is left in it is dropped.
    fn put(&mut self, batch: Vec<(Target<'_>, Bytes)>) {
        // Collecting into a vector of the same layout reuses the allocation;
        // no element survives, so the borrowed references go with the batch.
        #[allow(clippy::unnecessary_filter_map)]
        let empty = batch.into_iter().filter_map(|_| None).collect();
        self.list = empty;
    }
}

/// What became of a batch of packets.
#[derive(Debug, Default)]
struct Batch {
    /// Packets and bytes queued for other connections.
    forwarded: (u64, u64),
    /// Packets dropped, by reason.
    drops: DropCounts,
    /// Whether a queue was full.
    full: bool,
}

impl Batch {
    /// Queues the packets of `run` on `peer`, counting what happens.
    fn queue(&mut self, peer: &Peer, run: &mut Vec<Bytes>) {
        let pushed = peer.queue.push_many(run);
        self.forwarded.0 += pushed.packets;
        self.forwarded.1 += pushed.bytes;
        if let (n, Some(reason)) = pushed.dropped {
            self.full |= reason == DropReason::QueueFull;
            self.drops.add_n(reason, n);
            peer.stats.dropped_to(n);
        }
    }
}

/// The ordinary packets a GSO frame stands for, in one allocation (the core
/// checked the frame: it always segments).
pub(crate) fn segments(frame: &Bytes) -> Vec<Bytes> {
    let rgost_relay::gso::Payload::Gso(gso) = rgost_relay::gso::classify(frame) else { return Vec::new() };
    let Ok(super_packet) = rgost_relay::gso::SuperPacket::new_checked(gso.packet, gso.gso_size) else {
        return Vec::new();
    };
    let mut bytes = Vec::with_capacity(frame.len() + super_packet.segments() * super_packet.header_len());
    let mut lens = Vec::with_capacity(super_packet.segments());
    super_packet.segment(&mut bytes, |len| lens.push(len));
    let mut bytes = Bytes::from(bytes);
    lens.into_iter().map(|len| bytes.split_to(len)).collect()
}

/// Starts the writer task. Not inlined into the async caller: a future
/// built there would take room in the caller's state for the connection's
/// whole life.
fn spawn_writer(
    writer: WriteHalf,
    queue: Arc<Queue>,
    stats: Arc<ConnStats>,
    done: CancellationToken,
    reaper: Reaper,
    shutdown: CancellationToken,
    (server, who): (Arc<Server>, Arc<Who>),
) {
    tokio::spawn(
        async move {
            let mut writer = write_queue(writer, queue, &stats, done, server, who).await;
            if shutdown.is_cancelled() {
                // The server stops: end the stream properly (a TLS
                // close_notify), within a bound, as the peer may have stopped reading.
                let _ = tokio::time::timeout(std::time::Duration::from_secs(1), writer.shutdown()).await;
            }
            reaper.bury(writer);
        }
        .in_current_span(),
    );
}

/// Drains this connection's queue into its socket, many frames per write.
/// Ends (and cancels `done`) when the socket fails, or when `done` is
/// cancelled, even in the middle of a write to a peer that stopped reading;
/// gives the socket back for closing.
async fn write_queue(
    mut writer: WriteHalf,
    queue: Arc<Queue>,
    stats: &ConnStats,
    done: CancellationToken,
    server: Arc<Server>,
    who: Arc<Who>,
) -> WriteHalf {
    let mut out = FrameWriter::default();
    let mut batch = VecDeque::new();
    // The buckets that pace what this connection receives, if any.
    let mut pacer = Pacer::new();
    loop {
        let charge = tokio::select! {
            charge = queue.take(&mut batch) => charge,
            () = done.cancelled() => None,
        };
        let Some(charge) = charge else { break };
        let repace = |pacer: &mut Pacer| {
            server.repace(pacer, &who, Dir::Out);
            queue.set_paced(pacer.is_paced());
        };
        if pacer.stale() {
            repace(&mut pacer);
        }
        let (packets, bytes) = (batch.len() as u64, batch.iter().map(|p| p.len() as u64).sum());
        let written = if pacer.is_paced() {
            let packets = batch.make_contiguous();
            tokio::select! {
                written = shaping::write_paced(&mut out, &mut writer, packets, &mut pacer, &repace) => written,
                () = done.cancelled() => Err(std::io::ErrorKind::Interrupted.into()),
            }
        } else {
            tokio::select! {
                written = out.write_all(&mut writer, batch.make_contiguous()) => written,
                () = done.cancelled() => Err(std::io::ErrorKind::Interrupted.into()),
            }
        };
        batch.clear();
        queue.written(charge);
        match written {
            Ok(skipped) => stats.written(packets - skipped as u64, bytes),
            Err(e) => {
                if e.kind() != std::io::ErrorKind::Interrupted {
                    tracing::debug!(error = %e, "write failed");
                }
                break;
            }
        }
        if queue.depth().0 == 0 {
            // An idle connection keeps little memory.
            out.shrink();
            if batch.capacity() > 1024 {
                batch = VecDeque::new();
            }
        }
    }
    done.cancel();
    writer
}

/// An IPv4 peer on a dual-stack socket shows as `::ffff:a.b.c.d`: print it as people write it.
fn canonical(addr: SocketAddr) -> SocketAddr {
    SocketAddr::new(addr.ip().to_canonical(), addr.port())
}
