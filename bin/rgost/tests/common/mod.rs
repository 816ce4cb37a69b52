//! Harness for end-to-end tests: network namespaces, veth links, the real
//! `rgost` binary run inside them, and TCP transfers between them.
//!
//! Every namespace has a unique name and is deleted when its guard drops,
//! also when a test fails. Traffic only ever goes to addresses inside the
//! namespaces a test created.
// A blocking harness (no tokio), so std::time::Instant is right here; and a
// helper that cannot do its job should panic the test.
#![allow(dead_code, unreachable_pub, clippy::expect_used, clippy::unwrap_used, clippy::disallowed_types)]

use std::fs::File;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use nix::sched::{CloneFlags, setns};
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;

/// Whether end-to-end tests can run here (root, `ip`, /dev/net/tun). When
/// not, the test fails, unless `RGOST_SKIP_E2E=1` says that skipping is
/// intended (a developer machine without root): a CI run that silently
/// skips would be a lie.
pub fn can_run() -> bool {
    let root = nix::unistd::geteuid().is_root();
    let tun = Path::new("/dev/net/tun").exists();
    let ip = Command::new("ip").arg("-V").output().is_ok_and(|o| o.status.success());
    if !(root && tun && ip) {
        let why = format!("end-to-end tests need root, /dev/net/tun and iproute2 (root={root} tun={tun} ip={ip})");
        assert!(std::env::var_os("RGOST_SKIP_E2E").is_some_and(|v| v == "1"), "{why}; set RGOST_SKIP_E2E=1 to skip");
        eprintln!("SKIPPED: {why}");
        return false;
    }
    true
}

/// Runs a command, panicking with its output when it fails.
pub fn sh(args: &[&str]) -> String {
    let out = Command::new(args[0]).args(&args[1..]).output().unwrap_or_else(|e| panic!("{args:?}: {e}"));
    assert!(
        out.status.success(),
        "{args:?} failed: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Runs a command; returns whether it succeeded.
pub fn try_sh(args: &[&str]) -> bool {
    Command::new(args[0])
        .args(&args[1..])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

static COUNTER: AtomicU32 = AtomicU32::new(0);

/// A network namespace, deleted on drop.
pub struct Netns {
    pub name: String,
}

impl Netns {
    /// Creates `rg<pid>-<n>-<tag>` with loopback up.
    pub fn new(tag: &str) -> Netns {
        let n = COUNTER.fetch_add(1, Ordering::Relaxed);
        let name = format!("rg{}-{n}-{tag}", std::process::id());
        sh(&["ip", "netns", "add", &name]);
        let ns = Netns { name };
        ns.ip(&["link", "set", "lo", "up"]);
        ns
    }

    /// `ip -n NAME ARGS...`
    pub fn ip(&self, args: &[&str]) -> String {
        let mut full = vec!["ip", "-n", &self.name];
        full.extend_from_slice(args);
        sh(&full)
    }

    /// A command to run inside the namespace.
    pub fn command(&self, program: &str) -> Command {
        let mut cmd = Command::new("ip");
        cmd.args(["netns", "exec", &self.name, program]);
        cmd
    }

    /// One ping of `addr` from inside; true when answered within `wait_secs`.
    pub fn ping(&self, addr: &str, wait_secs: u32) -> bool {
        self.command("ping")
            .args(["-c", "1", "-W", &wait_secs.to_string(), "-n", "-q", addr])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
    }

    /// `count` pings of `addr` (0.2 s apart); returns how many were answered.
    pub fn ping_count(&self, addr: &str, count: u32) -> u32 {
        let out = self
            .command("ping")
            .args(["-c", &count.to_string(), "-i", "0.2", "-W", "1", "-n", "-q", addr])
            .output()
            .expect("run ping");
        let text = String::from_utf8_lossy(&out.stdout);
        text.lines()
            .find_map(|l| {
                let (_, rest) = l.split_once("transmitted, ")?;
                rest.split_whitespace().next()?.parse().ok()
            })
            .unwrap_or(0)
    }

    /// Runs `f` on a thread that has entered this namespace (sockets it
    /// creates live in the namespace).
    pub fn run<T: Send + 'static>(&self, f: impl FnOnce() -> T + Send + 'static) -> std::thread::JoinHandle<T> {
        let path = format!("/var/run/netns/{}", self.name);
        std::thread::spawn(move || {
            let file = File::open(&path).expect("open netns");
            setns(&file, CloneFlags::CLONE_NEWNET).expect("setns");
            f()
        })
    }

    /// Whether `addr` is configured on any interface of the namespace.
    pub fn has_addr(&self, addr: &str) -> bool {
        self.ip(&["-o", "addr", "show"]).split_whitespace().any(|w| w.split('/').next() == Some(addr))
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        // Processes still inside keep it alive only as long as they run; the
        // guards of those processes drop first (declared later).
        let _ = Command::new("ip").args(["netns", "del", &self.name]).status();
    }
}

/// Links `a` and `b` with a veth pair; `a_addr`/`b_addr` are CIDRs.
pub fn veth(a: &Netns, a_addr: &str, b: &Netns, b_addr: &str) {
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let (ia, ib) = (format!("va{n}"), format!("vb{n}"));
    sh(&["ip", "-n", &a.name, "link", "add", &ia, "type", "veth", "peer", "name", &ib, "netns", &b.name]);
    a.ip(&["addr", "add", a_addr, "dev", &ia]);
    b.ip(&["addr", "add", b_addr, "dev", &ib]);
    a.ip(&["link", "set", &ia, "up"]);
    b.ip(&["link", "set", &ib, "up"]);
}

/// Adds a bridge holding `addr` (stands in for a LAN behind the host).
pub fn lan(ns: &Netns, addr: &str) {
    ns.ip(&["link", "add", "lan0", "type", "bridge"]);
    ns.ip(&["addr", "add", addr, "dev", "lan0"]);
    ns.ip(&["link", "set", "lan0", "up"]);
}

/// A scratch directory, removed on drop.
pub struct TempDir(pub PathBuf);

impl TempDir {
    pub fn new(tag: &str) -> TempDir {
        let n = COUNTER.fetch_add(1, Ordering::Relaxed);
        let dir = std::env::temp_dir().join(format!("rgost-test-{}-{n}-{tag}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("create temp dir");
        TempDir(dir)
    }

    pub fn write(&self, name: &str, text: &str) -> PathBuf {
        let path = self.0.join(name);
        std::fs::write(&path, text).expect("write file");
        path
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A running `rgost` process inside a namespace; killed on drop. Its log
/// (stderr) goes to a file that is printed when the test fails.
pub struct Rgost {
    pub label: String,
    child: Option<Child>,
    log: PathBuf,
}

impl Rgost {
    pub fn start(ns: &Netns, dir: &TempDir, label: &str, args: &[&str]) -> Rgost {
        let n = COUNTER.fetch_add(1, Ordering::Relaxed);
        let log = dir.0.join(format!("{label}-{n}.log"));
        let file = File::create(&log).expect("create log");
        let child = ns
            .command(env!("CARGO_BIN_EXE_rgost"))
            .args(args)
            .env("RUST_LOG", "debug")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(file)
            .spawn()
            .expect("spawn rgost");
        Rgost { label: label.to_owned(), child: Some(child), log }
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Sends SIGTERM and waits (bounded) for the exit status.
    pub fn terminate(&mut self) -> Option<ExitStatus> {
        let child = self.child.as_mut()?;
        let _ = kill(Pid::from_raw(child.id() as i32), Signal::SIGTERM);
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if let Ok(Some(status)) = child.try_wait() {
                self.child = None;
                return Some(status);
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = child.kill();
        let status = child.wait().ok();
        self.child = None;
        status
    }

    /// SIGKILL, no cleanup by the process.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// The process id, while running.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// Whether the process is still running.
    pub fn running(&mut self) -> bool {
        self.child.as_mut().is_some_and(|c| matches!(c.try_wait(), Ok(None)))
    }
}

impl Drop for Rgost {
    fn drop(&mut self) {
        self.kill();
        if std::thread::panicking() {
            eprintln!("----- log of {} -----\n{}", self.label, self.log());
        }
    }
}

/// Polls `cond` every 100 ms until it holds or `timeout` passes.
pub fn wait_until(timeout: Duration, mut cond: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + timeout;
    loop {
        if cond() {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Deterministic test data.
pub fn pattern(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}

/// Sends `data` over TCP from namespace `from` to `to_addr` (an address
/// inside namespace `to`), and returns what the receiver got. Bounded by
/// `timeout` on every socket operation.
pub fn tcp_transfer(from: &Netns, to: &Netns, to_addr: &str, port: u16, data: Vec<u8>, timeout: Duration) -> Vec<u8> {
    let bind: SocketAddr = format!("{to_addr}:{port}").parse().expect("address");
    let (ready_tx, ready_rx) = std::sync::mpsc::channel();
    let receiver = to.run(move || {
        let listener = TcpListener::bind(bind).expect("bind receiver");
        ready_tx.send(()).expect("signal ready");
        let (mut stream, _) = listener.accept().expect("accept");
        stream.set_read_timeout(Some(timeout)).expect("timeout");
        let mut got = Vec::new();
        stream.read_to_end(&mut got).expect("receive");
        got
    });
    ready_rx.recv_timeout(Duration::from_secs(10)).expect("receiver ready");
    let sender = from.run(move || {
        let mut stream = TcpStream::connect_timeout(&bind, timeout).expect("connect");
        stream.set_write_timeout(Some(timeout)).expect("timeout");
        stream.write_all(&data).expect("send");
        stream.shutdown(std::net::Shutdown::Write).expect("shutdown");
    });
    sender.join().expect("sender");
    receiver.join().expect("receiver")
}
