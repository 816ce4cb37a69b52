//! The GOST v3 relay protocol as the routing tunnel uses it, as a pure codec.
//!
//! No I/O, no clock, no allocation beyond the values returned. Every decoder
//! works on a borrowed byte slice, never panics on any input and rejects
//! malformed input with a typed [`DecodeError`].
//!
//! * [`handshake`]: the client's request and the server's response.
//! * [`feature`]: the TLV features carried by both.
//! * [`frame`]: the `LEN(2) | PACKET` framing used after a successful ASSOCIATE.
//! * [`ip`]: zero-copy IPv4/IPv6 header views (destination, flow key).
//! * [`gso`]: super-packets between rgost peers: GSO frames, the handshake signals, segmentation.
//!
//! # Strict writer, lenient reader
//!
//! The encoders write only what GOST's own clients and servers write. The
//! decoders are as lenient as GOST's reader in these ways, beyond what
//! `spec/relay-protocol.md` describes (no current GOST peer sends any of it):
//!
//! * a request with an undefined command (0x00, 0x04..=0x0F) decodes to
//!   [`Command::Unknown`], so that a server can answer it with BadRequest
//!   after authentication, in GOST's order of checks;
//! * an undefined Network value decodes to [`Network::Unknown`] (GOST treats it as tcp);
//! * a Tunnel feature longer than 20 bytes decodes from its first 20 bytes;
//! * bytes after the port of an Addr feature, the password of a UserAuth
//!   feature or the 2-byte value of a Network feature are ignored;
//! * a feature of an unknown type is skipped in a request and in a response, as
//!   GOST's reader does since relay v0.6.1 (a newer peer may add one; GOST
//!   relay v0.5 closes the connection on one, so the encoders never write one);
//! * of repeated features, [`Request::associate_info`] takes the last UserAuth,
//!   Tunnel and Network, the first Addr as source and the last Addr as host.
#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod error;
pub mod feature;
pub mod frame;
pub mod gso;
pub mod handshake;
pub mod ip;

pub use error::DecodeError;
pub use feature::{Addr, Feature, Host, Network, TunnelId};
pub use handshake::{AssociateInfo, Command, Request, Response, Status, VERSION};
