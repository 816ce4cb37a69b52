//! Node authentication: both ends of a link prove that they hold the
//! cluster's `nodeSecret`, bound to the TLS session they share.
//!
//! Each side sends `HMAC-SHA256(secret, LABEL || EXPORTED || NODE-ID)`,
//! where `EXPORTED` is keying material exported from the TLS session
//! (RFC 5705/8446 exporter) and `LABEL` says which side speaks. Nothing in
//! it is reusable: another TLS session exports other material, so a proof
//! recorded or relayed by a man in the middle (who terminates TLS on both
//! sides with certificates of his own) does not verify. That is why the
//! certificates themselves need not be verified: the secret authenticates,
//! the session binding keeps the proof from being replayed.

use aws_lc_rs::hmac;

use crate::frame::PROOF_LEN;

/// The exporter label, and the length of the material exported.
pub const EXPORTER_LABEL: &[u8] = b"EXPORTER-rgost-node-link";
/// Bytes of keying material exported from the TLS session.
pub const EXPORTED_LEN: usize = 32;

/// Which end of a link speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Side {
    /// The node that dialed (and sends packets).
    Dialer,
    /// The node that accepted (and receives packets).
    Listener,
}

impl Side {
    fn label(self) -> &'static [u8] {
        match self {
            Side::Dialer => b"rgost node link v1 dialer",
            Side::Listener => b"rgost node link v1 listener",
        }
    }
}

/// The cluster's secret, ready to prove and check.
pub struct Secret(hmac::Key);

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secret(..)")
    }
}

impl Secret {
    /// The secret `text` (the config's `nodeSecret`).
    pub fn new(text: &str) -> Secret {
        Secret(hmac::Key::new(hmac::HMAC_SHA256, text.as_bytes()))
    }

    /// The proof `side`, named `node`, sends on a session that exported `exported`.
    pub fn prove(&self, side: Side, exported: &[u8; EXPORTED_LEN], node: &str) -> [u8; PROOF_LEN] {
        let tag = hmac::sign(&self.0, &message(side, exported, node));
        let mut proof = [0u8; PROOF_LEN];
        proof.copy_from_slice(tag.as_ref());
        proof
    }

    /// Whether `proof` is the one `side`, named `node`, must send on this
    /// session (compared in constant time).
    pub fn check(&self, side: Side, exported: &[u8; EXPORTED_LEN], node: &str, proof: &[u8; PROOF_LEN]) -> bool {
        hmac::verify(&self.0, &message(side, exported, node), proof).is_ok()
    }
}

fn message(side: Side, exported: &[u8; EXPORTED_LEN], node: &str) -> Vec<u8> {
    let label = side.label();
    let mut message = Vec::with_capacity(label.len() + 1 + EXPORTED_LEN + node.len());
    message.extend_from_slice(label);
    // The label's end, so that no label is a prefix of another message.
    message.push(0);
    message.extend_from_slice(exported);
    message.extend_from_slice(node.as_bytes());
    message
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_proof_verifies_only_for_its_secret_side_session_and_node() {
        let secret = Secret::new("0123456789abcdef");
        let session = [1u8; EXPORTED_LEN];
        let proof = secret.prove(Side::Dialer, &session, "node-a");
        assert!(secret.check(Side::Dialer, &session, "node-a", &proof));
        assert!(!Secret::new("0123456789abcdeF").check(Side::Dialer, &session, "node-a", &proof), "secret");
        assert!(!secret.check(Side::Listener, &session, "node-a", &proof), "reflected to the other side");
        assert!(!secret.check(Side::Dialer, &[2u8; EXPORTED_LEN], "node-a", &proof), "another session");
        assert!(!secret.check(Side::Dialer, &session, "node-b", &proof), "another node id");
        let mut flipped = proof;
        flipped[31] ^= 1;
        assert!(!secret.check(Side::Dialer, &session, "node-a", &flipped));
    }
}
