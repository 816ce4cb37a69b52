//! Features: `TYPE(1) | LEN(2) | DATA(LEN)`.

use bytes::BufMut;

use crate::DecodeError;

/// Feature type bytes.
pub mod kind {
    /// UserAuth.
    pub const USER_AUTH: u8 = 0x01;
    /// Addr.
    pub const ADDR: u8 = 0x02;
    /// Tunnel.
    pub const TUNNEL: u8 = 0x03;
    /// Network.
    pub const NETWORK: u8 = 0x04;
}

/// One feature of a request or response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Feature {
    /// Credentials (each 0..=255 bytes).
    UserAuth {
        /// User name bytes.
        username: Vec<u8>,
        /// Password bytes.
        password: Vec<u8>,
    },
    /// An address with port.
    Addr(Addr),
    /// A tunnel id (router id in a request, connector id in a response).
    Tunnel(TunnelId),
    /// The network kind.
    Network(Network),
}

/// An address as carried by the Addr feature.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Addr {
    /// The host part.
    pub host: Host,
    /// The port (0 when unused).
    pub port: u16,
}

/// The host part of an [`Addr`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Host {
    /// ATYP 0x01.
    Ipv4(std::net::Ipv4Addr),
    /// ATYP 0x04.
    Ipv6(std::net::Ipv6Addr),
    /// ATYP 0x03: raw name bytes, 0..=255 of them (not necessarily UTF-8).
    Domain(Vec<u8>),
}

/// The 20 bytes of a Tunnel feature: a 16-byte UUID, a flag byte, two reserved
/// bytes and a weight byte. Equality compares only the UUID, as GOST does.
#[derive(Debug, Clone, Copy, Eq)]
pub struct TunnelId {
    /// The UUID bytes.
    pub uuid: [u8; 16],
    /// Flag byte.
    pub flag: u8,
    /// Reserved bytes, kept for round-tripping.
    pub reserved: [u8; 2],
    /// Weight byte.
    pub weight: u8,
}

/// The Network feature's values.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Network {
    /// 0x0000.
    Tcp,
    /// 0x0001.
    Udp,
    /// 0x0002: raw IP packets (the routing tunnel).
    Ip,
    /// 0x0010.
    Unix,
    /// 0x0011.
    Serial,
}

impl PartialEq for TunnelId {
    fn eq(&self, other: &Self) -> bool {
        self.uuid == other.uuid
    }
}

impl std::hash::Hash for TunnelId {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.uuid.hash(state);
    }
}

impl TunnelId {
    /// The all-zero id (what a request without a Tunnel feature means).
    pub const ZERO: TunnelId = TunnelId { uuid: [0; 16], flag: 0, reserved: [0; 2], weight: 0 };

    /// An id with these UUID bytes and zero flag, reserved and weight bytes.
    pub fn from_uuid(uuid: [u8; 16]) -> Self {
        TunnelId { uuid, ..Self::ZERO }
    }

    /// Whether the UUID is all zeros.
    pub fn is_zero(&self) -> bool {
        self.uuid == [0; 16]
    }
}

/// Lowercase hyphenated form, e.g. `e87f56dd-fd57-4921-9ab8-a0847662daae`.
impl std::fmt::Display for TunnelId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        todo!()
    }
}

impl Feature {
    /// Decodes one feature from the front of `buf`; returns it and the bytes used.
    /// `buf` is the remaining feature block: a LEN past its end is
    /// [`DecodeError::FeatureOverrun`], never `Incomplete`.
    pub fn decode(buf: &[u8]) -> Result<(Feature, usize), DecodeError> {
        todo!()
    }

    /// Appends the encoded feature. Panics never; a UserAuth field or domain
    /// longer than 255 bytes is truncated to 255 (callers validate first).
    pub fn encode(&self, out: &mut impl BufMut) {
        todo!()
    }

    /// The encoded length in bytes (header included).
    pub fn encoded_len(&self) -> usize {
        todo!()
    }
}
