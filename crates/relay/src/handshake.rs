//! The handshake: one request from the client, one response from the server.

use bytes::BufMut;

use crate::{Addr, DecodeError, Feature, Host, Network, TunnelId};

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
    /// The features, in wire order.
    pub features: Vec<Feature>,
}

/// A server's response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Response {
    /// The status.
    pub status: Status,
    /// The features (on success one Tunnel feature with the connector id).
    pub features: Vec<Feature>,
}

/// What a routing-tunnel server reads from an ASSOCIATE request, following
/// GOST: the first UserAuth, the first Addr as source, the second Addr as the
/// destination (the client's host name), the first Tunnel as router id
/// (absent = [`TunnelId::ZERO`]).
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
        todo!()
    }
    /// The status for a byte, if defined.
    pub fn from_code(code: u8) -> Option<Status> {
        todo!()
    }
}

impl Request {
    /// Decodes a request from the front of `buf`; returns it and the bytes used.
    /// Returns [`DecodeError::Incomplete`] with the missing count when `buf`
    /// is a proper prefix of a well-formed header/feature block.
    pub fn decode(buf: &[u8]) -> Result<(Request, usize), DecodeError> {
        todo!()
    }

    /// Appends the encoded request.
    pub fn encode(&self, out: &mut impl BufMut) {
        todo!()
    }

    /// The ASSOCIATE request a GOST client sends for the routing tunnel, in
    /// GOST's feature order: UserAuth (when `auth` is set), Network = ip,
    /// Addr = `src`, Addr = `host` as a domain with port 0, Tunnel =
    /// `router_id` (when set).
    pub fn associate(
        auth: Option<(&[u8], &[u8])>,
        src: Addr,
        host: &[u8],
        router_id: Option<TunnelId>,
    ) -> Request {
        todo!()
    }

    /// The server's reading of this request (see [`AssociateInfo`]).
    pub fn associate_info(&self) -> AssociateInfo<'_> {
        todo!()
    }
}

impl Response {
    /// Decodes a response from the front of `buf`; returns it and the bytes used.
    pub fn decode(buf: &[u8]) -> Result<(Response, usize), DecodeError> {
        todo!()
    }

    /// Appends the encoded response.
    pub fn encode(&self, out: &mut impl BufMut) {
        todo!()
    }

    /// A success response carrying `connector_id`.
    pub fn ok(connector_id: TunnelId) -> Response {
        todo!()
    }

    /// A failure response with no features.
    pub fn error(status: Status) -> Response {
        todo!()
    }

    /// The connector id of a success response (its first Tunnel feature).
    pub fn connector_id(&self) -> Option<TunnelId> {
        todo!()
    }
}

impl Addr {
    /// A domain address (name truncated to 255 bytes).
    pub fn domain(name: &[u8], port: u16) -> Addr {
        Addr { host: Host::Domain(name[..name.len().min(255)].to_vec()), port }
    }
}
