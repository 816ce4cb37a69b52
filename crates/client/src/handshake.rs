//! The client side of the handshake: dial the node, send ASSOCIATE, read the answer.

use bytes::BytesMut;
use rgost_config::Node;
use rgost_relay::{Addr, DecodeError, Request, Response, Status, TunnelId};
use rgost_transport::{Conn, DialError, Dialer};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// A connection that completed the handshake.
#[derive(Debug)]
pub struct Connected {
    /// The connection.
    pub conn: Conn,
    /// Bytes read past the response (the first frames).
    pub initial: BytesMut,
    /// The connector id the server gave this connection.
    pub connector_id: TunnelId,
    /// Whether the server takes and sends GSO frames on this connection.
    pub gso: bool,
}

/// Why a connection attempt failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConnectError {
    /// Dialing failed.
    #[error(transparent)]
    Dial(#[from] DialError),
    /// The server answered with a failure status.
    #[error("{}", refusal_text(*.status, host, *.router_id))]
    Refused {
        /// The status.
        status: Status,
        /// The host name we asked for.
        host: String,
        /// The router id we sent.
        router_id: Option<TunnelId>,
    },
    /// The server's answer is not a valid response.
    #[error("invalid handshake response: {0}")]
    Malformed(#[from] DecodeError),
    /// The server closed before answering.
    #[error("server closed the connection during the handshake")]
    Eof,
    /// The server did not answer in time.
    #[error("no handshake response within {0:?}")]
    Timeout(std::time::Duration),
    /// Reading or writing failed.
    #[error("handshake I/O: {0}")]
    Io(#[from] std::io::Error),
}

fn refusal_text(status: Status, host: &str, router_id: Option<TunnelId>) -> String {
    let ns =
        router_id.map_or_else(|| "no router id (the default namespace)".to_owned(), |id| format!("router id {id}"));
    match status {
        Status::HostUnreachable => format!(
            "the server refused host {host:?} with {ns}: its ingress pins this host name to another namespace \
             (status 6, HostUnreachable); check router.id"
        ),
        Status::Unauthorized => {
            format!("the server refused host {host:?}: wrong or missing credentials (status 2, Unauthorized)")
        }
        Status::BadRequest => {
            format!("the server refused host {host:?} as a bad request (status 1)")
        }
        Status::Forbidden => format!("the server refused host {host:?}: forbidden (status 3)"),
        other => format!("the server refused host {host:?} with {ns}: status {} ({other:?})", other.code()),
    }
}

/// Dials `node` with `dialer` and completes an ASSOCIATE for `host`.
pub async fn connect(node: &Node, dialer: &Dialer, host: &str, src: Addr) -> Result<Connected, ConnectError> {
    let mut conn = dialer.dial(node.connect_timeout).await?;
    let router_id = node.connector.router_id.map(|id| TunnelId::from_uuid(*id.as_bytes()));
    let auth = node.connector.auth.as_ref().map(|c| (c.username.as_bytes(), c.password.as_bytes()));
    let src_host = src.host.clone();
    let mut out = Vec::new();
    Request::associate(auth, src, host.as_bytes(), router_id).encode(&mut out);

    let exchange = async {
        conn.writer.write_all(&out).await?;
        conn.writer.flush().await?;
        let mut buf = BytesMut::with_capacity(64);
        loop {
            match Response::decode(&buf) {
                Ok(done) => return Ok((done, buf)),
                Err(DecodeError::Incomplete(n)) => {
                    buf.reserve(n);
                    if conn.reader.read_buf(&mut buf).await? == 0 {
                        return Err(ConnectError::Eof);
                    }
                }
                Err(e) => return Err(e.into()),
            }
        }
    };
    let ((response, used), mut buf) = tokio::time::timeout(node.connect_timeout, exchange)
        .await
        .map_err(|_| ConnectError::Timeout(node.connect_timeout))??;
    if response.status != Status::Ok {
        return Err(ConnectError::Refused { status: response.status, host: host.to_owned(), router_id });
    }
    let connector_id = response.connector_id().unwrap_or(TunnelId::ZERO);
    // Granted only if we asked (a source named ADDR/gso); never assumed.
    let asked = matches!(&src_host, rgost_relay::Host::Domain(name) if name.ends_with(rgost_relay::gso::ADVERTISE_SUFFIX.as_bytes()));
    let gso = asked && connector_id.reserved[0] & rgost_relay::gso::RESERVED_GSO != 0;
    let initial = buf.split_off(used);
    Ok(Connected { conn, initial, connector_id, gso })
}
