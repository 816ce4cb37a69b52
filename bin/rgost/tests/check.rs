//! `rgost --check`: a dry run that validates, prints one line per service and
//! exits 0, or prints the error a start would print and exits 1. It opens no
//! socket and creates no TUN device, so these tests need no root.
#![allow(clippy::expect_used, clippy::unwrap_used)]

use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Command, Output};

const RGOST: &str = env!("CARGO_BIN_EXE_rgost");

fn rgost(args: &[&str]) -> Output {
    Command::new(RGOST).args(args).env_remove("RUST_LOG").output().expect("run rgost")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// A scratch file, removed with its directory when dropped.
struct Scratch(PathBuf);

impl Scratch {
    fn new(tag: &str, text: &str) -> Scratch {
        let dir = std::env::temp_dir().join(format!("rgost-check-{}-{tag}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("config.yaml");
        std::fs::write(&file, text).unwrap();
        Scratch(file)
    }

    fn path(&self) -> &str {
        self.0.to_str().unwrap()
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        if let Some(dir) = self.0.parent() {
            let _ = std::fs::remove_dir_all(dir);
        }
    }
}

#[test]
fn a_valid_file_prints_one_line_per_service_and_exits_0() {
    let file = Scratch::new(
        "valid",
        "services:\n- name: srv\n  addr: :8443\n  handler: {type: router, metadata: {router: r}}\n\
         - name: srv2\n  addr: 127.0.0.1:8444\n  handler: {type: router}\n  listener: {type: ws}\n\
         routers:\n- name: r\n  routes: [{dst: 10.0.0.0/24, gateway: h1}]\n",
    );
    let out = rgost(&["--check", "-C", file.path()]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let stdout = text(&out.stdout);
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(lines.len(), 2, "{stdout}");
    assert!(lines[0].starts_with("srv: router server on :8443 over tcp; default router r (1 route)"), "{stdout}");
    assert!(lines[1].starts_with("srv2: router server on 127.0.0.1:8444 over ws /ws"), "{stdout}");
}

#[test]
fn an_error_is_the_one_a_start_prints_and_exits_1() {
    let file = Scratch::new("typo", "services:\n- addr: :8443\n  handler: {type: router, metadata: {routr: r}}\n");
    let checked = rgost(&["--check", "-C", file.path()]);
    assert_eq!(checked.status.code(), Some(1));
    let error = text(&checked.stderr);
    assert!(error.contains("services[0].handler.metadata.routr: unknown key: did you mean `router`?"), "{error}");
    assert!(checked.stdout.is_empty(), "{}", text(&checked.stdout));

    // The same config without --check fails the same way, before starting anything.
    let started = rgost(&["-C", file.path()]);
    assert_eq!(started.status.code(), Some(1));
    let error_line = |out: &str| out.lines().find(|l| l.starts_with("rgost: error:")).map(str::to_owned);
    assert_eq!(error_line(&text(&started.stderr)), error_line(&error), "{}", text(&started.stderr));
}

#[test]
fn command_line_services_are_checked_too() {
    let out = rgost(&[
        "--check",
        "-L",
        "tun:///host-1?net=192.168.123.1/24&route=192.168.200.0/24",
        "-F",
        "router://203.0.113.7:8443",
    ]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(text(&out.stdout).starts_with("service-0: tun client host-1:"), "{}", text(&out.stdout));

    let out =
        rgost(&["--check", "-L", "tun:///host-1?net=192.168.123.1/24&rout=192.168.200.0/24", "-F", "router://h:1"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out.stderr).contains("did you mean `route`?"), "{}", text(&out.stderr));
}

#[test]
fn a_dry_run_opens_no_socket_and_creates_no_device() {
    // The port is taken: a start would fail to bind, a dry run does not try.
    let taken = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = taken.local_addr().unwrap().port();
    let out = rgost(&["--check", "-L", &format!("router://127.0.0.1:{port}")]);
    assert!(out.status.success(), "{}", text(&out.stderr));

    let device = format!("rgchk{}", std::process::id() % 100_000);
    let out =
        rgost(&["--check", "-L", &format!("tun:///h?net=10.99.0.1/24&name={device}"), "-F", "router://127.0.0.1:1"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(!std::path::Path::new("/sys/class/net").join(&device).exists(), "{device} was created");
}

#[test]
fn an_empty_file_says_it_defines_no_services() {
    let file = Scratch::new("empty", "routers:\n- name: r\n");
    for args in [vec!["--check", "-C", file.path()], vec!["-C", file.path()]] {
        let out = rgost(&args);
        assert_eq!(out.status.code(), Some(1));
        let stderr = text(&out.stderr);
        assert!(stderr.contains(&format!("{} defines no services", file.path())), "{stderr}");
        assert!(!stderr.contains("give services with -L or a config file with -C"), "{stderr}");
    }
    let out = rgost(&["--check"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out.stderr).contains("give services with -L or a config file with -C"));
}

#[test]
fn warnings_go_to_stderr() {
    let file =
        Scratch::new("warn", "services:\n- addr: :8443\n  handler: {type: router, metadata: {bufferSize: 4096}}\n");
    let out = rgost(&["--check", "-C", file.path()]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let stderr = text(&out.stderr);
    assert!(
        stderr.contains("rgost: warning: ") && stderr.contains("services[0].handler.metadata.bufferSize"),
        "{stderr}"
    );
    assert_eq!(text(&out.stdout).lines().count(), 1);
}
