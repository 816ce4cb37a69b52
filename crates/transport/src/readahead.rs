//! Reads ahead under TLS: rustls asks its transport for at most 4 KiB at a
//! time, so a 16 KiB record costs four `recvfrom` calls and a busy TLS
//! connection spends its time in syscalls. [`ReadAhead`] reads up to
//! [`CHUNK`] bytes per syscall and hands rustls its small reads from memory.
//!
//! The buffer exists only while data flows: it is allocated (not zeroed) for
//! a read and freed while the connection waits for data, or once drained
//! after a read that did not fill half of it, so an idle connection holds
//! none (10,000 idle TLS clients must not cost 64 KiB each).

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll, ready};

use bytes::{Buf, BytesMut};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// Bytes read from the socket at most per syscall.
pub const CHUNK: usize = 64 * 1024;

/// A stream whose reads go through a lazily allocated read-ahead buffer;
/// writes pass through.
#[derive(Debug)]
pub struct ReadAhead<S> {
    inner: S,
    /// Read from the socket, not yet handed out.
    buf: BytesMut,
    /// Whether the last read from the socket filled at least half a chunk.
    busy: bool,
}

impl<S> ReadAhead<S> {
    /// Wraps `inner`; nothing is allocated until the first read.
    pub fn new(inner: S) -> ReadAhead<S> {
        ReadAhead { inner, buf: BytesMut::new(), busy: false }
    }

    /// The wrapped stream.
    pub fn get_ref(&self) -> &S {
        &self.inner
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for ReadAhead<S> {
    fn poll_read(self: Pin<&mut Self>, cx: &mut Context<'_>, out: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if this.buf.is_empty() {
            // A read as large as ours gains nothing from the buffer.
            if out.remaining() >= CHUNK {
                return Pin::new(&mut this.inner).poll_read(cx, out);
            }
            // Reuses the allocation when there is one (the buffer is empty).
            this.buf.reserve(CHUNK);
            let polled = tokio_util::io::poll_read_buf(Pin::new(&mut this.inner), cx, &mut this.buf);
            if polled.is_pending() {
                // Waiting: hold no memory meanwhile.
                this.buf = BytesMut::new();
                return Poll::Pending;
            }
            // 0 is the end of the stream: `out` stays as it is.
            this.busy = ready!(polled)? >= CHUNK / 2;
        }
        let n = out.remaining().min(this.buf.len());
        out.put_slice(&this.buf[..n]);
        this.buf.advance(n);
        if this.buf.is_empty() && !this.busy {
            // Light traffic: do not keep the buffer.
            this.buf = BytesMut::new();
        }
        Poll::Ready(Ok(()))
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for ReadAhead<S> {
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().inner).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    use super::*;

    #[tokio::test]
    async fn small_reads_see_every_byte_in_order() {
        let (a, mut b) = tokio::io::duplex(1 << 20);
        let data: Vec<u8> = (0..300_000u32).map(|i| (i * 7 % 251) as u8).collect();
        let sent = data.clone();
        let writer = tokio::spawn(async move {
            b.write_all(&sent).await.expect("write");
            b.shutdown().await.expect("shutdown");
        });
        let mut r = ReadAhead::new(a);
        let mut got = Vec::new();
        let mut chunk = [0u8; 4096];
        loop {
            let n = r.read(&mut chunk[..1 + got.len() % 4096]).await.expect("read");
            if n == 0 {
                break;
            }
            got.extend_from_slice(&chunk[..n]);
        }
        writer.await.expect("writer");
        assert!(got == data, "{} of {} bytes, or reordered", got.len(), data.len());
    }

    #[tokio::test]
    async fn an_idle_stream_holds_no_buffer() {
        let (a, mut b) = tokio::io::duplex(1 << 16);
        let mut r = ReadAhead::new(a);
        b.write_all(b"hello").await.expect("write");
        let mut chunk = [0u8; 16];
        assert_eq!(r.read(&mut chunk).await.expect("read"), 5);
        assert_eq!(r.buf.capacity(), 0, "a short read keeps no buffer");
        // Waiting for data that does not come: nothing held either.
        let waited = tokio::time::timeout(std::time::Duration::from_millis(20), r.read(&mut chunk)).await;
        assert!(waited.is_err());
        assert_eq!(r.buf.capacity(), 0, "a pending read keeps no buffer");
    }
}
