//! The router server over loopback with requests no current GOST client sends
//! but a GOST server answers (issue 12, section 5), written out as bytes.
#![allow(clippy::expect_used, clippy::unwrap_used)]

use std::collections::HashMap;
use std::sync::Arc;

use bytes::BytesMut;
use rgost_relay::{Status, TunnelId};
use rgost_routing::Ingress;
use rgost_server::auth::Auther;
use rgost_server::{IngressSource, Router};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::time::timeout;

mod common;
use common::*;

/// Sends `request` on a new connection and returns all the server sends before it closes.
async fn exchange(addr: std::net::SocketAddr, request: &[u8]) -> Vec<u8> {
    let mut stream = TcpStream::connect(addr).await.expect("connect");
    stream.write_all(request).await.expect("send");
    let mut reply = Vec::new();
    timeout(T, stream.read_to_end(&mut reply)).await.expect("closed in time").expect("read");
    reply
}

#[tokio::test]
async fn undefined_commands_get_bad_request() {
    let srv = start(settings());
    // 0x00, 0x04..=0x0F in the low 4 bits; 0x84 also carries the old UDP flag.
    for cmd in [0x00, 0x04, 0x07, 0x0f, 0x84] {
        assert_eq!(exchange(srv.addr, &[0x01, cmd, 0x00, 0x00]).await, [0x01, 0x01, 0x00, 0x00], "CMD {cmd:#04x}");
    }
    // With the features of an ASSOCIATE (Network = ip, Addr, Addr "host-1").
    let request = hex("
        01 05 00 1c
        04 00 02 00 02
        02 00 07 01 0a 00 00 02 c7 38
        02 00 0a 03 06 68 6f 73 74 2d 31 00 00");
    assert_eq!(exchange(srv.addr, &request).await, [0x01, 0x01, 0x00, 0x00]);
    assert_eq!(srv.server.stats().refused_total(), 6);
}

#[tokio::test]
async fn undefined_command_is_answered_after_authentication() {
    let mut s = settings();
    s.auther = Some(Auther::users(HashMap::from([("alice".to_owned(), "s3cret".to_owned())])));
    let srv = start(s);
    // GOST's order: version, authentication, then the command.
    let no_credentials = hex("01 04 00 00");
    assert_eq!(exchange(srv.addr, &no_credentials).await, [0x01, 0x02, 0x00, 0x00]);
    let good_credentials = hex("01 04 00 10  01 00 0d 05 61 6c 69 63 65 06 73 33 63 72 65 74");
    assert_eq!(exchange(srv.addr, &good_credentials).await, [0x01, 0x01, 0x00, 0x00]);
    // A bad version is still closed without a reply.
    assert!(exchange(srv.addr, &hex("02 04 00 00")).await.is_empty());
}

#[tokio::test]
async fn a_request_only_a_future_client_would_send_is_served() {
    let mut s = settings();
    s.routers.insert(TunnelId::from_uuid(NS1).to_string(), Arc::new(Router::table(seed_table())));
    s.ingress = Some(IngressSource::rules(Ingress::new([("host-1".to_owned(), NS1), ("host-2".to_owned(), NS1)])));
    let srv = start(s);
    // host-1 in NS1 as GOST reads it: a feature of unknown type 0x09, Network
    // 0x1234, the source, Addr "host-9", a zero Tunnel, Addr "host-1" padded
    // with 2 bytes (the last Addr is the host), a 24-byte Tunnel NS1 (the last
    // Tunnel is the router id, which ingress requires for host-1).
    let request = hex("
        01 03 00 62
        09 00 02 ab cd
        04 00 02 12 34
        02 00 07 01 0a 00 00 02 c7 38
        02 00 0a 03 06 68 6f 73 74 2d 39 00 00
        03 00 14 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00
        02 00 0c 03 06 68 6f 73 74 2d 31 00 00 ee ee
        03 00 18 e8 7f 56 dd fd 57 49 21 9a b8 a0 84 76 62 da ae 00 00 00 00 ff ff ff ff");
    let mut stream = TcpStream::connect(srv.addr).await.expect("connect");
    stream.write_all(&request).await.expect("send");
    let mut buf = BytesMut::new();
    let response = read_response(&mut stream, &mut buf).await.expect("response");
    assert_eq!(response.status, Status::Ok);
    let mut future = Client { stream, buf };

    // It is host-1 in NS1: a packet for host-1 from host-2 in NS1 reaches it.
    let (mut a2, r2) = Client::connect(srv.addr, "host-2", Some(NS1)).await;
    assert_eq!(r2.status, Status::Ok);
    assert_eq!(srv.server.connections(&TunnelId::from_uuid(NS1), "host-1"), 1);
    let p = udp4(H2, H1, 1, 2, b"to the future");
    a2.send(&p).await;
    assert_eq!(future.recv().await, p);
}

/// Parses hex with any whitespace between bytes.
fn hex(s: &str) -> Vec<u8> {
    let digits: Vec<u8> =
        s.chars().filter(|c| !c.is_whitespace()).map(|c| c.to_digit(16).expect("hex digit") as u8).collect();
    digits.chunks(2).map(|pair| pair[0] << 4 | pair[1]).collect()
}
