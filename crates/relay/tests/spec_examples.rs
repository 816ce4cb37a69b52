//! The worked examples of section 4 of `spec/relay-protocol.md`, decoded and
//! encoded byte for byte.

use std::net::{IpAddr, Ipv4Addr};

use rgost_relay::frame::{self, FrameStatus};
use rgost_relay::ip::IpHeader;
use rgost_relay::{Addr, Command, Feature, Host, Network, Request, Response, Status, TunnelId};

/// Parses hex with any whitespace between bytes.
fn hex(s: &str) -> Vec<u8> {
    let nibble = |c: char| match c.to_digit(16) {
        Some(d) => d as u8,
        None => panic!("not a hex digit: {c:?}"),
    };
    let digits: Vec<u8> = s.chars().filter(|c| !c.is_whitespace()).map(nibble).collect();
    assert_eq!(digits.len() % 2, 0, "odd number of hex digits");
    digits.chunks(2).map(|pair| pair[0] << 4 | pair[1]).collect()
}

fn encode_request(request: &Request) -> Vec<u8> {
    let mut out = Vec::new();
    request.encode(&mut out);
    assert_eq!(out.len(), request.encoded_len());
    out
}

fn encode_response(response: &Response) -> Vec<u8> {
    let mut out = Vec::new();
    response.encode(&mut out);
    assert_eq!(out.len(), response.encoded_len());
    out
}

const ROUTER_ID: [u8; 16] =
    [0xe8, 0x7f, 0x56, 0xdd, 0xfd, 0x57, 0x49, 0x21, 0x9a, 0xb8, 0xa0, 0x84, 0x76, 0x62, 0xda, 0xae];
const CONNECTOR_ID: [u8; 16] =
    [0x3f, 0x25, 0x04, 0xe0, 0x4f, 0x89, 0x41, 0xd3, 0x9a, 0x0c, 0x03, 0x05, 0xe8, 0x2c, 0x33, 0x01];

const ASSOCIATE_WITH_ROUTER_ID: &str = "
    01 03 00 33
    04 00 02 00 02
    02 00 07 01 0a 00 00 02 c7 38
    02 00 0a 03 06 68 6f 73 74 2d 31 00 00
    03 00 14 e8 7f 56 dd fd 57 49 21 9a b8 a0 84 76 62 da ae 00 00 00 00";

const ASSOCIATE_WITH_CREDENTIALS: &str = "
    01 03 00 2c
    01 00 0d 05 61 6c 69 63 65 06 73 33 63 72 65 74
    04 00 02 00 02
    02 00 07 01 0a 00 00 02 c7 38
    02 00 0a 03 06 68 6f 73 74 2d 31 00 00";

const SUCCESS: &str = "01 00 00 17  03 00 14 3f 25 04 e0 4f 89 41 d3 9a 0c 03 05 e8 2c 33 01 00 00 00 00";

const FRAMED_UDP: &str = "00 16  45 00 00 16 12 34 00 00 40 11 f1 4e c0 a8 7b 01 c0 a8 7b 02 68 69";

fn source() -> Addr {
    Addr { host: Host::Ipv4(Ipv4Addr::new(10, 0, 0, 2)), port: 51000 }
}

#[test]
fn associate_with_router_id() {
    let wire = hex(ASSOCIATE_WITH_ROUTER_ID);
    let expected = Request {
        command: Command::Associate,
        features: vec![
            Feature::Network(Network::Ip),
            Feature::Addr(source()),
            Feature::Addr(Addr { host: Host::Domain(b"host-1".to_vec()), port: 0 }),
            Feature::Tunnel(TunnelId::from_uuid(ROUTER_ID)),
        ],
    };

    let (decoded, used) = Request::decode(&wire).unwrap();
    assert_eq!(used, wire.len());
    assert_eq!(decoded, expected);
    // TunnelId equality ignores the trailing bytes, so check them separately.
    let Feature::Tunnel(id) = decoded.features[3] else { panic!("not a tunnel") };
    assert_eq!((id.flag, id.reserved, id.weight), (0, [0, 0], 0));

    assert_eq!(encode_request(&expected), wire);
    let built = Request::associate(None, source(), b"host-1", Some(TunnelId::from_uuid(ROUTER_ID)));
    assert_eq!(built, expected);
    assert_eq!(encode_request(&built), wire);

    let info = decoded.associate_info();
    assert_eq!(info.auth, None);
    assert_eq!(info.src, Some(&source()));
    assert_eq!(info.dst, Some(&Addr::domain(b"host-1", 0)));
    assert_eq!(info.router_id.uuid, ROUTER_ID);
    assert_eq!(info.router_id.to_string(), "e87f56dd-fd57-4921-9ab8-a0847662daae");
    assert_eq!(info.network, Some(Network::Ip));
}

#[test]
fn associate_with_credentials() {
    let wire = hex(ASSOCIATE_WITH_CREDENTIALS);
    let expected = Request {
        command: Command::Associate,
        features: vec![
            Feature::UserAuth { username: b"alice".to_vec(), password: b"s3cret".to_vec() },
            Feature::Network(Network::Ip),
            Feature::Addr(source()),
            Feature::Addr(Addr::domain(b"host-1", 0)),
        ],
    };

    let (decoded, used) = Request::decode(&wire).unwrap();
    assert_eq!(used, wire.len());
    assert_eq!(decoded, expected);
    assert_eq!(encode_request(&expected), wire);
    let built = Request::associate(Some((b"alice", b"s3cret")), source(), b"host-1", None);
    assert_eq!(encode_request(&built), wire);

    let info = decoded.associate_info();
    assert_eq!(info.auth, Some((&b"alice"[..], &b"s3cret"[..])));
    assert_eq!(info.src, Some(&source()));
    assert_eq!(info.dst.map(|a| &a.host), Some(&Host::Domain(b"host-1".to_vec())));
    assert_eq!(info.router_id, TunnelId::ZERO);
    assert!(info.router_id.is_zero());
}

#[test]
fn success_response() {
    let wire = hex(SUCCESS);
    let id = TunnelId::from_uuid(CONNECTOR_ID);
    let (decoded, used) = Response::decode(&wire).unwrap();
    assert_eq!(used, wire.len());
    assert_eq!(decoded, Response::ok(id));
    assert_eq!(decoded.status, Status::Ok);
    assert_eq!(decoded.connector_id(), Some(id));
    assert_eq!(decoded.connector_id().unwrap().to_string(), "3f2504e0-4f89-41d3-9a0c-0305e82c3301");
    assert_eq!(encode_response(&Response::ok(id)), wire);
}

#[test]
fn refused_by_ingress() {
    let wire = hex("01 06 00 00");
    assert_eq!(Response::decode(&wire).unwrap(), (Response::error(Status::HostUnreachable), 4));
    assert_eq!(encode_response(&Response::error(Status::HostUnreachable)), wire);
    assert_eq!(Response::error(Status::HostUnreachable).connector_id(), None);
}

#[test]
fn wrong_credentials() {
    let wire = hex("01 02 00 00");
    assert_eq!(Response::decode(&wire).unwrap(), (Response::error(Status::Unauthorized), 4));
    assert_eq!(encode_response(&Response::error(Status::Unauthorized)), wire);
}

#[test]
fn framed_udp_packet() {
    let wire = hex(FRAMED_UDP);
    assert_eq!(frame::peek(&wire), FrameStatus::Complete { total: 24 });
    let (packet, rest) = frame::split(&wire).unwrap();
    assert!(rest.is_empty());
    assert_eq!(packet.len(), 22);
    assert_eq!(&packet[20..], b"hi");

    let mut out = Vec::new();
    assert!(frame::encode(packet, &mut out));
    assert_eq!(out, wire);

    let header = IpHeader::new_checked(packet).unwrap();
    assert_eq!(header.version(), 4);
    assert_eq!(header.src(), IpAddr::V4(Ipv4Addr::new(192, 168, 123, 1)));
    assert_eq!(header.dst(), IpAddr::V4(Ipv4Addr::new(192, 168, 123, 2)));
    assert_eq!(header.protocol(), 17);
    // "hi" is the whole payload: there is no room for a UDP header, so no ports.
    let flow = header.flow();
    assert_eq!((flow.protocol, flow.src_port, flow.dst_port), (17, 0, 0));
    assert_eq!(header.flow_hash(), IpHeader::new_checked(wire[2..].to_vec()).unwrap().flow_hash());
}

#[test]
fn strict_prefixes_of_examples_are_incomplete() {
    for example in [ASSOCIATE_WITH_ROUTER_ID, ASSOCIATE_WITH_CREDENTIALS] {
        let wire = hex(example);
        for cut in 0..wire.len() {
            match Request::decode(&wire[..cut]) {
                Err(rgost_relay::DecodeError::Incomplete(n)) => assert!(n >= 1 && cut + n <= wire.len()),
                other => panic!("prefix of {cut} bytes: {other:?}"),
            }
        }
    }
    let wire = hex(SUCCESS);
    for cut in 0..wire.len() {
        assert!(matches!(Response::decode(&wire[..cut]), Err(rgost_relay::DecodeError::Incomplete(_))));
    }
}
