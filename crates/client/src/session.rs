//! One connected session: TUN packets out as frames, frames in as TUN packets.

use bytes::Bytes;
use rgost_transport::{FrameReader, FrameWriter};
use rgost_tun::{SendBatch, Tun};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::handshake::Connected;

/// Packets taken from the TUN queue per write.
const WRITE_BATCH: usize = 256;

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
}

/// Relays until the connection ends or `shutdown` fires.
pub async fn relay(
    connected: Connected,
    tun: &Tun,
    rx: &mut mpsc::Receiver<Bytes>,
    shutdown: &CancellationToken,
) -> SessionEnd {
    let Connected { conn, initial, .. } = connected;
    let (mut reader, mut writer) = (conn.reader, conn.writer);

    let inbound = async {
        let mut frames = FrameReader::with_initial(&initial);
        // Everything decoded from one read goes to the device as one batch
        // (with offload on, one GRO pass coalesces it into few writes).
        let mut batch = SendBatch::default();
        loop {
            while let Some(packet) = frames.next_packet() {
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
    let outbound = async {
        let mut out = FrameWriter::default();
        let mut batch = Vec::with_capacity(WRITE_BATCH);
        loop {
            if rx.recv_many(&mut batch, WRITE_BATCH).await == 0 {
                return Ok::<_, std::io::Error>(());
            }
            out.write_all(&mut writer, &batch).await?;
            batch.clear();
            if rx.is_empty() {
                out.shrink();
            }
        }
    };
    tokio::select! {
        () = shutdown.cancelled() => SessionEnd::Shutdown,
        r = inbound => r.map_or_else(SessionEnd::Io, |()| SessionEnd::Closed),
        r = outbound => r.map_or_else(SessionEnd::Io, |()| SessionEnd::Closed),
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
