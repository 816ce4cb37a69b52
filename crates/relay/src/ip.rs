//! Zero-copy views of IPv4/IPv6 headers: just what routing needs.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::ops::Range;

/// A checked view of an IP packet's header.
///
/// Built only through [`IpHeader::new_checked`], which verifies the version
/// and that the fixed header (for IPv4: the whole header IHL says there is)
/// is present; after that no accessor can panic, whatever the bytes.
#[derive(Debug, Clone, Copy)]
pub struct IpHeader<T: AsRef<[u8]>> {
    buf: T,
}

/// Why bytes are not a routable IP packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum IpError {
    /// Empty packet.
    #[error("empty packet")]
    Empty,
    /// Version nibble is neither 4 nor 6.
    #[error("not an IP packet (version {0})")]
    NotIp(u8),
    /// Shorter than the fixed header (20 bytes IPv4, 40 bytes IPv6), or an
    /// IPv4 header whose IHL points past the end of the packet.
    #[error("truncated IP header")]
    Truncated,
    /// An IPv4 IHL below 5 (the header is at least 20 bytes).
    #[error("bad IPv4 header length (IHL {0})")]
    BadHeaderLen(u8),
}

/// IPv4 header fields: byte ranges and offsets.
mod v4 {
    use std::ops::Range;

    pub(super) const MIN_HEADER_LEN: usize = 20;
    pub(super) const TOTAL_LEN: Range<usize> = 2..4;
    pub(super) const FRAGMENT: Range<usize> = 6..8;
    pub(super) const PROTOCOL: usize = 9;
    pub(super) const SRC: Range<usize> = 12..16;
    pub(super) const DST: Range<usize> = 16..20;
    /// Fragment offset bits of the flags/fragment-offset field.
    pub(super) const OFFSET_MASK: u16 = 0x1fff;
}

/// IPv6 header fields: byte ranges and offsets.
mod v6 {
    use std::ops::Range;

    pub(super) const HEADER_LEN: usize = 40;
    pub(super) const PAYLOAD_LEN: Range<usize> = 4..6;
    pub(super) const NEXT_HEADER: usize = 6;
    pub(super) const SRC: Range<usize> = 8..24;
    pub(super) const DST: Range<usize> = 24..40;
}

/// Transport protocols whose first four bytes are source and destination ports.
const PORT_PROTOCOLS: [u8; 4] = [
    6,   // TCP
    17,  // UDP
    132, // SCTP
    136, // UDP-Lite
];

/// The identity of a packet flow: addresses, protocol and (for TCP, UDP,
/// SCTP, UDP-Lite) ports; ports are 0 when absent or not readable.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct FlowKey {
    /// Source address.
    pub src: IpAddr,
    /// Destination address.
    pub dst: IpAddr,
    /// IPv4 protocol / IPv6 next header (extension headers not walked).
    pub protocol: u8,
    /// Source port or 0.
    pub src_port: u16,
    /// Destination port or 0.
    pub dst_port: u16,
}

impl<T: AsRef<[u8]>> IpHeader<T> {
    /// Checks the version and the header length: IPv4 needs IHL >= 5 and
    /// the IHL*4-byte header within `buf`; IPv6 needs the 40-byte fixed header.
    pub fn new_checked(buf: T) -> Result<Self, IpError> {
        let bytes = buf.as_ref();
        let Some(&first) = bytes.first() else {
            return Err(IpError::Empty);
        };
        match first >> 4 {
            4 => {
                let ihl = first & 0x0f;
                if bytes.len() < v4::MIN_HEADER_LEN {
                    return Err(IpError::Truncated);
                }
                if ihl < 5 {
                    return Err(IpError::BadHeaderLen(ihl));
                }
                if bytes.len() < usize::from(ihl) * 4 {
                    return Err(IpError::Truncated);
                }
            }
            6 => {
                if bytes.len() < v6::HEADER_LEN {
                    return Err(IpError::Truncated);
                }
            }
            other => return Err(IpError::NotIp(other)),
        }
        Ok(IpHeader { buf })
    }

    /// 4 or 6.
    pub fn version(&self) -> u8 {
        self.bytes().first().map_or(0, |b| b >> 4)
    }

    /// Source address.
    pub fn src(&self) -> IpAddr {
        if self.is_v4() { IpAddr::V4(Ipv4Addr::from(self.array(v4::SRC))) } else { IpAddr::V6(self.ipv6(v6::SRC)) }
    }

    /// Destination address.
    pub fn dst(&self) -> IpAddr {
        if self.is_v4() { IpAddr::V4(Ipv4Addr::from(self.array(v4::DST))) } else { IpAddr::V6(self.ipv6(v6::DST)) }
    }

    /// IPv4 protocol, or IPv6 next header (extension headers are not walked).
    pub fn protocol(&self) -> u8 {
        let at = if self.is_v4() { v4::PROTOCOL } else { v6::NEXT_HEADER };
        self.bytes().get(at).copied().unwrap_or(0)
    }

    /// Header length in bytes: IHL*4 for IPv4, 40 for IPv6 (extension headers not counted).
    pub fn header_len(&self) -> usize {
        if self.is_v4() { usize::from(self.bytes().first().map_or(5, |b| b & 0x0f)) * 4 } else { v6::HEADER_LEN }
    }

    /// The packet length the header declares: IPv4's total length, or
    /// IPv6's payload length plus the 40-byte fixed header. A well-formed
    /// packet read from a TUN device is exactly this long.
    pub fn declared_len(&self) -> usize {
        if self.is_v4() {
            usize::from(u16::from_be_bytes(self.array(v4::TOTAL_LEN)))
        } else {
            v6::HEADER_LEN + usize::from(u16::from_be_bytes(self.array(v6::PAYLOAD_LEN)))
        }
    }

    /// The whole packet.
    pub fn as_bytes(&self) -> &[u8] {
        self.bytes()
    }

    /// Gives the buffer back.
    pub fn into_inner(self) -> T {
        self.buf
    }

    /// The flow key (ports read when the transport header is present and,
    /// for IPv4, the packet is not a non-first fragment).
    pub fn flow(&self) -> FlowKey {
        let (src_port, dst_port) = self.ports();
        FlowKey { src: self.src(), dst: self.dst(), protocol: self.protocol(), src_port, dst_port }
    }

    /// A stable 64-bit hash of the flow key, symmetric neither in src/dst nor
    /// random per process (so that every relay instance agrees).
    ///
    /// Reads the header bytes directly (no [`FlowKey`] is built) and mixes
    /// them 8 bytes at a time with a multiply-xorshift, then a final avalanche.
    pub fn flow_hash(&self) -> u64 {
        let (src_port, dst_port) = self.ports();
        let tail = (u64::from(self.version()) << 40)
            | (u64::from(self.protocol()) << 32)
            | (u64::from(src_port) << 16)
            | u64::from(dst_port);
        let mut hash = FLOW_SEED;
        if self.is_v4() {
            let src = u64::from(u32::from_be_bytes(self.array(v4::SRC)));
            let dst = u64::from(u32::from_be_bytes(self.array(v4::DST)));
            hash = mix(hash, (src << 32) | dst);
        } else {
            let [s0, s1] = self.halves(v6::SRC);
            let [d0, d1] = self.halves(v6::DST);
            hash = mix(mix(mix(mix(hash, s0), s1), d0), d1);
        }
        finish(mix(hash, tail))
    }

    fn bytes(&self) -> &[u8] {
        self.buf.as_ref()
    }

    fn is_v4(&self) -> bool {
        self.version() == 4
    }

    /// The bytes in `range` as an array; zeros if out of range (which the
    /// checked constructor rules out for every range used here).
    fn array<const N: usize>(&self, range: Range<usize>) -> [u8; N] {
        self.bytes().get(range).and_then(|b| <[u8; N]>::try_from(b).ok()).unwrap_or([0; N])
    }

    fn ipv6(&self, range: Range<usize>) -> Ipv6Addr {
        Ipv6Addr::from(self.array::<16>(range))
    }

    /// An IPv6 address in `range` as two big-endian u64 halves.
    fn halves(&self, range: Range<usize>) -> [u64; 2] {
        let bits = u128::from_be_bytes(self.array(range));
        [(bits >> 64) as u64, bits as u64]
    }

    /// Source and destination ports, or zeros when there are none to read.
    fn ports(&self) -> (u16, u16) {
        let protocol = self.protocol();
        if !PORT_PROTOCOLS.contains(&protocol) {
            return (0, 0);
        }
        if self.is_v4() && u16::from_be_bytes(self.array(v4::FRAGMENT)) & v4::OFFSET_MASK != 0 {
            return (0, 0);
        }
        let start = self.header_len();
        let [s0, s1, d0, d1] = self.array(start..start + 4);
        (u16::from_be_bytes([s0, s1]), u16::from_be_bytes([d0, d1]))
    }
}

/// Arbitrary odd constants (from splitmix64/murmur3) for the flow hash.
const FLOW_SEED: u64 = 0x9e37_79b9_7f4a_7c15;
const MIX_MUL: u64 = 0xbf58_476d_1ce4_e5b9;
const FINISH_MUL: u64 = 0x94d0_49bb_1331_11eb;

fn mix(hash: u64, word: u64) -> u64 {
    (hash ^ word).wrapping_mul(MIX_MUL).rotate_left(31)
}

/// splitmix64's finaliser, so every input bit affects every output bit.
fn finish(mut hash: u64) -> u64 {
    hash ^= hash >> 30;
    hash = hash.wrapping_mul(MIX_MUL);
    hash ^= hash >> 27;
    hash = hash.wrapping_mul(FINISH_MUL);
    hash ^ (hash >> 31)
}
