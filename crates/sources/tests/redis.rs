//! The redis source against a real `redis-server` (must be installed).
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::Duration;

use common::RedisServer;
use rgost_config::{RedisKind, RedisSource, Sources};
use rgost_sources::{Fetcher, LineFormat, Reloader, SourceError, fetch};

fn e(k: &str, v: &str) -> (String, String) {
    (k.to_owned(), v.to_owned())
}

fn source(server: &RedisServer, key: &str, kind: RedisKind) -> RedisSource {
    RedisSource { addr: server.addr(), db: 0, username: None, password: server.password.clone(), key: key.into(), kind }
}

fn sources(redis: RedisSource) -> Sources {
    Sources { redis: Some(redis), reload: Some(Duration::from_millis(50)), ..Sources::default() }
}

#[tokio::test]
async fn hash_and_set() {
    let server = RedisServer::start(None);
    server.cli(&["HSET", "gost", "10.0.0.0/8", "host-1", "10.1.0.0/16", "host-2"]).unwrap();
    server.cli(&["SADD", "gost-set", "192.168.0.0/16 host-3", "172.16.0.1\thost-4", "bad", "a b c"]).unwrap();

    let fetched = fetch(&sources(source(&server, "gost", RedisKind::Hash))).await.redis.unwrap().unwrap();
    assert_eq!(fetched.entries, vec![e("10.0.0.0/8", "host-1"), e("10.1.0.0/16", "host-2")]);

    let fetched = fetch(&sources(source(&server, "gost-set", RedisKind::Set))).await.redis.unwrap().unwrap();
    assert_eq!(fetched.entries, vec![e("172.16.0.1", "host-4"), e("192.168.0.0/16", "host-3")]);
    assert_eq!(fetched.bad.len(), 2);

    // A missing key is an empty source.
    let fetched = fetch(&sources(source(&server, "nokey", RedisKind::Hash))).await.redis.unwrap().unwrap();
    assert!(fetched.entries.is_empty());

    // The wrong type is an error naming the source.
    let err = fetch(&sources(source(&server, "gost-set", RedisKind::Hash))).await.redis.unwrap().unwrap_err();
    assert!(matches!(err, SourceError::Redis { .. }), "{err:?}");
    assert!(err.to_string().starts_with(&format!("redis {} key gost-set: ", server.addr())), "{err}");
}

#[tokio::test]
async fn limit_lines_from_a_list_and_a_set() {
    let server = RedisServer::start(None);
    server.cli(&["RPUSH", "gost:limiters", "$ 100MB 100MB", "$$ 10MB", "lonely", "host-1  1MB\t2MB # x"]).unwrap();
    server.cli(&["SADD", "gost:rlimiters", "$ 100", "10.0.0.0/8 5"]).unwrap();
    let mut fetcher = Fetcher::with_format(LineFormat::Keyed);
    let fetched =
        fetcher.fetch(&sources(source(&server, "gost:limiters", RedisKind::List))).await.redis.unwrap().unwrap();
    assert_eq!(fetched.entries, vec![e("$", "100MB 100MB"), e("$$", "10MB"), e("host-1", "1MB 2MB")]);
    assert_eq!(fetched.bad.len(), 1);
    let fetched =
        fetcher.fetch(&sources(source(&server, "gost:rlimiters", RedisKind::Set))).await.redis.unwrap().unwrap();
    assert_eq!(fetched.entries, vec![e("$", "100"), e("10.0.0.0/8", "5")]);
    // A list read as a set is the wrong type: an error naming the source.
    let err = fetch(&sources(source(&server, "gost:limiters", RedisKind::Set))).await.redis.unwrap().unwrap_err();
    assert!(matches!(err, SourceError::Redis { .. }), "{err:?}");
}

#[tokio::test]
async fn db_selection() {
    let server = RedisServer::start(None);
    server.cli_db(0, &["HSET", "gost", "k", "db0"]).unwrap();
    server.cli_db(3, &["HSET", "gost", "k", "db3"]).unwrap();
    let mut src = source(&server, "gost", RedisKind::Hash);
    src.db = 3;
    let fetched = fetch(&sources(src)).await.redis.unwrap().unwrap();
    assert_eq!(fetched.entries, vec![e("k", "db3")]);
}

#[tokio::test]
async fn password() {
    let server = RedisServer::start(Some("s3cret"));
    server.cli(&["HSET", "gost", "k", "v"]).unwrap();
    let fetched = fetch(&sources(source(&server, "gost", RedisKind::Hash))).await.redis.unwrap().unwrap();
    assert_eq!(fetched.entries, vec![e("k", "v")]);

    let mut wrong = source(&server, "gost", RedisKind::Hash);
    wrong.password = Some("nope".into());
    let err = fetch(&sources(wrong)).await.redis.unwrap().unwrap_err();
    assert!(matches!(err, SourceError::Redis { .. }), "{err:?}");

    let mut none = source(&server, "gost", RedisKind::Hash);
    none.password = None;
    assert!(fetch(&sources(none)).await.redis.unwrap().is_err());
}

#[tokio::test]
async fn connection_refused_names_the_source() {
    let addr = format!("127.0.0.1:{}", common::free_port());
    let src = RedisSource {
        addr: addr.clone(),
        db: 0,
        username: None,
        password: None,
        key: "gost".into(),
        kind: RedisKind::Hash,
    };
    let err = fetch(&sources(src)).await.redis.unwrap().unwrap_err();
    let msg = err.to_string();
    assert!(msg.starts_with(&format!("redis {addr} key gost: ")), "{msg}");
    assert!(msg.to_lowercase().contains("refused"), "{msg}");
}

#[tokio::test]
async fn reload_sees_added_and_removed_entries_and_survives_an_outage() {
    let server = RedisServer::start(None);
    server.cli(&["HSET", "gost", "a", "1"]).unwrap();
    let mut reloader = Reloader::new("r", sources(source(&server, "gost", RedisKind::Hash)), vec![e("z", "inline")]);
    let initial = reloader.load_initial().await;
    assert!(initial.errors.is_empty(), "{:?}", initial.errors);
    assert_eq!(initial.entries, vec![e("a", "1"), e("z", "inline")]);

    server.cli(&["HSET", "gost", "b", "2"]).unwrap();
    assert_eq!(reloader.reload().await, Some(vec![e("a", "1"), e("b", "2"), e("z", "inline")]));
    server.cli(&["HDEL", "gost", "a"]).unwrap();
    assert_eq!(reloader.reload().await, Some(vec![e("b", "2"), e("z", "inline")]));
    assert_eq!(reloader.reload().await, None);

    // Redis goes away: the last good data stays.
    let port = server.port;
    drop(server);
    assert_eq!(reloader.reload().await, None);
    assert_eq!(reloader.current(), vec![e("b", "2"), e("z", "inline")]);

    // Redis restarts empty on the same port: a missing key is no valid
    // entry, so the last good data still stays ...
    let server = restart_on(port);
    assert_eq!(reloader.reload().await, None);
    assert_eq!(reloader.current(), vec![e("b", "2"), e("z", "inline")]);
    // ... until the key is back.
    server.cli(&["HSET", "gost", "c", "3"]).unwrap();
    assert_eq!(reloader.reload().await, Some(vec![e("c", "3"), e("z", "inline")]));
}

/// Restarts redis on a given port (the port was just freed by the old server).
fn restart_on(port: u16) -> RedisServer {
    for _ in 0..20 {
        let server = RedisServer::start_on(port, None);
        if let Some(server) = server {
            return server;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    panic!("cannot restart redis-server on port {port}");
}
