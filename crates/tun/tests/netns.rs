//! TUN device tests, each in its own network namespace.
//!
//! Every test creates `rgtun-<pid>-<n>` with `ip netns add`, runs its body on
//! a dedicated thread that has entered the namespace (`setns`) and drives a
//! current-thread tokio runtime, and deletes the namespace afterwards, also
//! when the body panics. Needs root, `/dev/net/tun` and iproute2; otherwise
//! each test fails, unless RGOST_SKIP_E2E=1 makes it print a SKIP line.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::future::Future;
use std::net::{IpAddr, SocketAddr};
use std::path::Path;
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use nix::sched::CloneFlags;
use rgost_tun::{RecvBatch, SendBatch, Tun, TunConfig, TunError, TunRoute};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpStream, UdpSocket};
use tokio::time::timeout;

static NEXT_NS: AtomicUsize = AtomicUsize::new(0);

/// Deletes the namespace when dropped.
struct NetnsGuard(String);

impl Drop for NetnsGuard {
    fn drop(&mut self) {
        let _ = Command::new("ip").args(["netns", "del", &self.0]).status();
    }
}

fn can_run(test: &str) -> bool {
    let reason = if !nix::unistd::geteuid().is_root() {
        Some("not root")
    } else if !Path::new("/dev/net/tun").exists() {
        Some("/dev/net/tun missing")
    } else if Command::new("ip").arg("-V").output().is_err() {
        Some("iproute2 `ip` missing")
    } else {
        None
    };
    match reason {
        Some(reason) => {
            // Skipping silently would make a green CI run a lie: only an
            // explicit RGOST_SKIP_E2E=1 (a developer machine) skips.
            assert!(
                std::env::var_os("RGOST_SKIP_E2E").is_some_and(|v| v == "1"),
                "{test}: {reason}; set RGOST_SKIP_E2E=1 to skip"
            );
            println!("SKIP {test}: {reason}");
            false
        }
        None => true,
    }
}

/// Runs `body(ns)` in a fresh network namespace called `ns`.
fn in_netns<F, Fut>(test: &str, body: F)
where
    F: FnOnce(String) -> Fut + Send + 'static,
    Fut: Future<Output = ()>,
{
    if !can_run(test) {
        return;
    }
    let ns = format!("rgtun-{}-{}", std::process::id(), NEXT_NS.fetch_add(1, Ordering::Relaxed));
    let status = Command::new("ip").args(["netns", "add", &ns]).status().unwrap();
    assert!(status.success(), "ip netns add {ns} failed");
    let guard = NetnsGuard(ns.clone());
    let result = std::thread::spawn(move || {
        let file = std::fs::File::open(format!("/run/netns/{ns}")).unwrap();
        nix::sched::setns(&file, CloneFlags::CLONE_NEWNET).unwrap();
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        rt.block_on(body(ns));
    })
    .join();
    drop(guard);
    if let Err(panic) = result {
        std::panic::resume_unwind(panic);
    }
}

fn ip(ns: &str, args: &[&str]) -> (bool, String) {
    let out = Command::new("ip").args(["-n", ns]).args(args).output().unwrap();
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    (out.status.success(), text)
}

fn ip_ok(ns: &str, args: &[&str]) -> String {
    let (ok, text) = ip(ns, args);
    assert!(ok, "ip -n {ns} {args:?} failed: {text}");
    text
}

fn link_exists(ns: &str, name: &str) -> bool {
    ip(ns, &["link", "show", "dev", name]).0
}

fn net(s: &str) -> ipnet::IpNet {
    s.parse().unwrap()
}

fn route(dst: &str, gw: Option<&str>) -> TunRoute {
    TunRoute { dst: net(dst), gateway: gw.map(|g| g.parse().unwrap()) }
}

fn full_config(name: &str) -> TunConfig {
    TunConfig {
        name: Some(name.to_string()),
        addrs: vec![net("10.77.0.1/24"), net("10.78.0.1/16"), net("fd00:77::1/64")],
        mtu: 1400,
        routes: vec![
            route("10.200.0.0/16", None),
            route("10.201.0.0/16", Some("10.77.0.254")),
            route("fd00:200::/32", None),
            route("fd00:201::/48", Some("fd00:77::fe")),
        ],
        offload: false,
    }
}

/// IPv4 header checksum.
fn checksum(data: &[u8]) -> u16 {
    let mut sum: u32 = data.chunks(2).map(|c| u32::from(u16::from_be_bytes([c[0], *c.get(1).unwrap_or(&0)]))).sum();
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !(sum as u16)
}

/// An IPv4 header (no options, DF set, TTL 64) with its checksum, for a
/// packet of `total` bytes carrying protocol `proto`.
fn ipv4_header(src: SocketAddr, dst: SocketAddr, proto: u8, total: usize) -> Vec<u8> {
    let (IpAddr::V4(s), IpAddr::V4(d)) = (src.ip(), dst.ip()) else { panic!("IPv4 only") };
    let mut p = Vec::with_capacity(total);
    p.extend_from_slice(&[0x45, 0, 0, 0, 0, 1, 0x40, 0, 64, proto, 0, 0]);
    p[2..4].copy_from_slice(&(total as u16).to_be_bytes());
    p.extend_from_slice(&s.octets());
    p.extend_from_slice(&d.octets());
    let c = checksum(&p[..20]);
    p[10..12].copy_from_slice(&c.to_be_bytes());
    p
}

/// An IPv4/UDP packet with a valid checksum.
fn udp4(src: SocketAddr, dst: SocketAddr, payload: &[u8]) -> Vec<u8> {
    let mut p = ipv4_header(src, dst, 17, 20 + 8 + payload.len());
    p.extend_from_slice(&src.port().to_be_bytes());
    p.extend_from_slice(&dst.port().to_be_bytes());
    p.extend_from_slice(&((8 + payload.len()) as u16).to_be_bytes());
    p.extend_from_slice(&[0, 0]);
    p.extend_from_slice(payload);
    set_l4_checksum(&mut p, 26);
    p
}

/// Sum of 16-bit big-endian words (ones' complement, not folded).
fn sum16(data: &[u8]) -> u32 {
    data.chunks(2).map(|c| u32::from(u16::from_be_bytes([c[0], *c.get(1).unwrap_or(&0)]))).sum()
}

/// Fills in the TCP or UDP checksum (at byte `at`) of an IPv4 packet
/// without options or an IPv6 packet without extension headers, whose
/// checksum field is zero.
fn set_l4_checksum(p: &mut [u8], at: usize) {
    let (addrs, proto, iph) = if p[0] >> 4 == 6 { (8..40, p[6], 40) } else { (12..20, p[9], 20) };
    let proto = u32::from(proto);
    let mut sum = sum16(&p[addrs]) + proto + (p.len() - iph) as u32 + sum16(&p[iph..]);
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    // A computed UDP checksum of 0 is sent as 0xffff (0 means "none").
    let c = match !(sum as u16) {
        0 if proto == 17 => 0xffff,
        c => c,
    };
    p[at..at + 2].copy_from_slice(&c.to_be_bytes());
}

/// A device like [`full_config`]'s, with offload (which the kernel must grant).
async fn offload_tun(name: &str) -> Tun {
    let mut config = full_config(name);
    config.offload = true;
    let tun = Tun::create(&config).await.unwrap();
    assert!(tun.offload(), "kernel refused TUN offload");
    tun
}

/// Receives until a packet satisfying `want` shows up (skipping e.g. IPv6
/// router solicitations), with a timeout.
async fn recv_matching(tun: &Tun, want: impl Fn(&[u8]) -> bool) -> Vec<u8> {
    let mut buf = vec![0u8; 65536];
    timeout(Duration::from_secs(15), async {
        loop {
            let n = tun.recv(&mut buf).await.unwrap();
            if want(&buf[..n]) {
                return buf[..n].to_vec();
            }
        }
    })
    .await
    .expect("no matching packet from the TUN device")
}

#[test]
fn create_configures_device_and_close_removes_it() {
    in_netns("create_configures_device_and_close_removes_it", |ns| async move {
        let tun = Tun::create(&full_config("rgt0")).await.unwrap();
        assert_eq!(tun.name(), "rgt0");
        assert_eq!(tun.mtu(), 1400);

        let link = ip_ok(&ns, &["link", "show", "dev", "rgt0"]);
        assert!(link.contains("mtu 1400"), "{link}");
        assert!(link.contains(",UP") || link.contains("<UP"), "{link}");
        let addrs = ip_ok(&ns, &["addr", "show", "dev", "rgt0"]);
        for a in ["inet 10.77.0.1/24", "inet 10.78.0.1/16", "inet6 fd00:77::1/64"] {
            assert!(addrs.contains(a), "missing {a}: {addrs}");
        }
        assert!(!addrs.contains("tentative"), "DAD not skipped: {addrs}");
        let r4 = ip_ok(&ns, &["-4", "route", "show"]);
        assert!(r4.contains("10.200.0.0/16 dev rgt0"), "{r4}");
        assert!(r4.contains("10.201.0.0/16 via 10.77.0.254 dev rgt0"), "{r4}");
        let r6 = ip_ok(&ns, &["-6", "route", "show"]);
        assert!(r6.contains("fd00:200::/32 dev rgt0"), "{r6}");
        assert!(r6.contains("fd00:201::/48 via fd00:77::fe dev rgt0"), "{r6}");

        tun.close().await.unwrap();
        assert!(!link_exists(&ns, "rgt0"));
        let r4 = ip_ok(&ns, &["-4", "route", "show"]);
        assert!(!r4.contains("10.20"), "{r4}");
        let r6 = ip_ok(&ns, &["-6", "route", "show"]);
        assert!(!r6.contains("fd00:20"), "{r6}");
    });
}

#[test]
fn packets_flow_both_ways() {
    in_netns("packets_flow_both_ways", |_ns| async move {
        let tun = Arc::new(Tun::create(&full_config("rgt1")).await.unwrap());

        // Host -> TUN, IPv4: a datagram to a routed address comes out of recv.
        let sock = UdpSocket::bind("10.77.0.1:0").await.unwrap();
        let local = sock.local_addr().unwrap();
        let remote: SocketAddr = "10.200.1.1:9999".parse().unwrap();
        sock.send_to(b"ping4", remote).await.unwrap();
        let pkt = recv_matching(&tun, |p| p[0] >> 4 == 4 && p[9] == 17).await;
        assert_eq!(&pkt[16..20], &[10, 200, 1, 1], "destination");
        assert_eq!(&pkt[12..16], &[10, 77, 0, 1], "source");
        assert_eq!(&pkt[28..], b"ping4");

        // Host -> TUN, IPv6 (through the NODAD address, usable at once).
        let sock6 = UdpSocket::bind("[fd00:77::1]:0").await.unwrap();
        sock6.send_to(b"ping6", "[fd00:200::1]:9999").await.unwrap();
        let pkt6 = recv_matching(&tun, |p| p[0] >> 4 == 6 && p[6] == 17).await;
        let dst6: [u8; 16] = "fd00:200::1".parse::<std::net::Ipv6Addr>().unwrap().octets();
        assert_eq!(&pkt6[24..40], &dst6);
        assert_eq!(&pkt6[48..], b"ping6");

        // TUN -> host: a crafted reply written with send reaches the socket,
        // with a writer task and a reader task sharing the Arc.
        let reply = udp4(remote, local, b"pong");
        let writer = {
            let tun = Arc::clone(&tun);
            tokio::spawn(async move { tun.send(&reply).await })
        };
        let sent = writer.await.unwrap().unwrap();
        assert_eq!(sent, 20 + 8 + 4);
        let mut buf = [0u8; 64];
        let (n, from) =
            timeout(Duration::from_secs(5), sock.recv_from(&mut buf)).await.expect("reply not delivered").unwrap();
        assert_eq!(&buf[..n], b"pong");
        assert_eq!(from, remote);

        let tun = Arc::try_unwrap(tun).unwrap();
        tun.close().await.unwrap();
    });
}

#[test]
fn system_chosen_name_and_duplicate_route() {
    in_netns("system_chosen_name_and_duplicate_route", |ns| async move {
        let config = TunConfig {
            name: None,
            addrs: vec![net("10.90.0.1/24")],
            mtu: 1500,
            // The second one hits EEXIST: a warning, not an error.
            routes: vec![route("10.210.0.0/16", None), route("10.210.0.0/16", None)],
            offload: false,
        };
        let tun = Tun::create(&config).await.unwrap();
        let name = tun.name().to_string();
        assert!(name.starts_with("tun"), "{name}");
        assert!(link_exists(&ns, &name));
        let r4 = ip_ok(&ns, &["-4", "route", "show"]);
        assert!(r4.contains(&format!("10.210.0.0/16 dev {name}")), "{r4}");
        tun.close().await.unwrap();
        assert!(!link_exists(&ns, &name));
    });
}

#[test]
fn unreachable_gateway_fails_and_leaves_nothing() {
    in_netns("unreachable_gateway_fails_and_leaves_nothing", |ns| async move {
        let mut config = full_config("rgt2");
        // Installed first, then rolled back.
        config.routes.insert(0, route("10.220.0.0/16", None));
        // Not on any connected network: the kernel refuses the next hop.
        config.routes.push(route("10.221.0.0/16", Some("192.0.2.1")));
        let err = Tun::create(&config).await.unwrap_err();
        println!("create failed as expected: {err}");
        assert!(matches!(err, TunError::Netlink { .. }), "{err:?}");
        assert!(err.to_string().contains("10.221.0.0/16"), "{err}");
        assert!(!link_exists(&ns, "rgt2"));
        let links = ip_ok(&ns, &["link", "show"]);
        assert!(!links.contains("rgt2"), "{links}");
        let r4 = ip_ok(&ns, &["-4", "route", "show"]);
        assert!(!r4.contains("10.22"), "{r4}");
        let r6 = ip_ok(&ns, &["-6", "route", "show"]);
        assert!(!r6.contains("fd00:20"), "{r6}");
    });
}

#[test]
fn family_mismatch_is_rejected_before_anything_exists() {
    in_netns("family_mismatch_is_rejected_before_anything_exists", |ns| async move {
        let mut config = full_config("rgt3");
        config.routes.push(route("fd00:300::/48", Some("10.77.0.254")));
        let err = Tun::create(&config).await.unwrap_err();
        println!("create failed as expected: {err}");
        assert!(matches!(err, TunError::InvalidRoute { .. }), "{err:?}");
        assert!(!link_exists(&ns, "rgt3"));
    });
}

#[test]
fn bad_address_rolls_back() {
    in_netns("bad_address_rolls_back", |ns| async move {
        // IPv6 needs an MTU of at least 1280: the IPv6 address is refused.
        let config = TunConfig {
            name: Some("rgt4".into()),
            addrs: vec![net("10.80.0.1/24"), net("fd00:80::1/64")],
            mtu: 1200,
            routes: vec![],
            offload: false,
        };
        let err = Tun::create(&config).await.unwrap_err();
        println!("create failed as expected: {err}");
        assert!(matches!(err, TunError::Netlink { .. }), "{err:?}");
        assert!(!link_exists(&ns, "rgt4"));
    });
}

#[test]
fn name_in_use_fails_without_touching_the_owner() {
    in_netns("name_in_use_fails_without_touching_the_owner", |ns| async move {
        let config = TunConfig {
            name: Some("rgt5".into()),
            addrs: vec![net("10.81.0.1/24")],
            mtu: 1400,
            routes: vec![route("10.230.0.0/16", None)],
            offload: false,
        };
        let first = Tun::create(&config).await.unwrap();
        let err = Tun::create(&config).await.unwrap_err();
        println!("create failed as expected: {err}");
        assert!(matches!(err, TunError::Create(_)), "{err:?}");
        assert!(link_exists(&ns, "rgt5"));
        let r4 = ip_ok(&ns, &["-4", "route", "show"]);
        assert!(r4.contains("10.230.0.0/16 dev rgt5"), "{r4}");
        first.close().await.unwrap();
        assert!(!link_exists(&ns, "rgt5"));
    });
}

#[test]
fn shutdown_wakes_a_blocked_reader() {
    in_netns("shutdown_wakes_a_blocked_reader", |ns| async move {
        let config = TunConfig {
            name: Some("rgt6".into()),
            addrs: vec![net("10.82.0.1/24")],
            mtu: 1400,
            routes: vec![route("10.240.0.0/16", None)],
            offload: false,
        };
        let tun = Arc::new(Tun::create(&config).await.unwrap());
        let reader = {
            let tun = Arc::clone(&tun);
            tokio::spawn(async move {
                let mut buf = vec![0u8; 2048];
                loop {
                    // Skip anything the kernel sends on its own.
                    if let Err(e) = tun.recv(&mut buf).await {
                        return e;
                    }
                }
            })
        };
        tokio::time::sleep(Duration::from_millis(50)).await;
        tun.shutdown().await.unwrap();
        let err = timeout(Duration::from_secs(5), reader).await.expect("reader not woken by shutdown").unwrap();
        println!("reader ended with: {err}");
        assert!(!link_exists(&ns, "rgt6"));
        let r4 = ip_ok(&ns, &["-4", "route", "show"]);
        assert!(!r4.contains("10.240"), "{r4}");
        // Idempotent; close after shutdown is fine too.
        tun.shutdown().await.unwrap();
        Arc::try_unwrap(tun).unwrap().close().await.unwrap();
    });
}

#[test]
fn drop_without_close_removes_device() {
    in_netns("drop_without_close_removes_device", |ns| async move {
        let config = TunConfig {
            name: Some("rgt7".into()),
            addrs: vec![net("10.83.0.1/24")],
            mtu: 1400,
            routes: vec![route("10.250.0.0/16", None)],
            offload: false,
        };
        let tun = Tun::create(&config).await.unwrap();
        assert!(link_exists(&ns, "rgt7"));
        drop(tun);
        assert!(!link_exists(&ns, "rgt7"));
        let r4 = ip_ok(&ns, &["-4", "route", "show"]);
        assert!(!r4.contains("10.250"), "{r4}");
    });
}

/// An IPv4/TCP packet with valid checksums.
fn tcp4(src: SocketAddr, dst: SocketAddr, seq: u32, ack: u32, flags: u8, options: &[u8], payload: &[u8]) -> Vec<u8> {
    assert_eq!(options.len() % 4, 0);
    let tcp_len = 20 + options.len() + payload.len();
    let mut p = ipv4_header(src, dst, 6, 20 + tcp_len);
    p.extend_from_slice(&src.port().to_be_bytes());
    p.extend_from_slice(&dst.port().to_be_bytes());
    p.extend_from_slice(&seq.to_be_bytes());
    p.extend_from_slice(&ack.to_be_bytes());
    p.push((((20 + options.len()) / 4) << 4) as u8);
    p.push(flags);
    p.extend_from_slice(&65535u16.to_be_bytes()); // window
    p.extend_from_slice(&[0, 0, 0, 0]); // checksum, urgent pointer
    p.extend_from_slice(options);
    p.extend_from_slice(payload);
    set_l4_checksum(&mut p, 36);
    p
}

/// An IPv6/TCP packet (no options) with a valid checksum.
fn tcp6(src: SocketAddr, dst: SocketAddr, seq: u32, ack: u32, flags: u8, payload: &[u8]) -> Vec<u8> {
    let (IpAddr::V6(s), IpAddr::V6(d)) = (src.ip(), dst.ip()) else { panic!("IPv6 addresses") };
    let tcp_len = 20 + payload.len();
    let mut p = vec![0x60, 0, 0, 0];
    p.extend_from_slice(&(tcp_len as u16).to_be_bytes());
    p.extend_from_slice(&[6, 64]);
    p.extend_from_slice(&s.octets());
    p.extend_from_slice(&d.octets());
    p.extend_from_slice(&src.port().to_be_bytes());
    p.extend_from_slice(&dst.port().to_be_bytes());
    p.extend_from_slice(&seq.to_be_bytes());
    p.extend_from_slice(&ack.to_be_bytes());
    p.extend_from_slice(&[0x50, flags, 0xff, 0xff, 0, 0, 0, 0]);
    p.extend_from_slice(payload);
    set_l4_checksum(&mut p, 56);
    p
}

const SYN: u8 = 0x02;
const RST: u8 = 0x04;
const ACK: u8 = 0x10;

/// A real TCP connection from the host to a peer we play by hand on the
/// device: with offload on, what the host sends arrives as GSO
/// super-packets that recv_batch splits into MTU-sized segments, and
/// segments written with send_batch (coalesced by GRO) reach the socket
/// intact and in order.
#[test]
fn offload_splits_and_coalesces_tcp() {
    in_netns("offload_splits_and_coalesces_tcp", |_ns| async move {
        let tun = offload_tun("rgt8").await;
        let mtu = usize::from(tun.mtu());

        let peer: SocketAddr = "10.200.1.1:8080".parse().unwrap();
        let connect = tokio::spawn(TcpStream::connect(peer));
        let mut batch = RecvBatch::new(tun.mtu());
        let syn = timeout(Duration::from_secs(5), async {
            loop {
                tun.recv_batch(&mut batch).await.unwrap();
                if let Some(p) = batch.packets().find(|p| p[0] == 0x45 && p[9] == 6 && p[33] & SYN != 0) {
                    return p.to_vec();
                }
            }
        })
        .await
        .expect("no SYN");
        let host = SocketAddr::new(
            IpAddr::from(<[u8; 4]>::try_from(&syn[12..16]).unwrap()),
            u16::from_be_bytes([syn[20], syn[21]]),
        );
        let host_isn = u32::from_be_bytes(syn[24..28].try_into().unwrap());
        let peer_isn = 7000u32;
        let mss = (mtu - 40) as u16;
        let mut mss_opt = vec![2, 4];
        mss_opt.extend_from_slice(&mss.to_be_bytes());
        // A one-packet send in offload mode (needs a virtio-net header).
        tun.send(&tcp4(peer, host, peer_isn, host_isn + 1, SYN | ACK, &mss_opt, &[])).await.unwrap();
        let mut stream = timeout(Duration::from_secs(5), connect).await.expect("connect").unwrap().unwrap();

        // Host -> device: 60 kB in one write; the window (65535) takes it all.
        let data: Vec<u8> = (0..60_000u32).map(|i| (i * 7 + i / 251) as u8).collect();
        stream.write_all(&data).await.unwrap();
        let mut got = vec![0u8; data.len()];
        let mut filled = vec![false; data.len()];
        let mut most_per_read = 0;
        timeout(Duration::from_secs(10), async {
            while filled.iter().any(|f| !f) {
                let n = tun.recv_batch(&mut batch).await.unwrap();
                most_per_read = most_per_read.max(n);
                for p in batch.packets() {
                    assert!(p.len() <= mtu, "segment of {} bytes > MTU {mtu}", p.len());
                    if p[0] != 0x45 || p[9] != 6 || u16::from_be_bytes([p[20], p[21]]) != host.port() {
                        continue;
                    }
                    let off = 20 + usize::from(p[32] >> 4) * 4;
                    let seq = u32::from_be_bytes(p[24..28].try_into().unwrap());
                    let at = seq.wrapping_sub(host_isn + 1) as usize;
                    let payload = &p[off..];
                    if payload.is_empty() || at >= data.len() {
                        continue;
                    }
                    got[at..at + payload.len()].copy_from_slice(payload);
                    filled[at..at + payload.len()].iter_mut().for_each(|f| *f = true);
                }
                // Acknowledge what arrived in order, or the host's congestion
                // window stops it after a few segments.
                let in_order = filled.iter().take_while(|f| **f).count() as u32;
                let ack = tcp4(peer, host, peer_isn + 1, host_isn + 1 + in_order, ACK, &[], &[]);
                tun.send(&ack).await.unwrap();
            }
        })
        .await
        .unwrap_or_else(|_| {
            panic!("not all data came out of the device: {} of {}", filled.iter().filter(|f| **f).count(), data.len())
        });
        assert!(got == data, "data corrupted through GSO split");
        println!("most segments from one read: {most_per_read}");
        assert!(most_per_read > 1, "no GSO super-packet seen");

        // Device -> host: 32 in-order segments in one batch, coalesced by GRO.
        let ack = host_isn + 1 + data.len() as u32;
        let seg = usize::from(mss);
        let back: Vec<u8> = (0..32 * seg).map(|i| (i % 253) as u8).collect();
        let mut out = SendBatch::for_device(&tun);
        for (i, chunk) in back.chunks(seg).enumerate() {
            assert!(out.push(&tcp4(peer, host, peer_isn + 1 + (i * seg) as u32, ack, ACK, &[], chunk)));
        }
        assert_eq!(out.len(), 1, "32 segments in one super-packet");
        tun.send_batch(&mut out).await.unwrap();
        assert!(out.is_empty());
        let mut received = vec![0u8; back.len()];
        timeout(Duration::from_secs(5), stream.read_exact(&mut received)).await.expect("data not delivered").unwrap();
        assert!(received == back, "data corrupted through GRO");

        drop(stream);
        tun.close().await.unwrap();
    });
}

/// Device -> host with offload, IPv6: consecutive TCP segments become one
/// GSO super-packet that the kernel accepts (a bad virtio-net header is
/// refused with EINVAL) and handles as one segment of the flow: a segment
/// to a closed port is answered with a reset.
#[test]
fn offload_coalesces_ipv6_tcp() {
    in_netns("offload_coalesces_ipv6_tcp", |_ns| async move {
        let tun = offload_tun("rgt11").await;
        let peer: SocketAddr = "[fd00:200::1]:4000".parse().unwrap();
        let host: SocketAddr = "[fd00:77::1]:9".parse().unwrap();
        let is_rst =
            |p: &[u8]| p.len() >= 60 && p[0] >> 4 == 6 && p[6] == 6 && u16::from_be_bytes([p[42], p[43]]) == 4000;
        // Sent again every second until answered: on a busy machine the new
        // device's IPv6 address may not take packets yet the first time
        // (seen once in CI), which is not what this test is about.
        let mut rst = None;
        for _ in 0..10 {
            let mut out = SendBatch::for_device(&tun);
            for i in 0..3u8 {
                assert!(out.push(&tcp6(peer, host, 1000 + 100 * u32::from(i), 77, ACK, &[i; 100])));
            }
            assert_eq!(out.len(), 1, "three segments in one super-packet");
            let written = tun.send_batch(&mut out).await.unwrap();
            assert_eq!(written, 10 + 40 + 20 + 300);
            if let Ok(p) = timeout(Duration::from_secs(1), recv_matching(&tun, is_rst)).await {
                rst = Some(p);
                break;
            }
        }
        let rst = rst.expect("no reset for the super-packet within 10 tries");
        assert_ne!(rst[53] & RST, 0, "no reset for the super-packet");
        // A reset answering an ACK takes its sequence number from that ACK.
        assert_eq!(u32::from_be_bytes(rst[44..48].try_into().unwrap()), 77);
        tun.close().await.unwrap();
    });
}

/// Device -> host with offload: a batch of small UDP datagrams from two
/// flows, interleaved, reaches the socket intact, each flow in order (UDP
/// is written datagram by datagram, TCP coalesced; see `send_batch`).
#[test]
fn offload_writes_udp_batches_in_order() {
    in_netns("offload_writes_udp_batches_in_order", |_ns| async move {
        let tun = offload_tun("rgt10").await;
        let sock = UdpSocket::bind("10.77.0.1:0").await.unwrap();
        let local = sock.local_addr().unwrap();
        let (a, b): (SocketAddr, SocketAddr) = ("10.200.1.1:9001".parse().unwrap(), "10.200.1.2:9002".parse().unwrap());
        // 40 64-byte datagrams per flow, interleaved, and a shorter last one.
        let mut sent = Vec::new();
        let mut out = SendBatch::for_device(&tun);
        for i in 0..41u8 {
            for (from, tag) in [(a, b'a'), (b, b'b')] {
                let len = if i == 40 { 9 } else { 64 };
                let payload: Vec<u8> = (0..len).map(|j| tag ^ i ^ j).collect();
                let packet = udp4(from, local, &payload);
                assert!(out.push(&packet));
                sent.push((from, payload));
            }
        }
        tun.send_batch(&mut out).await.unwrap();
        let mut buf = [0u8; 128];
        let mut got = Vec::new();
        while got.len() < sent.len() {
            let (n, from) =
                timeout(Duration::from_secs(5), sock.recv_from(&mut buf)).await.expect("datagram lost").unwrap();
            got.push((from, buf[..n].to_vec()));
        }
        for flow in [a, b] {
            let want: Vec<_> = sent.iter().filter(|(f, _)| *f == flow).collect();
            let have: Vec<_> = got.iter().filter(|(f, _)| *f == flow).collect();
            assert!(want == have, "flow {flow}: datagrams lost, corrupted or reordered");
        }
        tun.close().await.unwrap();
    });
}

/// Without offload the batch APIs still work, one packet per read.
#[test]
fn batch_apis_without_offload() {
    in_netns("batch_apis_without_offload", |_ns| async move {
        let tun = Tun::create(&full_config("rgt9")).await.unwrap();
        assert!(!tun.offload());
        let sock = UdpSocket::bind("10.77.0.1:0").await.unwrap();
        let local = sock.local_addr().unwrap();
        let remote: SocketAddr = "10.200.1.1:9999".parse().unwrap();
        sock.send_to(b"ping", remote).await.unwrap();
        let mut batch = RecvBatch::new(tun.mtu());
        let pkt = timeout(Duration::from_secs(5), async {
            loop {
                assert_eq!(tun.recv_batch(&mut batch).await.unwrap(), 1);
                if let Some(p) = batch.packets().find(|p| p[0] >> 4 == 4 && p[9] == 17) {
                    return p.to_vec();
                }
            }
        })
        .await
        .expect("no packet");
        assert_eq!(&pkt[28..], b"ping");
        let mut out = SendBatch::default();
        for payload in [&b"one"[..], b"two", b"three"] {
            out.push(&udp4(remote, local, payload));
        }
        tun.send_batch(&mut out).await.unwrap();
        let mut buf = [0u8; 64];
        for want in [&b"one"[..], b"two", b"three"] {
            let (n, _) =
                timeout(Duration::from_secs(5), sock.recv_from(&mut buf)).await.expect("not delivered").unwrap();
            assert_eq!(&buf[..n], want);
        }
        tun.close().await.unwrap();
    });
}
