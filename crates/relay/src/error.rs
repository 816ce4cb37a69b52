//! Decoding errors.

/// Why a byte sequence could not be decoded.
///
/// [`DecodeError::Incomplete`] is the only variant that means "wait for more
/// bytes"; every other variant means the peer sent something malformed and
/// the connection should be refused or closed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum DecodeError {
    /// The input ends before the message does; at least this many more bytes are needed.
    #[error("incomplete message: at least {0} more bytes needed")]
    Incomplete(usize),
    /// The version byte is not `0x01`.
    #[error("unsupported protocol version {0:#04x}")]
    BadVersion(u8),
    /// The status byte is not one of the defined statuses.
    #[error("unknown status {0:#04x}")]
    UnknownStatus(u8),
    /// A lone feature's type byte is not one of the four defined types (in a
    /// request or response such a feature is skipped instead).
    #[error("unknown feature type {0:#04x}")]
    UnknownFeature(u8),
    /// A feature's length runs past the end of the feature block.
    #[error("feature length {len} runs past the feature block ({remaining} bytes left)")]
    FeatureOverrun {
        /// The feature's declared length.
        len: usize,
        /// Bytes left in the feature block after the feature header.
        remaining: usize,
    },
    /// A feature's data is shorter than its type requires.
    #[error("malformed {feature} feature: {reason}")]
    MalformedFeature {
        /// The feature's name.
        feature: &'static str,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// An address type byte other than IPv4, IPv6 or domain.
    #[error("unknown address type {0:#04x}")]
    UnknownAddrType(u8),
}
