//! Linux TUN devices: the only crate that touches the TUN fd and netlink.
//!
//! [`Tun::create`] makes a device, gives it its addresses and MTU, brings it
//! up and installs its routes; [`Tun::close`] removes the routes and the
//! device. Packets are read and written one at a time through `&self`, so
//! one `Arc<Tun>` serves a reader task and a writer task.

use std::net::IpAddr;

use ipnet::IpNet;

/// What device to create.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TunConfig {
    /// Device name; the system picks one (`tun0`, ...) when `None`.
    pub name: Option<String>,
    /// Addresses with prefix length (IPv4 and IPv6, several allowed).
    pub addrs: Vec<IpNet>,
    /// MTU.
    pub mtu: u16,
    /// Routes sent into the device.
    pub routes: Vec<TunRoute>,
}

/// One route into the device.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TunRoute {
    /// Destination network.
    pub dst: IpNet,
    /// Next hop, if any (otherwise a device route).
    pub gateway: Option<IpAddr>,
}

/// Why a device could not be set up or torn down.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TunError {
    /// Creating or opening the device failed (no /dev/net/tun, no CAP_NET_ADMIN, bad name).
    #[error("cannot create TUN device: {0}")]
    Create(#[source] std::io::Error),
    /// A netlink request failed.
    #[error("netlink: {what}: {source}")]
    Netlink {
        /// What was being done, e.g. "add address 10.0.0.1/24 to tun0".
        what: String,
        /// The underlying error.
        #[source]
        source: rtnetlink::Error,
    },
    /// The device vanished or has no index.
    #[error("TUN device {0} not found")]
    NotFound(String),
}

/// An open TUN device.
#[derive(Debug)]
pub struct Tun {
    // implementation-defined
}

impl Tun {
    /// Creates and configures the device (addresses, MTU, up, routes).
    /// On failure nothing is left behind.
    pub async fn create(config: &TunConfig) -> Result<Tun, TunError> {
        todo!()
    }

    /// The device's name.
    pub fn name(&self) -> &str {
        todo!()
    }

    /// The device's MTU.
    pub fn mtu(&self) -> u16 {
        todo!()
    }

    /// Reads one packet into `buf`; returns its length.
    pub async fn recv(&self, buf: &mut [u8]) -> std::io::Result<usize> {
        todo!()
    }

    /// Writes one packet.
    pub async fn send(&self, packet: &[u8]) -> std::io::Result<usize> {
        todo!()
    }

    /// Removes the routes this device installed and deletes the device.
    pub async fn close(self) -> Result<(), TunError> {
        todo!()
    }
}
