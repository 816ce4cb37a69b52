//! One connected session: TUN packets out as frames, frames in as TUN packets.

use std::convert::Infallible;

use futures_util::FutureExt;
use rgost_relay::gso::Payload;
use rgost_transport::{FrameReader, FrameWriter};
use rgost_tun::{Received, RecvBatch, SendBatch, Tun};
use tokio_util::sync::CancellationToken;

use crate::handshake::Connected;

/// Bytes of frames gathered from the TUN device before one socket write.
const WRITE_BYTES: usize = 128 * 1024;
/// TUN reads that are already complete, taken before one socket write.
const READS_PER_WRITE: usize = 256;

/// How a session ended.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SessionEnd {
    /// The server closed the connection.
    #[error("server closed the connection")]
    Closed,
    /// Reading or writing the connection failed.
    #[error("{0}")]
    Io(#[from] std::io::Error),
    /// Shutting down.
    #[error("shutting down")]
    Shutdown,
    /// Reading the TUN device failed: the client cannot go on.
    #[error("reading the TUN device: {0}")]
    Tun(#[source] std::io::Error),
}

/// Reads one batch from the device. A super-packet that cannot be split is
/// lost on its own (the batch is then empty); only a device failure is an error.
async fn read_tun(tun: &Tun, batch: &mut RecvBatch) -> Result<(), std::io::Error> {
    match tun.recv_batch(batch).await {
        Ok(_) => Ok(()),
        Err(e) if batch.split_failed() => {
            tracing::debug!(error = %e, "TUN GSO packet dropped");
            Ok(())
        }
        Err(e) => Err(e),
    }
}

/// Discards what the device queued while there was no connection: stale
/// packets (bounded, so a flooding device cannot hold up the session).
pub async fn drain_tun(tun: &Tun, batch: &mut RecvBatch) -> Result<(), std::io::Error> {
    for _ in 0..4096 {
        match read_tun(tun, batch).now_or_never() {
            Some(r) => r?,
            None => break,
        }
    }
    Ok(())
}

/// Relays until the connection ends or `shutdown` fires.
///
/// The device is read in the same task that writes the connection: every
/// TUN read that is already complete goes into one socket write, packets are
/// copied once (from the read buffer into the frame buffer), and no packet
/// crosses a channel or wakes another thread. While the connection is
/// slower than the device, the device's own queue fills and the kernel
/// drops there, as it would for any full interface.
pub async fn relay(
    connected: Connected,
    tun: &Tun,
    tun_batch: &mut RecvBatch,
    shutdown: &CancellationToken,
) -> SessionEnd {
    let Connected { conn, initial, gso, .. } = connected;
    let (mut reader, mut writer) = (conn.reader, conn.writer);

    let inbound = async {
        let mut frames = FrameReader::with_initial(&initial);
        // Everything decoded from one read goes to the device as one batch
        // (with offload on, TCP segments of a flow are coalesced as they are
        // pushed, so few writes).
        let mut batch = SendBatch::for_device(tun);
        loop {
            while let Some(packet) = frames.next_packet() {
                if let Payload::Gso(frame) = rgost_relay::gso::classify(&packet)
                    && gso
                {
                    // A super-packet goes to the device whole, after what came before it.
                    write_tun(tun, &mut batch).await;
                    if let Err(e) = tun.send_super(frame.flags, frame.gso_size, frame.packet).await {
                        tracing::debug!(error = %e, len = packet.len(), "TUN super-packet write failed");
                    }
                    continue;
                }
                batch.push(&packet);
                if batch.is_full() {
                    write_tun(tun, &mut batch).await;
                }
            }
            write_tun(tun, &mut batch).await;
            if !frames.fill(&mut reader).await? {
                return Ok::<_, std::io::Error>(());
            }
        }
    };
    let outbound = pump_tun(tun, tun_batch, &mut writer, gso);
    tokio::select! {
        () = shutdown.cancelled() => SessionEnd::Shutdown,
        r = inbound => r.map_or_else(SessionEnd::Io, |()| SessionEnd::Closed),
        r = outbound => match r { Err(end) => end },
    }
}

/// Device to connection: every TUN read that is already complete goes into
/// one socket write. Returns only on failure.
async fn pump_tun(
    tun: &Tun,
    tun_batch: &mut RecvBatch,
    writer: &mut rgost_transport::WriteHalf,
    gso: bool,
) -> Result<Infallible, SessionEnd> {
    let mut out = FrameWriter::default();
    loop {
        let mut read = read_device(tun, tun_batch, gso).await.map_err(SessionEnd::Tun)?;
        let mut reads = 1;
        loop {
            match read {
                // A super-packet travels whole to a server that takes GSO
                // frames, written at once from the read buffer (the next read
                // reuses it).
                Some(Received::Super { flags, gso_size }) => {
                    let packet = tun_batch.super_packet();
                    if !out.flush_with_gso(writer, flags, gso_size, packet).await.map_err(SessionEnd::Io)? {
                        tracing::debug!(len = packet.len(), "TUN super-packet too long for a frame: dropped");
                    }
                }
                _ => {
                    for packet in tun_batch.packets().filter(|p| !p.is_empty()) {
                        if !out.push(packet) {
                            tracing::debug!(len = packet.len(), "TUN packet too long for a frame: dropped");
                        }
                    }
                }
            }
            if out.buffered() >= WRITE_BYTES || reads == READS_PER_WRITE {
                break;
            }
            match read_device(tun, tun_batch, gso).now_or_never() {
                Some(r) => read = r.map_err(SessionEnd::Tun)?,
                None => break,
            }
            reads += 1;
        }
        out.flush(writer).await.map_err(SessionEnd::Io)?;
    }
}

/// One device read: super-packets kept whole when the server takes GSO
/// frames (`None` when a super-packet that could not be split was lost).
async fn read_device(tun: &Tun, batch: &mut RecvBatch, gso: bool) -> Result<Option<Received>, std::io::Error> {
    if !gso {
        return read_tun(tun, batch).await.map(|()| None);
    }
    match tun.recv_keep_super(batch).await {
        Ok(received) => Ok(Some(received)),
        Err(e) if batch.split_failed() => {
            tracing::debug!(error = %e, "TUN GSO packet dropped");
            Ok(None)
        }
        Err(e) => Err(e),
    }
}

/// Writes and empties `batch`. A packet the kernel rejects (malformed) must
/// not end the session: errors are only logged.
async fn write_tun(tun: &Tun, batch: &mut SendBatch) {
    if batch.is_empty() {
        return;
    }
    let packets = batch.len();
    if let Err(e) = tun.send_batch(batch).await {
        tracing::debug!(error = %e, packets, "TUN write failed");
    }
}
