//! The node link's wire format, pure codecs over byte slices.
//!
//! A link is a TLS connection from the node that sends packets (the
//! dialer) to the node that receives them (the listener). After TLS, each
//! side sends one [`Hello`]: its node id and a proof that it holds the
//! cluster's secret, bound to this TLS session (see [`crate::auth`]). The
//! dialer speaks first; the listener answers only a valid hello.
//!
//! Then the dialer sends frames as on client connections, `LEN(2) | PAYLOAD`
//! (so [`rgost_transport::FrameReader`] and `FrameWriter` serve both), where
//! a payload is either
//!
//! * a destination, `0x00 | ROUTER-ID(16) | HOST`: the namespace and host
//!   the following packets are for (the sending node routed them), or
//! * an IP packet (its first nibble is 4 or 6, never 0).
//!
//! A destination frame is sent only when the destination changes, so a
//! stream of packets to one host costs no more than on a client connection.

use rgost_relay::TunnelId;

/// First bytes of a hello.
pub const MAGIC: [u8; 4] = *b"RGLK";
/// The link protocol's version.
pub const VERSION: u8 = 1;
/// Length of a proof (HMAC-SHA256).
pub const PROOF_LEN: usize = 32;
/// Longest node id.
pub const MAX_NODE_ID: usize = 255;
/// Longest hello.
pub const MAX_HELLO: usize = MAGIC.len() + 2 + MAX_NODE_ID + PROOF_LEN;
/// First byte of a destination payload.
const DEST: u8 = 0x00;

/// Why link bytes were rejected. The link is closed; nothing it sent is used.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum FrameError {
    /// The hello does not start with the link's magic bytes (not a node, or
    /// GOST's UDP entrypoint datagrams).
    #[error("not a node link hello")]
    BadMagic,
    /// A link protocol version this node does not speak.
    #[error("link protocol version {0} is not supported (this node speaks {VERSION})")]
    BadVersion(u8),
    /// A node id that is empty or not UTF-8.
    #[error("malformed node id")]
    BadNodeId,
    /// A payload that is neither a destination nor an IP packet, or a
    /// destination too short to name one.
    #[error("malformed link frame")]
    BadFrame,
}

/// One side's hello.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Hello {
    /// The sender's node id.
    pub node: String,
    /// Its proof of the secret.
    pub proof: [u8; PROOF_LEN],
}

impl Hello {
    /// Appends the encoded hello to `out`. A node id longer than
    /// [`MAX_NODE_ID`] bytes is cut (node ids are UUIDs).
    pub fn encode(&self, out: &mut Vec<u8>) {
        let id = truncate(&self.node, MAX_NODE_ID);
        out.extend_from_slice(&MAGIC);
        out.push(VERSION);
        out.push(id.len() as u8);
        out.extend_from_slice(id.as_bytes());
        out.extend_from_slice(&self.proof);
    }

    /// Decodes a hello from the front of `buf`: `Ok(None)` when more bytes
    /// are needed, else the hello and the bytes it used.
    pub fn decode(buf: &[u8]) -> Result<Option<(Hello, usize)>, FrameError> {
        let head = MAGIC.len() + 2;
        let seen = buf.len().min(MAGIC.len());
        if buf[..seen] != MAGIC[..seen] {
            return Err(FrameError::BadMagic);
        }
        if buf.len() < head {
            return Ok(None);
        }
        if buf[4] != VERSION {
            return Err(FrameError::BadVersion(buf[4]));
        }
        let id_len = usize::from(buf[5]);
        let total = head + id_len + PROOF_LEN;
        if buf.len() < total {
            return Ok(None);
        }
        let node = std::str::from_utf8(&buf[head..head + id_len]).map_err(|_| FrameError::BadNodeId)?;
        if node.is_empty() {
            return Err(FrameError::BadNodeId);
        }
        let mut proof = [0u8; PROOF_LEN];
        proof.copy_from_slice(&buf[head + id_len..total]);
        Ok(Some((Hello { node: node.to_owned(), proof }, total)))
    }
}

/// The longest prefix of `text` of at most `max` bytes that ends on a character boundary.
fn truncate(text: &str, max: usize) -> &str {
    let mut end = text.len().min(max);
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    &text[..end]
}

/// A decoded link payload.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Payload<'a> {
    /// The following packets are for `host` in namespace `router`.
    Dest {
        /// The namespace.
        router: TunnelId,
        /// The host (not empty).
        host: &'a [u8],
    },
    /// An IP packet, or a GSO frame (a super-packet, `0x11`), for the
    /// current destination. Nodes pass GSO frames whole; the node that
    /// delivers cuts them for a peer that did not negotiate them.
    Packet,
}

/// Encodes a destination payload (without the frame's length).
pub fn dest(router: TunnelId, host: &str) -> Vec<u8> {
    let mut out = Vec::with_capacity(1 + 16 + host.len());
    out.push(DEST);
    out.extend_from_slice(&router.uuid);
    out.extend_from_slice(host.as_bytes());
    out
}

/// Tells a destination from a packet.
pub fn payload(bytes: &[u8]) -> Result<Payload<'_>, FrameError> {
    match bytes.first().map(|b| b >> 4) {
        Some(4 | 6) => Ok(Payload::Packet),
        Some(_) if bytes[0] == rgost_relay::gso::GSO_FRAME => Ok(Payload::Packet),
        Some(0) if bytes[0] == DEST && bytes.len() > 17 => {
            let mut uuid = [0u8; 16];
            uuid.copy_from_slice(&bytes[1..17]);
            Ok(Payload::Dest { router: TunnelId::from_uuid(uuid), host: &bytes[17..] })
        }
        _ => Err(FrameError::BadFrame),
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    #[test]
    fn hellos_decode_in_pieces() {
        let hello = Hello { node: "4b0a7a4e-node".into(), proof: [7; PROOF_LEN] };
        let mut bytes = Vec::new();
        hello.encode(&mut bytes);
        bytes.extend_from_slice(b"rest");
        for cut in 0..bytes.len() - 4 {
            assert_eq!(Hello::decode(&bytes[..cut]), Ok(None), "cut at {cut}");
        }
        assert_eq!(Hello::decode(&bytes), Ok(Some((hello, bytes.len() - 4))));
    }

    #[test]
    fn strangers_are_told_apart_at_once() {
        // A relay request (GOST's entrypoint datagram starts with version 1).
        assert_eq!(Hello::decode(&[0x01, 0x03, 0x00]), Err(FrameError::BadMagic));
        assert_eq!(Hello::decode(b"GET / HTTP/1.1"), Err(FrameError::BadMagic));
        assert_eq!(Hello::decode(b"RGLK\x02\x01"), Err(FrameError::BadVersion(2)));
        let mut empty_id = b"RGLK\x01\x00".to_vec();
        empty_id.extend_from_slice(&[0; PROOF_LEN]);
        assert_eq!(Hello::decode(&empty_id), Err(FrameError::BadNodeId));
        let mut bad_utf8 = b"RGLK\x01\x01\xff".to_vec();
        bad_utf8.extend_from_slice(&[0; PROOF_LEN]);
        assert_eq!(Hello::decode(&bad_utf8), Err(FrameError::BadNodeId));
    }

    #[test]
    fn payloads() {
        let router = TunnelId::from_uuid([9; 16]);
        let d = dest(router, "host-1");
        assert_eq!(payload(&d), Ok(Payload::Dest { router, host: b"host-1" }));
        assert_eq!(payload(&[0x45, 0, 0, 20]), Ok(Payload::Packet));
        assert_eq!(payload(&[0x60; 40]), Ok(Payload::Packet));
        assert_eq!(payload(&[rgost_relay::gso::GSO_FRAME, 0, 5, 0x8c]), Ok(Payload::Packet), "a GSO frame");
        assert_eq!(payload(&[0x12; 30]), Err(FrameError::BadFrame));
        assert_eq!(payload(&d[..17]), Err(FrameError::BadFrame), "a destination without a host");
        assert_eq!(payload(&[]), Err(FrameError::BadFrame));
        assert_eq!(payload(&[0x01; 30]), Err(FrameError::BadFrame));
        assert_eq!(payload(&[0x20; 30]), Err(FrameError::BadFrame));
    }

    proptest! {
        #[test]
        fn hello_round_trip(node in "[a-z0-9-]{1,80}", proof in proptest::array::uniform32(any::<u8>())) {
            let hello = Hello { node, proof };
            let mut bytes = Vec::new();
            hello.encode(&mut bytes);
            prop_assert!(bytes.len() <= MAX_HELLO);
            prop_assert_eq!(Hello::decode(&bytes), Ok(Some((hello, bytes.len()))));
        }

        #[test]
        fn decoders_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..400)) {
            let _ = Hello::decode(&bytes);
            let _ = payload(&bytes);
        }

        #[test]
        fn dest_round_trip(uuid in proptest::array::uniform16(any::<u8>()), host in "[ -~]{1,100}") {
            let router = TunnelId::from_uuid(uuid);
            let d = dest(router, &host);
            prop_assert_eq!(payload(&d), Ok(Payload::Dest { router, host: host.as_bytes() }));
        }
    }
}
