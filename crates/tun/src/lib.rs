//! Linux TUN devices: the only crate that touches the TUN fd and netlink.
//!
//! [`Tun::create`] makes a device, gives it its addresses and MTU, brings it
//! up and installs its routes; [`Tun::close`] removes the routes and the
//! device. Packets are read and written one at a time through `&self`, so
//! one `Arc<Tun>` serves a reader task and a writer task.
//!
//! The device is opened with tun-rs (no packet information header, no
//! offload: every `recv` returns exactly one IP packet). Everything else
//! (MTU, addresses, link state, routes) goes through rtnetlink, in the
//! network namespace of the thread that calls [`Tun::create`].
//!
//! Dropping a [`Tun`] without [`Tun::close`] also removes the device (it is
//! not persistent, so closing its fd deletes it) and with it every route
//! through it; `close` does the same explicitly and checks the result.

use std::fmt;
use std::net::IpAddr;
use std::sync::{Mutex, PoisonError};
use std::time::Duration;

use futures_util::TryStreamExt;
use ipnet::IpNet;
use rtnetlink::packet_route::address::{AddressAttribute, AddressFlags, AddressHeaderFlags};
use rtnetlink::packet_route::route::{RouteMessage, RouteScope};
use rtnetlink::{Handle, LinkUnspec, RouteMessageBuilder};
use tokio::task::JoinHandle;
use tun_rs::{AsyncDevice, DeviceBuilder};

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

impl fmt::Display for TunRoute {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.gateway {
            Some(gw) => write!(f, "{} via {gw}", self.dst),
            None => write!(f, "{}", self.dst),
        }
    }
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
    /// A route in the configuration is unusable as written (e.g. an IPv6
    /// destination with an IPv4 gateway). Detected before anything is created.
    #[error("invalid route {route}: {reason}")]
    InvalidRoute {
        /// The route, as `dst` or `dst via gateway`.
        route: String,
        /// What is wrong with it.
        reason: String,
    },
    /// Opening the netlink socket failed.
    #[error("cannot open netlink socket: {0}")]
    NetlinkSocket(#[source] std::io::Error),
    /// The device was still present after it should have been deleted.
    #[error("TUN device {0} still present after close")]
    NotRemoved(String),
}

/// Netlink error numbers we treat specially (positive errno values).
const EEXIST: i32 = 17;
const ENODEV: i32 = 19;
const ESRCH: i32 = 3;
const ENOENT: i32 = 2;

/// The errno of a netlink NACK, if the error is one.
fn netlink_errno(err: &rtnetlink::Error) -> Option<i32> {
    match err {
        rtnetlink::Error::NetlinkError(msg) => Some(msg.raw_code().abs()),
        _ => None,
    }
}

/// Aborts the netlink connection task when the device goes away.
struct ConnTask(JoinHandle<()>);

impl Drop for ConnTask {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// The netlink connection kept for the device's lifetime, so that teardown
/// talks to the namespace the device was created in.
struct Netlink {
    handle: Handle,
    _task: ConnTask,
}

impl Netlink {
    fn open() -> Result<Netlink, TunError> {
        let (conn, handle, _) = rtnetlink::new_connection().map_err(TunError::NetlinkSocket)?;
        let task = tokio::spawn(conn);
        Ok(Netlink { handle, _task: ConnTask(task) })
    }
}

/// An open TUN device.
pub struct Tun {
    dev: AsyncDevice,
    name: String,
    index: u32,
    mtu: u16,
    netlink: Netlink,
    /// Routes this device installed and has not removed yet.
    routes: Mutex<Vec<(TunRoute, RouteMessage)>>,
}

impl fmt::Debug for Tun {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Tun")
            .field("name", &self.name)
            .field("index", &self.index)
            .field("mtu", &self.mtu)
            .finish_non_exhaustive()
    }
}

impl Tun {
    /// Creates and configures the device (addresses, MTU, up, routes).
    /// On failure nothing is left behind.
    ///
    /// Must run inside a tokio runtime with I/O enabled. The device and its
    /// configuration land in the network namespace of the calling thread.
    pub async fn create(config: &TunConfig) -> Result<Tun, TunError> {
        let routes =
            config.routes.iter().map(|r| validate_route(r).map(|()| r.clone())).collect::<Result<Vec<_>, _>>()?;

        let netlink = Netlink::open()?;

        let mut builder = DeviceBuilder::new().enable(false);
        if let Some(name) = &config.name {
            builder = builder.name(name.clone());
        }
        let dev = builder.build_async().map_err(TunError::Create)?;
        let name = dev.name().map_err(TunError::Create)?;
        let index = dev.if_index().map_err(|_| TunError::NotFound(name.clone()))?;
        tracing::debug!(name = %name, index, "TUN device opened");

        let tun = Tun { dev, name, index, mtu: config.mtu, netlink, routes: Mutex::new(Vec::new()) };
        if let Err(err) = tun.configure(config, &routes).await {
            tracing::debug!(name = %tun.name, error = %err, "TUN setup failed; rolling back");
            if let Err(cleanup) = tun.teardown().await {
                tracing::warn!(name = %tun.name, error = %cleanup, "TUN rollback incomplete");
            }
            return Err(err);
        }
        tracing::info!(
            name = %tun.name,
            index = tun.index,
            mtu = tun.mtu,
            addrs = ?config.addrs,
            routes = config.routes.len(),
            "TUN device up"
        );
        Ok(tun)
    }

    /// Sets MTU, addresses, link up and routes.
    async fn configure(&self, config: &TunConfig, routes: &[TunRoute]) -> Result<(), TunError> {
        let handle = &self.netlink.handle;
        handle
            .link()
            .set(LinkUnspec::new_with_index(self.index).mtu(u32::from(config.mtu)).build())
            .execute()
            .await
            .map_err(|source| TunError::Netlink { what: format!("set MTU {} on {}", config.mtu, self.name), source })?;
        tracing::debug!(name = %self.name, mtu = config.mtu, "MTU set");

        for addr in &config.addrs {
            let mut req = handle.address().add(self.index, addr.addr(), addr.prefix_len());
            if addr.addr().is_ipv6() {
                // No duplicate address detection: usable at once.
                let msg = req.message_mut();
                msg.header.flags |= AddressHeaderFlags::Nodad;
                msg.attributes.push(AddressAttribute::Flags(AddressFlags::Nodad));
            }
            req.execute()
                .await
                .map_err(|source| TunError::Netlink { what: format!("add address {addr} to {}", self.name), source })?;
            tracing::debug!(name = %self.name, %addr, "address added");
        }

        handle
            .link()
            .set(LinkUnspec::new_with_index(self.index).up().build())
            .execute()
            .await
            .map_err(|source| TunError::Netlink { what: format!("set {} up", self.name), source })?;
        tracing::debug!(name = %self.name, "link up");

        for route in routes {
            let msg = route_message(route, self.index)?;
            match handle.route().add(msg.clone()).execute().await {
                Ok(()) => {
                    tracing::debug!(name = %self.name, %route, "route added");
                    self.lock_routes().push((route.clone(), msg));
                }
                Err(err) if netlink_errno(&err) == Some(EEXIST) => {
                    tracing::warn!(name = %self.name, %route, "route already exists; left as is");
                }
                Err(source) => {
                    return Err(TunError::Netlink { what: format!("add route {route} dev {}", self.name), source });
                }
            }
        }
        Ok(())
    }

    /// The device's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The device's interface index.
    pub fn index(&self) -> u32 {
        self.index
    }

    /// The device's MTU.
    pub fn mtu(&self) -> u16 {
        self.mtu
    }

    /// Reads one packet into `buf`; returns its length.
    ///
    /// After [`Tun::shutdown`] this fails (the kernel detaches the fd).
    pub async fn recv(&self, buf: &mut [u8]) -> std::io::Result<usize> {
        self.dev.recv(buf).await
    }

    /// Writes one packet.
    pub async fn send(&self, packet: &[u8]) -> std::io::Result<usize> {
        self.dev.send(packet).await
    }

    /// Removes the routes this device installed and deletes the device.
    pub async fn close(self) -> Result<(), TunError> {
        let result = self.teardown().await;
        let Tun { dev, name, index, netlink, .. } = self;
        // Closing the fd deletes a non-persistent TUN device (if the netlink
        // delete above did not already).
        drop(dev);
        let gone = wait_link_gone(&netlink.handle, index).await;
        result?;
        if !gone {
            return Err(TunError::NotRemoved(name));
        }
        tracing::info!(name = %name, "TUN device closed");
        Ok(())
    }

    /// Removes the routes and deletes the device while the `Tun` is still
    /// shared (e.g. through an `Arc`): pending and later `recv`/`send` calls
    /// fail, which ends reader and writer tasks. Idempotent. The fd itself is
    /// closed when the last reference is dropped.
    pub async fn shutdown(&self) -> Result<(), TunError> {
        self.teardown().await
    }

    /// Removes installed routes (newest first), then deletes the link. Keeps
    /// going on errors and returns the first one.
    async fn teardown(&self) -> Result<(), TunError> {
        let handle = &self.netlink.handle;
        let routes = std::mem::take(&mut *self.lock_routes());
        let mut first_err = None;
        for (route, msg) in routes.into_iter().rev() {
            match handle.route().del(msg).execute().await {
                Ok(()) => tracing::debug!(name = %self.name, %route, "route removed"),
                Err(err) if matches!(netlink_errno(&err), Some(ESRCH | ENODEV | ENOENT)) => {
                    tracing::debug!(name = %self.name, %route, "route already gone");
                }
                Err(source) => {
                    tracing::warn!(name = %self.name, %route, error = %source, "cannot remove route");
                    first_err.get_or_insert(TunError::Netlink {
                        what: format!("delete route {route} dev {}", self.name),
                        source,
                    });
                }
            }
        }
        match handle.link().del(self.index).execute().await {
            Ok(()) => tracing::debug!(name = %self.name, "link deleted"),
            Err(err) if netlink_errno(&err) == Some(ENODEV) => {
                tracing::debug!(name = %self.name, "link already gone");
            }
            Err(source) => {
                tracing::warn!(name = %self.name, error = %source, "cannot delete link");
                first_err.get_or_insert(TunError::Netlink { what: format!("delete link {}", self.name), source });
            }
        }
        match first_err {
            Some(err) => Err(err),
            None => Ok(()),
        }
    }

    fn lock_routes(&self) -> std::sync::MutexGuard<'_, Vec<(TunRoute, RouteMessage)>> {
        self.routes.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// Rejects routes whose gateway family differs from the destination's.
fn validate_route(route: &TunRoute) -> Result<(), TunError> {
    match (route.dst, route.gateway) {
        (IpNet::V4(_), Some(IpAddr::V6(_))) | (IpNet::V6(_), Some(IpAddr::V4(_))) => Err(TunError::InvalidRoute {
            route: route.to_string(),
            reason: "gateway and destination are of different address families".into(),
        }),
        (_, Some(gw)) if gw.is_unspecified() || gw.is_multicast() => {
            Err(TunError::InvalidRoute { route: route.to_string(), reason: "gateway must be a unicast address".into() })
        }
        _ => Ok(()),
    }
}

/// The netlink message for `route` through interface `index`; host bits of
/// the destination are cleared.
fn route_message(route: &TunRoute, index: u32) -> Result<RouteMessage, TunError> {
    let invalid = |reason: String| TunError::InvalidRoute { route: route.to_string(), reason };
    let dst = route.dst.trunc();
    let mut builder = RouteMessageBuilder::<IpAddr>::new()
        .destination_prefix(dst.addr(), dst.prefix_len())
        .map_err(|e| invalid(e.to_string()))?
        .output_interface(index);
    match route.gateway {
        Some(gw) => builder = builder.gateway(gw).map_err(|e| invalid(e.to_string()))?,
        None if dst.addr().is_ipv4() => builder = builder.scope(RouteScope::Link),
        None => {}
    }
    Ok(builder.build())
}

/// Polls until interface `index` no longer exists (up to about 2 s).
async fn wait_link_gone(handle: &Handle, index: u32) -> bool {
    for _ in 0..100 {
        match handle.link().get().match_index(index).execute().try_next().await {
            Err(err) if netlink_errno(&err) == Some(ENODEV) => return true,
            Ok(None) => return true,
            Ok(Some(_)) => {}
            Err(err) => {
                tracing::debug!(index, error = %err, "link lookup failed");
            }
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    fn route(dst: &str, gw: Option<&str>) -> TunRoute {
        TunRoute {
            dst: dst.parse().unwrap_or_else(|e| panic!("{dst}: {e}")),
            gateway: gw.map(|g| g.parse().unwrap_or_else(|e| panic!("{g}: {e}"))),
        }
    }

    #[test]
    fn family_mismatch_is_rejected() {
        assert!(validate_route(&route("2001:db8::/32", Some("10.0.0.1"))).is_err());
        assert!(validate_route(&route("10.0.0.0/8", Some("fd00::1"))).is_err());
        assert!(validate_route(&route("10.0.0.0/8", Some("0.0.0.0"))).is_err());
        assert!(validate_route(&route("10.0.0.0/8", Some("10.1.0.1"))).is_ok());
        assert!(validate_route(&route("2001:db8::/32", None)).is_ok());
    }

    #[test]
    fn route_message_truncates_and_scopes() {
        let msg = route_message(&route("10.1.2.3/16", None), 7).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(msg.header.destination_prefix_length, 16);
        assert_eq!(msg.header.scope, RouteScope::Link);
        let dst = msg.attributes.iter().find_map(|a| match a {
            rtnetlink::packet_route::route::RouteAttribute::Destination(d) => Some(d.clone()),
            _ => None,
        });
        assert_eq!(
            dst,
            Some(rtnetlink::packet_route::route::RouteAddress::Inet(
                "10.1.0.0".parse().unwrap_or_else(|e| panic!("{e}"))
            ))
        );
        let msg = route_message(&route("fd00:1::/64", Some("fd00::1")), 7).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(msg.header.scope, RouteScope::Universe);
    }
}
