//! The server side of the handshake: read one request (bounded), decide.

use bytes::BytesMut;
use rgost_relay::{Command, DecodeError, Host, Request, Status, TunnelId};
use tokio::io::{AsyncRead, AsyncReadExt};

/// Why no request could be read.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ReadError {
    /// The peer closed before sending a whole request.
    #[error("connection closed during handshake")]
    Eof,
    /// The bytes are not a valid request.
    #[error("malformed request: {0}")]
    Malformed(#[from] DecodeError),
    /// The request declares more feature bytes than any real client sends.
    #[error("request of {0} bytes exceeds the handshake size limit")]
    TooLarge(usize),
    /// Reading failed.
    #[error("read failed: {0}")]
    Io(#[from] std::io::Error),
}

/// Reads one request into `buf`. Returns it and the number of bytes it used;
/// bytes after it (the first frames) stay in `buf`. A request longer than
/// `max_len` is refused as soon as its header says so; the caller bounds the time.
pub async fn read_request<R: AsyncRead + Unpin + ?Sized>(
    r: &mut R,
    buf: &mut BytesMut,
    max_len: usize,
) -> Result<(Request, usize), ReadError> {
    loop {
        if let [_, _, hi, lo, ..] = buf[..] {
            let len = 4 + usize::from(u16::from_be_bytes([hi, lo]));
            if len > max_len {
                return Err(ReadError::TooLarge(len));
            }
        }
        match Request::decode(buf) {
            Ok(done) => return Ok(done),
            Err(DecodeError::Incomplete(n)) => {
                buf.reserve(n);
                if r.read_buf(buf).await? == 0 {
                    return Err(ReadError::Eof);
                }
            }
            Err(e) => return Err(e.into()),
        }
    }
}

/// An ASSOCIATE request as the server reads it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Associate {
    /// The host name the connection registers.
    pub host: String,
    /// Its namespace.
    pub router_id: TunnelId,
    /// The source address it reported (for logs).
    pub src: Option<String>,
    /// Whether the client asked for GSO frames (an rgost client with offload).
    pub gso: bool,
}

/// Why a request is refused: the status to answer, and a reason for the log.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Refusal {
    /// The status.
    pub status: Status,
    /// Why, for the log.
    pub reason: &'static str,
}

/// GOST's step 3: only ASSOCIATE is served; reads the host name (the last
/// Addr after the first), the router id and the source.
pub fn associate(request: &Request) -> Result<Associate, Refusal> {
    if request.command != Command::Associate {
        return Err(Refusal { status: Status::BadRequest, reason: "command is not ASSOCIATE" });
    }
    let info = request.associate_info();
    let host = match info.dst.map(|a| &a.host) {
        None => String::new(),
        Some(Host::Domain(name)) => match std::str::from_utf8(name) {
            Ok(name) => name.to_owned(),
            Err(_) => {
                return Err(Refusal { status: Status::BadRequest, reason: "host name is not UTF-8" });
            }
        },
        Some(Host::Ipv4(ip)) => ip.to_string(),
        Some(Host::Ipv6(ip)) => ip.to_string(),
    };
    let src = info.src.map(|a| match &a.host {
        Host::Ipv4(ip) => format!("{ip}:{}", a.port),
        Host::Ipv6(ip) => format!("[{ip}]:{}", a.port),
        Host::Domain(name) => format!("{}:{}", String::from_utf8_lossy(name), a.port),
    });
    // rgost's request for GSO frames: the source named `ADDR/gso` (see rgost_relay::gso).
    let gso = matches!(info.src.map(|a| &a.host),
        Some(Host::Domain(name)) if name.ends_with(rgost_relay::gso::ADVERTISE_SUFFIX.as_bytes()));
    Ok(Associate { host, router_id: info.router_id, src, gso })
}

/// GOST's step 4: the ingress rule's endpoint for the host (`None`: no rule,
/// which counts as the zero id) must equal the request's router id.
///
/// Unlike GOST, which skips the check for a client that sends no host
/// name, an empty host name needs a rule that names it (`hostname: ""`):
/// otherwise a client could walk past an ingress that pins every name.
pub fn check_ingress(associate: &Associate, endpoint: Option<[u8; 16]>) -> Result<(), Refusal> {
    if associate.host.is_empty() && endpoint.is_none() {
        return Err(Refusal { status: Status::HostUnreachable, reason: "no host name, and no ingress rule for none" });
    }
    let allowed = endpoint.map(TunnelId::from_uuid).unwrap_or(TunnelId::ZERO);
    if allowed == associate.router_id {
        Ok(())
    } else {
        Err(Refusal { status: Status::HostUnreachable, reason: "ingress pins this host name to another namespace" })
    }
}
