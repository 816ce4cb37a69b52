//! Every listener/dialer pair over loopback: tcp, tls (verified, unverified,
//! mutual), ws and wss; and the refusals (wrong CA, missing client
//! certificate, wrong WebSocket path).
#![allow(clippy::expect_used, clippy::unwrap_used)]

use std::net::{IpAddr, Ipv4Addr};
use std::path::PathBuf;
use std::time::Duration;

use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, IsCa, KeyPair};
use rgost_config::{DialerKind, ListenAddr, ListenerKind, TlsClientSettings, TlsServerSettings};
use rgost_transport::{Dialer, Listener};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const T: Duration = Duration::from_secs(5);

struct Pki {
    dir: PathBuf,
}

impl Pki {
    /// A CA, a server certificate for "localhost" and a client certificate, in PEM files.
    fn new(tag: &str) -> Pki {
        let dir = std::env::temp_dir().join(format!("rgost-pki-{}-{tag}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
        ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        let ca = CertifiedIssuer::self_signed(ca_params, KeyPair::generate().unwrap()).unwrap();
        std::fs::write(dir.join("ca.pem"), ca.pem()).unwrap();
        for name in ["server", "client"] {
            let key = KeyPair::generate().unwrap();
            let cert = CertificateParams::new(vec!["localhost".to_owned()]).unwrap().signed_by(&key, &ca).unwrap();
            std::fs::write(dir.join(format!("{name}.pem")), cert.pem()).unwrap();
            std::fs::write(dir.join(format!("{name}.key")), key.serialize_pem()).unwrap();
        }
        Pki { dir }
    }

    fn path(&self, name: &str) -> Option<PathBuf> {
        Some(self.dir.join(name))
    }

    fn server(&self, mtls: bool) -> TlsServerSettings {
        TlsServerSettings {
            cert_file: self.path("server.pem"),
            key_file: self.path("server.key"),
            ca_file: if mtls { self.path("ca.pem") } else { None },
        }
    }

    fn client(&self, with_cert: bool) -> TlsClientSettings {
        TlsClientSettings {
            ca_file: self.path("ca.pem"),
            cert_file: if with_cert { self.path("client.pem") } else { None },
            key_file: if with_cert { self.path("client.key") } else { None },
            server_name: Some("localhost".to_owned()),
            secure: true,
        }
    }
}

impl Drop for Pki {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Sends 200 kB each way through a listener/dialer pair; Err on any failure.
async fn exchange(listen: ListenerKind, dial: DialerKind) -> Result<(), String> {
    let addr = ListenAddr { ip: Some(IpAddr::V4(Ipv4Addr::LOCALHOST)), port: 0 };
    let listener = Listener::bind(addr, &listen).map_err(|e| e.to_string())?;
    let port = listener.local_addr().map_err(|e| e.to_string())?.port();
    let server = tokio::spawn(async move {
        let incoming = listener.accept().await.map_err(|e| e.to_string())?;
        let mut conn =
            tokio::time::timeout(T, incoming.upgrade()).await.map_err(|e| e.to_string())?.map_err(|e| e.to_string())?;
        let mut buf = vec![0u8; 200_000];
        conn.reader.read_exact(&mut buf).await.map_err(|e| e.to_string())?;
        conn.writer.write_all(&buf).await.map_err(|e| e.to_string())?;
        conn.writer.flush().await.map_err(|e| e.to_string())?;
        Ok::<_, String>(())
    });
    let dialer = Dialer::new(&format!("localhost:{port}"), &dial).map_err(|e| e.to_string())?;
    let mut conn = dialer.dial(T).await.map_err(|e| e.to_string())?;
    let data: Vec<u8> = (0..200_000u32).map(|i| (i % 251) as u8).collect();
    conn.writer.write_all(&data).await.map_err(|e| e.to_string())?;
    conn.writer.flush().await.map_err(|e| e.to_string())?;
    let mut back = vec![0u8; data.len()];
    tokio::time::timeout(T, conn.reader.read_exact(&mut back))
        .await
        .map_err(|e| e.to_string())?
        .map_err(|e| e.to_string())?;
    if back != data {
        return Err("data differs".into());
    }
    server.await.map_err(|e| e.to_string())?
}

fn ws(path: &str) -> (ListenerKind, DialerKind) {
    (ListenerKind::Ws { path: path.into() }, DialerKind::Ws { path: path.into(), host: None })
}

#[tokio::test]
async fn tcp() {
    exchange(ListenerKind::Tcp, DialerKind::Tcp).await.unwrap();
}

#[tokio::test]
async fn tls_verified_by_ca() {
    let pki = Pki::new("verified");
    exchange(ListenerKind::Tls(pki.server(false)), DialerKind::Tls(pki.client(false))).await.unwrap();
}

#[tokio::test]
async fn tls_self_signed_server_with_unverifying_client() {
    let insecure = TlsClientSettings { secure: false, ..TlsClientSettings::default() };
    exchange(ListenerKind::Tls(TlsServerSettings::default()), DialerKind::Tls(insecure)).await.unwrap();
}

#[tokio::test]
async fn tls_refuses_a_server_from_another_ca() {
    let (ours, theirs) = (Pki::new("ours"), Pki::new("theirs"));
    let err = exchange(ListenerKind::Tls(theirs.server(false)), DialerKind::Tls(ours.client(false))).await;
    assert!(err.is_err());
    // And a self-signed server when verification is on.
    let err = exchange(ListenerKind::Tls(TlsServerSettings::default()), DialerKind::Tls(ours.client(false))).await;
    assert!(err.is_err());
}

#[tokio::test]
async fn mutual_tls() {
    let pki = Pki::new("mtls");
    exchange(ListenerKind::Tls(pki.server(true)), DialerKind::Tls(pki.client(true))).await.unwrap();
    let refused = exchange(ListenerKind::Tls(pki.server(true)), DialerKind::Tls(pki.client(false))).await;
    assert!(refused.is_err(), "a client without a certificate got through");
}

#[tokio::test]
async fn websocket() {
    let (l, d) = ws("/ws");
    exchange(l, d).await.unwrap();
    let (l, _) = ws("/ws");
    let (_, d) = ws("/other");
    assert!(exchange(l, d).await.is_err(), "wrong path accepted");
}

#[tokio::test]
async fn websocket_over_tls() {
    let pki = Pki::new("wss");
    exchange(
        ListenerKind::Wss { path: "/tunnel".into(), tls: pki.server(false) },
        DialerKind::Wss { path: "/tunnel".into(), host: None, tls: pki.client(false) },
    )
    .await
    .unwrap();
}

#[tokio::test]
async fn bad_tls_files_fail_at_bind() {
    let missing = TlsServerSettings {
        cert_file: Some("/nonexistent/cert.pem".into()),
        key_file: Some("/nonexistent/key.pem".into()),
        ca_file: None,
    };
    let err =
        Listener::bind(ListenAddr { ip: Some(IpAddr::V4(Ipv4Addr::LOCALHOST)), port: 0 }, &ListenerKind::Tls(missing))
            .unwrap_err()
            .to_string();
    assert!(err.contains("/nonexistent/cert.pem"), "{err}");
}
