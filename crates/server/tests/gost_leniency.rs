//! The router server over loopback with requests no current GOST client sends
//! but a GOST server answers (issue 12, section 5), written out as bytes.
#![allow(clippy::expect_used, clippy::unwrap_used)]

use std::collections::HashMap;

use rgost_server::auth::Auther;
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

/// Parses hex with any whitespace between bytes.
fn hex(s: &str) -> Vec<u8> {
    let digits: Vec<u8> =
        s.chars().filter(|c| !c.is_whitespace()).map(|c| c.to_digit(16).expect("hex digit") as u8).collect();
    digits.chunks(2).map(|pair| pair[0] << 4 | pair[1]).collect()
}
