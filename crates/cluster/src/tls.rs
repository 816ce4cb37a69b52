//! TLS for node links: encryption, and a session whose exported keying
//! material binds the nodes' proofs ([`crate::auth`]).
//!
//! The listener presents a certificate generated at start and the dialer
//! does not verify it: nodes authenticate each other with the cluster's
//! secret over the session, which a man in the middle cannot relay (his two
//! sessions export different material). Only TLS 1.3 is offered.

use std::sync::Arc;

use rgost_transport::tls::NoVerify;
use rustls::crypto::CryptoProvider;
use rustls::pki_types::{PrivateKeyDer, ServerName};

use crate::auth::{EXPORTED_LEN, EXPORTER_LABEL};

/// Why TLS for node links could not be set up.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TlsError {
    /// The certificate could not be generated.
    #[error("cannot generate the node link certificate: {0}")]
    Certificate(String),
    /// rustls refused the configuration.
    #[error("node link TLS: {0}")]
    Config(#[from] rustls::Error),
}

/// aws-lc-rs with AES-128-GCM first: a link carries every cross-node byte
/// and AES-128 costs about a third less than AES-256 (both ends prefer it).
fn provider() -> Arc<CryptoProvider> {
    use rustls::crypto::aws_lc_rs::cipher_suite::{
        TLS13_AES_128_GCM_SHA256, TLS13_AES_256_GCM_SHA384, TLS13_CHACHA20_POLY1305_SHA256,
    };
    let mut provider = rustls::crypto::aws_lc_rs::default_provider();
    provider.cipher_suites = vec![TLS13_AES_128_GCM_SHA256, TLS13_AES_256_GCM_SHA384, TLS13_CHACHA20_POLY1305_SHA256];
    Arc::new(provider)
}

/// The listener's TLS configuration, with a certificate generated now.
pub fn server_config() -> Result<Arc<rustls::ServerConfig>, TlsError> {
    let generated = rcgen::generate_simple_self_signed(vec!["rgost-node".to_owned()])
        .map_err(|e| TlsError::Certificate(e.to_string()))?;
    let key = PrivateKeyDer::try_from(generated.signing_key.serialize_der())
        .map_err(|e| TlsError::Certificate(e.to_string()))?;
    let config = rustls::ServerConfig::builder_with_provider(provider())
        .with_protocol_versions(&[&rustls::version::TLS13])?
        .with_no_client_auth()
        .with_single_cert(vec![generated.cert.der().clone()], key)?;
    Ok(Arc::new(config))
}

/// The dialer's TLS configuration.
pub fn client_config() -> Result<Arc<rustls::ClientConfig>, TlsError> {
    let provider = provider();
    let algorithms = provider.signature_verification_algorithms;
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13])?
        .dangerous()
        // The certificate is not checked: the secret authenticates the node.
        .with_custom_certificate_verifier(Arc::new(NoVerify(algorithms)))
        .with_no_client_auth();
    Ok(Arc::new(config))
}

/// The server name a dialer sends (the certificate is not checked against it).
pub fn server_name() -> ServerName<'static> {
    ServerName::try_from("rgost-node").unwrap_or_else(|_| ServerName::IpAddress(std::net::Ipv4Addr::LOCALHOST.into()))
}

/// Keying material exported from a session, for the nodes' proofs.
pub fn exported<D>(conn: &rustls::ConnectionCommon<D>) -> Result<[u8; EXPORTED_LEN], rustls::Error> {
    let mut out = [0u8; EXPORTED_LEN];
    conn.export_keying_material(&mut out, EXPORTER_LABEL, None)?;
    Ok(out)
}
