//! TLS configuration: certificates from PEM files, a self-signed certificate
//! when a server has none, client verification as GOST defines it.

use std::path::Path;
use std::sync::Arc;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{CryptoProvider, WebPkiSupportedAlgorithms};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::server::WebPkiClientVerifier;
use rustls::{DigitallySignedStruct, RootCertStore, SignatureScheme};

use rgost_config::{TlsClientSettings, TlsServerSettings};

use crate::TransportError;

fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::aws_lc_rs::default_provider())
}

fn tls_error(what: impl Into<String>, source: impl std::fmt::Display) -> TransportError {
    TransportError::Tls { what: what.into(), reason: source.to_string() }
}

fn load_certs(path: &Path) -> Result<Vec<CertificateDer<'static>>, TransportError> {
    let certs = CertificateDer::pem_file_iter(path)
        .and_then(|it| it.collect::<Result<Vec<_>, _>>())
        .map_err(|e| tls_error(format!("certificates in {}", path.display()), e))?;
    if certs.is_empty() {
        return Err(tls_error(format!("certificates in {}", path.display()), "no certificate found"));
    }
    Ok(certs)
}

fn load_key(path: &Path) -> Result<PrivateKeyDer<'static>, TransportError> {
    PrivateKeyDer::from_pem_file(path).map_err(|e| tls_error(format!("private key in {}", path.display()), e))
}

fn load_roots(path: &Path) -> Result<RootCertStore, TransportError> {
    let mut roots = RootCertStore::empty();
    for cert in load_certs(path)? {
        roots.add(cert).map_err(|e| tls_error(format!("CA certificate in {}", path.display()), e))?;
    }
    Ok(roots)
}

/// Builds a server config. Returns it and whether the certificate is a
/// generated self-signed one.
pub(crate) fn server_config(tls: &TlsServerSettings) -> Result<(Arc<rustls::ServerConfig>, bool), TransportError> {
    let builder = rustls::ServerConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(|e| tls_error("TLS versions", e))?;
    let builder = match &tls.ca_file {
        Some(ca) => {
            let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(load_roots(ca)?), provider())
                .build()
                .map_err(|e| tls_error(format!("client verification with {}", ca.display()), e))?;
            builder.with_client_cert_verifier(verifier)
        }
        None => builder.with_no_client_auth(),
    };
    let (certs, key, generated) = match (&tls.cert_file, &tls.key_file) {
        (Some(cert), Some(key)) => (load_certs(cert)?, load_key(key)?, false),
        (Some(_), None) | (None, Some(_)) => {
            return Err(tls_error("certificate", "certFile and keyFile must be given together"));
        }
        (None, None) => {
            let generated = rcgen::generate_simple_self_signed(vec!["localhost".to_owned()])
                .map_err(|e| tls_error("self-signed certificate", e))?;
            let key = PrivateKeyDer::try_from(generated.signing_key.serialize_der())
                .map_err(|e| tls_error("self-signed key", e))?;
            (vec![generated.cert.der().clone()], key, true)
        }
    };
    let config = builder.with_single_cert(certs, key).map_err(|e| tls_error("certificate and key", e))?;
    Ok((Arc::new(config), generated))
}

/// Builds a client config and the server name to use for `addr` (`host:port`).
pub fn client_config(
    tls: &TlsClientSettings,
    addr: &str,
) -> Result<(Arc<rustls::ClientConfig>, ServerName<'static>), TransportError> {
    let name = tls.server_name.clone().unwrap_or_else(|| host_of(addr).to_owned());
    let server_name = ServerName::try_from(name.clone()).map_err(|e| tls_error(format!("server name {name:?}"), e))?;
    let builder = rustls::ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(|e| tls_error("TLS versions", e))?;
    let builder = if let Some(ca) = &tls.ca_file {
        builder.with_root_certificates(load_roots(ca)?)
    } else if tls.secure {
        let mut roots = RootCertStore::empty();
        let found = rustls_native_certs::load_native_certs();
        for cert in found.certs {
            let _ = roots.add(cert);
        }
        if roots.is_empty() {
            return Err(tls_error("system root certificates", "none found; set caFile"));
        }
        builder.with_root_certificates(roots)
    } else {
        tracing::warn!(server = %addr, "TLS: the server's certificate is NOT verified (secure: false and no caFile)");
        builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(NoVerify(provider().signature_verification_algorithms)))
    };
    let config = match (&tls.cert_file, &tls.key_file) {
        (Some(cert), Some(key)) => builder
            .with_client_auth_cert(load_certs(cert)?, load_key(key)?)
            .map_err(|e| tls_error("client certificate and key", e))?,
        (None, None) => builder.with_no_client_auth(),
        _ => return Err(tls_error("client certificate", "certFile and keyFile must be given together")),
    };
    Ok((Arc::new(config), server_name))
}

/// The host part of `host:port` or `[v6]:port`.
pub(crate) fn host_of(addr: &str) -> &str {
    let host = addr.rsplit_once(':').map_or(addr, |(h, _)| h);
    host.trim_start_matches('[').trim_end_matches(']')
}

/// Accepts any certificate but still checks the handshake signatures
/// with `algorithms` (GOST's `secure: false`; node links, whose peers prove
/// a secret over the session instead).
#[derive(Debug)]
pub struct NoVerify(pub WebPkiSupportedAlgorithms);

impl ServerCertVerifier for NoVerify {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.0)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.0)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.supported_schemes()
    }
}
