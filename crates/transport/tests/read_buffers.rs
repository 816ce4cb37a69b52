//! A streaming connection's read buffers are reused once the packets sliced
//! from them are gone, instead of allocated anew for every read (freed
//! memory goes back to the kernel and returns as page faults).
//!
//! Its own test binary: it counts the process's large allocations.

use std::alloc::{GlobalAlloc, Layout, System};
use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::task::{Context, Poll};

use bytes::Bytes;
use rgost_transport::FrameReader;
use tokio::io::{AsyncRead, ReadBuf};

/// Counts allocations of read-buffer size (32 KiB and more).
struct Counting;

static LARGE: AtomicUsize = AtomicUsize::new(0);

// SAFETY: forwards to the system allocator unchanged; only counts.
#[allow(unsafe_code)]
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        if layout.size() >= 32 * 1024 {
            LARGE.fetch_add(1, Ordering::Relaxed);
        }
        // SAFETY: the caller's contract is the system allocator's.
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: as above.
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

/// A socket that always has data: a stream of frames, as much per read as asked.
struct Stream {
    bytes: Vec<u8>,
    at: usize,
}

impl AsyncRead for Stream {
    fn poll_read(mut self: Pin<&mut Self>, _: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        let n = buf.remaining().min(self.bytes.len() - self.at);
        let at = self.at;
        buf.put_slice(&self.bytes[at..at + n]);
        self.at += n;
        Poll::Ready(Ok(()))
    }
}

#[tokio::test]
async fn a_streaming_reader_reuses_its_buffers() {
    // 40 MB of frames of varied sizes (up to a full 64 KiB super-packet), so
    // reads end in the middle of frames.
    let mut bytes = Vec::new();
    let mut sizes = [1400usize, 65_000, 60, 9000, 40_000].iter().cycle();
    let mut packets = 0usize;
    while bytes.len() < 40_000_000 {
        let len = *sizes.next().unwrap_or(&1400);
        bytes.extend_from_slice(&u16::try_from(len).unwrap().to_be_bytes());
        bytes.extend(std::iter::repeat_n((packets % 251) as u8, len));
        packets += 1;
    }
    let mut stream = Stream { bytes, at: 0 };
    let mut reader = FrameReader::default();
    let before = LARGE.load(Ordering::Relaxed);
    // Each read's packets stay queued until the next read is done, as in
    // the router server: every read finds its buffer still in use.
    let (mut held, mut seen, mut reads) = (Vec::<Bytes>::new(), 0usize, 0usize);
    while reader.fill(&mut stream).await.unwrap() {
        reads += 1;
        let batch: Vec<Bytes> = std::iter::from_fn(|| reader.next_packet()).collect();
        for p in &batch {
            assert!(p.iter().all(|&b| b == (seen % 251) as u8), "packet {seen} is damaged");
            seen += 1;
        }
        held = batch;
    }
    drop(held);
    assert_eq!(seen, packets, "every packet read, whole");
    let large = LARGE.load(Ordering::Relaxed) - before;
    assert!(reads > 500, "only {reads} reads");
    // Without reuse: one new buffer per read.
    assert!(large <= 8, "{large} buffers allocated for {reads} reads");
}
