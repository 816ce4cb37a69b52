//! Packet frames after a successful ASSOCIATE: `LEN(2) | PACKET(LEN)`.

use bytes::BufMut;

/// Bytes of the length prefix.
pub const HEADER_LEN: usize = 2;

/// Largest packet a frame can carry.
pub const MAX_PACKET_LEN: usize = u16::MAX as usize;

/// The outcome of looking for a frame at the front of a buffer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FrameStatus {
    /// A whole frame: the packet occupies `buf[HEADER_LEN..total]` (may be empty).
    Complete {
        /// Total frame length (header included).
        total: usize,
    },
    /// More bytes are needed; at least this many.
    Incomplete(usize),
}

/// Looks at the front of `buf` for one frame. Never fails: every length is valid.
pub fn peek(buf: &[u8]) -> FrameStatus {
    todo!()
}

/// Splits one whole frame off the front of `buf`: `Some((packet, rest))`, or
/// `None` when `buf` holds no whole frame.
pub fn split(buf: &[u8]) -> Option<(&[u8], &[u8])> {
    todo!()
}

/// Appends the length header for a packet of `len` bytes.
/// Returns `false` (and appends nothing) when `len > MAX_PACKET_LEN`.
pub fn encode_header(len: usize, out: &mut impl BufMut) -> bool {
    todo!()
}

/// Appends a whole frame; `false` (nothing appended) when the packet is too large.
pub fn encode(packet: &[u8], out: &mut impl BufMut) -> bool {
    todo!()
}
