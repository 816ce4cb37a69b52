//! Issue 4 end to end: encrypted transports (TLS with CA verification, a
//! self-signed server, mTLS, ws and wss) and authentication, each with a
//! router server and two TUN clients in their own namespaces.

#![allow(clippy::expect_used)]

mod common;

use std::path::PathBuf;
use std::time::Duration;

use common::*;
use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, IsCa, KeyPair};

/// The server is 10.12.1.1 (seen from h1) and 10.12.2.1 (from h2).
const SERVER_FROM_H1: &str = "10.12.1.1";
const SERVER_FROM_H2: &str = "10.12.2.1";

/// A server, two client namespaces, and the tunnel addresses 10.70.0.1/.2.
struct Setup {
    dir: TempDir,
    srv: Netns,
    h1: Netns,
    h2: Netns,
}

impl Setup {
    fn new(tag: &str) -> Setup {
        let dir = TempDir::new(tag);
        let srv = Netns::new("srv");
        let h1 = Netns::new("h1");
        let h2 = Netns::new("h2");
        veth(&srv, "10.12.1.1/24", &h1, "10.12.1.2/24");
        veth(&srv, "10.12.2.1/24", &h2, "10.12.2.2/24");
        Setup { dir, srv, h1, h2 }
    }

    /// A server config: `listener` and `handler_extra` are YAML spliced in.
    fn server(&self, label: &str, listener: &str, handler_extra: &str, extra_sections: &str) -> Rgost {
        let yaml = format!(
            "\
services:
- name: secure
  addr: :8443
  handler:
    type: router
{handler_extra}    metadata:
      router: router-0
  listener:
{listener}
routers:
- name: router-0
  routes:
  - dst: 10.70.0.1
    gateway: host-1
  - dst: 10.70.0.2
    gateway: host-2
{extra_sections}"
        );
        let path = self.dir.write(&format!("{label}.yaml"), &yaml);
        Rgost::start(&self.srv, &self.dir, label, &["-C", path.to_str().expect("path")])
    }

    /// A client from the command line; `node` is the `-F` URL.
    fn client(&self, ns: &Netns, host: &str, addr: &str, node: &str) -> Rgost {
        let service = format!("tun:///{host}?net={addr}/24");
        Rgost::start(ns, &self.dir, host, &["-L", &service, "-F", node])
    }

    /// A client from YAML; `node` is the node's YAML (connector, dialer...).
    fn client_yaml(&self, ns: &Netns, host: &str, addr: &str, node: &str) -> Rgost {
        let yaml = format!(
            "\
services:
- name: tun
  handler:
    type: tun
    chain: chain-0
  listener:
    type: tun
    metadata:
      net: {addr}/24
  forwarder:
    nodes:
    - name: target
      addr: {host}
chains:
- name: chain-0
  hops:
  - name: hop-0
    nodes:
    - name: node-0
{node}"
        );
        let path = self.dir.write(&format!("{host}.yaml"), &yaml);
        Rgost::start(ns, &self.dir, host, &["-C", path.to_str().expect("path")])
    }

    /// Whether the two clients reach each other through the tunnel, both ways.
    fn tunnel_works(&self) -> bool {
        wait_until(Duration::from_secs(20), || self.h1.ping("10.70.0.2", 1)) && self.h2.ping("10.70.0.1", 2)
    }
}

/// A CA, a server certificate (for the name `rgost.test` and the server's
/// addresses) and a client certificate, as PEM files; plus a second CA that
/// signed nothing of ours.
struct Pki {
    dir: PathBuf,
}

impl Pki {
    fn new(dir: &TempDir) -> Pki {
        let dir = dir.0.join("pki");
        std::fs::create_dir_all(&dir).expect("pki dir");
        let ca = |name: &str| {
            let mut params = CertificateParams::new(Vec::<String>::new()).expect("ca params");
            params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
            let ca = CertifiedIssuer::self_signed(params, KeyPair::generate().expect("key")).expect("ca");
            std::fs::write(dir.join(name), ca.pem()).expect("write ca");
            ca
        };
        let ca_ours = ca("ca.pem");
        let _other = ca("other-ca.pem");
        let names = vec!["rgost.test".to_owned(), SERVER_FROM_H1.to_owned(), SERVER_FROM_H2.to_owned()];
        for (file, names) in [("server", names), ("client", vec!["client.rgost.test".to_owned()])] {
            let key = KeyPair::generate().expect("key");
            let cert = CertificateParams::new(names).expect("params").signed_by(&key, &ca_ours).expect("sign");
            std::fs::write(dir.join(format!("{file}.pem")), cert.pem()).expect("write cert");
            std::fs::write(dir.join(format!("{file}.key")), key.serialize_pem()).expect("write key");
        }
        Pki { dir }
    }

    fn path(&self, name: &str) -> String {
        self.dir.join(name).to_str().expect("path").to_owned()
    }
}

#[test]
fn tls_with_ca_verification_from_yaml_and_command_line() {
    if !can_run() {
        return;
    }
    let s = Setup::new("tls");
    let pki = Pki::new(&s.dir);
    let listener = format!(
        "    type: tls\n    tls:\n      certFile: {}\n      keyFile: {}\n",
        pki.path("server.pem"),
        pki.path("server.key")
    );
    let _server = s.server("server", &listener, "", "");
    // host-1 on the command line, verifying by CA and server name.
    let _h1 = s.client(
        &s.h1,
        "host-1",
        "10.70.0.1",
        &format!("router+tls://{SERVER_FROM_H1}:8443?caFile={}&serverName=rgost.test", pki.path("ca.pem")),
    );
    // host-2 in YAML with a dialer tls block, verifying the address.
    let node = format!(
        "      addr: {SERVER_FROM_H2}:8443\n      connector:\n        type: router\n      dialer:\n        type: tls\n        tls:\n          caFile: {}\n",
        pki.path("ca.pem")
    );
    let _h2 = s.client_yaml(&s.h2, "host-2", "10.70.0.2", &node);
    assert!(s.tunnel_works(), "no tunnel over TLS");

    // A client trusting another CA is refused by its own verification.
    let bad = Netns::new("bad");
    veth(&s.srv, "10.12.3.1/24", &bad, "10.12.3.2/24");
    let mut imposter = s.client(
        &bad,
        "host-3",
        "10.70.0.3",
        &format!("router+tls://10.12.3.1:8443?caFile={}&serverName=rgost.test", pki.path("other-ca.pem")),
    );
    assert!(
        wait_until(Duration::from_secs(10), || imposter.log().to_lowercase().contains("certificate")),
        "a client with the wrong CA did not report a certificate error:\n{}",
        imposter.log()
    );
    assert!(imposter.running(), "a refused client must keep retrying, not exit");
}

#[test]
fn self_signed_server_and_unverifying_client_warns() {
    if !can_run() {
        return;
    }
    let s = Setup::new("selfsigned");
    let server = s.server("server", "    type: tls\n", "", "");
    let h1 = s.client(&s.h1, "host-1", "10.70.0.1", &format!("router+tls://{SERVER_FROM_H1}:8443"));
    let _h2 = s.client(&s.h2, "host-2", "10.70.0.2", &format!("router+tls://{SERVER_FROM_H2}:8443?secure=false"));
    assert!(s.tunnel_works(), "no tunnel over TLS with a self-signed server");
    assert!(server.log().contains("self-signed"), "the server did not say it uses a self-signed certificate");
    assert!(h1.log().to_lowercase().contains("not verif"), "the client did not warn that it skips verification");
}

#[test]
fn mtls_requires_a_client_certificate() {
    if !can_run() {
        return;
    }
    let s = Setup::new("mtls");
    let pki = Pki::new(&s.dir);
    let listener = format!(
        "    type: tls\n    tls:\n      certFile: {}\n      keyFile: {}\n      caFile: {}\n",
        pki.path("server.pem"),
        pki.path("server.key"),
        pki.path("ca.pem")
    );
    let _server = s.server("server", &listener, "", "");
    let mut clients = Vec::new();
    for (ns, host, addr, from) in
        [(&s.h1, "host-1", "10.70.0.1", SERVER_FROM_H1), (&s.h2, "host-2", "10.70.0.2", SERVER_FROM_H2)]
    {
        let node = format!(
            "      addr: {from}:8443\n      connector:\n        type: router\n      dialer:\n        type: tls\n        tls:\n          caFile: {}\n          certFile: {}\n          keyFile: {}\n          serverName: rgost.test\n",
            pki.path("ca.pem"),
            pki.path("client.pem"),
            pki.path("client.key")
        );
        clients.push(s.client_yaml(ns, host, addr, &node));
    }
    assert!(s.tunnel_works(), "no tunnel over mTLS");

    // Without a certificate: refused, and its host gets nothing.
    let bad = Netns::new("nocert");
    veth(&s.srv, "10.12.3.1/24", &bad, "10.12.3.2/24");
    let mut nocert = s.client(
        &bad,
        "host-2",
        "10.70.0.2",
        &format!("router+tls://10.12.3.1:8443?caFile={}&serverName=rgost.test", pki.path("ca.pem")),
    );
    std::thread::sleep(Duration::from_secs(3));
    assert!(!bad.ping("10.70.0.1", 1), "a client without a certificate reached the tunnel");
    assert!(nocert.running(), "a refused client must keep retrying");
    assert!(!nocert.log().contains("connected to router server"), "a client without a certificate was accepted");
}

#[test]
fn ws_and_wss_with_a_path() {
    if !can_run() {
        return;
    }
    for (scheme, listener) in [
        ("ws", "    type: ws\n    metadata:\n      path: /tunnel\n"),
        ("wss", "    type: wss\n    metadata:\n      path: /tunnel\n"),
    ] {
        let s = Setup::new(scheme);
        let _server = s.server("server", listener, "", "");
        let _h1 =
            s.client(&s.h1, "host-1", "10.70.0.1", &format!("router+{scheme}://{SERVER_FROM_H1}:8443?path=/tunnel"));
        let node = format!(
            "      addr: {SERVER_FROM_H2}:8443\n      connector:\n        type: router\n      dialer:\n        type: {scheme}\n        metadata:\n          path: /tunnel\n"
        );
        let _h2 = s.client_yaml(&s.h2, "host-2", "10.70.0.2", &node);
        assert!(s.tunnel_works(), "no tunnel over {scheme}");
        let data = pattern(2 << 20, 7);
        let got = tcp_transfer(&s.h1, &s.h2, "10.70.0.2", 5003, data.clone(), Duration::from_secs(30));
        assert!(got == data, "{scheme}: received {} of {} bytes, or different bytes", got.len(), data.len());

        // The wrong path is refused.
        let bad = Netns::new("badpath");
        veth(&s.srv, "10.12.3.1/24", &bad, "10.12.3.2/24");
        let wrong = s.client(&bad, "host-3", "10.70.0.3", &format!("router+{scheme}://10.12.3.1:8443?path=/elsewhere"));
        std::thread::sleep(Duration::from_secs(2));
        assert!(
            !wrong.log().contains("connected to router server"),
            "{scheme}: a client on the wrong path was accepted"
        );
    }
}

#[test]
fn authentication_inline_auther_and_refusal() {
    if !can_run() {
        return;
    }
    let s = Setup::new("auth");
    let authers = "authers:\n- name: users\n  auths:\n  - username: alice\n    password: s3cret\n  - username: bob\n    password: hunter2\n";
    let _server = s.server("server", "    type: tcp\n", "    auther: users\n", authers);
    // Credentials in the URL's userinfo, and in the node's connector auth block.
    let _h1 = s.client(&s.h1, "host-1", "10.70.0.1", &format!("router://alice:s3cret@{SERVER_FROM_H1}:8443"));
    let node = format!(
        "      addr: {SERVER_FROM_H2}:8443\n      connector:\n        type: router\n        auth:\n          username: bob\n          password: hunter2\n      dialer:\n        type: tcp\n"
    );
    let _h2 = s.client_yaml(&s.h2, "host-2", "10.70.0.2", &node);
    assert!(s.tunnel_works(), "authenticated clients got no tunnel");

    // Wrong password and no credentials: Unauthorized, told in plain words, retried.
    for (tag, node) in [
        ("wrongpw", "router://alice:wrong@10.12.3.1:8443".to_owned()),
        ("nocreds", "router://10.12.3.1:8443".to_owned()),
    ] {
        let bad = Netns::new(tag);
        veth(&s.srv, "10.12.3.1/24", &bad, "10.12.3.2/24");
        let mut refused = s.client(&bad, "host-1", "10.70.0.9", &node);
        assert!(
            wait_until(Duration::from_secs(10), || refused.log().contains("Unauthorized")),
            "{tag}: no Unauthorized in the client's log:\n{}",
            refused.log()
        );
        assert!(refused.running(), "{tag}: a refused client must keep retrying");
        // host-1's traffic still goes to the real host-1.
        assert!(s.h2.ping("10.70.0.1", 2), "{tag}: a refused client disturbed host-1");
        drop(refused);
        drop(bad);
    }
}

#[test]
fn auth_on_the_command_line_and_host_binding() {
    if !can_run() {
        return;
    }
    let s = Setup::new("authcli");
    // The server from the command line needs routes, so keep YAML for those,
    // with the handler's auth block and rgost's host binding.
    let handler = "    auth:\n      username: alice\n      password: s3cret\n      hosts: [host-1, host-2]\n";
    let _server = s.server("server", "    type: tcp\n", handler, "");
    let _h1 = s.client(&s.h1, "host-1", "10.70.0.1", &format!("router://alice:s3cret@{SERVER_FROM_H1}:8443"));
    let _h2 = s.client(&s.h2, "host-2", "10.70.0.2", &format!("router://alice:s3cret@{SERVER_FROM_H2}:8443"));
    assert!(s.tunnel_works(), "no tunnel with the handler's auth");

    // Right password, but a host the binding does not list.
    let bad = Netns::new("unbound");
    veth(&s.srv, "10.12.3.1/24", &bad, "10.12.3.2/24");
    let mut unbound = s.client(&bad, "host-9", "10.70.0.9", "router://alice:s3cret@10.12.3.1:8443");
    assert!(
        wait_until(Duration::from_secs(10), || !unbound.log().is_empty() && unbound.log().contains("refused")),
        "a host outside the binding was not refused:\n{}",
        unbound.log()
    );
    assert!(unbound.running());

    // `router://user:pass@:PORT` on the server's command line (no routes needed
    // for the handshake): a wrong password is refused.
    let cli_server = Rgost::start(&s.srv, &s.dir, "cli-server", &["-L", "router://carol:pw@:8444"]);
    let mut wrong = s.client(&s.h1, "host-5", "10.71.0.5", &format!("router://carol:nope@{SERVER_FROM_H1}:8444"));
    assert!(
        wait_until(Duration::from_secs(10), || wrong.log().contains("Unauthorized")),
        "the command-line server accepted a wrong password:\n{}\n{}",
        wrong.log(),
        cli_server.log()
    );
    assert!(wrong.running());
}
