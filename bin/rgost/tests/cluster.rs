//! Router servers as a cluster, end to end in network namespaces: a real
//! redis-server, three nodes and four TUN clients on one bridged network,
//! two routing namespaces with the same tunnel addresses. Pings and TCP
//! transfers cross nodes, isolation holds across nodes, a redis restart
//! does not interrupt traffic, a node with another secret gets nothing, and
//! when the node two clients use is SIGKILLed they move to the others and
//! traffic resumes (the gap is printed; the aim is under 3 s).

// Blocking test code timing real processes: std Instant is right here.
#![allow(clippy::disallowed_types, clippy::expect_used, clippy::unwrap_used)]

mod common;

use std::net::UdpSocket;
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use common::*;

const NS_A: &str = "e87f56dd-fd57-4921-9ab8-a0847662daae";
const NS_B: &str = "5c4cf23a-0d2c-4d7e-8f0e-8a3f0e1f7c11";
const SECRET: &str = "7f3c9a1e5b2d4c6a8e0f1a2b3c4d5e6f";
const REDIS: &str = "10.40.0.10";

/// Nodes' addresses on the bridge.
const NODES: [&str; 3] = ["10.40.0.1", "10.40.0.2", "10.40.0.3"];
/// The rogue node (another secret).
const ROGUE: &str = "10.40.0.4";

fn server_yaml(addr: &str, secret: &str) -> String {
    format!(
        "\
services:
  - name: router
    addr: :8443
    handler:
      type: router
      metadata:
        sd: sd-0
        entrypoint: {addr}:7443
        nodeSecret: {secret}
        sd.renewInterval: 2s
    listener:
      type: tcp
sds:
  - name: sd-0
    redis:
      addr: {REDIS}:6379
routers:
  - name: {NS_A}
    routes:
      - {{dst: 192.168.50.1, gateway: host-a1}}
      - {{dst: 192.168.50.2, gateway: host-a2}}
      - {{dst: 192.168.50.3, gateway: host-a3}}
  - name: {NS_B}
    routes:
      - {{dst: 192.168.50.1, gateway: host-b1}}
      - {{dst: 192.168.50.2, gateway: host-b2}}
"
    )
}

/// A bridge in `hub`; `attach` links a namespace to it with `addr`.
struct Lan {
    hub: Netns,
    n: u32,
}

impl Lan {
    fn new() -> Lan {
        let hub = Netns::new("hub");
        hub.ip(&["link", "add", "br0", "type", "bridge"]);
        hub.ip(&["link", "set", "br0", "up"]);
        Lan { hub, n: 0 }
    }

    fn attach(&mut self, ns: &Netns, addr: &str) {
        self.n += 1;
        let (inside, outside) = (format!("e{}", self.n), format!("p{}", self.n));
        sh(&[
            "ip",
            "-n",
            &ns.name,
            "link",
            "add",
            &inside,
            "type",
            "veth",
            "peer",
            "name",
            &outside,
            "netns",
            &self.hub.name,
        ]);
        ns.ip(&["addr", "add", &format!("{addr}/24"), "dev", &inside]);
        ns.ip(&["link", "set", &inside, "up"]);
        self.hub.ip(&["link", "set", &outside, "master", "br0"]);
        self.hub.ip(&["link", "set", &outside, "up"]);
    }
}

/// redis-server inside a namespace, killed on drop.
struct Redis {
    child: Option<Child>,
}

impl Redis {
    fn start(ns: &Netns, dir: &TempDir) -> Redis {
        let child = ns
            .command("redis-server")
            .args(["--port", "6379", "--bind", REDIS, "--save", "", "--appendonly", "no", "--protected-mode", "no"])
            .arg("--dir")
            .arg(&dir.0)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("redis-server is needed (apt-get install redis-server; .ci/run installs it)");
        let redis = Redis { child: Some(child) };
        assert!(
            wait_until(Duration::from_secs(10), || ns
                .command("redis-cli")
                .args(["-h", REDIS, "ping"])
                .output()
                .is_ok_and(|o| o.stdout.starts_with(b"PONG"))),
            "redis-server did not start"
        );
        redis
    }

    fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for Redis {
    fn drop(&mut self) {
        self.kill();
    }
}

fn node(ns: &Netns, dir: &TempDir, label: &str, addr: &str, secret: &str) -> Rgost {
    let yaml = dir.write(&format!("{label}.yaml"), &server_yaml(addr, secret));
    Rgost::start(ns, dir, label, &["-C", yaml.to_str().expect("path")])
}

/// A TUN client of `host` in namespace `router`, trying `nodes` in this
/// order (fifo: it stays on the first that works).
fn client(ns: &Netns, dir: &TempDir, host: &str, addr: &str, router: &str, nodes: &[&str]) -> Rgost {
    let listen = format!("tun:///{host}?net={addr}/24");
    let targets: Vec<String> = nodes.iter().map(|n| format!("{n}:8443")).collect();
    let chain = format!("router://{}?strategy=fifo&maxFails=1&failTimeout=30s&router.id={router}", targets.join(","));
    Rgost::start(ns, dir, host, &["-L", &listen, "-F", &chain])
}

/// Sends one UDP datagram from inside `from` to `to_addr:port`; returns
/// whether a socket bound there inside `to` received it within a second.
fn udp_reaches(from: &Netns, to: &Netns, to_addr: &str, port: u16, payload: &'static [u8]) -> bool {
    let bind = format!("{to_addr}:{port}");
    let (ready_tx, ready_rx) = std::sync::mpsc::channel();
    let receiver = to.run(move || {
        let socket = UdpSocket::bind(&bind).expect("bind receiver");
        socket.set_read_timeout(Some(Duration::from_secs(1))).expect("timeout");
        ready_tx.send(()).expect("ready");
        let mut buf = [0u8; 64];
        matches!(socket.recv(&mut buf), Ok(n) if &buf[..n] == payload)
    });
    ready_rx.recv_timeout(Duration::from_secs(5)).expect("receiver ready");
    let target = format!("{to_addr}:{port}");
    from.run(move || {
        let socket = UdpSocket::bind("0.0.0.0:0").expect("bind sender");
        for _ in 0..3 {
            let _ = socket.send_to(payload, &target);
            std::thread::sleep(Duration::from_millis(100));
        }
    })
    .join()
    .expect("sender");
    receiver.join().expect("receiver")
}

/// Runs `ping -i 0.1` for `secs` seconds in the background; returns the
/// process, to be read by [`longest_gap`].
fn background_ping(ns: &Netns, addr: &str, secs: u32) -> Child {
    ns.command("ping")
        .args(["-n", "-i", "0.1", "-W", "1", "-w", &secs.to_string(), addr])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("ping")
}

/// The longest run of unanswered pings of a finished [`background_ping`],
/// as a duration (0.1 s per ping), and how many were answered.
fn longest_gap(ping: Child) -> (Duration, usize) {
    let out = ping.wait_with_output().expect("ping output");
    let text = String::from_utf8_lossy(&out.stdout);
    let mut seqs: Vec<u64> =
        text.lines().filter_map(|l| l.split("icmp_seq=").nth(1)?.split_whitespace().next()?.parse().ok()).collect();
    seqs.sort_unstable();
    seqs.dedup();
    let gap = seqs.windows(2).map(|w| w[1] - w[0] - 1).max().unwrap_or(u64::MAX);
    (Duration::from_millis(gap.saturating_mul(100)), seqs.len())
}

#[test]
fn a_cluster_of_three_nodes_forwards_isolates_survives_redis_and_a_killed_node() {
    if !can_run() {
        return;
    }
    let dir = TempDir::new("cluster");
    let mut lan = Lan::new();
    let redis_ns = Netns::new("redis");
    lan.attach(&redis_ns, REDIS);
    let node_ns: Vec<Netns> = (1..=3).map(|i| Netns::new(&format!("n{i}"))).collect();
    for (ns, addr) in node_ns.iter().zip(NODES) {
        lan.attach(ns, addr);
    }
    let names = ["a1", "a2", "b1", "b2"];
    let client_ns: Vec<Netns> = names.iter().map(|n| Netns::new(n)).collect();
    for (i, ns) in client_ns.iter().enumerate() {
        lan.attach(ns, &format!("10.40.0.{}", 21 + i));
    }
    let [a1, a2, b1, b2] = [&client_ns[0], &client_ns[1], &client_ns[2], &client_ns[3]];

    let mut redis = Redis::start(&redis_ns, &dir);
    let mut nodes: Vec<Rgost> = node_ns
        .iter()
        .zip(NODES)
        .enumerate()
        .map(|(i, (ns, addr))| node(ns, &dir, &format!("node-{}", i + 1), addr, SECRET))
        .collect();
    let [n1, n2, n3] = NODES;
    assert!(
        wait_until(Duration::from_secs(20), || nodes.iter().all(|n| n.log().contains("registry connected"))),
        "the nodes did not start"
    );
    // a1 and b1 on node 1 (then node 3 and node 2), a2 on node 2, b2 on node 3:
    // every pair crosses nodes, before and after node 1 dies.
    let clients = [
        client(a1, &dir, "host-a1", "192.168.50.1", NS_A, &[n1, n3, n2]),
        client(a2, &dir, "host-a2", "192.168.50.2", NS_A, &[n2, n3, n1]),
        client(b1, &dir, "host-b1", "192.168.50.1", NS_B, &[n1, n2, n3]),
        client(b2, &dir, "host-b2", "192.168.50.2", NS_B, &[n3, n2, n1]),
    ];
    let started = Instant::now();
    assert!(
        wait_until(Duration::from_secs(30), || a1.ping("192.168.50.2", 1) && b1.ping("192.168.50.2", 1)),
        "pings across nodes never worked"
    );
    eprintln!("cluster up: pings across nodes after {:?}", started.elapsed());
    let on = |client: &Rgost, node: &str| {
        client
            .log()
            .lines()
            .rfind(|l| l.contains("connected to router server"))
            .is_some_and(|l| l.contains(&format!("{node}:8443")))
    };
    assert!(on(&clients[0], n1) && on(&clients[2], n1), "a1 and b1 are not on node 1");
    assert!(a2.ping("192.168.50.1", 1) && b2.ping("192.168.50.1", 1));

    // Isolation across nodes: 192.168.50.2 is host-a2 in one namespace and
    // host-b2 in the other; each namespace's packets reach only its own.
    assert!(udp_reaches(a1, a2, "192.168.50.2", 9001, b"from a1"), "a1's datagram did not reach a2");
    assert!(!udp_reaches(a1, b2, "192.168.50.2", 9002, b"from a1"), "a1's datagram crossed into namespace B");
    assert!(udp_reaches(b1, b2, "192.168.50.2", 9003, b"from b1"), "b1's datagram did not reach b2");
    assert!(!udp_reaches(b1, a2, "192.168.50.2", 9004, b"from b1"), "b1's datagram crossed into namespace A");

    // TCP transfers across nodes, in both namespaces.
    for (from, to, seed) in [(a1, a2, 1), (b1, b2, 2)] {
        let data = pattern(4 << 20, seed);
        let got = tcp_transfer(from, to, "192.168.50.2", 5001, data.clone(), Duration::from_secs(30));
        assert!(got == data, "TCP transfer across nodes: {} of {} bytes, or corrupted", got.len(), data.len());
    }

    // Redis restarts (losing everything) during traffic: the flow goes on.
    let ping = background_ping(a1, "192.168.50.2", 6);
    std::thread::sleep(Duration::from_secs(1));
    redis.kill();
    std::thread::sleep(Duration::from_secs(2));
    let _redis = Redis::start(&redis_ns, &dir);
    let (gap, answered) = longest_gap(ping);
    eprintln!("redis restart: {answered} pings answered, longest gap {gap:?}");
    assert!(gap <= Duration::from_millis(500), "traffic stopped while redis restarted: gap {gap:?}");
    // Registrations are written again: every node still knows every host.
    assert!(wait_until(Duration::from_secs(10), || a2.ping("192.168.50.1", 1) && b2.ping("192.168.50.1", 1)));

    // A node with another secret, and a client on it: nothing crosses.
    let rogue_ns = Netns::new("rogue");
    lan.attach(&rogue_ns, ROGUE);
    let a3 = Netns::new("a3");
    lan.attach(&a3, "10.40.0.30");
    let rogue = node(&rogue_ns, &dir, "rogue", ROGUE, "another secret, not the cluster's");
    let _a3_client = client(&a3, &dir, "host-a3", "192.168.50.3", NS_A, &[ROGUE]);
    assert!(wait_until(Duration::from_secs(20), || rogue.log().contains("connected")), "host-a3 never connected");
    std::thread::sleep(Duration::from_secs(2));
    assert!(!udp_reaches(&a3, a1, "192.168.50.1", 9005, b"from rogue"), "the rogue node's packet was delivered");
    assert!(!udp_reaches(a1, &a3, "192.168.50.3", 9006, b"to rogue"), "a packet reached the rogue node");
    assert!(
        nodes.iter().any(|n| n.log().contains("node link refused") || n.log().contains("did not prove")),
        "no node logged a refused link"
    );
    drop(rogue);

    // SIGKILL node 1, which a1 and b1 use: they move to nodes 3 and 2.
    let ping_a = background_ping(a1, "192.168.50.2", 12);
    let ping_b = background_ping(b1, "192.168.50.2", 12);
    std::thread::sleep(Duration::from_secs(1));
    nodes[0].kill();
    let (gap_a, answered_a) = longest_gap(ping_a);
    let (gap_b, answered_b) = longest_gap(ping_b);
    eprintln!(
        "node 1 SIGKILLed: a1->a2 gap {gap_a:?} ({answered_a} answered), b1->b2 gap {gap_b:?} ({answered_b} answered); aim: under 3 s"
    );
    assert!(
        wait_until(Duration::from_secs(30), || {
            a1.ping("192.168.50.2", 1)
                && a2.ping("192.168.50.1", 1)
                && b1.ping("192.168.50.2", 1)
                && b2.ping("192.168.50.1", 1)
        }),
        "pings between all hosts did not resume after node 1 was killed"
    );
    assert!(
        gap_a < Duration::from_secs(11) && gap_b < Duration::from_secs(11),
        "traffic never resumed within the ping run"
    );
    assert!(on(&clients[0], n3), "a1 did not move to node 3");
    assert!(on(&clients[2], n2), "b1 did not move to node 2");
    drop(nodes);
}
