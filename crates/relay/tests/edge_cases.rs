//! Edge cases of every decoder: empty and maximal lengths, overruns, unknown
//! values, and the IP header view's corners.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use rgost_relay::frame::{self, FrameStatus, MAX_PACKET_LEN};
use rgost_relay::ip::{IpError, IpHeader};
use rgost_relay::{Addr, Command, DecodeError, Feature, Host, Network, Request, Response, Status, TunnelId};

fn encode_feature(feature: &Feature) -> Vec<u8> {
    let mut out = Vec::new();
    feature.encode(&mut out);
    out
}

#[test]
fn fealen_zero() {
    let (request, used) = Request::decode(&[1, 3, 0, 0]).unwrap();
    assert_eq!(used, 4);
    assert_eq!(request, Request { command: Command::Associate, features: vec![] });
    let info = request.associate_info();
    assert_eq!((info.auth, info.src, info.dst, info.network), (None, None, None, None));
    assert!(info.router_id.is_zero());
    // Bytes after the message are not consumed.
    assert_eq!(Request::decode(&[1, 3, 0, 0, 0xff, 0xff]).unwrap().1, 4);
}

#[test]
fn bad_version_and_command() {
    assert_eq!(Request::decode(&[2]), Err(DecodeError::BadVersion(2)));
    assert_eq!(Request::decode(&[0, 3, 0, 0]), Err(DecodeError::BadVersion(0)));
    assert_eq!(Response::decode(&[5, 0, 0, 0]), Err(DecodeError::BadVersion(5)));
    // An undefined command is read like any other (the server answers it).
    assert_eq!(Request::decode(&[1, 0, 0, 0]).unwrap().0.command, Command::Unknown(0));
    assert_eq!(Request::decode(&[1, 0x04]), Err(DecodeError::Incomplete(2)));
    assert_eq!(Response::decode(&[1, 9, 0, 0]), Err(DecodeError::UnknownStatus(9)));
    assert_eq!(Request::decode(&[]), Err(DecodeError::Incomplete(4)));
    assert_eq!(Request::decode(&[1]), Err(DecodeError::Incomplete(3)));
    assert_eq!(Request::decode(&[1, 3, 0, 5, 0]), Err(DecodeError::Incomplete(4)));
}

#[test]
fn cmd_high_bit_is_ignored() {
    for (byte, command) in [(0x81, Command::Connect), (0x82, Command::Bind), (0x83, Command::Associate)] {
        assert_eq!(Request::decode(&[1, byte, 0, 0]).unwrap().0.command, command);
        assert_eq!(Command::from_code(byte), command);
    }
}

#[test]
fn status_codes() {
    for code in 0..=8 {
        assert_eq!(Status::from_code(code).unwrap().code(), code);
    }
    assert_eq!(Status::from_code(9), None);
}

#[test]
fn feature_len_overrun() {
    // FEALEN 5 but the feature says 3 bytes of data follow its header: 6 > 5.
    assert_eq!(
        Request::decode(&[1, 3, 0, 5, 4, 0, 3, 0, 2]),
        Err(DecodeError::FeatureOverrun { len: 3, remaining: 2 })
    );
    // The bytes are there after the block, but the block ends first.
    assert_eq!(
        Request::decode(&[1, 3, 0, 4, 4, 0, 2, 0, 2]),
        Err(DecodeError::FeatureOverrun { len: 2, remaining: 1 })
    );
    assert_eq!(Feature::decode(&[4, 0xff, 0xff, 0, 2]), Err(DecodeError::FeatureOverrun { len: 65535, remaining: 2 }));
    // Fewer than 3 bytes left in the block for a feature header.
    assert!(matches!(Request::decode(&[1, 3, 0, 2, 4, 0]), Err(DecodeError::MalformedFeature { .. })));
    assert!(matches!(Feature::decode(&[]), Err(DecodeError::MalformedFeature { .. })));
}

#[test]
fn unknown_feature_type() {
    assert_eq!(Feature::decode(&[0x05, 0, 0]), Err(DecodeError::UnknownFeature(5)));
    assert_eq!(Feature::decode(&[0x00, 0, 1, 0]), Err(DecodeError::UnknownFeature(0)));
    // In a request it is skipped.
    assert_eq!(
        Request::decode(&[1, 3, 0, 3, 0x7f, 0, 0]),
        Ok((Request { command: Command::Associate, features: vec![] }, 7))
    );
}

#[test]
fn wrong_size_data() {
    let malformed = |bytes: &[u8]| matches!(Feature::decode(bytes), Err(DecodeError::MalformedFeature { .. }));
    // Tunnel needs 20 bytes; more are ignored.
    let mut tunnel = vec![3, 0, 19];
    tunnel.extend([0; 19]);
    assert!(malformed(&tunnel));
    let mut tunnel = vec![3, 0, 21];
    tunnel.extend([0; 21]);
    assert_eq!(Feature::decode(&tunnel), Ok((Feature::Tunnel(TunnelId::ZERO), 24)));
    // Network needs 2 bytes; more are ignored; any value is kept.
    assert!(malformed(&[4, 0, 1, 0]));
    assert_eq!(Feature::decode(&[4, 0, 3, 0, 2, 0]), Ok((Feature::Network(Network::Ip), 6)));
    assert_eq!(Feature::decode(&[4, 0, 2, 0, 3]).unwrap().0, Feature::Network(Network::Unknown(3)));
    assert_eq!(Feature::decode(&[4, 0, 2, 0, 0x11]).unwrap().0, Feature::Network(Network::Serial));
    // Addr: per ATYP.
    assert!(malformed(&[2, 0, 0]));
    assert!(malformed(&[2, 0, 6, 1, 10, 0, 0, 2, 0]));
    let ip = Addr { host: Host::Ipv4(Ipv4Addr::new(10, 0, 0, 2)), port: 0 };
    assert_eq!(Feature::decode(&[2, 0, 8, 1, 10, 0, 0, 2, 0, 0, 0]), Ok((Feature::Addr(ip), 11)));
    assert!(malformed(&[2, 0, 4, 3, 2, b'a', b'b']));
    assert!(malformed(&[2, 0, 3, 3, 5, b'a']));
    assert_eq!(Feature::decode(&[2, 0, 3, 7, 0, 0]), Err(DecodeError::UnknownAddrType(7)));
    // UserAuth: at least 1+ULEN+1+PLEN.
    assert!(malformed(&[1, 0, 0]));
    assert!(malformed(&[1, 0, 1, 0]));
    assert!(malformed(&[1, 0, 3, 2, b'a', 0]));
    assert!(malformed(&[1, 0, 3, 0, 2, 0]) && !malformed(&[1, 0, 3, 0, 0, 0]));
    assert_eq!(
        Feature::decode(&[1, 0, 2, 0, 0]).unwrap(),
        (Feature::UserAuth { username: vec![], password: vec![] }, 5)
    );
}

#[test]
fn domain_of_255_bytes() {
    let name = vec![b'x'; 255];
    let feature = Feature::Addr(Addr::domain(&name, 443));
    let wire = encode_feature(&feature);
    assert_eq!(wire.len(), 3 + 1 + 1 + 255 + 2);
    assert_eq!(&wire[..5], &[2, 1, 3, 3, 255]);
    assert_eq!(Feature::decode(&wire).unwrap(), (feature, wire.len()));

    // Longer names are truncated to 255 bytes, both by the constructor and by encode.
    assert_eq!(Addr::domain(&[b'y'; 300], 0).host, Host::Domain(vec![b'y'; 255]));
    let long = Feature::Addr(Addr { host: Host::Domain(vec![b'z'; 300]), port: 1 });
    let wire = encode_feature(&long);
    assert_eq!(wire.len(), long.encoded_len());
    let (decoded, _) = Feature::decode(&wire).unwrap();
    assert_eq!(decoded, Feature::Addr(Addr { host: Host::Domain(vec![b'z'; 255]), port: 1 }));

    let auth = Feature::UserAuth { username: vec![1; 256], password: vec![2; 1000] };
    let wire = encode_feature(&auth);
    assert_eq!(wire.len(), 3 + 1 + 255 + 1 + 255);
    assert_eq!(wire.len(), auth.encoded_len());
    assert!(Feature::decode(&wire).is_ok());
}

#[test]
fn ipv6_addr() {
    let ip: Ipv6Addr = "fd00::1:2".parse().unwrap();
    let feature = Feature::Addr(Addr::from(std::net::SocketAddr::new(IpAddr::V6(ip), 8443)));
    let wire = encode_feature(&feature);
    let mut expected = vec![2, 0, 19, 4];
    expected.extend(ip.octets());
    expected.extend([0x20, 0xfb]);
    assert_eq!(wire, expected);
    assert_eq!(Feature::decode(&wire).unwrap(), (feature, 22));
}

#[test]
fn tunnel_id_display_and_equality() {
    let id = TunnelId::from_uuid([
        0x00, 0x01, 0x02, 0x03, 0x04, 0x05, 0x06, 0x07, 0x08, 0x09, 0x0a, 0x0b, 0x0c, 0x0d, 0x0e, 0xff,
    ]);
    assert_eq!(id.to_string(), "00010203-0405-0607-0809-0a0b0c0d0eff");
    assert_eq!(TunnelId::ZERO.to_string(), "00000000-0000-0000-0000-000000000000");
    let weighted = TunnelId { flag: 1, reserved: [2, 3], weight: 4, ..id };
    assert_eq!(weighted, id);
    let wire = encode_feature(&Feature::Tunnel(weighted));
    assert_eq!(&wire[19..], &[1, 2, 3, 4]);
}

#[test]
fn associate_info_takes_the_last_of_each_and_the_first_addr_as_source() {
    let a = |n| Addr { host: Host::Ipv4(Ipv4Addr::new(10, 0, 0, n)), port: 0 };
    let id = |n| TunnelId::from_uuid([n; 16]);
    let request = Request {
        command: Command::Associate,
        features: vec![
            Feature::Tunnel(id(1)),
            Feature::Addr(a(1)),
            Feature::UserAuth { username: b"u1".to_vec(), password: b"p1".to_vec() },
            Feature::Addr(a(2)),
            Feature::Addr(a(3)),
            Feature::Tunnel(id(2)),
            Feature::UserAuth { username: b"u2".to_vec(), password: b"p2".to_vec() },
        ],
    };
    let info = request.associate_info();
    assert_eq!(info.src, Some(&a(1)));
    assert_eq!(info.dst, Some(&a(3)));
    assert_eq!(info.router_id, id(2));
    assert_eq!(info.auth, Some((&b"u2"[..], &b"p2"[..])));
    assert_eq!(info.network, None);
    // A single Addr is the source; there is no destination.
    let one = Request { command: Command::Associate, features: vec![Feature::Addr(a(1))] };
    assert_eq!((one.associate_info().src, one.associate_info().dst), (Some(&a(1)), None));
}

#[test]
fn oversized_feature_block_is_cut_to_fit() {
    // 300 features of 515 bytes each: only the first 127 (65405 bytes) fit in FEALEN.
    let auth = Feature::UserAuth { username: vec![b'u'; 255], password: vec![b'p'; 255] };
    let request = Request { command: Command::Associate, features: vec![auth; 300] };
    let mut wire = Vec::new();
    request.encode(&mut wire);
    assert_eq!(wire.len(), request.encoded_len());
    assert_eq!(wire.len(), 4 + 127 * 515);
    let (decoded, used) = Request::decode(&wire).unwrap();
    assert_eq!((decoded.features.len(), used), (127, wire.len()));
}

#[test]
fn frame_of_65535_bytes() {
    let packet = vec![0xab; MAX_PACKET_LEN];
    let mut wire = Vec::new();
    assert!(frame::encode(&packet, &mut wire));
    assert_eq!(&wire[..2], &[0xff, 0xff]);
    assert_eq!(wire.len(), 2 + 65535);
    assert_eq!(frame::peek(&wire), FrameStatus::Complete { total: 65537 });
    assert_eq!(frame::peek(&wire[..65536]), FrameStatus::Incomplete(1));
    assert_eq!(frame::split(&wire).unwrap(), (&packet[..], &[][..]));

    // One byte more does not fit, and nothing is appended.
    let mut out = Vec::new();
    assert!(!frame::encode(&vec![0; MAX_PACKET_LEN + 1], &mut out));
    assert!(!frame::encode_header(MAX_PACKET_LEN + 1, &mut out));
    assert!(out.is_empty());
}

#[test]
fn zero_length_frames() {
    let mut wire = Vec::new();
    assert!(frame::encode(&[], &mut wire));
    assert!(frame::encode(b"x", &mut wire));
    assert_eq!(wire, [0, 0, 0, 1, b'x']);
    let (empty, rest) = frame::split(&wire).unwrap();
    assert!(empty.is_empty());
    assert_eq!(frame::split(rest).unwrap(), (&b"x"[..], &[][..]));
    assert_eq!(frame::peek(&[]), FrameStatus::Incomplete(2));
    assert_eq!(frame::peek(&[0]), FrameStatus::Incomplete(1));
}

/// An IPv4 header with `ihl` words, the given protocol and fragment field,
/// followed by `payload`.
fn ipv4(ihl: u8, protocol: u8, fragment: u16, payload: &[u8]) -> Vec<u8> {
    let mut packet = vec![0x40 | ihl, 0, 0, 0, 0, 0];
    packet.extend(fragment.to_be_bytes());
    packet.extend([64, protocol, 0, 0, 10, 0, 0, 1, 10, 0, 0, 2]);
    packet.resize(usize::from(ihl) * 4, 0x01); // options
    packet.extend_from_slice(payload);
    packet
}

fn ipv6(next: u8, payload: &[u8]) -> Vec<u8> {
    let mut packet = vec![0x60, 0, 0, 0, 0, 0, next, 64];
    packet.extend(Ipv6Addr::new(0xfd00, 0, 0, 0, 0, 0, 0, 1).octets());
    packet.extend(Ipv6Addr::new(0xfd00, 0, 0, 0, 0, 0, 0, 2).octets());
    packet.extend_from_slice(payload);
    packet
}

#[test]
fn ip_header_checks() {
    assert_eq!(IpHeader::new_checked(&[][..]).unwrap_err(), IpError::Empty);
    assert_eq!(IpHeader::new_checked(&[0x55; 40][..]).unwrap_err(), IpError::NotIp(5));
    assert_eq!(IpHeader::new_checked(&[0x45; 19][..]).unwrap_err(), IpError::Truncated);
    assert_eq!(IpHeader::new_checked(&ipv4(4, 6, 0, &[0; 8])[..]).unwrap_err(), IpError::BadHeaderLen(4));
    let mut short_options = ipv4(6, 6, 0, &[]);
    short_options.pop();
    assert_eq!(IpHeader::new_checked(&short_options[..]).unwrap_err(), IpError::Truncated);
    assert_eq!(IpHeader::new_checked(&ipv6(6, &[])[..39]).unwrap_err(), IpError::Truncated);
    assert!(IpHeader::new_checked(ipv6(6, &[])).is_ok());
}

#[test]
fn ipv4_flows() {
    let ports = [0x13, 0x88, 0x00, 0x35]; // 5000 -> 53
    for protocol in [6, 17, 132, 136] {
        let flow = IpHeader::new_checked(ipv4(5, protocol, 0, &ports)).unwrap().flow();
        assert_eq!((flow.protocol, flow.src_port, flow.dst_port), (protocol, 5000, 53));
        assert_eq!(flow.src, IpAddr::V4(Ipv4Addr::new(10, 0, 0, 1)));
        assert_eq!(flow.dst, IpAddr::V4(Ipv4Addr::new(10, 0, 0, 2)));
    }
    // Options are skipped.
    let header = IpHeader::new_checked(ipv4(7, 17, 0, &ports)).unwrap();
    assert_eq!(header.header_len(), 28);
    assert_eq!((header.flow().src_port, header.flow().dst_port), (5000, 53));
    // ICMP has no ports.
    assert_eq!(IpHeader::new_checked(ipv4(5, 1, 0, &ports)).unwrap().flow().src_port, 0);
    // A first fragment (MF set, offset 0) has ports; later fragments do not.
    assert_eq!(IpHeader::new_checked(ipv4(5, 17, 0x2000, &ports)).unwrap().flow().dst_port, 53);
    assert_eq!(IpHeader::new_checked(ipv4(5, 17, 0x2001, &ports)).unwrap().flow().dst_port, 0);
    assert_eq!(IpHeader::new_checked(ipv4(5, 17, 0x0001, &ports)).unwrap().flow().dst_port, 0);
    // A transport header cut short gives no ports.
    assert_eq!(IpHeader::new_checked(ipv4(5, 6, 0, &ports[..3])).unwrap().flow().src_port, 0);
}

#[test]
fn ipv6_flows() {
    let ports = [0x01, 0xbb, 0xc3, 0x50]; // 443 -> 50000
    let header = IpHeader::new_checked(ipv6(6, &ports)).unwrap();
    assert_eq!(header.version(), 6);
    assert_eq!(header.src(), IpAddr::V6("fd00::1".parse().unwrap()));
    assert_eq!(header.dst(), IpAddr::V6("fd00::2".parse().unwrap()));
    let flow = header.flow();
    assert_eq!((flow.protocol, flow.src_port, flow.dst_port), (6, 443, 50000));
    // Behind an extension header (hop-by-hop = 0) the ports are not read.
    let flow = IpHeader::new_checked(ipv6(0, &ports)).unwrap().flow();
    assert_eq!((flow.protocol, flow.src_port, flow.dst_port), (0, 0, 0));
}

#[test]
fn flow_hash_is_stable_and_mixes() {
    let ports = [0x13, 0x88, 0x00, 0x35];
    let base = IpHeader::new_checked(ipv4(5, 17, 0, &ports)).unwrap().flow_hash();
    // Pinned so that a change of the function (which would make relay
    // instances of different versions disagree) is deliberate.
    assert_eq!(base, IpHeader::new_checked(ipv4(5, 17, 0, &ports)).unwrap().flow_hash());
    assert_eq!(base, PINNED_V4_HASH, "flow_hash changed: {base:#018x}");

    // Swapping source and destination, or changing one port, changes the hash.
    let mut swapped = ipv4(5, 17, 0, &[0x00, 0x35, 0x13, 0x88]);
    swapped[12..20].copy_from_slice(&[10, 0, 0, 2, 10, 0, 0, 1]);
    assert_ne!(IpHeader::new_checked(swapped).unwrap().flow_hash(), base);
    assert_ne!(IpHeader::new_checked(ipv4(5, 17, 0, &[0x13, 0x89, 0x00, 0x35])).unwrap().flow_hash(), base);

    // Neighbouring source ports spread over buckets: 256 flows into 8 buckets.
    let mut buckets = [0u32; 8];
    for port in 0..256u16 {
        let p = port.to_be_bytes();
        let hash = IpHeader::new_checked(ipv4(5, 6, 0, &[p[0], p[1], 0, 80])).unwrap().flow_hash();
        buckets[(hash % 8) as usize] += 1;
    }
    assert!(buckets.iter().all(|&n| (16..=48).contains(&n)), "poor spread: {buckets:?}");

    // IPv6 flows hash too, and differently from each other.
    let a = IpHeader::new_checked(ipv6(6, &ports)).unwrap().flow_hash();
    let b = IpHeader::new_checked(ipv6(17, &ports)).unwrap().flow_hash();
    assert_ne!(a, b);
}

const PINNED_V4_HASH: u64 = 0xe208_37d3_66aa_be9c;
