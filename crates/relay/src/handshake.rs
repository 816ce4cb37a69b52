//! The handshake: one request from the client, one response from the server.

use bytes::BufMut;

use crate::{Addr, DecodeError, Feature, Host, Network, TunnelId, feature};

/// The only protocol version.
pub const VERSION: u8 = 0x01;

/// Largest feature block (FEALEN is 16 bits).
pub const MAX_FEATURES_LEN: usize = u16::MAX as usize;

/// Request commands (low 4 bits of CMD; the 0x80 UDP flag is ignored).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Command {
    /// 0x01.
    Connect,
    /// 0x02.
    Bind,
    /// 0x03: the routing tunnel's command.
    Associate,
    /// Any other command nibble (0x00, 0x04..=0x0F), kept as received: GOST reads the whole
    /// request and authenticates before it answers an undefined command with BadRequest, so the
    /// decoder must not refuse it. Never 0x01..=0x03 when decoded; encoded as the value held.
    Unknown(u8),
}

/// Response statuses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    /// 0x00.
    Ok,
    /// 0x01.
    BadRequest,
    /// 0x02.
    Unauthorized,
    /// 0x03.
    Forbidden,
    /// 0x04.
    Timeout,
    /// 0x05.
    ServiceUnavailable,
    /// 0x06.
    HostUnreachable,
    /// 0x07.
    NetworkUnreachable,
    /// 0x08.
    InternalServerError,
}

/// A client's request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    /// The command.
    pub command: Command,
    /// The features, in wire order (when decoded, without those of unknown types).
    pub features: Vec<Feature>,
}

/// A server's response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Response {
    /// The status.
    pub status: Status,
    /// The features (on success one Tunnel feature with the connector id;
    /// when decoded, without those of unknown types).
    pub features: Vec<Feature>,
}

/// What a routing-tunnel server reads from an ASSOCIATE request, as GOST's
/// handler reads a repeated feature: the last UserAuth, the first Addr as
/// source and the last of the others as destination (the client's host
/// name), the last Tunnel as router id (absent = [`TunnelId::ZERO`]), the
/// last Network.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AssociateInfo<'a> {
    /// Credentials, if sent.
    pub auth: Option<(&'a [u8], &'a [u8])>,
    /// The source address, if sent.
    pub src: Option<&'a Addr>,
    /// The destination address (host name as a domain Addr), if sent.
    pub dst: Option<&'a Addr>,
    /// The router id; zero when absent.
    pub router_id: TunnelId,
    /// The network, if sent.
    pub network: Option<Network>,
}

impl Status {
    /// The status byte.
    pub fn code(self) -> u8 {
        match self {
            Status::Ok => 0x00,
            Status::BadRequest => 0x01,
            Status::Unauthorized => 0x02,
            Status::Forbidden => 0x03,
            Status::Timeout => 0x04,
            Status::ServiceUnavailable => 0x05,
            Status::HostUnreachable => 0x06,
            Status::NetworkUnreachable => 0x07,
            Status::InternalServerError => 0x08,
        }
    }
    /// The status for a byte, if defined.
    pub fn from_code(code: u8) -> Option<Status> {
        Some(match code {
            0x00 => Status::Ok,
            0x01 => Status::BadRequest,
            0x02 => Status::Unauthorized,
            0x03 => Status::Forbidden,
            0x04 => Status::Timeout,
            0x05 => Status::ServiceUnavailable,
            0x06 => Status::HostUnreachable,
            0x07 => Status::NetworkUnreachable,
            0x08 => Status::InternalServerError,
            _ => return None,
        })
    }
}

impl Command {
    /// The command nibble.
    pub fn code(self) -> u8 {
        match self {
            Command::Connect => 0x01,
            Command::Bind => 0x02,
            Command::Associate => 0x03,
            Command::Unknown(code) => code,
        }
    }

    /// The command for a CMD byte; only the low 4 bits are looked at (the `0x80` UDP flag of old
    /// clients is ignored). A nibble with no defined command is [`Command::Unknown`].
    pub fn from_code(code: u8) -> Command {
        match code & CMD_MASK {
            0x01 => Command::Connect,
            0x02 => Command::Bind,
            0x03 => Command::Associate,
            other => Command::Unknown(other),
        }
    }
}

impl Request {
    /// Decodes a request from the front of `buf`; returns it and the bytes used.
    /// Returns [`DecodeError::Incomplete`] with the missing count when `buf`
    /// is a proper prefix of a well-formed header/feature block. Any command
    /// nibble is accepted (see [`Command::Unknown`]); a feature of an unknown
    /// type is skipped, as GOST's reader does since relay v0.6.1.
    pub fn decode(buf: &[u8]) -> Result<(Request, usize), DecodeError> {
        let (cmd, features, used) = decode_message(buf, |cmd| Ok(Command::from_code(cmd)))?;
        Ok((Request { command: cmd, features }, used))
    }

    /// Appends the encoded request.
    ///
    /// FEALEN is 16 bits: if the features together exceed
    /// [`MAX_FEATURES_LEN`] bytes, only the leading features that fit are
    /// written (a codec never panics; callers build far smaller requests).
    pub fn encode(&self, out: &mut impl BufMut) {
        encode_message(self.command.code(), &self.features, out);
    }

    /// The encoded length in bytes.
    pub fn encoded_len(&self) -> usize {
        HEADER_LEN + features_len(&self.features).0
    }

    /// The ASSOCIATE request a GOST client sends for the routing tunnel, in
    /// GOST's feature order: UserAuth (when `auth` is set), Network = ip,
    /// Addr = `src`, Addr = `host` as a domain with port 0, Tunnel =
    /// `router_id` (when set).
    pub fn associate(auth: Option<(&[u8], &[u8])>, src: Addr, host: &[u8], router_id: Option<TunnelId>) -> Request {
        let mut features = Vec::with_capacity(5);
        if let Some((username, password)) = auth {
            features.push(Feature::UserAuth { username: username.to_vec(), password: password.to_vec() });
        }
        features.push(Feature::Network(Network::Ip));
        features.push(Feature::Addr(src));
        features.push(Feature::Addr(Addr::domain(host, 0)));
        if let Some(id) = router_id {
            features.push(Feature::Tunnel(id));
        }
        Request { command: Command::Associate, features }
    }

    /// The server's reading of this request (see [`AssociateInfo`]).
    pub fn associate_info(&self) -> AssociateInfo<'_> {
        let mut info = AssociateInfo { auth: None, src: None, dst: None, router_id: TunnelId::ZERO, network: None };
        for feature in &self.features {
            match feature {
                Feature::UserAuth { username, password } => {
                    info.auth = Some((username.as_slice(), password.as_slice()));
                }
                Feature::Addr(addr) => {
                    if info.src.is_none() {
                        info.src = Some(addr);
                    } else {
                        info.dst = Some(addr);
                    }
                }
                Feature::Tunnel(id) => info.router_id = *id,
                Feature::Network(network) => info.network = Some(*network),
            }
        }
        info
    }
}

impl Response {
    /// Decodes a response from the front of `buf`; returns it and the bytes used.
    /// A feature of an unknown type is skipped, as in [`Request::decode`].
    pub fn decode(buf: &[u8]) -> Result<(Response, usize), DecodeError> {
        let (status, features, used) =
            decode_message(buf, |code| Status::from_code(code).ok_or(DecodeError::UnknownStatus(code)))?;
        Ok((Response { status, features }, used))
    }

    /// Appends the encoded response (features beyond [`MAX_FEATURES_LEN`]
    /// bytes are left out, as for [`Request::encode`]).
    pub fn encode(&self, out: &mut impl BufMut) {
        encode_message(self.status.code(), &self.features, out);
    }

    /// The encoded length in bytes.
    pub fn encoded_len(&self) -> usize {
        HEADER_LEN + features_len(&self.features).0
    }

    /// A success response carrying `connector_id`.
    pub fn ok(connector_id: TunnelId) -> Response {
        Response { status: Status::Ok, features: vec![Feature::Tunnel(connector_id)] }
    }

    /// A failure response with no features.
    pub fn error(status: Status) -> Response {
        Response { status, features: Vec::new() }
    }

    /// The connector id of a success response (its first Tunnel feature).
    pub fn connector_id(&self) -> Option<TunnelId> {
        self.features.iter().find_map(|feature| match feature {
            Feature::Tunnel(id) => Some(*id),
            _ => None,
        })
    }
}

impl Addr {
    /// A domain address (name truncated to 255 bytes).
    pub fn domain(name: &[u8], port: u16) -> Addr {
        Addr { host: Host::Domain(name[..name.len().min(255)].to_vec()), port }
    }
}

/// Bytes of the `VER | CMD/STATUS | FEALEN` header shared by requests and responses.
pub const HEADER_LEN: usize = 4;

/// The bits of CMD that carry the command.
const CMD_MASK: u8 = 0x0f;

/// Decodes `VER | CODE | FEALEN | FEATURES`, interpreting CODE with `code`.
///
/// The version and code are checked as soon as their byte is present, so a
/// bad peer is rejected without waiting for the rest of the message (a
/// request's command is never refused: the server answers it once it has the
/// whole request).
fn decode_message<C>(
    buf: &[u8],
    code: impl FnOnce(u8) -> Result<C, DecodeError>,
) -> Result<(C, Vec<Feature>, usize), DecodeError> {
    let Some(&version) = buf.first() else {
        return Err(DecodeError::Incomplete(HEADER_LEN));
    };
    if version != VERSION {
        return Err(DecodeError::BadVersion(version));
    }
    let Some(&code_byte) = buf.get(1) else {
        return Err(DecodeError::Incomplete(HEADER_LEN - buf.len()));
    };
    let code = code(code_byte)?;
    let Some((&[_, _, len_hi, len_lo], rest)) = buf.split_first_chunk::<HEADER_LEN>() else {
        return Err(DecodeError::Incomplete(HEADER_LEN.saturating_sub(buf.len())));
    };
    let fea_len = usize::from(u16::from_be_bytes([len_hi, len_lo]));
    let Some(mut block) = rest.get(..fea_len) else {
        return Err(DecodeError::Incomplete(fea_len.saturating_sub(rest.len())));
    };
    let mut features = Vec::new();
    while !block.is_empty() {
        let (feature, used) = feature::decode_or_skip(block)?;
        features.extend(feature);
        block = block.get(used..).unwrap_or_default();
    }
    Ok((code, features, HEADER_LEN + fea_len))
}

/// Total encoded length of the leading features that fit in FEALEN, and how many they are.
fn features_len(features: &[Feature]) -> (usize, usize) {
    let mut total = 0;
    for (i, feature) in features.iter().enumerate() {
        let next = total + feature.encoded_len();
        if next > MAX_FEATURES_LEN {
            return (total, i);
        }
        total = next;
    }
    (total, features.len())
}

fn encode_message(code: u8, features: &[Feature], out: &mut impl BufMut) {
    let (len, count) = features_len(features);
    out.put_u8(VERSION);
    out.put_u8(code);
    // `features_len` never exceeds MAX_FEATURES_LEN.
    out.put_u16(len as u16);
    for feature in features.iter().take(count) {
        feature.encode(out);
    }
}
