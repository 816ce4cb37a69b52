//! SIGHUP re-reads the config file, end to end in network namespaces: a
//! client keeps pinging across the reload with no loss, a route added to
//! the file works at once, a change that needs a restart is said to, an
//! invalid file is refused with the start's error and the running config
//! stays, and a TUN client survives SIGHUP too.

// Blocking test code timing real processes: std Instant is right here.
#![allow(clippy::disallowed_types, clippy::expect_used)]

mod common;

use std::process::Stdio;
use std::time::Duration;

use common::*;
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;

fn server_yaml(port: u16, extra_route: &str) -> String {
    format!(
        "\
services:
  - name: service-0
    addr: :{port}
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
      - dst: 192.168.123.2
        gateway: host-2
{extra_route}"
    )
}

fn hangup(process: &Rgost) {
    let pid = process.pid().expect("running");
    kill(Pid::from_raw(pid as i32), Signal::SIGHUP).expect("send SIGHUP");
}

/// How many times `needle` occurs in the process's log.
fn count(process: &Rgost, needle: &str) -> usize {
    process.log().matches(needle).count()
}

#[test]
fn sighup_reloads_the_config_while_clients_keep_pinging() {
    if !can_run() {
        return;
    }
    let dir = TempDir::new("reload");
    let server_ns = Netns::new("srv");
    let h1 = Netns::new("h1");
    let h2 = Netns::new("h2");
    veth(&server_ns, "10.14.1.1/24", &h1, "10.14.1.2/24");
    veth(&server_ns, "10.14.2.1/24", &h2, "10.14.2.2/24");
    // host-2 also owns a LAN that the first config does not route.
    lan(&h2, "192.168.200.1/24");
    let config = dir.write("server.yaml", &server_yaml(8443, ""));
    let mut server = Rgost::start(&server_ns, &dir, "server", &["-C", config.to_str().expect("path")]);
    let client_yaml = dir.write(
        "host-2.yaml",
        "\
services:
  - name: host-2
    addr: :0
    handler:
      type: tun
    listener:
      type: tun
      metadata:
        net: 192.168.123.2/24
    forwarder:
      nodes:
        - name: host-2
          addr: host-2
chains:
  - name: chain-0
    hops:
      - name: hop-0
        nodes:
          - name: node-0
            addr: 10.14.2.1:8443
            connector:
              type: router
",
    );
    let mut c1 = Rgost::start(
        &h1,
        &dir,
        "host-1",
        &["-L", "tun:///host-1?net=192.168.123.1/24&route=192.168.200.0/24", "-F", "router://10.14.1.1:8443"],
    );
    let mut c2 = Rgost::start(&h2, &dir, "host-2", &["-C", client_yaml.to_str().expect("path")]);
    assert!(wait_until(Duration::from_secs(20), || h1.ping("192.168.123.2", 1)), "tunnel never came up");
    assert!(!h1.ping("192.168.200.1", 1), "the LAN is not routed yet");
    // The drop is visible at info, with its destination.
    assert!(
        wait_until(Duration::from_secs(3), || {
            let log = server.log();
            log.lines().any(|l| l.contains("INFO") && l.contains("packets dropped") && l.contains("dst=192.168.200.1"))
        }),
        "no log line for the dropped packets: {}",
        server.log()
    );

    // 60 pings, 0.1 s apart, across every reload below.
    let pinger = h1
        .command("ping")
        .args(["-c", "60", "-i", "0.1", "-W", "1", "-n", "-q", "192.168.123.2"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("start ping");

    // 1. A route added to the file works after SIGHUP.
    std::fs::write(&config, server_yaml(8443, "      - dst: 192.168.200.0/24\n        gateway: host-2\n"))
        .expect("write");
    hangup(&server);
    assert!(wait_until(Duration::from_secs(5), || count(&server, "config reloaded") == 1), "no reload");
    assert!(h1.ping("192.168.200.1", 2), "the added route does not work");

    // 2. A change that needs a restart is said to, the rest still applies.
    std::fs::write(&config, server_yaml(9443, "      - dst: 192.168.200.0/24\n        gateway: host-2\n"))
        .expect("write");
    hangup(&server);
    assert!(wait_until(Duration::from_secs(5), || count(&server, "config reloaded") == 2), "no second reload");
    assert!(server.log().contains("the listen address (addr) changed: restart to apply it"), "{}", server.log());

    // 3. An invalid file is refused with the start's error; the running config stays.
    std::fs::write(&config, "services:\n  - name: service-0\n    addr: :8443\n    handlr: {type: router}\n")
        .expect("write");
    hangup(&server);
    assert!(
        wait_until(Duration::from_secs(5), || count(&server, "reload refused, the running config stays") == 1),
        "{}",
        server.log()
    );
    assert!(server.log().contains("handlr"), "the error does not name the key: {}", server.log());
    assert!(server.running(), "an invalid file stopped the server");
    assert!(h1.ping("192.168.200.1", 2), "the refused reload changed the running routes");

    // 4. A TUN client survives SIGHUP (its device stays); a change to its
    // TUN settings needs a restart.
    hangup(&c2);
    std::thread::sleep(Duration::from_millis(300));
    assert!(c2.running(), "SIGHUP killed the client");
    assert!(h2.has_addr("192.168.123.2"), "the client's TUN device went away");
    std::fs::write(&client_yaml, std::fs::read_to_string(&client_yaml).expect("read").replace("/24", "/25"))
        .expect("write");
    hangup(&c2);
    assert!(
        wait_until(Duration::from_secs(5), || c2.log().contains("settings changed: restart to apply them")),
        "{}",
        c2.log()
    );
    hangup(&c1);
    std::thread::sleep(Duration::from_millis(300));
    assert!(c1.running(), "SIGHUP killed the -L client");

    let out = pinger.wait_with_output().expect("ping");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("60 packets transmitted, 60 received"), "pings were lost across the reloads: {text}");
    assert!(server.terminate().is_some_and(|s| s.success()));
}
