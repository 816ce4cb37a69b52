//! Coalescing TCP segments for a TUN device with offload (our GRO).
//!
//! Segments of one TCP flow that follow each other in sequence are appended,
//! payload only, to the flow's open super-packet as they are pushed: one
//! copy per segment, no allocation once the buffers exist. Before the write,
//! [`finish`] fixes the super-packet's lengths and checksums and fills in
//! the virtio-net header that tells the kernel to treat it as a GSO packet
//! (`NEEDS_CSUM`: the kernel computes the TCP checksum, so the segments'
//! own checksums are not checked here; frames reach us over a TCP
//! connection, which guards them on the way).
//!
//! The rules follow the kernel's own GRO: only ACK or ACK+PSH segments with
//! payload; equal addresses, ports, acknowledgement number, TCP options and
//! IP header fields (TOS/traffic class, TTL/hop limit, DF); the sequence
//! number continues the super-packet; a segment shorter than the first or
//! one with PSH ends it. Order within a flow is kept: any other TCP packet
//! of the flow closes its super-packet, and a packet that cannot be keyed
//! (IPv4 with options or fragmented) closes all of them.

// Length of the virtio-net header in front of every packet.
use tun_rs::VIRTIO_NET_HDR_LEN as HDR;

/// Largest IP packet (the IPv4 total length and IPv6 payload length fields).
const MAX_IP: usize = 65535;
/// Most segments in one super-packet.
const MAX_SEGS: u16 = 64;
/// Most flows with an open super-packet at a time.
const MAX_OPEN: usize = 16;

const PROTO_TCP: u8 = 6;
const ACK: u8 = 0x10;
const PSH: u8 = 0x08;
const VIRTIO_NET_HDR_F_NEEDS_CSUM: u8 = 1;
const VIRTIO_NET_HDR_GSO_TCPV4: u8 = 1;
const VIRTIO_NET_HDR_GSO_TCPV6: u8 = 4;

/// A TCP segment's layout and the fields coalescing looks at.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Tcp {
    key: Key,
    /// IP header length.
    iph: usize,
    /// TCP header length.
    tcph: usize,
    seq: u32,
    flags: u8,
    payload: usize,
}

/// Addresses and ports of a flow.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Key {
    /// Whether the addresses are IPv6 (IPv4 ones fill the first 4 bytes).
    v6: bool,
    src: [u8; 16],
    dst: [u8; 16],
    ports: [u8; 4],
}

/// What a packet is, for coalescing.
pub(crate) enum Kind {
    /// A TCP segment that may take part.
    Candidate(Tcp),
    /// A TCP packet of a known flow that may not (SYN, FIN, RST, no payload...).
    Other(Key),
    /// IPv4 that cannot be keyed (options, fragments): closes every flow.
    Unkeyed,
    /// Anything else (UDP, ICMP, ...): no effect on TCP flows.
    Unrelated,
}

/// Per buffer: what [`finish`] needs to know.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Meta {
    /// Segments in the buffer (1 = a plain packet).
    pub(crate) segs: u16,
    v6: bool,
    iph: usize,
    tcph: usize,
    gso_size: usize,
}

/// A flow whose latest buffer can take more segments.
#[derive(Debug, Clone, Copy)]
struct Open {
    key: Key,
    buf: usize,
    next_seq: u32,
}

/// The open super-packets of one batch.
#[derive(Debug, Default)]
pub(crate) struct Flows {
    open: Vec<Open>,
}

fn be16(p: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_be_bytes([*p.get(at)?, *p.get(at + 1)?]))
}

fn be32(p: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_be_bytes([*p.get(at)?, *p.get(at + 1)?, *p.get(at + 2)?, *p.get(at + 3)?]))
}

/// Classifies an IP packet.
pub(crate) fn classify(p: &[u8]) -> Kind {
    match p.first().map(|b| b >> 4) {
        Some(4) => classify_v4(p).unwrap_or(Kind::Unrelated),
        Some(6) => classify_v6(p).unwrap_or(Kind::Unrelated),
        _ => Kind::Unrelated,
    }
}

fn classify_v4(p: &[u8]) -> Option<Kind> {
    if *p.get(9)? != PROTO_TCP {
        return Some(Kind::Unrelated);
    }
    let frag = be16(p, 6)?;
    if p.first()? & 0x0f != 5 || frag & 0x3fff != 0 {
        return Some(Kind::Unkeyed);
    }
    if usize::from(be16(p, 2)?) != p.len() || checksum(&[p.get(..20)?]) != 0 {
        return Some(Kind::Unrelated);
    }
    let mut key = Key { v6: false, src: [0; 16], dst: [0; 16], ports: [0; 4] };
    key.src.get_mut(..4)?.copy_from_slice(p.get(12..16)?);
    key.dst.get_mut(..4)?.copy_from_slice(p.get(16..20)?);
    tcp(p, 20, key)
}

fn classify_v6(p: &[u8]) -> Option<Kind> {
    if *p.get(6)? != PROTO_TCP {
        return Some(Kind::Unrelated);
    }
    if usize::from(be16(p, 4)?) + 40 != p.len() {
        return Some(Kind::Unrelated);
    }
    let mut key = Key { v6: true, src: [0; 16], dst: [0; 16], ports: [0; 4] };
    key.src.copy_from_slice(p.get(8..24)?);
    key.dst.copy_from_slice(p.get(24..40)?);
    tcp(p, 40, key)
}

fn tcp(p: &[u8], iph: usize, mut key: Key) -> Option<Kind> {
    key.ports.copy_from_slice(p.get(iph..iph + 4)?);
    let tcph = usize::from(p.get(iph + 12)? >> 4) * 4;
    if tcph < 20 || p.len() < iph + tcph {
        return Some(Kind::Unrelated);
    }
    let flags = *p.get(iph + 13)?;
    let payload = p.len() - iph - tcph;
    if (flags != ACK && flags != ACK | PSH) || payload == 0 {
        return Some(Kind::Other(key));
    }
    Some(Kind::Candidate(Tcp { key, iph, tcph, seq: be32(p, iph + 4)?, flags, payload }))
}

/// Whether the IP and TCP headers of `a` (a super-packet's first segment)
/// and `b` agree where the kernel requires it.
fn headers_match(a: &[u8], b: &[u8], t: &Tcp) -> bool {
    let ip_same = if t.key.v6 {
        // Version, traffic class, flow label; hop limit.
        a.get(..4) == b.get(..4) && a.get(7) == b.get(7)
    } else {
        // TOS; flags (DF); TTL.
        a.get(1) == b.get(1) && a.get(6).map(|f| f & 0xe0) == b.get(6).map(|f| f & 0xe0) && a.get(8) == b.get(8)
    };
    let (th, end) = (t.iph, t.iph + t.tcph);
    // Acknowledgement number, data offset, then all options.
    ip_same && a.get(th + 8..th + 13) == b.get(th + 8..th + 13) && a.get(th + 20..end) == b.get(th + 20..end)
}

impl Flows {
    /// Forgets every open super-packet (a new batch).
    pub(crate) fn clear(&mut self) {
        self.open.clear();
    }

    /// Tries to append `packet` (a candidate) to its flow's open buffer in
    /// `bufs`; returns whether it did.
    pub(crate) fn append(&mut self, bufs: &mut [Vec<u8>], metas: &mut [Meta], packet: &[u8], t: &Tcp) -> bool {
        let Some(slot) = self.open.iter().position(|o| o.key == t.key) else { return false };
        let Some(o) = self.open.get(slot).copied() else { return false };
        let (Some(buf), Some(meta)) = (bufs.get_mut(o.buf), metas.get_mut(o.buf)) else { return false };
        let fits = t.seq == o.next_seq
            && t.payload <= meta.gso_size
            && meta.iph == t.iph
            && meta.tcph == t.tcph
            && meta.segs < MAX_SEGS
            && buf.len() - HDR + t.payload <= MAX_IP
            && buf.get(HDR..).is_some_and(|first| headers_match(first, packet, t));
        if !fits {
            self.open.swap_remove(slot);
            return false;
        }
        let Some(payload) = packet.get(t.iph + t.tcph..) else { return false };
        buf.extend_from_slice(payload);
        meta.segs += 1;
        let ends = t.payload < meta.gso_size || t.flags & PSH != 0;
        if t.flags & PSH != 0
            && let Some(f) = buf.get_mut(HDR + t.iph + 13)
        {
            *f |= PSH;
        }
        if ends {
            self.open.swap_remove(slot);
        } else if let Some(o) = self.open.get_mut(slot) {
            o.next_seq = o.next_seq.wrapping_add(t.payload as u32);
        }
        true
    }

    /// Notes a packet just stored in buffer `buf` as is: a candidate opens
    /// its flow there (unless it carries PSH), other TCP packets close theirs.
    pub(crate) fn stored(&mut self, kind: &Kind, buf: usize) -> Meta {
        match kind {
            Kind::Candidate(t) => {
                self.open.retain(|o| o.key != t.key);
                if t.flags & PSH == 0 {
                    if self.open.len() >= MAX_OPEN {
                        self.open.remove(0);
                    }
                    self.open.push(Open { key: t.key, buf, next_seq: t.seq.wrapping_add(t.payload as u32) });
                }
                return Meta { segs: 1, v6: t.key.v6, iph: t.iph, tcph: t.tcph, gso_size: t.payload };
            }
            Kind::Other(key) => self.open.retain(|o| o.key != *key),
            Kind::Unkeyed => self.open.clear(),
            Kind::Unrelated => {}
        }
        Meta { segs: 1, ..Meta::default() }
    }
}

/// Ones' complement sum of `parts` as 16-bit big-endian words, folded and
/// inverted (0 for a header whose checksum is right).
fn checksum(parts: &[&[u8]]) -> u16 {
    !fold(parts.iter().map(|p| sum(p)).sum())
}

fn sum(data: &[u8]) -> u64 {
    let mut chunks = data.chunks_exact(2);
    let mut s: u64 = chunks.by_ref().map(|c| u64::from(u16::from_be_bytes([c[0], c[1]]))).sum();
    if let [last] = chunks.remainder() {
        s += u64::from(*last) << 8;
    }
    s
}

fn fold(mut s: u64) -> u16 {
    while s > 0xffff {
        s = (s & 0xffff) + (s >> 16);
    }
    s as u16
}

/// Makes `buf` (virtio-net header room, then the packet) ready to write:
/// a plain packet gets an empty header; a super-packet its lengths, IPv4
/// header checksum, TCP pseudo-header checksum and a GSO header.
pub(crate) fn finish(buf: &mut [u8], meta: &Meta) {
    let Some((hdr, p)) = buf.split_at_mut_checked(HDR) else { return };
    hdr.fill(0);
    if meta.segs < 2 {
        return;
    }
    let (iph, tcph) = (meta.iph, meta.tcph);
    let total = p.len();
    let tcp_len = total - iph;
    let gso_type = if meta.v6 {
        let Some(len) = p.get_mut(4..6) else { return };
        len.copy_from_slice(&(tcp_len as u16).to_be_bytes());
        VIRTIO_NET_HDR_GSO_TCPV6
    } else {
        let Some(len) = p.get_mut(2..4) else { return };
        len.copy_from_slice(&(total as u16).to_be_bytes());
        let c = checksum(&[p.get(..10).unwrap_or_default(), p.get(12..20).unwrap_or_default()]);
        if let Some(f) = p.get_mut(10..12) {
            f.copy_from_slice(&c.to_be_bytes());
        }
        VIRTIO_NET_HDR_GSO_TCPV4
    };
    // The TCP checksum field holds the pseudo-header sum (not inverted); the
    // kernel adds the rest from csum_start on.
    let (src, dst) = if meta.v6 { (8..24, 24..40) } else { (12..16, 16..20) };
    let pseudo = sum(p.get(src).unwrap_or_default())
        + sum(p.get(dst).unwrap_or_default())
        + u64::from(PROTO_TCP)
        + tcp_len as u64;
    if let Some(c) = p.get_mut(iph + 16..iph + 18) {
        c.copy_from_slice(&fold(pseudo).to_be_bytes());
    }
    let fields: [u16; 4] = [(iph + tcph) as u16, meta.gso_size as u16, iph as u16, 16];
    if let Some([flags, gso]) = hdr.get_mut(..2) {
        *flags = VIRTIO_NET_HDR_F_NEEDS_CSUM;
        *gso = gso_type;
    }
    for (i, v) in fields.iter().enumerate() {
        if let Some(f) = hdr.get_mut(2 + 2 * i..4 + 2 * i) {
            f.copy_from_slice(&v.to_ne_bytes());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v4_tcp(src: u8, sport: u16, seq: u32, ack: u32, flags: u8, opts: &[u8], payload: &[u8]) -> Vec<u8> {
        let tcph = 20 + opts.len();
        let total = 20 + tcph + payload.len();
        let mut p = vec![0x45, 0, 0, 0, 0, 1, 0x40, 0, 64, PROTO_TCP, 0, 0, 10, 0, 0, src, 10, 0, 0, 99];
        p[2..4].copy_from_slice(&(total as u16).to_be_bytes());
        let c = checksum(&[&p[..20]]);
        p[10..12].copy_from_slice(&c.to_be_bytes());
        p.extend_from_slice(&sport.to_be_bytes());
        p.extend_from_slice(&80u16.to_be_bytes());
        p.extend_from_slice(&seq.to_be_bytes());
        p.extend_from_slice(&ack.to_be_bytes());
        p.push(((tcph / 4) << 4) as u8);
        p.push(flags);
        p.extend_from_slice(&[0xff, 0xff, 0, 0, 0, 0]);
        p.extend_from_slice(opts);
        p.extend_from_slice(payload);
        p
    }

    /// Pushes packets the way `SendBatch::push` does; returns buffers and metas.
    fn push_all(packets: &[Vec<u8>]) -> (Vec<Vec<u8>>, Vec<Meta>) {
        let (mut bufs, mut metas, mut flows) = (Vec::new(), Vec::new(), Flows::default());
        for p in packets {
            let kind = classify(p);
            if let Kind::Candidate(t) = &kind
                && flows.append(&mut bufs, &mut metas, p, t)
            {
                continue;
            }
            let mut buf = vec![0u8; HDR];
            buf.extend_from_slice(p);
            bufs.push(buf);
            metas.push(flows.stored(&kind, bufs.len() - 1));
        }
        (bufs, metas)
    }

    #[test]
    fn consecutive_segments_become_one_gso_packet() {
        let ts = [1, 1, 8, 10, 0, 0, 0, 1, 0, 0, 0, 2];
        let pkts: Vec<_> = (0..4u32).map(|i| v4_tcp(1, 1000, 100 + 100 * i, 7, ACK, &ts, &[i as u8; 100])).collect();
        let last = v4_tcp(1, 1000, 500, 7, ACK | PSH, &ts, &[9; 40]);
        let (mut bufs, metas) = push_all(&[pkts.clone(), vec![last]].concat());
        assert_eq!(bufs.len(), 1);
        assert_eq!(metas[0].segs, 5);
        finish(&mut bufs[0], &metas[0]);
        let b = &bufs[0];
        let p = &b[HDR..];
        assert_eq!(p.len(), 20 + 32 + 440);
        assert_eq!(usize::from(u16::from_be_bytes([p[2], p[3]])), p.len());
        assert_eq!(checksum(&[&p[..20]]), 0, "IPv4 header checksum");
        assert_eq!(p[20 + 13], ACK | PSH);
        assert_eq!(&p[52..152], &[0u8; 100][..]);
        assert_eq!(&p[452..], &[9u8; 40][..]);
        assert_eq!(b[0], VIRTIO_NET_HDR_F_NEEDS_CSUM);
        assert_eq!(b[1], VIRTIO_NET_HDR_GSO_TCPV4);
        let field = |i: usize| u16::from_ne_bytes([b[2 + 2 * i], b[3 + 2 * i]]);
        assert_eq!([field(0), field(1), field(2), field(3)], [52, 100, 20, 16]);
        // Pseudo-header sum (not inverted) in the TCP checksum field.
        let want = fold(sum(&p[12..20]) + 6 + (p.len() as u64 - 20));
        assert_eq!(u16::from_be_bytes([p[36], p[37]]), want);
    }

    #[test]
    fn what_breaks_a_run() {
        let seg = |seq, ack, flags, payload: &[u8]| v4_tcp(1, 1000, seq, ack, flags, &[], payload);
        // A gap in sequence, another ack, a FIN of the flow, a longer segment.
        let (bufs, metas) = push_all(&[
            seg(100, 7, ACK, &[0; 10]),
            seg(120, 7, ACK, &[0; 10]),
            seg(130, 8, ACK, &[0; 10]),
            seg(140, 8, ACK | 0x01, &[]),
            seg(140, 8, ACK, &[0; 10]),
            seg(150, 8, ACK, &[0; 20]),
        ]);
        assert_eq!(metas.iter().map(|m| m.segs).collect::<Vec<_>>(), [1, 1, 1, 1, 1, 1]);
        assert_eq!(bufs.len(), 6);
        // After a short segment or PSH nothing more is appended.
        let (_, metas) = push_all(&[seg(0, 7, ACK, &[0; 10]), seg(10, 7, ACK, &[0; 5]), seg(15, 7, ACK, &[0; 5])]);
        assert_eq!(metas.iter().map(|m| m.segs).collect::<Vec<_>>(), [2, 1]);
        let (_, metas) =
            push_all(&[seg(0, 7, ACK | PSH, &[0; 10]), seg(10, 7, ACK, &[0; 10]), seg(20, 7, ACK, &[0; 10])]);
        assert_eq!(metas.iter().map(|m| m.segs).collect::<Vec<_>>(), [1, 2]);
    }

    #[test]
    fn flows_interleave_and_keep_their_order() {
        let a = |seq| v4_tcp(1, 1000, seq, 7, ACK, &[], &[1; 10]);
        let b = |seq| v4_tcp(2, 2000, seq, 7, ACK, &[], &[2; 10]);
        let udp = {
            let mut p = v4_tcp(3, 3000, 0, 0, ACK, &[], &[3; 10]);
            p[9] = 17;
            p
        };
        let (bufs, metas) = push_all(&[a(0), b(50), udp, a(10), b(60), a(20)]);
        assert_eq!(metas.iter().map(|m| m.segs).collect::<Vec<_>>(), [3, 2, 1]);
        assert_eq!(bufs[0][HDR + 15], 1);
        assert_eq!(bufs[1][HDR + 15], 2);
        // A fragment (cannot be keyed) closes every flow: later segments
        // start new super-packets after it.
        let mut frag = a(30);
        frag[6] = 0x20;
        let (_, metas) = push_all(&[a(0), b(50), frag, a(10), b(60)]);
        assert_eq!(metas.iter().map(|m| m.segs).collect::<Vec<_>>(), [1, 1, 1, 1, 1]);
    }

    #[test]
    fn ipv6_segments_coalesce() {
        let seg = |seq: u32| {
            let mut p = vec![0x60, 0, 0, 0, 0, 0, PROTO_TCP, 64];
            p[4..6].copy_from_slice(&(20u16 + 30).to_be_bytes());
            p.extend_from_slice(&[0xfd; 16]);
            p.extend_from_slice(&[0xfe; 16]);
            p.extend_from_slice(&[0x03, 0xe8, 0, 80]);
            p.extend_from_slice(&seq.to_be_bytes());
            p.extend_from_slice(&[0, 0, 0, 7, 0x50, ACK, 0xff, 0xff, 0, 0, 0, 0]);
            p.extend_from_slice(&[5; 30]);
            p
        };
        let (mut bufs, metas) = push_all(&[seg(0), seg(30), seg(60)]);
        assert_eq!(metas[0].segs, 3);
        finish(&mut bufs[0], &metas[0]);
        let p = &bufs[0][HDR..];
        assert_eq!(usize::from(u16::from_be_bytes([p[4], p[5]])), 20 + 90);
        assert_eq!(bufs[0][1], VIRTIO_NET_HDR_GSO_TCPV6);
    }

    #[test]
    fn garbage_never_panics() {
        let mut flows = Flows::default();
        let (mut bufs, mut metas) = (Vec::new(), Vec::new());
        for len in 0..80 {
            for fill in [0u8, 0x45, 0x60, 0xff] {
                let mut p = vec![fill; len];
                if let Some(b) = p.get_mut(9) {
                    *b = PROTO_TCP;
                }
                let kind = classify(&p);
                if let Kind::Candidate(t) = &kind
                    && flows.append(&mut bufs, &mut metas, &p, t)
                {
                    continue;
                }
                let mut buf = vec![0u8; HDR];
                buf.extend_from_slice(&p);
                bufs.push(buf);
                metas.push(flows.stored(&kind, bufs.len() - 1));
            }
        }
        for (b, m) in bufs.iter_mut().zip(&metas) {
            finish(b, m);
        }
    }
}
