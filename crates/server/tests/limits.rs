//! Traffic limits, rate limits and observers over loopback, from config
//! text to packets: a client paced on input and on output while others go
//! on, `rate_limited` drops, limits swapped by a reload under open
//! connections, a limiter plugin, new connections per second refused at
//! accept, and a real HTTP server receiving the observer's events.
//!
//! Times are only ever lower bounds ("pacing took at least this long") or
//! orderings, so a slow machine cannot fail these tests.
#![allow(clippy::expect_used, clippy::unwrap_used, clippy::disallowed_types)]

mod common;

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::*;
use rgost_config::ServiceKind;
use rgost_relay::Status;
use rgost_server::{DropReason, Settings, build};
use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

const ZERO: &str = "00000000-0000-0000-0000-000000000000";

/// Settings of the first router service in `yaml`, built as `rgost` builds them.
async fn settings_from(yaml: &str, stop: &CancellationToken) -> Settings {
    let config = rgost_config::parse_str(yaml, "test.yaml").expect("config").config;
    let (name, service) = config
        .services
        .iter()
        .find_map(|s| match &s.kind {
            ServiceKind::Router(r) => Some((s.name.clone(), r.clone())),
            _ => None,
        })
        .expect("a router service");
    build::settings(&name, &service, &config, stop).await.expect("build")
}

/// The seed's routes (192.168.123.N -> host-N) and `extra` YAML.
fn config(handler_extra: &str, extra: &str) -> String {
    format!(
        "services:\n- name: service-0\n  addr: :0\n  handler:\n    type: router\n{handler_extra}    metadata:\n      \
         router: router-0\n      readTimeout: 2s\nrouters:\n- name: router-0\n  routes:\n  - {{dst: 192.168.123.1, \
         gateway: host-1}}\n  - {{dst: 192.168.123.2, gateway: host-2}}\n  - {{dst: 192.168.123.3, gateway: host-3}}\n{extra}"
    )
}

/// `n` packets of `len` bytes from host-1 to host-2.
fn burst(n: usize, len: usize) -> Vec<u8> {
    let mut out = Vec::new();
    for i in 0..n {
        let packet = udp4(H1, H2, 1000, 2000, &vec![i as u8; len - 28]);
        rgost_relay::frame::encode(&packet, &mut out);
    }
    out
}

#[tokio::test]
async fn input_is_paced_by_reading_slowly_and_others_pass_meanwhile() {
    let stop = CancellationToken::new();
    // host-1 may send 256 KiB/s; 1 MiB takes it about 4 s minus one burst.
    let yaml = config("    limiter: clients\n", "limiters:\n- name: clients\n  limits: ['host-1 256KB 0']\n");
    let running = start(settings_from(&yaml, &stop).await);
    let mut h1 = Client::ok(running.addr, "host-1").await;
    let mut h2 = Client::ok(running.addr, "host-2").await;
    let mut h3 = Client::ok(running.addr, "host-3").await;

    let started = tokio::time::Instant::now();
    let data = burst(1024, 1024);
    let writer = tokio::spawn(async move {
        h1.stream.write_all(&data).await.unwrap();
        h1
    });
    // Once host-1's packets flow, host-3 sends one: it overtakes host-1's backlog.
    let first = h2.recv().await;
    assert_eq!(&first[12..16], &H1);
    h3.send(&udp4(H3, H2, 7, 7, b"not behind host-1")).await;
    let mut got_h1 = 1;
    let mut h3_seen_after = None;
    while got_h1 < 1024 {
        let packet = h2.recv().await;
        if packet[12..16] == H3 {
            h3_seen_after = Some(got_h1);
        } else {
            got_h1 += 1;
        }
    }
    let elapsed = started.elapsed();
    let h3_after = h3_seen_after.expect("host-3's packet arrived");
    assert!(h3_after < 1000, "host-3's packet waited behind host-1's: it came after {h3_after} of 1024");
    // 1 MiB at 256 KiB/s, less the first bucket (25.6 KiB) and the first read.
    assert!(elapsed >= Duration::from_secs(3), "1 MiB at 256 KiB/s took only {elapsed:?}");
    // Input is shaped without loss.
    assert_eq!(running.server.totals().drops(DropReason::RateLimited), 0);
    let _h1 = writer.await.unwrap();
    stop.cancel();
}

#[tokio::test]
async fn output_is_paced_and_what_does_not_fit_is_dropped_as_rate_limited() {
    let stop = CancellationToken::new();
    let yaml = config("    limiter: clients\n", "limiters:\n- name: clients\n  limits: ['$$ 0 100KB', 'host-1 0 0']\n");
    let running = start(settings_from(&yaml, &stop).await);
    let mut h1 = Client::ok(running.addr, "host-1").await;
    let mut h2 = Client::ok(running.addr, "host-2").await;

    // 2 MiB offered at once to a client that may receive 100 KiB/s.
    let started = tokio::time::Instant::now();
    h1.stream.write_all(&burst(2048, 1024)).await.unwrap();
    let mut received = 0usize;
    while let Some(packet) = h2.recv_within(Duration::from_millis(1500)).await {
        received += packet.len();
        if started.elapsed() > Duration::from_secs(2) {
            break;
        }
    }
    let elapsed = started.elapsed().as_secs_f64();
    // The rate, its first bucket (16 KiB) and one chunk written ahead (64 KiB).
    let most = 100.0 * 1024.0 * elapsed + 16.0 * 1024.0 + 64.0 * 1024.0;
    assert!(received > 0);
    assert!((received as f64) <= most, "received {received} bytes in {elapsed:.2}s, at most {most} allowed");
    let dropped = running.server.totals().drops(DropReason::RateLimited);
    assert!(dropped > 1000, "rate_limited drops: {dropped}");
    assert_eq!(running.server.totals().drops(DropReason::QueueFull), 0, "a paced queue's drops say why");
    stop.cancel();
}

#[tokio::test]
async fn a_reload_paces_open_connections_and_lifts_limits_again() {
    let stop = CancellationToken::new();
    let running = start(settings_from(&config("", ""), &stop).await);
    let mut h1 = Client::ok(running.addr, "host-1").await;
    let mut h2 = Client::ok(running.addr, "host-2").await;
    // Fewer packets than a queue holds: none is dropped, paced or not.
    h1.stream.write_all(&burst(128, 1024)).await.unwrap();
    for _ in 0..128 {
        h2.recv().await;
    }
    assert_eq!(running.server.totals().drops(DropReason::RateLimited), 0, "unlimited at first");

    let limited = config("    limiter: l\n", "limiters:\n- name: l\n  limits: ['host-2 0 64KB']\n");
    running.server.reload(settings_from(&limited, &stop).await);
    h1.stream.write_all(&burst(2048, 1024)).await.unwrap();
    until(|| running.server.totals().drops(DropReason::RateLimited) > 0).await;

    // Limits lifted: the next flood arrives whole once the queue has drained
    // (the writer notices between two chunks of at most 16 KiB here).
    running.server.reload(settings_from(&config("", ""), &stop).await);
    while h2.recv_within(Duration::from_secs(2)).await.is_some() {}
    let before = running.server.totals().drops(DropReason::RateLimited);
    h1.stream.write_all(&burst(128, 1024)).await.unwrap();
    for _ in 0..128 {
        h2.recv().await;
    }
    assert_eq!(running.server.totals().drops(DropReason::RateLimited), before);
    stop.cancel();
}

#[tokio::test]
async fn rlimiter_refuses_fast_reconnects_at_accept_and_counts_them() {
    let stop = CancellationToken::new();
    // Two new connections per second from one address: a burst of three.
    let yaml = config("", "rlimiters:\n- name: r\n  limits: ['$$ 2']\n")
        .replace("  addr: :0\n", "  addr: :0\n  rlimiter: r\n");
    let running = start(settings_from(&yaml, &stop).await);
    let mut statuses = Vec::new();
    for _ in 0..6 {
        let mut stream = tokio::net::TcpStream::connect(running.addr).await.unwrap();
        stream.write_all(&associate("host-1", None)).await.unwrap();
        let mut buf = bytes::BytesMut::new();
        statuses.push(read_response(&mut stream, &mut buf).await.map(|r| r.status));
    }
    assert_eq!(statuses[..3], [Some(Status::Ok); 3]);
    assert_eq!(statuses[3..], [None, None, None], "closed without a reply");
    assert_eq!(running.server.stats().rate_limited_total(), 3);
    assert!(running.server.stats().refused_total() >= 3);
    // Half a second later one more token is there.
    tokio::time::sleep(Duration::from_millis(600)).await;
    let (_client, response) = Client::connect(running.addr, "host-1", None).await;
    assert_eq!(response.status, Status::Ok);
    stop.cancel();
}

/// A tiny HTTP/1.1 server that records each request's target and JSON
/// body and answers with `answer(n)` for the n-th request.
struct Http {
    addr: SocketAddr,
    bodies: Arc<Mutex<Vec<(String, Value)>>>,
}

impl Http {
    async fn start(answer: impl Fn(usize) -> (u16, String) + Send + Sync + 'static) -> Http {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let bodies = Arc::new(Mutex::new(Vec::new()));
        let seen = Arc::clone(&bodies);
        let answer = Arc::new(answer);
        tokio::spawn(async move {
            loop {
                let Ok((mut stream, _)) = listener.accept().await else { return };
                let (seen, answer) = (Arc::clone(&seen), Arc::clone(&answer));
                tokio::spawn(async move {
                    // Keep-alive: several requests per connection.
                    let mut buf = Vec::new();
                    loop {
                        let Some(end) = read_until_headers(&mut stream, &mut buf).await else { return };
                        let head = String::from_utf8_lossy(&buf[..end]).to_ascii_lowercase();
                        let target = head.split_whitespace().nth(1).unwrap_or_default().to_owned();
                        let length: usize = head
                            .lines()
                            .find_map(|l| l.strip_prefix("content-length:"))
                            .and_then(|v| v.trim().parse().ok())
                            .unwrap_or(0);
                        while buf.len() < end + length {
                            let mut chunk = [0u8; 4096];
                            match stream.read(&mut chunk).await {
                                Ok(0) | Err(_) => return,
                                Ok(n) => buf.extend_from_slice(&chunk[..n]),
                            }
                        }
                        let body: Value = serde_json::from_slice(&buf[end..end + length]).unwrap_or(Value::Null);
                        buf.drain(..end + length);
                        let n = {
                            let mut seen = seen.lock().unwrap();
                            seen.push((target, body));
                            seen.len() - 1
                        };
                        let (status, body) = answer(n);
                        let reply = format!(
                            "HTTP/1.1 {status} X\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n{body}",
                            body.len()
                        );
                        if stream.write_all(reply.as_bytes()).await.is_err() {
                            return;
                        }
                    }
                });
            }
        });
        Http { addr, bodies }
    }

    fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    fn bodies(&self) -> Vec<(String, Value)> {
        self.bodies.lock().unwrap().clone()
    }
}

/// Reads until the end of the headers; their length with the blank line.
async fn read_until_headers(stream: &mut tokio::net::TcpStream, buf: &mut Vec<u8>) -> Option<usize> {
    loop {
        if let Some(at) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            return Some(at + 4);
        }
        let mut chunk = [0u8; 4096];
        match stream.read(&mut chunk).await {
            Ok(0) | Err(_) => return None,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
        }
    }
}

/// The stats of `client` in the last event about it, if any.
fn last_stats(bodies: &[(String, Value)], client: &str) -> Option<Value> {
    bodies
        .iter()
        .flat_map(|(_, body)| body["events"].as_array().cloned().unwrap_or_default())
        .rfind(|e| e["client"] == client)
        .map(|e| e["stats"].clone())
}

#[tokio::test]
async fn the_observer_gets_gosts_stats_events_per_client_and_retries() {
    let stop = CancellationToken::new();
    // The first post fails: the same events come again, then new ones.
    let http = Http::start(|n| if n == 0 { (503, "{}".into()) } else { (200, r#"{"ok": true}"#.into()) }).await;
    let yaml = config(
        "    observer: stats\n",
        &format!("observers:\n- name: stats\n  plugin: {{type: http, addr: '{}'}}\n", http.url("/observe")),
    )
    .replace("      readTimeout: 2s\n", "      readTimeout: 2s\n      observePeriod: 1s\n");
    let running = start(settings_from(&yaml, &stop).await);
    let mut h1 = Client::ok(running.addr, "host-1").await;
    let mut h2 = Client::ok(running.addr, "host-2").await;
    let packet = udp4(H1, H2, 1, 2, &[7; 100]);
    h1.send(&packet).await;
    assert_eq!(h2.recv().await, packet);

    let (c1, c2) = (format!("host-1@{ZERO}"), format!("host-2@{ZERO}"));
    let delivered = |bodies: &[(String, Value)]| {
        last_stats(bodies, &c2).is_some_and(|s| s["outputBytes"] == 128) && bodies.len() >= 2
    };
    for _ in 0..100 {
        if delivered(&http.bodies()) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let bodies = http.bodies();
    assert!(delivered(&bodies), "{bodies:#?}");
    assert_eq!(bodies[0].0, "/observe");
    assert_eq!(bodies[1].1, bodies[0].1, "the failed post is sent again as it was");
    let event = bodies[1].1["events"].as_array().unwrap().iter().find(|e| e["client"] == c1).unwrap().clone();
    assert_eq!(event["kind"], "handler");
    assert_eq!(event["service"], "service-0");
    assert_eq!(event["type"], "stats");
    assert_eq!(
        last_stats(&bodies, &c1).unwrap(),
        serde_json::json!({"totalConns": 1, "currentConns": 1, "inputBytes": 128, "outputBytes": 0, "totalErrs": 0})
    );

    // host-1 leaves: an event says so; host-2's counters did not change, so
    // no event repeats them.
    let posts = bodies.len();
    drop(h1);
    for _ in 0..100 {
        if last_stats(&http.bodies(), &c1).is_some_and(|s| s["currentConns"] == 0) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let bodies = http.bodies();
    assert_eq!(last_stats(&bodies, &c1).unwrap()["currentConns"], 0, "{bodies:#?}");
    let later: Vec<&Value> = bodies[posts..]
        .iter()
        .flat_map(|(_, b)| b["events"].as_array().unwrap().iter())
        .filter(|e| e["client"] == c2)
        .collect();
    assert!(later.is_empty(), "unchanged clients get no event: {later:?}");
    stop.cancel();
}

#[tokio::test]
async fn a_limiter_plugin_is_asked_about_each_client_and_its_answer_applies() {
    let stop = CancellationToken::new();
    let http = Http::start(|_| (200, r#"{"in": 0, "out": 65536}"#.into())).await;
    let yaml = config(
        "    limiter: plugin\n",
        &format!("limiters:\n- name: plugin\n  plugin: {{type: http, addr: '{}'}}\n", http.url("/limiter")),
    );
    let running = start(settings_from(&yaml, &stop).await);
    let mut h1 = Client::ok(running.addr, "host-1").await;
    let _h2 = Client::ok(running.addr, "host-2").await;
    let bodies = http.bodies();
    assert_eq!(bodies.len(), 2, "asked once per client, before its reply: {bodies:?}");
    let h2_query = &bodies[1].1;
    assert_eq!(h2_query["service"], "service-0");
    assert_eq!(h2_query["scope"], "client");
    assert_eq!(h2_query["network"], "ip");
    assert_eq!(h2_query["addr"], "");
    assert_eq!(h2_query["client"], format!("host-2@{ZERO}"));
    assert!(h2_query["src"].as_str().unwrap().starts_with("127.0.0.1:"), "{h2_query}");
    // host-2 may receive 64 KiB/s: a flood to it is dropped as rate_limited.
    h1.stream.write_all(&burst(2048, 1024)).await.unwrap();
    until(|| running.server.totals().drops(DropReason::RateLimited) > 0).await;
    stop.cancel();
}

#[tokio::test]
async fn a_changed_plugin_answer_applies_at_the_next_refresh() {
    use std::sync::atomic::{AtomicU64, Ordering};
    let stop = CancellationToken::new();
    let out = Arc::new(AtomicU64::new(0));
    let rate = Arc::clone(&out);
    let http = Http::start(move |_| (200, format!(r#"{{"in": 0, "out": {}}}"#, rate.load(Ordering::Relaxed)))).await;
    let yaml = config(
        "    limiter: plugin\n",
        &format!("limiters:\n- name: plugin\n  plugin: {{type: http, addr: '{}'}}\n", http.url("/limiter")),
    )
    .replace("      readTimeout: 2s\n", "      readTimeout: 2s\n      limiter.refreshInterval: 1s\n");
    let running = start(settings_from(&yaml, &stop).await);
    let mut h1 = Client::ok(running.addr, "host-1").await;
    let mut h2 = Client::ok(running.addr, "host-2").await;
    // Unlimited at first: a flood no larger than a queue arrives whole.
    h1.stream.write_all(&burst(128, 1024)).await.unwrap();
    for _ in 0..128 {
        h2.recv().await;
    }
    // The plugin now says 64 KiB/s: after the next refresh, floods to host-2 are paced.
    out.store(65536, Ordering::Relaxed);
    let asked = http.bodies().len();
    for _ in 0..100 {
        if http.bodies().len() >= asked + 2 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(http.bodies().len() >= asked + 2, "the plugin was not asked again");
    h1.stream.write_all(&burst(2048, 1024)).await.unwrap();
    until(|| running.server.totals().drops(DropReason::RateLimited) > 0).await;
    stop.cancel();
}

#[tokio::test]
async fn limit_lines_from_a_file_apply_and_reload_under_open_connections() {
    let stop = CancellationToken::new();
    let dir = std::env::temp_dir().join(format!("rgost-limits-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("limits.txt");
    std::fs::write(&file, "# nothing for host-2 yet\nhost-3 1MB 1MB\n").unwrap();
    let yaml = config(
        "    limiter: l\n",
        &format!("limiters:\n- name: l\n  reload: 100ms\n  file: {{path: '{}'}}\n", file.display()),
    );
    let running = start(settings_from(&yaml, &stop).await);
    let mut h1 = Client::ok(running.addr, "host-1").await;
    let mut h2 = Client::ok(running.addr, "host-2").await;
    h1.stream.write_all(&burst(128, 1024)).await.unwrap();
    for _ in 0..128 {
        h2.recv().await;
    }
    assert_eq!(running.server.totals().drops(DropReason::RateLimited), 0);
    // A line for host-2 appears: its open connection is paced from then on.
    std::fs::write(&file, "host-3 1MB 1MB\nhost-2\t0  64KB   # now limited\n").unwrap();
    tokio::time::sleep(Duration::from_millis(500)).await;
    h1.stream.write_all(&burst(2048, 1024)).await.unwrap();
    until(|| running.server.totals().drops(DropReason::RateLimited) > 0).await;
    stop.cancel();
    let _ = std::fs::remove_dir_all(&dir);
}
