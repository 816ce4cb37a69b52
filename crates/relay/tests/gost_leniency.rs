//! Requests and responses that no current GOST peer sends but GOST's own reader
//! accepts (issue 12, section 5): rgost reads them as GOST does. Every case is
//! written out as the bytes on the wire.

use rgost_relay::{Addr, Command, DecodeError, Feature, Network, Request, Response, Status, TunnelId};

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

const ROUTER_ID: [u8; 16] =
    [0xe8, 0x7f, 0x56, 0xdd, 0xfd, 0x57, 0x49, 0x21, 0x9a, 0xb8, 0xa0, 0x84, 0x76, 0x62, 0xda, 0xae];

/// The spec's source address, 10.0.0.2:51000.
fn source() -> Addr {
    Addr::from(std::net::SocketAddr::from(([10, 0, 0, 2], 51000)))
}

fn encode_request(request: &Request) -> Vec<u8> {
    let mut out = Vec::new();
    request.encode(&mut out);
    out
}

#[test]
fn undefined_command_is_read_and_kept() {
    let wire = hex("01 00 00 00");
    assert_eq!(Request::decode(&wire), Ok((Request { command: Command::Unknown(0x00), features: vec![] }, 4)));

    // The old UDP flag is ignored as for the defined commands, and the
    // features are read: the server needs the credentials before it answers.
    let wire = hex("01 8f 00 05  04 00 02 00 02");
    let (request, used) = Request::decode(&wire).unwrap();
    assert_eq!(used, wire.len());
    assert_eq!(request.command, Command::Unknown(0x0f));
    assert_eq!(request.features, [Feature::Network(Network::Ip)]);
    assert_eq!(encode_request(&request), hex("01 0f 00 05  04 00 02 00 02"));

    for nibble in [0x00].into_iter().chain(0x04..=0x0f) {
        let (request, _) = Request::decode(&[0x01, nibble, 0x00, 0x00]).unwrap();
        assert_eq!(request.command, Command::Unknown(nibble));
        assert_eq!(request.command.code(), nibble);
        assert_eq!(encode_request(&request), [0x01, nibble, 0x00, 0x00]);
    }
}

#[test]
fn undefined_command_still_needs_a_well_formed_request() {
    // A prefix waits for the rest of the request instead of being refused.
    assert_eq!(Request::decode(&hex("01 04")), Err(DecodeError::Incomplete(2)));
    assert_eq!(Request::decode(&hex("01 04 00 05  04 00")), Err(DecodeError::Incomplete(3)));
    // A malformed feature block is refused whatever the command.
    assert!(matches!(Request::decode(&hex("01 04 00 02  04 00")), Err(DecodeError::MalformedFeature { .. })));
    // And so is a bad version.
    assert_eq!(Request::decode(&hex("02 04 00 00")), Err(DecodeError::BadVersion(2)));
}

#[test]
fn undefined_network_value_is_kept() {
    assert_eq!(Feature::decode(&hex("04 00 02 00 03")), Ok((Feature::Network(Network::Unknown(0x0003)), 5)));
    assert_eq!(Feature::decode(&hex("04 00 02 ff ff")), Ok((Feature::Network(Network::Unknown(0xffff)), 5)));

    // The spec's ASSOCIATE with Network = 0x1234 instead of ip.
    let wire = hex("
        01 03 00 33
        04 00 02 12 34
        02 00 07 01 0a 00 00 02 c7 38
        02 00 0a 03 06 68 6f 73 74 2d 31 00 00
        03 00 14 e8 7f 56 dd fd 57 49 21 9a b8 a0 84 76 62 da ae 00 00 00 00");
    let (request, used) = Request::decode(&wire).unwrap();
    assert_eq!(used, wire.len());
    let info = request.associate_info();
    assert_eq!(info.network, Some(Network::Unknown(0x1234)));
    assert_eq!(info.dst, Some(&Addr::domain(b"host-1", 0)));
    assert_eq!(info.router_id, TunnelId::from_uuid(ROUTER_ID));
    // Written back as received.
    assert_eq!(encode_request(&request), wire);
}

#[test]
fn tunnel_longer_than_20_bytes_is_read_from_its_first_20() {
    // 24 bytes: the router id, flag 0x80, reserved 01 02, weight 07, then 4 more.
    let wire = hex("03 00 18  e8 7f 56 dd fd 57 49 21 9a b8 a0 84 76 62 da ae 80 01 02 07  de ad be ef");
    let (feature, used) = Feature::decode(&wire).unwrap();
    assert_eq!(used, wire.len());
    let Feature::Tunnel(id) = feature else { panic!("not a Tunnel: {feature:?}") };
    assert_eq!((id.uuid, id.flag, id.reserved, id.weight), (ROUTER_ID, 0x80, [0x01, 0x02], 0x07));

    // In the spec's ASSOCIATE: the router id is read from it.
    let wire = hex("
        01 03 00 37
        04 00 02 00 02
        02 00 07 01 0a 00 00 02 c7 38
        02 00 0a 03 06 68 6f 73 74 2d 31 00 00
        03 00 18 e8 7f 56 dd fd 57 49 21 9a b8 a0 84 76 62 da ae 00 00 00 00 ff ff ff ff");
    let (request, used) = Request::decode(&wire).unwrap();
    assert_eq!(used, wire.len());
    assert_eq!(request.associate_info().router_id, TunnelId::from_uuid(ROUTER_ID));
    assert_eq!(request, Request::associate(None, source(), b"host-1", Some(TunnelId::from_uuid(ROUTER_ID))));

    // Fewer than 20 bytes is still refused.
    let short = hex("03 00 13  e8 7f 56 dd fd 57 49 21 9a b8 a0 84 76 62 da ae 00 00 00");
    assert!(matches!(Feature::decode(&short), Err(DecodeError::MalformedFeature { feature: "Tunnel", .. })));
}

#[test]
fn bytes_after_addr_and_user_auth_fields_are_ignored() {
    // Addr IPv4 10.0.0.2:51000, then ff ff.
    let wire = hex("02 00 09  01 0a 00 00 02 c7 38  ff ff");
    assert_eq!(Feature::decode(&wire), Ok((Feature::Addr(source()), wire.len())));
    // Addr domain "host-1" port 0, then 00.
    let wire = hex("02 00 0b  03 06 68 6f 73 74 2d 31 00 00  00");
    assert_eq!(Feature::decode(&wire), Ok((Feature::Addr(Addr::domain(b"host-1", 0)), wire.len())));
    // Addr IPv6 fd00::1 port 443, then 01 02 03.
    let wire = hex("02 00 16  04 fd 00 00 00 00 00 00 00 00 00 00 00 00 00 00 01 01 bb  01 02 03");
    let ipv6 = Addr::from(std::net::SocketAddr::from((std::net::Ipv6Addr::new(0xfd00, 0, 0, 0, 0, 0, 0, 1), 443)));
    assert_eq!(Feature::decode(&wire), Ok((Feature::Addr(ipv6), wire.len())));
    // UserAuth alice / s3cret, then 00 01 02.
    let wire = hex("01 00 10  05 61 6c 69 63 65 06 73 33 63 72 65 74  00 01 02");
    let alice = Feature::UserAuth { username: b"alice".to_vec(), password: b"s3cret".to_vec() };
    assert_eq!(Feature::decode(&wire), Ok((alice, wire.len())));

    // The spec's ASSOCIATE with credentials, its UserAuth and host Addr padded.
    let wire = hex("
        01 03 00 2f
        01 00 0f 05 61 6c 69 63 65 06 73 33 63 72 65 74 00 00
        04 00 02 00 02
        02 00 07 01 0a 00 00 02 c7 38
        02 00 0b 03 06 68 6f 73 74 2d 31 00 00 ff");
    let (request, used) = Request::decode(&wire).unwrap();
    assert_eq!(used, wire.len());
    assert_eq!(request, Request::associate(Some((b"alice", b"s3cret")), source(), b"host-1", None));

    // A field that runs past the data is still refused.
    assert!(matches!(Feature::decode(&hex("02 00 06  01 0a 00 00 02 c7")), Err(DecodeError::MalformedFeature { .. })));
    assert!(matches!(
        Feature::decode(&hex("01 00 08  05 61 6c 69 63 65 06 73")),
        Err(DecodeError::MalformedFeature { .. })
    ));
}

#[test]
fn bytes_after_a_network_value_are_ignored() {
    // Network = ip, then 00 00 ff.
    let wire = hex("04 00 05  00 02  00 00 ff");
    assert_eq!(Feature::decode(&wire), Ok((Feature::Network(Network::Ip), wire.len())));
    // In the spec's ASSOCIATE with a router id.
    let wire = hex("
        01 03 00 34
        04 00 03 00 02 00
        02 00 07 01 0a 00 00 02 c7 38
        02 00 0a 03 06 68 6f 73 74 2d 31 00 00
        03 00 14 e8 7f 56 dd fd 57 49 21 9a b8 a0 84 76 62 da ae 00 00 00 00");
    let (request, used) = Request::decode(&wire).unwrap();
    assert_eq!(used, wire.len());
    assert_eq!(request, Request::associate(None, source(), b"host-1", Some(TunnelId::from_uuid(ROUTER_ID))));
    // One byte is still too short.
    assert!(matches!(Feature::decode(&hex("04 00 01  00")), Err(DecodeError::MalformedFeature { .. })));
}

#[test]
fn repeated_features_are_read_as_gost_reads_them() {
    let wire = hex("
        01 03 00 6e
        01 00 06 02 75 31 02 70 31
        03 00 14 11 11 11 11 11 11 11 11 11 11 11 11 11 11 11 11 00 00 00 00
        04 00 02 00 01
        02 00 07 01 0a 00 00 01 00 00
        02 00 0a 03 06 68 6f 73 74 2d 31 00 00
        01 00 06 02 75 32 02 70 32
        02 00 0a 03 06 68 6f 73 74 2d 32 00 00
        03 00 14 22 22 22 22 22 22 22 22 22 22 22 22 22 22 22 22 00 00 00 00
        04 00 02 00 02");
    let (request, used) = Request::decode(&wire).unwrap();
    assert_eq!(used, wire.len());
    assert_eq!(request.features.len(), 9);
    // The last UserAuth (u2/p2), the first Addr as source (10.0.0.1:0), the
    // last Addr as host ("host-2"), the last Tunnel (22..22), the last Network (ip).
    let info = request.associate_info();
    assert_eq!(info.auth, Some((&b"u2"[..], &b"p2"[..])));
    assert_eq!(info.src, Some(&Addr::from(std::net::SocketAddr::from(([10, 0, 0, 1], 0)))));
    assert_eq!(info.dst, Some(&Addr::domain(b"host-2", 0)));
    assert_eq!(info.router_id, TunnelId::from_uuid([0x22; 16]));
    assert_eq!(info.network, Some(Network::Ip));
}

#[test]
fn unknown_feature_types_are_skipped_in_requests() {
    // The spec's ASSOCIATE with a router id, with features of types 0x05
    // (3 bytes), 0x00 (empty) and 0xff (2 bytes) before, between and after.
    let wire = hex("
        01 03 00 41
        05 00 03 aa bb cc
        04 00 02 00 02
        02 00 07 01 0a 00 00 02 c7 38
        00 00 00
        02 00 0a 03 06 68 6f 73 74 2d 31 00 00
        03 00 14 e8 7f 56 dd fd 57 49 21 9a b8 a0 84 76 62 da ae 00 00 00 00
        ff 00 02 01 02");
    let (request, used) = Request::decode(&wire).unwrap();
    assert_eq!(used, wire.len());
    assert_eq!(request, Request::associate(None, source(), b"host-1", Some(TunnelId::from_uuid(ROUTER_ID))));
    let info = request.associate_info();
    assert_eq!((info.src, info.dst), (Some(&source()), Some(&Addr::domain(b"host-1", 0))));

    // With an undefined command too: only the known features remain.
    let wire = hex("01 07 00 0b  09 00 03 01 02 03  04 00 02 00 02");
    let expected = Request { command: Command::Unknown(0x07), features: vec![Feature::Network(Network::Ip)] };
    assert_eq!(Request::decode(&wire), Ok((expected, wire.len())));

    // An unknown feature must still fit in the feature block.
    assert_eq!(
        Request::decode(&hex("01 03 00 05  09 00 03 01 02")),
        Err(DecodeError::FeatureOverrun { len: 3, remaining: 2 })
    );
    // A lone feature of an unknown type has no value: Feature::decode refuses it.
    assert_eq!(Feature::decode(&hex("09 00 03 01 02 03")), Err(DecodeError::UnknownFeature(0x09)));
}

#[test]
fn unknown_feature_types_are_skipped_in_responses() {
    // Success with a feature of type 0x09 before the connector id, as a newer server might send.
    let wire = hex("
        01 00 00 1f
        09 00 05 01 02 03 04 05
        03 00 14 3f 25 04 e0 4f 89 41 d3 9a 0c 03 05 e8 2c 33 01 00 00 00 00");
    let connector_id = TunnelId::from_uuid([
        0x3f, 0x25, 0x04, 0xe0, 0x4f, 0x89, 0x41, 0xd3, 0x9a, 0x0c, 0x03, 0x05, 0xe8, 0x2c, 0x33, 0x01,
    ]);
    let (response, used) = Response::decode(&wire).unwrap();
    assert_eq!(used, wire.len());
    assert_eq!(response, Response::ok(connector_id));
    assert_eq!(response.connector_id(), Some(connector_id));

    // A refusal carrying one.
    let wire = hex("01 06 00 04  42 00 01 00");
    assert_eq!(Response::decode(&wire), Ok((Response::error(Status::HostUnreachable), wire.len())));
}
