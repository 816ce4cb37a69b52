//! The seed's first example, end to end, in network namespaces: a router
//! server and two TUN clients (one from the command line, one from YAML),
//! pings both ways, LAN routes, a multi-MB TCP transfer, a server restart
//! the clients recover from on their own, and a clean client shutdown.
#![allow(clippy::expect_used, clippy::unwrap_used)]

mod common;

use std::time::Duration;

use common::*;

const SERVER_YAML: &str = "\
services:
  - name: service-0
    addr: :8443
    handler:
      type: router
      metadata:
        router: router-0
    listener:
      type: tcp
routers:
  - name: router-0
    routes:
      - dst: 192.168.123.1
        gateway: host-1
      - dst: 192.168.100.0/24
        gateway: host-1
      - dst: 192.168.123.2
        gateway: host-2
      - dst: 192.168.200.0/24
        gateway: host-2
";

fn client_yaml(server: &str) -> String {
    format!(
        "\
services:
- name: service-0
  handler:
    type: tun
  listener:
    type: tun
    metadata:
      net: 192.168.123.2/24
      route: 192.168.100.0/24
  forwarder:
    nodes:
    - name: host
      addr: host-2
chains:
- name: chain-0
  hops:
  - name: hop-0
    nodes:
    - name: node-0
      addr: {server}:8443
      connector:
        type: router
      dialer:
        type: tcp
"
    )
}

#[test]
fn seed_example_end_to_end() {
    if !can_run() {
        return;
    }
    let dir = TempDir::new("seed");
    let server_ns = Netns::new("srv");
    let h1 = Netns::new("h1");
    let h2 = Netns::new("h2");
    veth(&server_ns, "10.11.1.1/24", &h1, "10.11.1.2/24");
    veth(&server_ns, "10.11.2.1/24", &h2, "10.11.2.2/24");
    lan(&h1, "192.168.100.1/24");
    lan(&h2, "192.168.200.1/24");

    let server_yaml = dir.write("server.yaml", SERVER_YAML);
    let client_yaml = dir.write("client.yaml", &client_yaml("10.11.2.1"));
    let server_yaml = server_yaml.to_str().expect("path");
    let mut server = Rgost::start(&server_ns, &dir, "server", &["-C", server_yaml]);
    let mut host1 = Rgost::start(
        &h1,
        &dir,
        "host-1",
        &["-L", "tun:///host-1?net=192.168.123.1/24&route=192.168.200.0/24", "-F", "router://10.11.1.1:8443"],
    );
    let mut host2 = Rgost::start(&h2, &dir, "host-2", &["-C", client_yaml.to_str().expect("path")]);

    // Tunnel addresses, both ways.
    assert!(wait_until(Duration::from_secs(20), || h1.ping("192.168.123.2", 1)), "host-1 cannot reach host-2");
    assert!(h2.ping("192.168.123.1", 2), "host-2 cannot reach host-1");
    // Each reaches the other's LAN.
    assert!(h1.ping("192.168.200.1", 2), "host-1 cannot reach host-2's LAN");
    assert!(h2.ping("192.168.100.1", 2), "host-2 cannot reach host-1's LAN");
    assert_eq!(h1.ping_count("192.168.123.2", 10), 10, "pings lost on an idle tunnel");

    // Several MB of TCP, both directions, byte for byte.
    let data = pattern(8 << 20, 1);
    let got = tcp_transfer(&h1, &h2, "192.168.123.2", 5001, data.clone(), Duration::from_secs(30));
    assert!(got == data, "host-1 -> host-2: received {} of {} bytes, or different bytes", got.len(), data.len());
    let data = pattern(6 << 20, 2);
    let got = tcp_transfer(&h2, &h1, "192.168.100.1", 5002, data.clone(), Duration::from_secs(30));
    assert!(got == data, "host-2 -> host-1's LAN: received {} of {} bytes, or different bytes", got.len(), data.len());

    // Server restart: the clients come back by themselves, devices stay up.
    let status = server.terminate().expect("server exit status");
    assert!(status.success(), "server exited with {status}");
    assert!(!h1.ping("192.168.123.2", 1), "ping went through with the server stopped");
    assert!(h1.has_addr("192.168.123.1") && h2.has_addr("192.168.123.2"), "TUN device gone after losing the server");
    let mut server = Rgost::start(&server_ns, &dir, "server-restarted", &["-C", server_yaml]);
    assert!(
        wait_until(Duration::from_secs(15), || h1.ping("192.168.123.2", 1)),
        "clients did not come back after the server restart"
    );
    assert!(h2.ping("192.168.100.1", 2), "host-2 cannot reach host-1's LAN after the restart");
    assert!(host1.running() && host2.running(), "a client exited");

    // SIGTERM: exit 0, device and routes removed.
    let status = host1.terminate().expect("host-1 exit status");
    assert!(status.success(), "host-1 exited with {status}");
    assert!(!h1.has_addr("192.168.123.1"), "host-1's TUN device left behind");
    assert!(!h1.ip(&["route", "show"]).contains("192.168.200.0/24"), "host-1's route left behind");
    let status = host2.terminate().expect("host-2 exit status");
    assert!(status.success(), "host-2 exited with {status}");
    assert!(server.terminate().expect("server exit status").success());
}
