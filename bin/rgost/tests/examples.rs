//! Every config file under `examples/` passes `rgost --check`, so the
//! examples (and the docs that point at them) cannot drift from the code.
//!
//! Files are found by walking the directory: a new example is covered
//! without touching this test. Each runs the real binary from a scratch copy
//! of its directory that also holds `certs/` (a CA, a server and a client
//! certificate, made here as `examples/gen-certs.sh` makes them), because
//! the examples name their files relative to the working directory and a
//! dry run checks that those files can be read. A warning fails the test
//! unless the file announces it with a `# expect-warning: TEXT` line.
#![allow(clippy::expect_used, clippy::unwrap_used)]

use std::path::{Path, PathBuf};
use std::process::Command;

use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, IsCa, KeyPair};

const RGOST: &str = env!("CARGO_BIN_EXE_rgost");

fn examples_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples")
}

/// Config files (YAML or JSON) under `dir`, recursively, sorted.
fn config_files(dir: &Path) -> Vec<PathBuf> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir(dir).expect("read examples dir") {
        let path = entry.expect("dir entry").path();
        if path.is_dir() {
            found.extend(config_files(&path));
        } else if path.extension().is_some_and(|ext| ext == "yaml" || ext == "yml" || ext == "json") {
            found.push(path);
        }
    }
    found.sort();
    found
}

/// A scratch directory, removed on drop.
struct Scratch(PathBuf);

impl Scratch {
    fn new(n: usize) -> Scratch {
        let dir = std::env::temp_dir().join(format!("rgost-examples-{}-{n}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("scratch dir");
        Scratch(dir)
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// `certs/` as `examples/gen-certs.sh` writes it: ca.pem, server.pem/.key
/// (for rgost.example), client.pem/.key.
fn write_certs(dir: &Path) {
    let certs = dir.join("certs");
    std::fs::create_dir_all(&certs).expect("certs dir");
    let mut params = CertificateParams::new(Vec::<String>::new()).expect("ca params");
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let ca_key = KeyPair::generate().expect("key");
    std::fs::write(certs.join("ca.key"), ca_key.serialize_pem()).expect("write ca key");
    let ca = CertifiedIssuer::self_signed(params, ca_key).expect("ca");
    std::fs::write(certs.join("ca.pem"), ca.pem()).expect("write ca");
    for (name, host) in [("server", "rgost.example"), ("client", "rgost-client")] {
        let key = KeyPair::generate().expect("key");
        let cert = CertificateParams::new(vec![host.to_owned()]).expect("params").signed_by(&key, &ca).expect("sign");
        std::fs::write(certs.join(format!("{name}.pem")), cert.pem()).expect("write cert");
        std::fs::write(certs.join(format!("{name}.key")), key.serialize_pem()).expect("write key");
    }
}

/// `rgost --check -C FILE` from a copy of FILE's directory with certs/.
/// Returns (success, stdout, stderr).
fn check(file: &Path, n: usize) -> (bool, String, String) {
    let scratch = Scratch::new(n);
    let dir = file.parent().expect("example dir");
    for entry in std::fs::read_dir(dir).expect("read example dir") {
        let path = entry.expect("dir entry").path();
        if path.is_file() {
            std::fs::copy(&path, scratch.0.join(path.file_name().expect("name"))).expect("copy");
        }
    }
    write_certs(&scratch.0);
    let name = file.file_name().expect("name");
    let out = Command::new(RGOST)
        .args(["--check", "-C"])
        .arg(name)
        .current_dir(&scratch.0)
        .env_remove("RUST_LOG")
        .env_remove("RGOST_TUN_OFFLOAD")
        .output()
        .expect("run rgost");
    (out.status.success(), String::from_utf8_lossy(&out.stdout).into(), String::from_utf8_lossy(&out.stderr).into())
}

#[test]
fn every_example_passes_check() {
    let files = config_files(&examples_dir());
    // The walk must find the examples: an empty or moved directory is a failure, not a pass.
    assert!(files.len() >= 10, "only {} example files found under {}", files.len(), examples_dir().display());

    let mut failures = Vec::new();
    for (n, file) in files.iter().enumerate() {
        let shown = file.strip_prefix(examples_dir()).unwrap_or(file).display().to_string();
        let text = std::fs::read_to_string(file).expect("read example");
        let is_json = file.extension().is_some_and(|ext| ext == "json");
        if !is_json && !text.starts_with('#') {
            failures.push(format!("{shown}: no header comment saying what it shows and how to run it"));
        }
        let expected: Vec<&str> =
            text.lines().filter_map(|line| line.trim().strip_prefix("# expect-warning:")).map(str::trim).collect();

        let (ok, stdout, stderr) = check(file, n);
        if !ok {
            failures.push(format!("{shown}: rgost --check failed:\n{stderr}"));
            continue;
        }
        if stdout.lines().count() == 0 {
            failures.push(format!("{shown}: rgost --check printed no service"));
        }
        let warnings: Vec<&str> = stderr.lines().filter(|l| l.starts_with("rgost: warning: ")).collect();
        for warning in &warnings {
            if !expected.iter().any(|e| warning.contains(e)) {
                failures.push(format!("{shown}: unexpected warning: {warning}"));
            }
        }
        for e in &expected {
            if !warnings.iter().any(|w| w.contains(e)) {
                failures.push(format!("{shown}: the expected warning {e:?} did not come"));
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn a_broken_example_would_fail() {
    // The harness itself: a typo and a missing certificate both fail the check.
    let scratch = Scratch::new(10_000);
    let typo = scratch.0.join("sub").join("typo.yaml");
    std::fs::create_dir_all(typo.parent().unwrap()).unwrap();
    std::fs::write(&typo, "# header\nservices:\n- addr: :1\n  handler: {type: router, metadata: {routr: r}}\n")
        .unwrap();
    let (ok, _, stderr) = check(&typo, 10_001);
    assert!(!ok && stderr.contains("did you mean `router`?"), "{stderr}");

    let cert = scratch.0.join("sub").join("cert.yaml");
    std::fs::write(
        &cert,
        "# header\nservices:\n- addr: :1\n  handler: {type: router}\n  listener: {type: tls, tls: {certFile: certs/nope.pem, keyFile: certs/server.key}}\n",
    )
    .unwrap();
    let (ok, _, stderr) = check(&cert, 10_002);
    assert!(!ok && stderr.contains("certs/nope.pem"), "{stderr}");
    assert_eq!(config_files(&scratch.0).len(), 2);
}
