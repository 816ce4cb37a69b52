//! The seed's "Routing Namespace" and "Ingress" examples, end to end in
//! network namespaces: two routing namespaces using the same addresses and
//! host names never see each other's packets; an ingress refuses a host that
//! presents the wrong router id and admits the right one.
#![allow(clippy::expect_used, clippy::unwrap_used)]

mod common;

use std::time::Duration;

use common::*;

const NS1: &str = "e87f56dd-fd57-4921-9ab8-a0847662daae";
const NS2: &str = "ef502590-c5f4-437e-a81f-fe4083505075";

/// Both namespaces use the same addresses and host names on purpose.
fn server_yaml(ingress: bool, h1: &str, h2: &str) -> String {
    let routes = |h1: &str, h2: &str| {
        format!(
            "
    routes:
      - dst: 192.168.123.1
        gateway: {h1}
      - dst: 192.168.10.0/24
        gateway: {h1}
      - dst: 192.168.123.2
        gateway: {h2}
      - dst: 192.168.11.0/24
        gateway: {h2}"
        )
    };
    let (ingress_meta, ingresses) = if ingress {
        (
            "\n        ingress: ingress-0",
            format!(
                "
ingresses:
  - name: ingress-0
    rules:
     - hostname: host-1-ns1
       endpoint: {NS1}
     - hostname: host-2-ns1
       endpoint: {NS1}
     - hostname: host-1-ns2
       endpoint: {NS2}
     - hostname: host-2-ns2
       endpoint: {NS2}
"
            ),
        )
    } else {
        ("", String::new())
    };
    let (n1h1, n1h2, n2h1, n2h2) =
        if ingress { ("host-1-ns1", "host-2-ns1", "host-1-ns2", "host-2-ns2") } else { (h1, h2, h1, h2) };
    format!(
        "\
services:
  - name: service-0
    addr: :8443
    handler:
      type: router
      metadata:
        router: router-0{ingress_meta}
    listener:
      type: tcp
{ingresses}
routers:
  - name: {NS1}{}
  - name: {NS2}{}
  - name: router-0
    plugin:
      type: http
      addr: http://127.0.0.1:8000
",
        routes(n1h1, n1h2),
        routes(n2h1, n2h2)
    )
}

fn client(ns: &Netns, dir: &TempDir, label: &str, host: &str, addr: &str, router_id: &str) -> Rgost {
    let listen = format!("tun:///{host}?net={addr}/24&name=rgtun");
    let node = format!("router://10.12.0.1:8443?router.id={router_id}");
    Rgost::start(ns, dir, label, &["-L", &listen, "-F", &node])
}

fn rx_packets(ns: &Netns) -> u64 {
    let out = ns.ip(&["-s", "-o", "link", "show", "rgtun"]);
    // "... RX: bytes packets ..." then the numbers on the following (joined) line.
    let fields: Vec<&str> = out.split_whitespace().collect();
    fields.iter().position(|f| *f == "RX:").and_then(|i| fields.get(i + 8)).and_then(|v| v.parse().ok()).unwrap_or(0)
}

/// A server namespace with a bridge, and a client namespace per label, each
/// with a veth into the bridge.
fn star(labels: &[&str]) -> (Netns, Vec<Netns>) {
    let server = Netns::new("srv");
    server.ip(&["link", "add", "br0", "type", "bridge"]);
    server.ip(&["addr", "add", "10.12.0.1/24", "dev", "br0"]);
    server.ip(&["link", "set", "br0", "up"]);
    let clients = labels
        .iter()
        .enumerate()
        .map(|(i, label)| {
            let ns = Netns::new(label);
            let port = format!("p{i}");
            server.ip(&["link", "add", &port, "type", "veth", "peer", "name", "eth0", "netns", &ns.name]);
            server.ip(&["link", "set", &port, "master", "br0", "up"]);
            ns.ip(&["addr", "add", &format!("10.12.0.{}/24", i + 10), "dev", "eth0"]);
            ns.ip(&["link", "set", "eth0", "up"]);
            ns
        })
        .collect();
    (server, clients)
}

#[test]
fn routing_namespaces_are_isolated() {
    if !can_run() {
        return;
    }
    let dir = TempDir::new("ns");
    let (server_ns, hosts) = star(&["a1", "a2", "b1", "b2"]);
    let [a1, a2, b1, b2] = &hosts[..] else { unreachable!() };
    let yaml = dir.write("server.yaml", &server_yaml(false, "host-1", "host-2"));
    let _server = Rgost::start(&server_ns, &dir, "server", &["-C", yaml.to_str().expect("path")]);
    let _ca1 = client(a1, &dir, "a1", "host-1", "192.168.123.1", NS1);
    let _ca2 = client(a2, &dir, "a2", "host-2", "192.168.123.2", NS1);
    let _cb1 = client(b1, &dir, "b1", "host-1", "192.168.123.1", NS2);

    assert!(wait_until(Duration::from_secs(20), || a1.ping("192.168.123.2", 1)), "a1 cannot reach a2 in namespace 1");
    assert!(a2.ping("192.168.123.1", 2));
    // b1 uses the same address and host name as a1 but in namespace 2:
    // host-2 does not exist there yet, and a2 must not answer it.
    assert!(!b1.ping("192.168.123.2", 2), "b1 reached a2 across namespaces");

    let _cb2 = client(b2, &dir, "b2", "host-2", "192.168.123.2", NS2);
    assert!(wait_until(Duration::from_secs(20), || b1.ping("192.168.123.2", 1)), "b1 cannot reach b2 in namespace 2");
    // Now both namespaces are full; traffic in one never reaches the other.
    let (a2_before, b2_before) = (rx_packets(a2), rx_packets(b2));
    assert_eq!(a1.ping_count("192.168.123.2", 10), 10);
    let (a2_after, b2_after) = (rx_packets(a2), rx_packets(b2));
    assert!(a2_after >= a2_before + 10, "a2 did not get a1's pings ({a2_before} -> {a2_after})");
    assert!(b2_after < b2_before + 3, "b2 saw namespace 1's pings ({b2_before} -> {b2_after})");
    assert_eq!(b1.ping_count("192.168.123.2", 5), 5);
}

#[test]
fn ingress_pins_host_names_to_namespaces() {
    if !can_run() {
        return;
    }
    let dir = TempDir::new("ingress");
    let (server_ns, hosts) = star(&["good1", "good2", "bad"]);
    let [good1, good2, bad] = &hosts[..] else { unreachable!() };
    let yaml = dir.write("server.yaml", &server_yaml(true, "", ""));
    let _server = Rgost::start(&server_ns, &dir, "server", &["-C", yaml.to_str().expect("path")]);
    let _g1 = client(good1, &dir, "good1", "host-1-ns1", "192.168.123.1", NS1);
    let _g2 = client(good2, &dir, "good2", "host-2-ns1", "192.168.123.2", NS1);
    // Claims host-2-ns1 (pinned to namespace 1) with namespace 2's id.
    let wrong = client(bad, &dir, "bad", "host-2-ns1", "192.168.123.2", NS2);

    assert!(wait_until(Duration::from_secs(20), || good1.ping("192.168.123.2", 1)), "the admitted hosts cannot talk");
    assert!(
        wait_until(Duration::from_secs(10), || wrong.log().contains("HostUnreachable")),
        "the refused client does not say why:\n{}",
        wrong.log()
    );
    assert!(!bad.ping("192.168.123.1", 1), "the refused host got through");
    // It keeps retrying with backoff: more than one refusal logged, but not a flood.
    assert!(wait_until(Duration::from_secs(5), || wrong.log().matches("HostUnreachable").count() >= 2));
    assert!(wrong.log().matches("HostUnreachable").count() < 30);
    assert_eq!(good2.ping_count("192.168.123.1", 5), 5);
}
