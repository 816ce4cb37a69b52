//! Super-packets between rgost peers (beyond GOST's protocol).
//!
//! A client's TUN device with segmentation offload hands over TCP
//! "super-packets" of up to 64 KB (one IP header, one TCP header, many
//! segments' payload, and the segment size). Between rgost peers that both
//! said so in the handshake, such a packet travels as one **GSO frame**
//! from client to client: the server routes it on its IP header like any
//! packet, and the receiving client writes it to its device in one write.
//! Peers that did not say so (GOST, older rgost) never see a GSO frame: the
//! server cuts super-packets into ordinary packets for them ([`SuperPacket::segment`]).
//!
//! The handshake signals, both invisible to GOST:
//! * the client names its source address as a domain ending in
//!   [`ADVERTISE_SUFFIX`] (`192.168.123.1/gso`); GOST's server and older
//!   rgost servers only log the source, and GOST's client never sends such a
//!   name, so the signal cannot be sent by accident;
//! * the server, only to such a client, sets [`RESERVED_GSO`] in the
//!   connector id's first reserved byte, which clients read as nothing else.
//!
//! A GSO frame's payload is `0x11 | FLAGS(1) | GSO_SIZE(2) | IP packet`:
//! its first byte can never start an IP packet (version 4 or 6).

use bytes::BufMut;

use crate::frame;

/// The first byte of a GSO frame's payload.
pub const GSO_FRAME: u8 = 0x11;
/// Bytes before the IP packet in a GSO frame's payload.
pub const GSO_HEADER_LEN: usize = 4;
/// The largest super-packet a GSO frame carries.
pub const MAX_SUPER_PACKET: usize = frame::MAX_PACKET_LEN - GSO_HEADER_LEN;
/// [`GsoFrame::flags`]: the flow uses ECN (the segments carry CWR as TCP does).
pub const FLAG_ECN: u8 = 0x01;
/// Most segments one super-packet may stand for: a TCP super-packet of 64 KB
/// with an MSS of 256 bytes. Beyond, a tiny segment size would make one frame
/// cost thousands of packets to whoever segments it.
pub const MAX_SEGMENTS: usize = 256;
/// The suffix of a client's source-address domain that asks for GSO frames.
pub const ADVERTISE_SUFFIX: &str = "/gso";
/// The bit of the connector id's first reserved byte that grants GSO frames.
pub const RESERVED_GSO: u8 = 0x01;

/// IPv4 and IPv6 header offsets used here.
const V4_TOTAL_LEN: usize = 2;
const V4_ID: usize = 4;
const V4_CHECKSUM: usize = 10;
const V4_SRC: usize = 12;
const V6_PAYLOAD_LEN: usize = 4;
const V6_NEXT_HEADER: usize = 6;
const V6_SRC: usize = 8;
const V6_HEADER_LEN: usize = 40;
const TCP: u8 = 6;
/// TCP header offsets and flags.
const TCP_SEQ: usize = 4;
const TCP_DATA_OFFSET: usize = 12;
const TCP_FLAGS: usize = 13;
const TCP_CHECKSUM: usize = 16;
const TCP_MIN_HEADER: usize = 20;
const FIN: u8 = 0x01;
const PSH: u8 = 0x08;
const CWR: u8 = 0x80;

/// A frame's payload: an IP packet, or a GSO frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Payload<'a> {
    /// An ordinary IP packet (or bytes that are not one: the IP checks decide).
    Ip(&'a [u8]),
    /// A GSO frame.
    Gso(GsoFrame<'a>),
}

/// A GSO frame's fields.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GsoFrame<'a> {
    /// [`FLAG_ECN`] or 0.
    pub flags: u8,
    /// Payload bytes per segment (the TCP MSS).
    pub gso_size: u16,
    /// The IP super-packet.
    pub packet: &'a [u8],
}

/// Tells a GSO frame from an IP packet. Never fails: a payload that starts
/// with [`GSO_FRAME`] but is too short is an (invalid) IP packet.
pub fn classify(payload: &[u8]) -> Payload<'_> {
    match payload {
        [GSO_FRAME, flags, hi, lo, packet @ ..] => {
            Payload::Gso(GsoFrame { flags: *flags, gso_size: u16::from_be_bytes([*hi, *lo]), packet })
        }
        _ => Payload::Ip(payload),
    }
}

/// Appends a GSO frame's header (the packet follows).
pub fn encode_header(flags: u8, gso_size: u16, out: &mut impl BufMut) {
    out.put_u8(GSO_FRAME);
    out.put_u8(flags);
    out.put_u16(gso_size);
}

/// Why bytes are not a TCP super-packet that can be segmented.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum GsoError {
    /// Not IPv4 or IPv6, or a header is cut short.
    #[error("not a whole IPv4/IPv6 TCP header")]
    Truncated,
    /// Not TCP (IPv6 extension headers count as not TCP).
    #[error("not TCP")]
    NotTcp,
    /// The IP header's length disagrees with the packet's.
    #[error("IP length field disagrees with the packet")]
    Length,
    /// A segment size of zero.
    #[error("segment size 0")]
    ZeroSize,
    /// More than [`MAX_SEGMENTS`] segments.
    #[error("more than {MAX_SEGMENTS} segments")]
    TooManySegments,
}

/// A checked TCP super-packet: every accessor and [`SuperPacket::segment`]
/// work on ranges the constructor verified; nothing here can panic.
#[derive(Debug, Clone, Copy)]
pub struct SuperPacket<'a> {
    packet: &'a [u8],
    ip_len: usize,
    tcp_len: usize,
    v6: bool,
    gso_size: usize,
}

impl<'a> SuperPacket<'a> {
    /// Checks `packet` (IP version, TCP, header lengths, the IP length
    /// field) for segments of `gso_size` payload bytes.
    pub fn new_checked(packet: &'a [u8], gso_size: u16) -> Result<SuperPacket<'a>, GsoError> {
        if gso_size == 0 {
            return Err(GsoError::ZeroSize);
        }
        let first = *packet.first().ok_or(GsoError::Truncated)?;
        let (v6, ip_len, declared) = match first >> 4 {
            4 => {
                let ihl = usize::from(first & 0x0f) * 4;
                if ihl < 20 || packet.len() < ihl {
                    return Err(GsoError::Truncated);
                }
                if packet.get(9) != Some(&TCP) {
                    return Err(GsoError::NotTcp);
                }
                (false, ihl, usize::from(be16(packet, V4_TOTAL_LEN).ok_or(GsoError::Truncated)?))
            }
            6 => {
                if packet.len() < V6_HEADER_LEN {
                    return Err(GsoError::Truncated);
                }
                if packet.get(V6_NEXT_HEADER) != Some(&TCP) {
                    return Err(GsoError::NotTcp);
                }
                let payload = usize::from(be16(packet, V6_PAYLOAD_LEN).ok_or(GsoError::Truncated)?);
                (true, V6_HEADER_LEN, V6_HEADER_LEN + payload)
            }
            _ => return Err(GsoError::Truncated),
        };
        if declared != packet.len() {
            return Err(GsoError::Length);
        }
        let offset = packet.get(ip_len + TCP_DATA_OFFSET).ok_or(GsoError::Truncated)?;
        let tcp_len = usize::from(offset >> 4) * 4;
        if tcp_len < TCP_MIN_HEADER || packet.len() < ip_len + tcp_len {
            return Err(GsoError::Truncated);
        }
        let checked = SuperPacket { packet, ip_len, tcp_len, v6, gso_size: usize::from(gso_size) };
        if checked.segments() > MAX_SEGMENTS {
            return Err(GsoError::TooManySegments);
        }
        Ok(checked)
    }

    /// IP and TCP headers together.
    pub fn header_len(&self) -> usize {
        self.ip_len + self.tcp_len
    }

    /// The IP header's length (where TCP starts).
    pub fn ip_header_len(&self) -> usize {
        self.ip_len
    }

    /// Whether it is IPv6.
    pub fn is_v6(&self) -> bool {
        self.v6
    }

    /// How many segments it makes.
    pub fn segments(&self) -> usize {
        (self.packet.len() - self.header_len()).div_ceil(self.gso_size).max(1)
    }

    /// The ordinary packets it stands for, each with its own IP length (and
    /// IPv4 id and checksum), TCP sequence number and flags (FIN and PSH on
    /// the last only, CWR on the first only) and a full TCP checksum,
    /// appended to `out` one after the other; `emit` gets each one's length.
    pub fn segment(&self, out: &mut Vec<u8>, mut emit: impl FnMut(usize)) {
        let header = self.header_len();
        let (headers, payload) = self.packet.split_at(header);
        let seq0 = be32(headers, self.ip_len + TCP_SEQ).unwrap_or(0);
        let id0 = if self.v6 { 0 } else { be16(headers, V4_ID).unwrap_or(0) };
        let flags0 = headers.get(self.ip_len + TCP_FLAGS).copied().unwrap_or(0);
        let count = self.segments();
        // A packet without payload is one segment of none.
        let empty: &[&[u8]] = if payload.is_empty() { &[&[]] } else { &[] };
        for (i, chunk) in payload.chunks(self.gso_size).chain(empty.iter().copied()).enumerate() {
            let start = out.len();
            out.extend_from_slice(headers);
            out.extend_from_slice(chunk);
            let Some(seg) = out.get_mut(start..) else { return };
            let len = seg.len();
            let tcp_total = self.tcp_len + chunk.len();
            if self.v6 {
                put16(seg, V6_PAYLOAD_LEN, tcp_total as u16);
            } else {
                put16(seg, V4_TOTAL_LEN, len as u16);
                put16(seg, V4_ID, id0.wrapping_add(i as u16));
                put16(seg, V4_CHECKSUM, 0);
                let sum = checksum(seg.get(..self.ip_len).unwrap_or_default(), 0);
                put16(seg, V4_CHECKSUM, sum);
            }
            let tcp = self.ip_len;
            put32(seg, tcp + TCP_SEQ, seq0.wrapping_add((i * self.gso_size) as u32));
            let mut flags = flags0;
            if i + 1 < count {
                flags &= !(FIN | PSH);
            }
            if i > 0 {
                flags &= !CWR;
            }
            if let Some(f) = seg.get_mut(tcp + TCP_FLAGS) {
                *f = flags;
            }
            put16(seg, tcp + TCP_CHECKSUM, 0);
            let pseudo = pseudo_header_sum(seg, self.v6, tcp_total);
            let sum = checksum(seg.get(tcp..).unwrap_or_default(), pseudo);
            put16(seg, tcp + TCP_CHECKSUM, sum);
            emit(len);
        }
    }
}

/// Completes a checksum left partial by a device (virtio's NEEDS_CSUM): the
/// field at `csum_start + csum_offset` holds the pseudo-header sum; the
/// checksum of everything from `csum_start` on, that field included, goes
/// into it. Returns `false` (changing nothing) when the offsets are out of range.
pub fn complete_checksum(packet: &mut [u8], csum_start: usize, csum_offset: usize) -> bool {
    let field = csum_start + csum_offset;
    if packet.len() < field + 2 {
        return false;
    }
    let sum = checksum(packet.get(csum_start..).unwrap_or_default(), 0);
    put16(packet, field, sum);
    true
}

/// The one's complement sum of `data` (as 16-bit big-endian words) plus
/// `initial`, folded and complemented: the Internet checksum.
fn checksum(data: &[u8], initial: u32) -> u16 {
    let mut sum = u64::from(initial);
    let mut words = data.chunks_exact(2);
    for w in &mut words {
        sum += u64::from(u16::from_be_bytes([w[0], w[1]]));
    }
    if let [last] = words.remainder() {
        sum += u64::from(*last) << 8;
    }
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !(sum as u16)
}

/// The unfolded sum of the TCP pseudo-header.
fn pseudo_header_sum(seg: &[u8], v6: bool, tcp_len: usize) -> u32 {
    let (src, addr_len) = if v6 { (V6_SRC, 16) } else { (V4_SRC, 4) };
    let addrs = seg.get(src..src + 2 * addr_len).unwrap_or_default();
    let mut sum: u32 = addrs.chunks_exact(2).map(|w| u32::from(u16::from_be_bytes([w[0], w[1]]))).sum();
    sum += u32::from(TCP);
    sum += (tcp_len as u32 >> 16) + (tcp_len as u32 & 0xffff);
    sum
}

fn be16(b: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_be_bytes(b.get(at..at + 2)?.try_into().ok()?))
}

fn be32(b: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_be_bytes(b.get(at..at + 4)?.try_into().ok()?))
}

fn put16(b: &mut [u8], at: usize, v: u16) {
    if let Some(dst) = b.get_mut(at..at + 2) {
        dst.copy_from_slice(&v.to_be_bytes());
    }
}

fn put32(b: &mut [u8], at: usize, v: u32) {
    if let Some(dst) = b.get_mut(at..at + 4) {
        dst.copy_from_slice(&v.to_be_bytes());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A TCP/IPv4 super-packet from 10.0.0.1:1000 to 10.0.0.2:2000 with
    /// `payload` bytes, sequence 1000, flags ACK|PSH|FIN|CWR.
    fn v4_super(payload: usize) -> Vec<u8> {
        let total = 40 + payload;
        let mut p = vec![0x45, 0, (total >> 8) as u8, total as u8, 0x12, 0x34, 0x40, 0, 64, TCP, 0, 0];
        p.extend_from_slice(&[10, 0, 0, 1, 10, 0, 0, 2]);
        p.extend_from_slice(&1000u16.to_be_bytes());
        p.extend_from_slice(&2000u16.to_be_bytes());
        p.extend_from_slice(&1000u32.to_be_bytes());
        p.extend_from_slice(&0u32.to_be_bytes());
        p.extend_from_slice(&[0x50, 0x10 | PSH | FIN | CWR, 0xff, 0xff, 0, 0, 0, 0]);
        p.extend((0..payload).map(|i| i as u8));
        p
    }

    fn valid_checksums(seg: &[u8], v6: bool) {
        let ip_len = if v6 { 40 } else { 20 };
        if !v6 {
            assert_eq!(checksum(&seg[..20], 0), 0, "IPv4 header checksum");
        }
        let pseudo = pseudo_header_sum(seg, v6, seg.len() - ip_len);
        assert_eq!(checksum(&seg[ip_len..], pseudo), 0, "TCP checksum");
    }

    #[test]
    fn a_super_packet_becomes_valid_segments() {
        let packet = v4_super(3000);
        let sp = SuperPacket::new_checked(&packet, 1400).unwrap();
        assert_eq!(sp.segments(), 3);
        let mut out = Vec::new();
        let mut lens = Vec::new();
        sp.segment(&mut out, |len| lens.push(len));
        assert_eq!(lens, [1440, 1440, 240]);
        let mut at = 0;
        for (i, len) in lens.iter().enumerate() {
            let seg = &out[at..at + len];
            at += len;
            assert_eq!(usize::from(u16::from_be_bytes([seg[2], seg[3]])), *len, "total length");
            assert_eq!(u16::from_be_bytes([seg[4], seg[5]]), 0x1234 + i as u16, "IPv4 id");
            assert_eq!(u32::from_be_bytes(seg[24..28].try_into().unwrap()), 1000 + 1400 * i as u32, "sequence");
            let flags = seg[33];
            assert_eq!(flags & FIN != 0, i == 2, "FIN on the last only");
            assert_eq!(flags & PSH != 0, i == 2, "PSH on the last only");
            assert_eq!(flags & CWR != 0, i == 0, "CWR on the first only");
            assert_eq!(&seg[40..], &packet[40 + 1400 * i..(40 + 1400 * (i + 1)).min(packet.len())]);
            valid_checksums(seg, false);
        }
    }

    #[test]
    fn ipv6_segments_carry_their_payload_length() {
        let mut p = vec![0x60, 0, 0, 0, 0, 0, TCP, 64];
        p.extend_from_slice(&[0xfd; 16]);
        p.extend_from_slice(&[0xfe; 16]);
        let tcp = [0, 1, 0, 2, 0, 0, 0, 9, 0, 0, 0, 0, 0x50, 0x10, 0xff, 0xff, 0, 0, 0, 0];
        p.extend_from_slice(&tcp);
        p.extend(std::iter::repeat_n(7u8, 2500));
        let payload_len = (p.len() - 40) as u16;
        p[4..6].copy_from_slice(&payload_len.to_be_bytes());
        let sp = SuperPacket::new_checked(&p, 1000).unwrap();
        let mut out = Vec::new();
        let mut lens = Vec::new();
        sp.segment(&mut out, |len| lens.push(len));
        assert_eq!(lens, [1060, 1060, 560]);
        let mut at = 0;
        for len in lens {
            let seg = &out[at..at + len];
            at += len;
            assert_eq!(usize::from(u16::from_be_bytes([seg[4], seg[5]])), len - 40);
            valid_checksums(seg, true);
        }
    }

    #[test]
    fn what_is_not_a_tcp_super_packet_is_refused() {
        let packet = v4_super(100);
        assert_eq!(SuperPacket::new_checked(&packet, 0).err(), Some(GsoError::ZeroSize));
        assert_eq!(SuperPacket::new_checked(&packet[..30], 10).err(), Some(GsoError::Length));
        let mut udp = packet.clone();
        udp[9] = 17;
        assert_eq!(SuperPacket::new_checked(&udp, 10).err(), Some(GsoError::NotTcp));
        assert_eq!(SuperPacket::new_checked(&[], 10).err(), Some(GsoError::Truncated));
        assert_eq!(SuperPacket::new_checked(&[0x45; 10], 10).err(), Some(GsoError::Truncated));
        let big = v4_super(MAX_SEGMENTS + 1);
        assert_eq!(SuperPacket::new_checked(&big, 1).err(), Some(GsoError::TooManySegments));
        // A packet without payload is one segment, unchanged but for checksums.
        let bare = v4_super(0);
        let sp = SuperPacket::new_checked(&bare, 1400).unwrap();
        let mut out = Vec::new();
        sp.segment(&mut out, |_| {});
        assert_eq!(out.len(), 40);
        valid_checksums(&out, false);
    }

    #[test]
    fn frames_tell_gso_from_ip() {
        let mut frame = Vec::new();
        encode_header(FLAG_ECN, 1400, &mut frame);
        frame.extend_from_slice(&[0x45, 0]);
        assert_eq!(classify(&frame), Payload::Gso(GsoFrame { flags: FLAG_ECN, gso_size: 1400, packet: &[0x45, 0] }));
        assert_eq!(classify(&[0x45, 0, 0]), Payload::Ip(&[0x45, 0, 0]));
        assert_eq!(classify(&[GSO_FRAME, 0]), Payload::Ip(&[GSO_FRAME, 0]));
    }

    #[test]
    fn a_partial_checksum_is_completed() {
        let packet = v4_super(500);
        let mut expected = Vec::new();
        SuperPacket::new_checked(&packet, 1400).unwrap().segment(&mut expected, |_| {});
        // What a device hands over: the pseudo-header sum in the field.
        let mut partial = expected.clone();
        let pseudo = pseudo_header_sum(&partial, false, partial.len() - 20);
        let folded = {
            let mut s = pseudo;
            while s > 0xffff {
                s = (s & 0xffff) + (s >> 16);
            }
            s as u16
        };
        partial[36..38].copy_from_slice(&folded.to_be_bytes());
        assert!(complete_checksum(&mut partial, 20, 16));
        assert_eq!(partial, expected);
        assert!(!complete_checksum(&mut partial, 2000, 16));
    }
}
