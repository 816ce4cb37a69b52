//! Reading and writing packet frames (`LEN(2) | PACKET`) in batches.
//!
//! [`FrameReader`] reads as much as the socket has and yields every whole
//! frame in it as a zero-copy [`Bytes`] slice of the read buffer: one read
//! syscall serves many packets, and no packet is allocated on its own (a new
//! buffer is allocated only when the previous one is still referenced by
//! queued packets). Its buffer starts small and grows only while reads fill
//! it, so an idle connection costs little memory. While a connection streams,
//! the buffers its queued packets pinned are reused once those packets are
//! gone (see [`Retired`]) instead of freed and allocated anew for each read:
//! the allocator hands freed memory back to the kernel, and it comes back as
//! page faults (a sixth of the router server's CPU per GB before).
//!
//! [`FrameWriter`] coalesces a batch of packets into one buffer and writes it
//! with as few syscalls as the socket allows.

use std::collections::VecDeque;
use std::io::{self, IoSlice};
use std::sync::Mutex;

use bytes::{Buf, Bytes, BytesMut};
use rgost_relay::frame::{self, FrameStatus};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

/// Smallest read buffer (an idle connection's footprint).
const MIN_CHUNK: usize = 256;
/// Largest read chunk. Kept under glibc's mmap threshold (128 KiB): a new
/// buffer that large would cost an mmap, page faults and an munmap each.
const MAX_CHUNK: usize = 64 * 1024;
/// The size of a streaming reader's buffers: room for a read of about
/// `MAX_CHUNK` and any unfinished frame, and all of one size so that each
/// can be reused for the next.
const STREAM_BUF: usize = MAX_CHUNK + 2 * 1024;
/// The least a streaming read asks for.
const MIN_STREAM_READ: usize = 4 * 1024;
/// Streaming read buffers kept for reuse, process-wide (about 4 MiB however
/// many connections there are): the buffers one connection's default queue
/// (1 MiB) pins, four times over.
const MAX_RETIRED: usize = 64;
/// Retired buffers kept when a streaming connection ends.
const KEEP_RETIRED: usize = 4;
/// How many retired buffers one read looks at for a free one.
const RETIRED_SCAN: usize = 8;
/// Writes are flushed once this many bytes are buffered.
const WRITE_FLUSH: usize = 256 * 1024;

/// Reads frames in batches.
#[derive(Debug)]
pub struct FrameReader {
    buf: BytesMut,
    chunk: usize,
    /// The size of the buffer the last read went into.
    filled: usize,
    /// Whether this reader retired buffers.
    streamed: bool,
}

impl Default for FrameReader {
    fn default() -> Self {
        FrameReader { buf: BytesMut::new(), chunk: MIN_CHUNK, filled: 0, streamed: false }
    }
}

impl Drop for FrameReader {
    /// A streaming connection that ends gives back what it made the pool
    /// hold: memory is not kept for connections that are gone.
    fn drop(&mut self) {
        if self.streamed {
            RETIRED.trim(KEEP_RETIRED);
        }
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
        self.make_room(need);
        self.filled = self.buf.capacity();
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

    /// Makes room for the rest of the unfinished frame (`need` bytes) and
    /// the next read. A streaming reader's buffers all hold `STREAM_BUF`
    /// bytes: its buffer is reused in place when no queued packet shares it,
    /// else it is retired and a retired buffer whose packets are gone (or a
    /// new one) takes its place.
    fn make_room(&mut self, need: usize) {
        if self.chunk < MAX_CHUNK {
            self.buf.reserve(need.max(self.chunk));
            return;
        }
        let want = need.max(STREAM_BUF.saturating_sub(self.buf.len())).max(MIN_STREAM_READ);
        if self.buf.try_reclaim(want) {
            return;
        }
        let total = self.buf.len() + want;
        let mut old = std::mem::replace(&mut self.buf, RETIRED.take(total));
        self.buf.extend_from_slice(&old);
        old.clear();
        RETIRED.put(old);
        self.streamed = true;
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

    /// The size of the buffer the last read went into. Every packet of that
    /// read is a slice of it and keeps all of it allocated while referenced.
    pub fn buffer_size(&self) -> usize {
        self.filled
    }

    /// Whether bytes of an unfinished frame are buffered.
    pub fn has_partial(&self) -> bool {
        !self.buf.is_empty()
    }
}

/// Streaming read buffers that readers gave up while queued packets still
/// referenced them, oldest first. Each is an empty handle on its buffer, so
/// it can tell when it is the last one (the packets are gone) and take the
/// whole buffer back without allocating.
struct Retired(Mutex<VecDeque<BytesMut>>);

static RETIRED: Retired = Retired(Mutex::new(VecDeque::new()));

impl Retired {
    /// A buffer with room for `total` bytes: a retired one no packet uses
    /// any more, or a new one.
    fn take(&self, total: usize) -> BytesMut {
        if let Ok(mut retired) = self.0.lock()
            && let Some(i) = retired.iter_mut().take(RETIRED_SCAN).position(|b| b.try_reclaim(total))
            && let Some(buf) = retired.remove(i)
        {
            return buf;
        }
        BytesMut::with_capacity(total.max(STREAM_BUF))
    }

    /// Keeps `buf` (emptied) for a later [`Retired::take`]; the oldest goes
    /// when there are too many.
    fn put(&self, buf: BytesMut) {
        if let Ok(mut retired) = self.0.lock() {
            if retired.len() == MAX_RETIRED {
                retired.pop_front();
            }
            retired.push_back(buf);
        }
    }

    /// Keeps only the `keep` newest buffers.
    fn trim(&self, keep: usize) {
        if let Ok(mut retired) = self.0.lock() {
            let extra = retired.len().saturating_sub(keep);
            retired.drain(..extra);
        }
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.0.lock().map(|r| r.len()).unwrap_or(usize::MAX)
    }
}

/// Writes batches of packets as frames.
///
/// Packets in reusable buffers (a TUN read) are copied in with
/// [`FrameWriter::push`] and written by [`FrameWriter::flush`]. Packets that
/// are already [`Bytes`] go through [`FrameWriter::write_all`], which hands
/// large ones to the socket as they are (`writev` of frame headers and packet
/// slices, no copy) when the writer supports vectored writes.
#[derive(Debug, Default)]
pub struct FrameWriter {
    buf: Vec<u8>,
}

impl FrameWriter {
    /// Appends `packet` as one frame. Returns `false` (and appends nothing)
    /// if it is longer than a frame can carry.
    pub fn push(&mut self, packet: &[u8]) -> bool {
        frame::encode(packet, &mut self.buf)
    }

    /// Writes what [`FrameWriter::push`] buffered, then a GSO frame carrying
    /// TCP super-packet `packet` (see [`rgost_relay::gso`]), in one vectored
    /// write without copying the packet, then flushes `w`. Returns `false`
    /// (writing only what was buffered) when the packet is too long for a frame.
    pub async fn flush_with_gso<W: AsyncWrite + Unpin + ?Sized>(
        &mut self,
        w: &mut W,
        flags: u8,
        gso_size: u16,
        packet: &[u8],
    ) -> io::Result<bool> {
        let mut header = Vec::with_capacity(frame::HEADER_LEN + rgost_relay::gso::GSO_HEADER_LEN);
        if packet.len() > rgost_relay::gso::MAX_SUPER_PACKET
            || !frame::encode_header(rgost_relay::gso::GSO_HEADER_LEN + packet.len(), &mut header)
        {
            self.flush(w).await?;
            return Ok(false);
        }
        rgost_relay::gso::encode_header(flags, gso_size, &mut header);
        let mut slices = [IoSlice::new(&self.buf), IoSlice::new(&header), IoSlice::new(packet)];
        let mut rest = &mut slices[..];
        while !rest.is_empty() {
            let n = w.write_vectored(rest).await?;
            if n == 0 {
                return Err(io::ErrorKind::WriteZero.into());
            }
            IoSlice::advance_slices(&mut rest, n);
        }
        self.buf.clear();
        w.flush().await?;
        Ok(true)
    }

    /// Bytes buffered by [`FrameWriter::push`] and not yet written.
    pub fn buffered(&self) -> usize {
        self.buf.len()
    }

    /// Writes what [`FrameWriter::push`] buffered, then flushes `w`.
    pub async fn flush<W: AsyncWrite + Unpin + ?Sized>(&mut self, w: &mut W) -> io::Result<()> {
        if !self.buf.is_empty() {
            w.write_all(&self.buf).await?;
            self.buf.clear();
        }
        // TLS and WebSocket buffer writes until flushed; TCP's flush is free.
        w.flush().await
    }

    /// Frames every packet of `packets` and writes them all to `w`.
    /// Packets longer than a frame can carry are skipped and counted in the result.
    pub async fn write_all<W, P>(&mut self, w: &mut W, packets: &[P]) -> io::Result<usize>
    where
        W: AsyncWrite + Unpin + ?Sized,
        P: AsRef<[u8]>,
    {
        let bytes: usize = packets.iter().map(|p| p.as_ref().len()).sum();
        // Below this average size copying is cheaper than an iovec per packet.
        if w.is_write_vectored() && bytes >= VECTORED_MIN_AVG * packets.len() {
            return write_vectored(w, packets).await;
        }
        let mut skipped = 0;
        for packet in packets.iter().map(AsRef::as_ref) {
            if self.buf.len() + packet.len() + frame::HEADER_LEN > WRITE_FLUSH && !self.buf.is_empty() {
                w.write_all(&self.buf).await?;
                self.buf.clear();
            }
            if !self.push(packet) {
                skipped += 1;
            }
        }
        self.flush(w).await?;
        Ok(skipped)
    }

    /// Releases the buffer if it grew large (call when the queue is idle).
    pub fn shrink(&mut self) {
        if self.buf.capacity() > 16 * 1024 {
            self.buf = Vec::new();
        }
    }
}

/// Average packet size from which [`FrameWriter::write_all`] writes vectored.
const VECTORED_MIN_AVG: usize = 256;
/// Packets per `writev` (two iovecs each; Linux takes at most 1024).
const VECTORED_PACKETS: usize = 256;

/// Writes `packets` as frames with `writev`, header and packet as separate
/// slices, continuing after partial writes.
async fn write_vectored<W, P>(w: &mut W, packets: &[P]) -> io::Result<usize>
where
    W: AsyncWrite + Unpin + ?Sized,
    P: AsRef<[u8]>,
{
    let mut skipped = 0;
    let mut headers = [[0u8; frame::HEADER_LEN]; VECTORED_PACKETS];
    for group in packets.chunks(VECTORED_PACKETS) {
        for (header, packet) in headers.iter_mut().zip(group) {
            // A packet too long for a frame keeps a stale header and is skipped below.
            if let Ok(len) = u16::try_from(packet.as_ref().len()) {
                *header = len.to_be_bytes();
            }
        }
        let mut slices = Vec::with_capacity(2 * group.len());
        for (header, packet) in headers.iter().zip(group) {
            let packet = packet.as_ref();
            if packet.len() > frame::MAX_PACKET_LEN {
                skipped += 1;
                continue;
            }
            slices.push(IoSlice::new(header));
            slices.push(IoSlice::new(packet));
        }
        let mut rest = &mut slices[..];
        while !rest.is_empty() {
            let n = w.write_vectored(rest).await?;
            if n == 0 {
                return Err(io::ErrorKind::WriteZero.into());
            }
            IoSlice::advance_slices(&mut rest, n);
        }
    }
    w.flush().await?;
    Ok(skipped)
}

#[cfg(test)]
mod tests {
    use std::pin::Pin;
    use std::task::{Context, Poll};

    use super::*;

    /// A writer that takes at most `limit` bytes per call, vectored or not.
    struct Trickle {
        out: Vec<u8>,
        limit: usize,
        vectored: bool,
    }

    impl AsyncWrite for Trickle {
        fn poll_write(mut self: Pin<&mut Self>, _: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
            let n = buf.len().min(self.limit);
            self.out.extend_from_slice(&buf[..n]);
            Poll::Ready(Ok(n))
        }

        fn poll_write_vectored(
            mut self: Pin<&mut Self>,
            _: &mut Context<'_>,
            bufs: &[IoSlice<'_>],
        ) -> Poll<io::Result<usize>> {
            let mut room = self.limit;
            for buf in bufs {
                let n = buf.len().min(room);
                self.out.extend_from_slice(&buf[..n]);
                room -= n;
                if room == 0 {
                    break;
                }
            }
            Poll::Ready(Ok(self.limit - room))
        }

        fn is_write_vectored(&self) -> bool {
            self.vectored
        }

        fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
            Poll::Ready(Ok(()))
        }

        fn poll_shutdown(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
            Poll::Ready(Ok(()))
        }
    }

    #[tokio::test]
    async fn vectored_and_copied_writes_produce_the_same_frames() {
        // Large packets (vectored path), one too long for a frame, and more
        // packets than one writev takes.
        let mut packets: Vec<Bytes> =
            (0..600u32).map(|i| Bytes::from(vec![i as u8; 300 + (i as usize % 1100)])).collect();
        packets.insert(7, Bytes::from(vec![1u8; frame::MAX_PACKET_LEN + 1]));
        let mut expected = Vec::new();
        for packet in &packets {
            frame::encode(packet, &mut expected);
        }
        for (vectored, limit) in [(true, 1), (true, 333), (true, usize::MAX), (false, 1000)] {
            let mut w = Trickle { out: Vec::new(), limit, vectored };
            let skipped = FrameWriter::default().write_all(&mut w, &packets).await.unwrap();
            assert_eq!(skipped, 1);
            assert!(w.out == expected, "vectored={vectored} limit={limit}: frames differ");
        }
        // Small packets are copied even for a vectored writer.
        let small: Vec<&[u8]> = vec![&[0x45; 20], &[0x60; 40]];
        let mut w = Trickle { out: Vec::new(), limit: 7, vectored: true };
        FrameWriter::default().write_all(&mut w, &small).await.unwrap();
        assert_eq!(w.out, [&[0, 20][..], &[0x45; 20], &[0, 40], &[0x60; 40]].concat());
    }

    #[tokio::test]
    async fn a_streaming_reader_that_ends_leaves_little_in_the_pool() {
        // Frames of 40,000 bytes, read while the previous read's packets are
        // still held, so that buffers are retired.
        let mut stream = Vec::new();
        for _ in 0..400 {
            frame::encode(&[7u8; 40_000], &mut stream);
        }
        let mut reader = FrameReader::default();
        let mut src = &stream[..];
        let mut held = Vec::new();
        while reader.fill(&mut src).await.unwrap() {
            held = std::iter::from_fn(|| reader.next_packet()).collect::<Vec<_>>();
        }
        assert!(reader.streamed, "the reader never retired a buffer");
        drop(held);
        drop(reader);
        let left = RETIRED.len();
        assert!(left <= KEEP_RETIRED, "{left} buffers kept after the reader ended");
    }
}
