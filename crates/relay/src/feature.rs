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

/// Address type bytes (ATYP) of the Addr feature.
pub mod atyp {
    /// IPv4, 4 address bytes.
    pub const IPV4: u8 = 0x01;
    /// Domain name: one length byte, then the name.
    pub const DOMAIN: u8 = 0x03;
    /// IPv6, 16 address bytes.
    pub const IPV6: u8 = 0x04;
}

/// Bytes of a feature's `TYPE | LEN` header.
pub const HEADER_LEN: usize = 3;

/// Bytes of a Tunnel feature's DATA as encoded; a decoder needs at least this
/// many and ignores any that follow, as GOST does.
pub const TUNNEL_LEN: usize = 20;

/// Bytes of a Network feature's DATA as encoded; a decoder needs at least this
/// many and ignores any that follow, as GOST does.
pub const NETWORK_LEN: usize = 2;

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
    /// Any other value, kept as received (GOST names it tcp). Never one of the
    /// values above when decoded; encoded as the value held.
    Unknown(u16),
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
        for (i, byte) in self.uuid.iter().enumerate() {
            if matches!(i, 4 | 6 | 8 | 10) {
                f.write_str("-")?;
            }
            write!(f, "{byte:02x}")?;
        }
        Ok(())
    }
}

impl Feature {
    /// Decodes one feature from the front of `buf`; returns it and the bytes used.
    /// `buf` is the remaining feature block: a LEN past its end is
    /// [`DecodeError::FeatureOverrun`], never `Incomplete`.
    ///
    /// A TYPE other than the four defined is [`DecodeError::UnknownFeature`]:
    /// a lone feature of that type has no value to return. Inside a request or
    /// response it is skipped instead (see [`Request::decode`](crate::Request::decode)).
    pub fn decode(buf: &[u8]) -> Result<(Feature, usize), DecodeError> {
        let (ty, data, used) = split_feature(buf)?;
        match decode_data(ty, data)? {
            Some(feature) => Ok((feature, used)),
            None => Err(DecodeError::UnknownFeature(ty)),
        }
    }

    /// Appends the encoded feature. Panics never; a UserAuth field or domain
    /// longer than 255 bytes is truncated to 255 (callers validate first).
    pub fn encode(&self, out: &mut impl BufMut) {
        out.put_u8(self.kind());
        // At most 1 + 255 + 1 + 255 bytes of data, so the cast cannot truncate.
        out.put_u16(self.data_len() as u16);
        match self {
            Feature::UserAuth { username, password } => {
                put_short_bytes(username, out);
                put_short_bytes(password, out);
            }
            Feature::Addr(addr) => addr.encode(out),
            Feature::Tunnel(id) => {
                out.put_slice(&id.uuid);
                out.put_u8(id.flag);
                out.put_slice(&id.reserved);
                out.put_u8(id.weight);
            }
            Feature::Network(network) => out.put_u16(network.code()),
        }
    }

    /// The encoded length in bytes (header included).
    pub fn encoded_len(&self) -> usize {
        HEADER_LEN + self.data_len()
    }

    /// The TYPE byte (one of the [`kind`] constants).
    pub fn kind(&self) -> u8 {
        match self {
            Feature::UserAuth { .. } => kind::USER_AUTH,
            Feature::Addr(_) => kind::ADDR,
            Feature::Tunnel(_) => kind::TUNNEL,
            Feature::Network(_) => kind::NETWORK,
        }
    }

    /// Length of DATA as encoded (after truncation of over-long fields).
    fn data_len(&self) -> usize {
        match self {
            Feature::UserAuth { username, password } => 2 + short_len(username) + short_len(password),
            Feature::Addr(addr) => addr.encoded_len(),
            Feature::Tunnel(_) => TUNNEL_LEN,
            Feature::Network(_) => NETWORK_LEN,
        }
    }
}

impl Addr {
    /// An address from a socket address (IPv4 or IPv6 host).
    pub fn from_socket_addr(addr: std::net::SocketAddr) -> Addr {
        let host = match addr.ip() {
            std::net::IpAddr::V4(ip) => Host::Ipv4(ip),
            std::net::IpAddr::V6(ip) => Host::Ipv6(ip),
        };
        Addr { host, port: addr.port() }
    }

    /// The ATYP byte of this address.
    pub fn atyp(&self) -> u8 {
        match self.host {
            Host::Ipv4(_) => atyp::IPV4,
            Host::Ipv6(_) => atyp::IPV6,
            Host::Domain(_) => atyp::DOMAIN,
        }
    }

    /// Bytes of `ATYP ADDR PORT` as encoded.
    fn encoded_len(&self) -> usize {
        let addr_len = match &self.host {
            Host::Ipv4(_) => 4,
            Host::Ipv6(_) => 16,
            Host::Domain(name) => 1 + short_len(name),
        };
        1 + addr_len + 2
    }

    fn encode(&self, out: &mut impl BufMut) {
        out.put_u8(self.atyp());
        match &self.host {
            Host::Ipv4(ip) => out.put_slice(&ip.octets()),
            Host::Ipv6(ip) => out.put_slice(&ip.octets()),
            Host::Domain(name) => put_short_bytes(name, out),
        }
        out.put_u16(self.port);
    }
}

impl From<std::net::SocketAddr> for Addr {
    fn from(addr: std::net::SocketAddr) -> Self {
        Addr::from_socket_addr(addr)
    }
}

impl Network {
    /// The 16-bit network value.
    pub fn code(self) -> u16 {
        match self {
            Network::Tcp => 0x0000,
            Network::Udp => 0x0001,
            Network::Ip => 0x0002,
            Network::Unix => 0x0010,
            Network::Serial => 0x0011,
            Network::Unknown(code) => code,
        }
    }

    /// The network for a 16-bit value; an undefined value is [`Network::Unknown`].
    pub fn from_code(code: u16) -> Network {
        match code {
            0x0000 => Network::Tcp,
            0x0001 => Network::Udp,
            0x0002 => Network::Ip,
            0x0010 => Network::Unix,
            0x0011 => Network::Serial,
            other => Network::Unknown(other),
        }
    }
}

/// Decodes the feature at the front of a feature block, or skips it (`None`)
/// when its TYPE is not one of the four defined: GOST's relay reader does
/// since v0.6.1, so that a newer peer may add a feature type. Returns the
/// bytes used either way.
pub(crate) fn decode_or_skip(block: &[u8]) -> Result<(Option<Feature>, usize), DecodeError> {
    let (ty, data, used) = split_feature(block)?;
    Ok((decode_data(ty, data)?, used))
}

/// Splits `TYPE | LEN | DATA` off the front of a feature block: the TYPE, the
/// DATA and the bytes used.
fn split_feature(buf: &[u8]) -> Result<(u8, &[u8], usize), DecodeError> {
    let Some((&[ty, len_hi, len_lo], rest)) = buf.split_first_chunk::<HEADER_LEN>() else {
        return Err(DecodeError::MalformedFeature {
            feature: "feature",
            reason: "fewer than 3 bytes left for the TYPE and LEN header",
        });
    };
    let len = usize::from(u16::from_be_bytes([len_hi, len_lo]));
    let Some(data) = rest.get(..len) else {
        return Err(DecodeError::FeatureOverrun { len, remaining: rest.len() });
    };
    Ok((ty, data, HEADER_LEN + len))
}

/// Decodes the DATA of a feature of type `ty`; `None` for an unknown type.
fn decode_data(ty: u8, data: &[u8]) -> Result<Option<Feature>, DecodeError> {
    Ok(Some(match ty {
        kind::USER_AUTH => decode_user_auth(data)?,
        kind::ADDR => Feature::Addr(decode_addr(data)?),
        kind::TUNNEL => Feature::Tunnel(decode_tunnel(data)?),
        kind::NETWORK => Feature::Network(decode_network(data)?),
        _ => return Ok(None),
    }))
}

/// Longest UserAuth field or domain name (its length is one byte).
const MAX_SHORT: usize = u8::MAX as usize;

fn short_len(bytes: &[u8]) -> usize {
    bytes.len().min(MAX_SHORT)
}

/// Writes `LEN(1) | BYTES`, truncating to 255 bytes.
fn put_short_bytes(bytes: &[u8], out: &mut impl BufMut) {
    let bytes = bytes.get(..MAX_SHORT).unwrap_or(bytes);
    // `bytes` is at most 255 long here.
    out.put_u8(bytes.len() as u8);
    out.put_slice(bytes);
}

/// Reads `LEN(1) | BYTES` from the front of `buf`.
fn take_short_bytes<'a>(
    buf: &'a [u8],
    feature: &'static str,
    reason: &'static str,
) -> Result<(&'a [u8], &'a [u8]), DecodeError> {
    let malformed = || DecodeError::MalformedFeature { feature, reason };
    let (&len, rest) = buf.split_first().ok_or_else(malformed)?;
    let len = usize::from(len);
    if rest.len() < len {
        return Err(malformed());
    }
    Ok(rest.split_at(len))
}

fn decode_user_auth(data: &[u8]) -> Result<Feature, DecodeError> {
    const NAME: &str = "UserAuth";
    let (username, rest) = take_short_bytes(data, NAME, "user name shorter than ULEN")?;
    // Bytes after the password are ignored, as GOST's reader does.
    let (password, _) = take_short_bytes(rest, NAME, "password shorter than PLEN")?;
    Ok(Feature::UserAuth { username: username.to_vec(), password: password.to_vec() })
}

fn decode_addr(data: &[u8]) -> Result<Addr, DecodeError> {
    const NAME: &str = "Addr";
    let malformed = |reason| DecodeError::MalformedFeature { feature: NAME, reason };
    let (&ty, rest) = data.split_first().ok_or_else(|| malformed("empty"))?;
    let (host, rest) = match ty {
        atyp::IPV4 => {
            let (octets, rest) = rest.split_first_chunk::<4>().ok_or_else(|| malformed("IPv4 address too short"))?;
            (Host::Ipv4(std::net::Ipv4Addr::from(*octets)), rest)
        }
        atyp::IPV6 => {
            let (octets, rest) = rest.split_first_chunk::<16>().ok_or_else(|| malformed("IPv6 address too short"))?;
            (Host::Ipv6(std::net::Ipv6Addr::from(*octets)), rest)
        }
        atyp::DOMAIN => {
            let (name, rest) = take_short_bytes(rest, NAME, "domain name shorter than its length byte")?;
            (Host::Domain(name.to_vec()), rest)
        }
        other => return Err(DecodeError::UnknownAddrType(other)),
    };
    // Bytes after the port are ignored, as GOST's reader does.
    let Some(port) = rest.first_chunk::<2>() else {
        return Err(malformed("port missing"));
    };
    Ok(Addr { host, port: u16::from_be_bytes(*port) })
}

fn decode_tunnel(data: &[u8]) -> Result<TunnelId, DecodeError> {
    // Every GOST version reads the first 20 bytes of a longer Tunnel feature.
    let Some(bytes) = data.first_chunk::<TUNNEL_LEN>() else {
        return Err(DecodeError::MalformedFeature { feature: "Tunnel", reason: "data shorter than 20 bytes" });
    };
    let [uuid @ .., flag, r0, r1, weight] = *bytes;
    Ok(TunnelId { uuid, flag, reserved: [r0, r1], weight })
}

fn decode_network(data: &[u8]) -> Result<Network, DecodeError> {
    // Bytes after the value are ignored, as GOST's reader does.
    let Some(bytes) = data.first_chunk::<NETWORK_LEN>() else {
        return Err(DecodeError::MalformedFeature { feature: "Network", reason: "data shorter than 2 bytes" });
    };
    Ok(Network::from_code(u16::from_be_bytes(*bytes)))
}
