//! GSO frames at the server, over loopback: granted only to a client that
//! asks (a GOST-shaped client gets the spec's bytes), passed whole between
//! clients that take them, and cut into ordinary packets for one that does not.
#![allow(clippy::expect_used, clippy::unwrap_used)]

use std::net::Ipv4Addr;

use bytes::BytesMut;
use rgost_relay::gso::{self, SuperPacket};
use rgost_relay::{Addr, Host, Request, frame};
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;

mod common;
use common::*;

/// The spec's ASSOCIATE (section 4) for `host` without credentials or
/// router id, as a GOST client sends it (source = TUN address, port 0).
fn gost_request(host: &str) -> Vec<u8> {
    let mut out = Vec::new();
    Request::associate(
        None,
        Addr { host: Host::Ipv4(Ipv4Addr::new(192, 168, 123, 1)), port: 0 },
        host.as_bytes(),
        None,
    )
    .encode(&mut out);
    out
}

/// An rgost client's ASSOCIATE asking for GSO frames.
fn rgost_request(host: &str, addr: &str) -> Vec<u8> {
    let mut out = Vec::new();
    let src = Addr { host: Host::Domain(format!("{addr}{}", gso::ADVERTISE_SUFFIX).into_bytes()), port: 0 };
    Request::associate(None, src, host.as_bytes(), None).encode(&mut out);
    out
}

async fn handshake(addr: std::net::SocketAddr, request: &[u8]) -> (Client, Vec<u8>) {
    let mut stream = TcpStream::connect(addr).await.unwrap();
    stream.write_all(request).await.unwrap();
    let mut buf = BytesMut::new();
    let response = read_response(&mut stream, &mut buf).await.expect("response");
    let mut bytes = Vec::new();
    response.encode(&mut bytes);
    (Client { stream, buf }, bytes)
}

/// A TCP/IPv4 super-packet from `src` to `dst` carrying `payload` bytes.
fn tcp_super(src: [u8; 4], dst: [u8; 4], payload: usize) -> Vec<u8> {
    let total = 40 + payload;
    let mut p = vec![0x45, 0, (total >> 8) as u8, total as u8, 0, 7, 0x40, 0, 64, 6, 0, 0];
    p.extend_from_slice(&src);
    p.extend_from_slice(&dst);
    p.extend_from_slice(&[0x13, 0x88, 0x17, 0x70, 0, 0, 0, 1, 0, 0, 0, 0, 0x50, 0x18, 0xff, 0xff, 0, 0, 0, 0]);
    p.extend((0..payload).map(|i| (i % 251) as u8));
    p
}

fn gso_frame(packet: &[u8], gso_size: u16) -> Vec<u8> {
    let mut payload = Vec::new();
    gso::encode_header(0, gso_size, &mut payload);
    payload.extend_from_slice(packet);
    let mut frame = Vec::new();
    assert!(frame::encode(&payload, &mut frame));
    frame
}

#[tokio::test]
async fn a_gost_client_gets_the_specs_bytes_and_rgost_clients_the_grant() {
    let srv = start(settings());
    let (_gost, response) = handshake(srv.addr, &gost_request("host-1")).await;
    // 01 00 00 17 | 03 00 14 | 16-byte connector id | 00 00 00 00
    assert_eq!(response.len(), 27);
    assert_eq!(&response[..7], &[0x01, 0x00, 0x00, 0x17, 0x03, 0x00, 0x14]);
    assert_eq!(&response[23..], &[0, 0, 0, 0], "flag, reserved and weight stay zero for a GOST client");
    let (_rgost, response) = handshake(srv.addr, &rgost_request("host-2", "192.168.123.2")).await;
    assert_eq!(&response[23..], &[0, gso::RESERVED_GSO, 0, 0], "granted to a client that asked");
}

#[tokio::test]
async fn super_packets_pass_whole_or_are_cut_for_peers_that_did_not_ask() {
    let srv = start(settings());
    let (mut sender, _) = handshake(srv.addr, &rgost_request("host-1", "192.168.123.1")).await;
    let (mut rgost, _) = handshake(srv.addr, &rgost_request("host-2", "192.168.123.2")).await;
    let (mut gost, _) = handshake(srv.addr, &gost_request("host-3")).await;
    until(|| srv.server.fabric().namespaces().first().is_some_and(|ns| ns.hosts().len() == 3)).await;

    // To a client that takes GSO frames: the frame, byte for byte.
    let packet = tcp_super(H1, H2, 5000);
    let frame = gso_frame(&packet, 1400);
    sender.stream.write_all(&frame).await.unwrap();
    let got = rgost.recv().await;
    assert_eq!(got, frame[2..], "a GSO frame arrives whole");

    // To a GOST-shaped client: ordinary packets, valid, in order, whole.
    let packet = tcp_super(H1, H3, 5000);
    sender.stream.write_all(&gso_frame(&packet, 1400)).await.unwrap();
    let mut expected = Vec::new();
    let mut lens = Vec::new();
    SuperPacket::new_checked(&packet, 1400).unwrap().segment(&mut expected, |len| lens.push(len));
    let mut at = 0;
    for len in lens {
        let segment = gost.recv().await;
        assert_eq!(segment[0] >> 4, 4, "an IP packet, not a GSO frame");
        assert_eq!(segment, expected[at..at + len]);
        at += len;
    }
    assert!(gost.recv_within(std::time::Duration::from_millis(100)).await.is_none());

    // A GSO frame that is not a TCP super-packet is dropped as malformed.
    let mut bad = tcp_super(H1, H2, 100);
    bad[9] = 17;
    sender.stream.write_all(&gso_frame(&bad, 10)).await.unwrap();
    until(|| srv.server.totals().drops(rgost_server::DropReason::Malformed) == 1).await;
}
