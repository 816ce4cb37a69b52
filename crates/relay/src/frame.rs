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
    let Some((len, _)) = buf.split_first_chunk::<HEADER_LEN>() else {
        return FrameStatus::Incomplete(HEADER_LEN - buf.len());
    };
    let total = HEADER_LEN + usize::from(u16::from_be_bytes(*len));
    match total.checked_sub(buf.len()) {
        Some(missing) if missing > 0 => FrameStatus::Incomplete(missing),
        _ => FrameStatus::Complete { total },
    }
}

/// Splits one whole frame off the front of `buf`: `Some((packet, rest))`, or
/// `None` when `buf` holds no whole frame.
pub fn split(buf: &[u8]) -> Option<(&[u8], &[u8])> {
    match peek(buf) {
        FrameStatus::Complete { total } => {
            let (frame, rest) = buf.split_at_checked(total)?;
            Some((frame.get(HEADER_LEN..)?, rest))
        }
        FrameStatus::Incomplete(_) => None,
    }
}

/// Appends the length header for a packet of `len` bytes.
/// Returns `false` (and appends nothing) when `len > MAX_PACKET_LEN`.
pub fn encode_header(len: usize, out: &mut impl BufMut) -> bool {
    match u16::try_from(len) {
        Ok(len) => {
            out.put_u16(len);
            true
        }
        Err(_) => false,
    }
}

/// Appends a whole frame; `false` (nothing appended) when the packet is too large.
pub fn encode(packet: &[u8], out: &mut impl BufMut) -> bool {
    if !encode_header(packet.len(), out) {
        return false;
    }
    out.put_slice(packet);
    true
}
