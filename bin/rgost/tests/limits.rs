//! Traffic limits end to end in network namespaces: iperf3 through a host
//! limited to 50 Mbit/s each way measures that rate (within 10%), upload
//! and download, while an unlimited pair runs through the same server at
//! the same time and is not held to it. Needs iperf3 (installed by `.ci/run`).

// Blocking test code timing real processes: std Instant is right here.
#![allow(clippy::disallowed_types, clippy::expect_used, clippy::unwrap_used)]

mod common;

use std::process::{Child, Stdio};
use std::time::Duration;

use common::*;

/// 50 Mbit/s, the limit of host-1 each way.
const LIMIT_BPS: f64 = 50e6;

const SERVER_YAML: &str = "\
services:
  - name: service-0
    addr: :8443
    handler:
      type: router
      limiter: clients
      metadata:
        router: router-0
routers:
  - name: router-0
    routes:
      - {dst: 192.168.123.1, gateway: host-1}
      - {dst: 192.168.123.2, gateway: host-2}
      - {dst: 192.168.123.3, gateway: host-3}
      - {dst: 192.168.123.4, gateway: host-4}
limiters:
  - name: clients
    limits:
      - 'host-1 50Mbit 50Mbit'
";

/// An iperf3 server in a namespace, killed on drop.
struct IperfServer(Child);

impl IperfServer {
    fn start(ns: &Netns, bind: &str) -> IperfServer {
        let child = ns
            .command("iperf3")
            .args(["-s", "-B", bind, "-p", "5201"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start iperf3 -s");
        IperfServer(child)
    }
}

impl Drop for IperfServer {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Runs a 10 s iperf3 test from `ns` to `server` (`reverse`: the server
/// sends) and returns what the receiver measured, in bits per second.
fn iperf(ns: &Netns, server: &str, reverse: bool) -> std::thread::JoinHandle<f64> {
    let mut cmd = ns.command("iperf3");
    cmd.args(["-c", server, "-p", "5201", "-t", "10", "-J", "--connect-timeout", "5000"]);
    if reverse {
        cmd.arg("-R");
    }
    std::thread::spawn(move || {
        let out = cmd.output().expect("run iperf3");
        let text = String::from_utf8_lossy(&out.stdout);
        let json: serde_json::Value =
            serde_json::from_str(&text).unwrap_or_else(|e| panic!("iperf3 output is not JSON ({e}): {text}"));
        assert!(json["error"].is_null(), "iperf3 failed: {}", json["error"]);
        json["end"]["sum_received"]["bits_per_second"].as_f64().expect("sum_received")
    })
}

#[test]
fn a_limited_host_gets_its_rate_while_an_unlimited_pair_runs_beside_it() {
    if !can_run() {
        return;
    }
    let dir = TempDir::new("limits");
    let server_ns = Netns::new("srv");
    let hosts: Vec<Netns> = (1..=4).map(|n| Netns::new(&format!("h{n}"))).collect();
    for (i, ns) in hosts.iter().enumerate() {
        veth(&server_ns, &format!("10.14.{}.1/24", i + 1), ns, &format!("10.14.{}.2/24", i + 1));
    }
    let yaml = dir.write("server.yaml", SERVER_YAML);
    let _server = Rgost::start(&server_ns, &dir, "server", &["-C", yaml.to_str().expect("path")]);
    let _clients: Vec<Rgost> = hosts
        .iter()
        .enumerate()
        .map(|(i, ns)| {
            let n = i + 1;
            let listen = format!("tun:///host-{n}?net=192.168.123.{n}/24");
            let server = format!("router://10.14.{n}.1:8443");
            Rgost::start(ns, &dir, &format!("host-{n}"), &["-L", &listen, "-F", &server])
        })
        .collect();
    for (from, to) in [(0, "192.168.123.2"), (2, "192.168.123.4")] {
        assert!(wait_until(Duration::from_secs(20), || hosts[from].ping(to, 1)), "tunnel to {to} never came up");
    }
    let _iperf2 = IperfServer::start(&hosts[1], "192.168.123.2");
    let _iperf4 = IperfServer::start(&hosts[3], "192.168.123.4");
    std::thread::sleep(Duration::from_millis(500));

    // Upload: host-1 sends (the server reads it no faster than 50 Mbit/s);
    // download: host-1 receives (the server writes to it no faster).
    for reverse in [false, true] {
        let limited = iperf(&hosts[0], "192.168.123.2", reverse);
        let unlimited = iperf(&hosts[2], "192.168.123.4", reverse);
        let (limited, unlimited) = (limited.join().expect("iperf3"), unlimited.join().expect("iperf3"));
        let direction = if reverse { "download" } else { "upload" };
        eprintln!(
            "{direction}: limited host {:.1} Mbit/s (limit {:.0}), unlimited pair {:.1} Mbit/s at the same time",
            limited / 1e6,
            LIMIT_BPS / 1e6,
            unlimited / 1e6
        );
        assert!(
            (limited - LIMIT_BPS).abs() <= LIMIT_BPS * 0.10,
            "{direction}: the limited host measured {:.1} Mbit/s, not within 10% of 50",
            limited / 1e6
        );
        // Not a speed test: only that the pair beside it is not held to
        // host-1's limit (it moves more than twice as much).
        assert!(
            unlimited > 2.0 * LIMIT_BPS,
            "{direction}: the unlimited pair measured only {:.1} Mbit/s next to the limited host",
            unlimited / 1e6
        );
    }
}
