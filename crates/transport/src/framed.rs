//! Reading and writing packet frames (`LEN(2) | PACKET`) in batches.
//!
//! [`FrameReader`] reads as much as the socket has and yields every whole
//! frame in it as a zero-copy [`Bytes`] slice of the read buffer: one read
//! syscall serves many packets, and no packet is allocated on its own (a new
//! buffer is allocated only when the previous one is still referenced by
//! queued packets). Its buffer starts small and grows only while reads fill
//! it, so an idle connection costs little memory.
//!
//! [`FrameWriter`] coalesces a batch of packets into one buffer and writes it
//! with as few syscalls as the socket allows.

use std::io;

use bytes::{Buf, Bytes, BytesMut};
use rgost_relay::frame::{self, FrameStatus};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

/// Smallest read buffer (an idle connection's footprint).
const MIN_CHUNK: usize = 1024;
/// Largest read chunk. Kept under glibc's mmap threshold (128 KiB): a buffer still
/// pinned by queued packets is replaced by a fresh one, and large ones would
/// each cost an mmap, page faults and an munmap.
const MAX_CHUNK: usize = 64 * 1024;
/// Writes are flushed once this many bytes are buffered.
const WRITE_FLUSH: usize = 256 * 1024;

/// Reads frames in batches.
#[derive(Debug)]
pub struct FrameReader {
    buf: BytesMut,
    chunk: usize,
}

impl Default for FrameReader {
    fn default() -> Self {
        FrameReader { buf: BytesMut::new(), chunk: MIN_CHUNK }
    }
}

impl FrameReader {
    /// A reader whose buffer starts with `initial` (bytes already read past a handshake).
    pub fn with_initial(initial: &[u8]) -> Self {
        let mut reader = FrameReader::default();
        reader.buf.extend_from_slice(initial);
        reader
    }

    /// Reads once from `r` (waiting until something arrives). Returns `false`
    /// at end of stream.
    pub async fn fill<R: AsyncRead + Unpin + ?Sized>(&mut self, r: &mut R) -> io::Result<bool> {
        let need = match frame::peek(&self.buf) {
            FrameStatus::Incomplete(n) => n,
            FrameStatus::Complete { .. } => 0,
        };
        self.buf.reserve(need.max(self.chunk));
        let spare = self.buf.capacity() - self.buf.len();
        let n = r.read_buf(&mut self.buf).await?;
        // Grow while reads fill the buffer, shrink back when they do not.
        if n == spare {
            self.chunk = (self.chunk * 2).min(MAX_CHUNK);
        } else if n < self.chunk / 4 {
            self.chunk = (self.chunk / 2).max(MIN_CHUNK);
        }
        Ok(n > 0)
    }

    /// Takes the next whole frame's packet out of the buffer, if there is one.
    pub fn next_packet(&mut self) -> Option<Bytes> {
        match frame::peek(&self.buf) {
            FrameStatus::Complete { total } => {
                let mut frame = self.buf.split_to(total);
                frame.advance(frame::HEADER_LEN);
                Some(frame.freeze())
            }
            FrameStatus::Incomplete(_) => None,
        }
    }

    /// Whether bytes of an unfinished frame are buffered.
    pub fn has_partial(&self) -> bool {
        !self.buf.is_empty()
    }
}

/// Writes batches of packets as frames.
#[derive(Debug, Default)]
pub struct FrameWriter {
    buf: Vec<u8>,
}

impl FrameWriter {
    /// Frames every packet of `packets` and writes them all to `w`.
    /// Packets longer than a frame can carry are skipped and counted in the result.
    pub async fn write_all<W, P>(&mut self, w: &mut W, packets: &[P]) -> io::Result<usize>
    where
        W: AsyncWrite + Unpin + ?Sized,
        P: AsRef<[u8]>,
    {
        let mut skipped = 0;
        for packet in packets.iter().map(AsRef::as_ref) {
            if self.buf.len() + packet.len() + frame::HEADER_LEN > WRITE_FLUSH && !self.buf.is_empty() {
                w.write_all(&self.buf).await?;
                self.buf.clear();
            }
            if !frame::encode(packet, &mut self.buf) {
                skipped += 1;
            }
        }
        if !self.buf.is_empty() {
            w.write_all(&self.buf).await?;
            self.buf.clear();
        }
        // TLS and WebSocket buffer writes until flushed; TCP's flush is free.
        w.flush().await?;
        Ok(skipped)
    }

    /// Releases the buffer if it grew large (call when the queue is idle).
    pub fn shrink(&mut self) {
        if self.buf.capacity() > 16 * 1024 {
            self.buf = Vec::new();
        }
    }
}
