//! What a person running rgost sees: `--help`, fatal errors (said once,
//! each cause once, with a hint when a privilege is missing), and log lines
//! fit for the journal (no colour codes) or a log shipper (JSON).
//!
//! The real binary is run; the tests that drop privileges (setpriv) need
//! root and run inside their own network namespace, so that a port below
//! 1024 is privileged there whatever the machine's sysctl says.

// Blocking test code timing real processes: std Instant is right here.
#![allow(clippy::disallowed_types, clippy::expect_used, clippy::unwrap_used)]

mod common;

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use common::*;

/// The user that unprivileged runs use (nobody, on Debian).
const NOBODY: &str = "65534";

/// A command for the rgost binary with a clean logging environment.
fn rgost(program: &Path) -> Command {
    let mut cmd = Command::new(program);
    cmd.env_remove("RUST_LOG").env_remove("RGOST_LOG_FORMAT").env_remove("NO_COLOR");
    cmd
}

/// Runs `cmd` to its end (bounded), with stderr to a pipe; returns the exit
/// status and stderr.
fn finish(mut cmd: Command) -> (ExitStatus, String) {
    let dir = TempDir::new("op");
    let log = dir.0.join("stderr");
    cmd.stdin(Stdio::null()).stdout(Stdio::null()).stderr(std::fs::File::create(&log).unwrap());
    let mut child = cmd.spawn().expect("spawn");
    let deadline = Instant::now() + Duration::from_secs(30);
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("{cmd:?} did not end within 30 s: {}", std::fs::read_to_string(&log).unwrap_or_default());
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    (status, std::fs::read_to_string(&log).unwrap())
}

/// Starts a server on a free loopback port with `args` added, waits until it
/// listens, stops it with SIGTERM and returns its stderr (written to a file,
/// which is no terminal, as in the journal).
fn server_log(extra: &[&str], env: &[(&str, &str)]) -> String {
    let dir = TempDir::new("log");
    let log = dir.0.join("stderr");
    let mut cmd = rgost(Path::new(env!("CARGO_BIN_EXE_rgost")));
    cmd.args(["-L", "router://127.0.0.1:0"]).args(extra).envs(env.iter().copied());
    cmd.stdin(Stdio::null()).stdout(Stdio::null()).stderr(std::fs::File::create(&log).unwrap());
    let mut child = cmd.spawn().expect("spawn rgost");
    let read = || std::fs::read_to_string(&log).unwrap_or_default();
    let listening = wait_until(Duration::from_secs(20), || read().contains("listening"));
    let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(child.id() as i32), nix::sys::signal::Signal::SIGTERM);
    let ended = wait_until(Duration::from_secs(10), || child.try_wait().unwrap().is_some());
    if !ended {
        let _ = child.kill();
        let _ = child.wait();
    }
    let text = read();
    assert!(listening && ended, "server did not start and stop (listening={listening} ended={ended}):\n{text}");
    text
}

/// The binary, copied where any user may run it (the build directory of a
/// CI clone may not be readable by nobody).
fn public_binary(dir: &TempDir) -> PathBuf {
    use std::os::unix::fs::PermissionsExt as _;
    std::fs::set_permissions(&dir.0, std::fs::Permissions::from_mode(0o755)).unwrap();
    let bin = dir.0.join("rgost");
    std::fs::copy(env!("CARGO_BIN_EXE_rgost"), &bin).unwrap();
    std::fs::set_permissions(&bin, std::fs::Permissions::from_mode(0o755)).unwrap();
    bin
}

/// Lines of `log` that mention `needle`.
fn lines_with(log: &str, needle: &str) -> usize {
    log.lines().filter(|l| l.contains(needle)).count()
}

#[test]
fn help_says_how_to_run_a_server_and_a_client_and_what_privileges_they_need() {
    let out = rgost(Path::new(env!("CARGO_BIN_EXE_rgost"))).arg("--help").output().unwrap();
    assert!(out.status.success());
    let help = String::from_utf8(out.stdout).unwrap();
    for needle in [
        "rgost -C /etc/rgost/server.yaml",
        "rgost -L router://:8443",
        "-F router://SERVER:8443",
        "rgost -C /etc/rgost/host-1.yaml",
        "CAP_NET_ADMIN",
        "CAP_NET_BIND_SERVICE",
        "RUST_LOG",
        "README",
        "--log-format",
        // GOST's flags stay.
        "-L <URL>",
        "-F <URL>",
        "-C <FILE>",
        "-D",
    ] {
        assert!(help.contains(needle), "--help lacks {needle:?}:\n{help}");
    }
}

#[test]
fn a_port_in_use_is_reported_once_with_its_cause_once() {
    let taken = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = taken.local_addr().unwrap().port();
    let mut cmd = rgost(Path::new(env!("CARGO_BIN_EXE_rgost")));
    cmd.args(["-L", &format!("router://127.0.0.1:{port}")]);
    let (status, log) = finish(cmd);
    assert!(!status.success(), "{log}");
    assert_eq!(lines_with(&log, "cannot listen"), 1, "the error is printed once:\n{log}");
    assert_eq!(log.matches("Address already in use").count(), 1, "the cause is said once:\n{log}");
    assert_eq!(log.matches("cannot listen").count(), 1, "each level is said once:\n{log}");
    assert!(log.contains(&format!("cannot listen on 127.0.0.1:{port}")), "{log}");
    assert!(!log.contains('\x1b'), "no colour codes in a pipe:\n{log:?}");
}

#[test]
fn text_logs_to_a_file_or_pipe_have_no_colour_codes() {
    let log = server_log(&["-D"], &[]);
    assert!(log.lines().count() >= 2, "{log}");
    assert!(!log.contains('\x1b'), "escape codes in a log that is not a terminal:\n{log:?}");
}

#[test]
fn json_logs_are_one_object_per_line() {
    for (args, env) in
        [(&["--log-format", "json", "-D"][..], &[][..]), (&["-D"][..], &[("RGOST_LOG_FORMAT", "json")][..])]
    {
        let log = server_log(args, env);
        assert!(log.lines().count() >= 2, "{log}");
        for line in log.lines() {
            let value: serde_json::Value =
                serde_json::from_str(line).unwrap_or_else(|e| panic!("not JSON ({e}): {line:?}\n{log}"));
            assert!(value["level"].is_string() && value["fields"]["message"].is_string(), "{line}");
        }
        assert!(log.contains(r#""message":"router service listening""#), "{log}");
    }
}

#[test]
fn a_fatal_error_in_json_is_one_json_line() {
    let taken = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = taken.local_addr().unwrap().port();
    let mut cmd = rgost(Path::new(env!("CARGO_BIN_EXE_rgost")));
    cmd.args(["--log-format", "json", "-L", &format!("router://127.0.0.1:{port}")]);
    let (status, log) = finish(cmd);
    assert!(!status.success());
    assert_eq!(log.lines().count(), 1, "{log}");
    let value: serde_json::Value = serde_json::from_str(log.trim()).unwrap();
    assert_eq!(value["level"], "ERROR", "{log}");
    let message = value["fields"]["message"].as_str().unwrap();
    assert_eq!(message.matches("Address already in use").count(), 1, "{message}");
}

#[test]
fn a_tun_client_without_cap_net_admin_is_told_what_it_needs() {
    if !can_run() {
        return;
    }
    let dir = TempDir::new("tunperm");
    let bin = public_binary(&dir);
    let ns = Netns::new("tunperm");
    let client = ["-L", "tun:///host-1?net=192.168.123.1/24", "-F", "router://127.0.0.1:8443"];
    // Root without CAP_NET_ADMIN (the kernel refuses TUNSETIFF: EPERM), and
    // an ordinary user (refused at /dev/net/tun or at TUNSETIFF).
    for drop in [&["--bounding-set=-net_admin"][..], &["--reuid", NOBODY, "--regid", NOBODY, "--clear-groups"][..]] {
        let mut cmd = ns.command("setpriv");
        cmd.args(drop).arg(&bin).args(client);
        cmd.env_remove("RUST_LOG").env_remove("RGOST_LOG_FORMAT");
        let (status, log) = finish(cmd);
        assert!(!status.success(), "{drop:?}: {log}");
        assert_eq!(lines_with(&log, "cannot create TUN device"), 1, "{drop:?}: printed once:\n{log}");
        assert!(log.contains("need root") && log.contains("CAP_NET_ADMIN"), "{drop:?}: no hint:\n{log}");
        let cause = ["Operation not permitted", "Permission denied"].into_iter().find(|c| log.contains(c));
        let cause = cause.unwrap_or_else(|| panic!("{drop:?}: no OS error:\n{log}"));
        assert_eq!(log.matches(cause).count(), 1, "{drop:?}: the cause is said once:\n{log}");
    }
}

#[test]
fn a_server_on_a_low_port_without_cap_net_bind_service_is_told_what_it_needs() {
    if !can_run() {
        return;
    }
    let dir = TempDir::new("lowport");
    let bin = public_binary(&dir);
    // A new namespace has the kernel's default: ports below 1024 are privileged.
    let ns = Netns::new("lowport");
    let mut cmd = ns.command("setpriv");
    cmd.args(["--reuid", NOBODY, "--regid", NOBODY, "--clear-groups"]).arg(&bin);
    cmd.args(["-L", "router://127.0.0.1:443"]).env_remove("RUST_LOG").env_remove("RGOST_LOG_FORMAT");
    let (status, log) = finish(cmd);
    assert!(!status.success(), "{log}");
    assert_eq!(lines_with(&log, "cannot listen on 127.0.0.1:443"), 1, "printed once:\n{log}");
    assert!(log.contains("CAP_NET_BIND_SERVICE"), "no hint:\n{log}");
    assert_eq!(log.matches("Permission denied").count(), 1, "the cause is said once:\n{log}");
}
