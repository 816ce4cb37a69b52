//! Zero-copy views of IPv4/IPv6 headers: just what routing needs.

use std::net::IpAddr;

/// A checked view of an IP packet's header.
///
/// Built only through [`IpHeader::new_checked`], which verifies the version
/// and that the fixed header is present; after that no accessor can panic.
#[derive(Debug, Clone, Copy)]
pub struct IpHeader<T: AsRef<[u8]>> {
    buf: T,
}

/// Why bytes are not a routable IP packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum IpError {
    /// Empty packet.
    #[error("empty packet")]
    Empty,
    /// Version nibble is neither 4 nor 6.
    #[error("not an IP packet (version {0})")]
    NotIp(u8),
    /// Shorter than the fixed header (20 bytes IPv4, 40 bytes IPv6).
    #[error("truncated IP header")]
    Truncated,
}

/// The identity of a packet flow: addresses, protocol and (for TCP, UDP,
/// SCTP, UDP-Lite) ports; ports are 0 when absent or not readable.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct FlowKey {
    /// Source address.
    pub src: IpAddr,
    /// Destination address.
    pub dst: IpAddr,
    /// IPv4 protocol / IPv6 next header (extension headers not walked).
    pub protocol: u8,
    /// Source port or 0.
    pub src_port: u16,
    /// Destination port or 0.
    pub dst_port: u16,
}

impl<T: AsRef<[u8]>> IpHeader<T> {
    /// Checks the version and the fixed header length.
    pub fn new_checked(buf: T) -> Result<Self, IpError> {
        todo!()
    }
    /// 4 or 6.
    pub fn version(&self) -> u8 {
        todo!()
    }
    /// Source address.
    pub fn src(&self) -> IpAddr {
        todo!()
    }
    /// Destination address.
    pub fn dst(&self) -> IpAddr {
        todo!()
    }
    /// The flow key (ports read when the transport header is present and,
    /// for IPv4, the packet is not a non-first fragment).
    pub fn flow(&self) -> FlowKey {
        todo!()
    }
    /// A stable 64-bit hash of the flow key, symmetric neither in src/dst nor
    /// random per process (so that every relay instance agrees).
    pub fn flow_hash(&self) -> u64 {
        todo!()
    }
}
