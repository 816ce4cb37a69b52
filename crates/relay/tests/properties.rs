//! Property tests: round trips over arbitrary valid values, no panics over
//! arbitrary bytes, and `Incomplete` for every strict prefix.

use std::net::{Ipv4Addr, Ipv6Addr};

use proptest::prelude::*;
use rgost_relay::frame::{self, FrameStatus};
use rgost_relay::ip::IpHeader;
use rgost_relay::{Addr, Command, DecodeError, Feature, Host, Network, Request, Response, Status, TunnelId};

fn tunnel_id() -> impl Strategy<Value = TunnelId> {
    (any::<[u8; 16]>(), any::<u8>(), any::<[u8; 2]>(), any::<u8>())
        .prop_map(|(uuid, flag, reserved, weight)| TunnelId { uuid, flag, reserved, weight })
}

fn short_bytes() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![proptest::collection::vec(any::<u8>(), 0..=16), proptest::collection::vec(any::<u8>(), 0..=255),]
}

fn addr() -> impl Strategy<Value = Addr> {
    let host = prop_oneof![
        any::<[u8; 4]>().prop_map(|o| Host::Ipv4(Ipv4Addr::from(o))),
        any::<[u8; 16]>().prop_map(|o| Host::Ipv6(Ipv6Addr::from(o))),
        short_bytes().prop_map(Host::Domain),
    ];
    (host, any::<u16>()).prop_map(|(host, port)| Addr { host, port })
}

fn network() -> impl Strategy<Value = Network> {
    prop_oneof![
        Just(Network::Tcp),
        Just(Network::Udp),
        Just(Network::Ip),
        Just(Network::Unix),
        Just(Network::Serial),
        any::<u16>().prop_filter("defined", |c| ![0x00, 0x01, 0x02, 0x10, 0x11].contains(c)).prop_map(Network::Unknown),
    ]
}

fn feature() -> impl Strategy<Value = Feature> {
    prop_oneof![
        (short_bytes(), short_bytes()).prop_map(|(username, password)| Feature::UserAuth { username, password }),
        addr().prop_map(Feature::Addr),
        tunnel_id().prop_map(Feature::Tunnel),
        network().prop_map(Feature::Network),
    ]
}

fn command() -> impl Strategy<Value = Command> {
    prop_oneof![
        Just(Command::Connect),
        Just(Command::Bind),
        Just(Command::Associate),
        (0u8..=0x0f).prop_filter("defined", |c| !(1..=3).contains(c)).prop_map(Command::Unknown),
    ]
}

fn status() -> impl Strategy<Value = Status> {
    proptest::sample::select(vec![
        Status::Ok,
        Status::BadRequest,
        Status::Unauthorized,
        Status::Forbidden,
        Status::Timeout,
        Status::ServiceUnavailable,
        Status::HostUnreachable,
        Status::NetworkUnreachable,
        Status::InternalServerError,
    ])
}

fn request() -> impl Strategy<Value = Request> {
    (command(), proptest::collection::vec(feature(), 0..8))
        .prop_map(|(command, features)| Request { command, features })
}

fn response() -> impl Strategy<Value = Response> {
    (status(), proptest::collection::vec(feature(), 0..8)).prop_map(|(status, features)| Response { status, features })
}

/// Arbitrary bytes, often starting like a real message so decoders get past the header.
fn message_bytes() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        proptest::collection::vec(any::<u8>(), 0..300),
        (any::<u8>(), 0u16..80, proptest::collection::vec(any::<u8>(), 0..100)).prop_map(|(code, len, rest)| {
            let mut out = vec![1, code];
            out.extend_from_slice(&len.to_be_bytes());
            out.extend(rest);
            out
        }),
        (0u8..=6, 0u16..40, proptest::collection::vec(any::<u8>(), 0..60)).prop_map(|(ty, len, rest)| {
            let mut out = vec![1, 3];
            out.extend_from_slice(&(len + 3).to_be_bytes());
            out.push(ty);
            out.extend_from_slice(&len.to_be_bytes());
            out.extend(rest);
            out
        }),
    ]
}

fn feature_bytes() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        proptest::collection::vec(any::<u8>(), 0..300),
        (0u8..=5, 0u16..40, proptest::collection::vec(any::<u8>(), 0..60)).prop_map(|(ty, len, rest)| {
            let mut out = vec![ty];
            out.extend_from_slice(&len.to_be_bytes());
            out.extend(rest);
            out
        }),
    ]
}

fn packet_bytes() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        proptest::collection::vec(any::<u8>(), 0..100),
        (0x40u8..=0x4f, any::<u8>(), proptest::collection::vec(any::<u8>(), 0..80)).prop_map(
            |(b0, proto, mut rest)| {
                rest.resize(rest.len().max(10), 0);
                rest[8] = proto % 4 * 40; // sometimes 0, 40, 80, 120; often not a port protocol
                let mut out = vec![b0];
                out.extend(rest);
                out
            }
        ),
        (
            0x60u8..=0x6f,
            proptest::sample::select(vec![6u8, 17, 132, 136, 0, 44]),
            proptest::collection::vec(any::<u8>(), 0..80)
        )
            .prop_map(|(b0, next, mut rest)| {
                rest.resize(rest.len().max(6), 0);
                rest[5] = next;
                let mut out = vec![b0];
                out.extend(rest);
                out
            }),
    ]
}

fn encoded<F: Fn(&mut Vec<u8>)>(f: F) -> Vec<u8> {
    let mut out = Vec::new();
    f(&mut out);
    out
}

/// Checks the re-encoding `wire` of what a decoder accepted from `input`.
/// Reading as GOST does only ever drops bytes (padding after a feature's
/// fields), so `wire` is never longer; when nothing was dropped it is the same
/// bytes from `from` on (before it: CMD's ignored high bits).
fn check_reencoded(wire: &[u8], input: &[u8], from: usize) -> Result<(), TestCaseError> {
    prop_assert!(wire.len() <= input.len(), "{} > {}", wire.len(), input.len());
    if wire.len() == input.len() {
        prop_assert_eq!(&wire[from..], &input[from..]);
    }
    Ok(())
}

/// Features of types this codec does not know, encoded, each with where to insert it.
fn unknown_features() -> impl Strategy<Value = Vec<(Vec<u8>, proptest::sample::Index)>> {
    let one = (
        any::<u8>().prop_filter("defined type", |t| !(1..=4).contains(t)),
        proptest::collection::vec(any::<u8>(), 0..40),
        any::<proptest::sample::Index>(),
    )
        .prop_map(|(ty, data, at)| {
            let mut wire = vec![ty];
            wire.extend_from_slice(&(data.len() as u16).to_be_bytes());
            wire.extend(data);
            (wire, at)
        });
    proptest::collection::vec(one, 1..4)
}

/// `VER | code | FEALEN | features`, with the unknown features inserted among the known ones.
fn with_unknown_features(code: u8, known: &[Feature], unknown: &[(Vec<u8>, proptest::sample::Index)]) -> Vec<u8> {
    let mut blobs: Vec<Vec<u8>> = known.iter().map(|f| encoded(|out| f.encode(out))).collect();
    for (wire, at) in unknown {
        blobs.insert(at.index(blobs.len() + 1), wire.clone());
    }
    let block = blobs.concat();
    let mut out = vec![1, code];
    out.extend_from_slice(&(block.len() as u16).to_be_bytes());
    out.extend(block);
    out
}

proptest! {
    #[test]
    fn feature_round_trip(f in feature()) {
        let wire = encoded(|out| f.encode(out));
        prop_assert_eq!(wire.len(), f.encoded_len());
        let (decoded, used) = Feature::decode(&wire).unwrap();
        prop_assert_eq!(&decoded, &f);
        prop_assert_eq!(used, wire.len());
        // TunnelId equality ignores flag/reserved/weight: compare bytes too.
        prop_assert_eq!(encoded(|out| decoded.encode(out)), wire);
    }

    #[test]
    fn request_round_trip(r in request()) {
        let wire = encoded(|out| r.encode(out));
        prop_assert_eq!(wire.len(), r.encoded_len());
        let (decoded, used) = Request::decode(&wire).unwrap();
        prop_assert_eq!(&decoded, &r);
        prop_assert_eq!(used, wire.len());
        prop_assert_eq!(encoded(|out| decoded.encode(out)), wire);
    }

    #[test]
    fn response_round_trip(r in response()) {
        let wire = encoded(|out| r.encode(out));
        prop_assert_eq!(wire.len(), r.encoded_len());
        let (decoded, used) = Response::decode(&wire).unwrap();
        prop_assert_eq!(&decoded, &r);
        prop_assert_eq!(used, wire.len());
        prop_assert_eq!(encoded(|out| decoded.encode(out)), wire);
    }

    #[test]
    fn frame_round_trip(packet in proptest::collection::vec(any::<u8>(), 0..3000), tail in proptest::collection::vec(any::<u8>(), 0..8)) {
        let mut wire = encoded(|out| assert!(frame::encode(&packet, out)));
        let total = wire.len();
        prop_assert_eq!(total, frame::HEADER_LEN + packet.len());
        wire.extend_from_slice(&tail);
        prop_assert_eq!(frame::peek(&wire), FrameStatus::Complete { total });
        let (p, rest) = frame::split(&wire).unwrap();
        prop_assert_eq!(p, &packet[..]);
        prop_assert_eq!(rest, &tail[..]);
        for cut in [0, 1, total / 2, total - 1] {
            if cut < total {
                // Without the whole length prefix only the prefix is known to be missing.
                let missing = if cut < frame::HEADER_LEN { frame::HEADER_LEN - cut } else { total - cut };
                prop_assert_eq!(frame::peek(&wire[..cut]), FrameStatus::Incomplete(missing));
                prop_assert_eq!(frame::split(&wire[..cut]), None);
            }
        }
    }

    #[test]
    fn request_prefixes_are_incomplete(r in request()) {
        let wire = encoded(|out| r.encode(out));
        for cut in 0..wire.len() {
            match Request::decode(&wire[..cut]) {
                Err(DecodeError::Incomplete(n)) => prop_assert!(n >= 1 && cut + n <= wire.len()),
                other => prop_assert!(false, "prefix {} of {}: {:?}", cut, wire.len(), other),
            }
        }
    }

    #[test]
    fn response_prefixes_are_incomplete(r in response()) {
        let wire = encoded(|out| r.encode(out));
        for cut in 0..wire.len() {
            match Response::decode(&wire[..cut]) {
                Err(DecodeError::Incomplete(n)) => prop_assert!(n >= 1 && cut + n <= wire.len()),
                other => prop_assert!(false, "prefix {} of {}: {:?}", cut, wire.len(), other),
            }
        }
    }

    #[test]
    fn request_decode_never_panics(bytes in message_bytes()) {
        if let Ok((r, used)) = Request::decode(&bytes) {
            prop_assert!(used <= bytes.len());
            let wire = encoded(|out| r.encode(out));
            check_reencoded(&wire, &bytes[..used], 2)?;
            prop_assert_eq!(Request::decode(&wire).unwrap(), (r, wire.len()));
        }
    }

    #[test]
    fn response_decode_never_panics(bytes in message_bytes()) {
        if let Ok((r, used)) = Response::decode(&bytes) {
            prop_assert!(used <= bytes.len());
            let wire = encoded(|out| r.encode(out));
            check_reencoded(&wire, &bytes[..used], 0)?;
            prop_assert_eq!(Response::decode(&wire).unwrap(), (r, wire.len()));
        }
    }

    #[test]
    fn feature_decode_never_panics(bytes in feature_bytes()) {
        if let Ok((f, used)) = Feature::decode(&bytes) {
            prop_assert!(used <= bytes.len());
            let wire = encoded(|out| f.encode(out));
            check_reencoded(&wire, &bytes[..used], 0)?;
            prop_assert_eq!(Feature::decode(&wire).unwrap(), (f, wire.len()));
        }
    }

    #[test]
    fn unknown_features_are_skipped_in_requests(r in request(), unknown in unknown_features()) {
        let wire = with_unknown_features(r.command.code(), &r.features, &unknown);
        let (decoded, used) = Request::decode(&wire).unwrap();
        prop_assert_eq!(used, wire.len());
        prop_assert_eq!(encoded(|out| decoded.encode(out)), encoded(|out| r.encode(out)));
        prop_assert_eq!(decoded, r);
    }

    #[test]
    fn unknown_features_are_skipped_in_responses(r in response(), unknown in unknown_features()) {
        let wire = with_unknown_features(r.status.code(), &r.features, &unknown);
        let (decoded, used) = Response::decode(&wire).unwrap();
        prop_assert_eq!(used, wire.len());
        prop_assert_eq!(encoded(|out| decoded.encode(out)), encoded(|out| r.encode(out)));
        prop_assert_eq!(decoded, r);
    }

    #[test]
    fn padding_after_a_features_fields_is_ignored(
        f in feature(),
        pad in proptest::collection::vec(any::<u8>(), 1..8),
    ) {
        let mut wire = encoded(|out| f.encode(out));
        let len = u16::from_be_bytes([wire[1], wire[2]]) + pad.len() as u16;
        wire[1..3].copy_from_slice(&len.to_be_bytes());
        wire.extend_from_slice(&pad);
        let (decoded, used) = Feature::decode(&wire).unwrap();
        prop_assert_eq!(used, wire.len());
        prop_assert_eq!(encoded(|out| decoded.encode(out)), encoded(|out| f.encode(out)));
    }

    #[test]
    fn frame_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..300)) {
        match frame::peek(&bytes) {
            FrameStatus::Complete { total } => {
                let (p, rest) = frame::split(&bytes).unwrap();
                prop_assert_eq!(p.len() + rest.len() + frame::HEADER_LEN, bytes.len());
                prop_assert!(total <= bytes.len());
            }
            FrameStatus::Incomplete(n) => {
                prop_assert!(n >= 1);
                prop_assert_eq!(frame::split(&bytes), None);
            }
        }
    }

    #[test]
    fn ip_header_never_panics(bytes in packet_bytes()) {
        if let Ok(header) = IpHeader::new_checked(&bytes[..]) {
            let flow = header.flow();
            prop_assert_eq!(flow.src, header.src());
            prop_assert_eq!(flow.dst, header.dst());
            prop_assert_eq!(flow.protocol, header.protocol());
            prop_assert!(header.version() == 4 || header.version() == 6);
            prop_assert!(header.header_len() <= bytes.len());
            let _ = header.flow_hash();
        }
    }
}
