//! Linux TUN devices: the only crate that touches the TUN fd and netlink
//! (and, in [`heap`], the C library's allocator: the platform's code is here).
//!
//! [`Tun::create`] makes a device, gives it its addresses and MTU, brings it
//! up and installs its routes; [`Tun::close`] removes the routes and the
//! device. Packets are read and written through `&self`, one at a time or
//! in batches ([`Tun::recv_batch`], [`Tun::send_batch`]), so a reader and a
//! writer can share one device.
//!
//! The device is opened with tun-rs (no packet information header).
//! Everything else (MTU, addresses, link state, routes) goes through
//! rtnetlink, in the network namespace of the thread that calls
//! [`Tun::create`].
//!
//! Dropping a [`Tun`] without [`Tun::close`] also removes the device (it is
//! not persistent, so closing its fd deletes it) and with it every route
//! through it; `close` does the same explicitly and checks the result.
//!
//! # Segmentation offload
//!
//! With [`TunConfig::offload`] the device is opened with a virtio-net header
//! and TCP (and, if the kernel has it, UDP) segmentation offload, as
//! wireguard-go does: the kernel hands over GSO super-packets of up to 64 KiB
//! and accepts coalesced ones. [`Tun::recv_batch`] splits what it reads back
//! into MTU-sized IP packets; a [`SendBatch`] made with
//! [`SendBatch::for_device`] appends each TCP segment that continues a flow
//! to that flow's super-packet as it is pushed (our GRO, one copy per
//! segment, in `gro.rs`), and [`Tun::send_batch`] writes each super-packet
//! at once. Callers only ever see ordinary packets.
//! If the kernel refuses offload, the device falls back to plain packets;
//! [`Tun::offload`] tells which mode is in use. The batch APIs work in both.

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
use tun_rs::{AsyncDevice, DeviceBuilder, IDEAL_BATCH_SIZE, VIRTIO_NET_HDR_LEN, VirtioNetHdr};

/// virtio-net header values (linux/virtio_net.h).
const VIRTIO_NET_HDR_F_NEEDS_CSUM: u8 = 1;
const VIRTIO_NET_HDR_GSO_NONE: u8 = 0;
const VIRTIO_NET_HDR_GSO_TCPV4: u8 = 1;
const VIRTIO_NET_HDR_GSO_TCPV6: u8 = 4;
const VIRTIO_NET_HDR_GSO_UDP_L4: u8 = 5;
const VIRTIO_NET_HDR_GSO_ECN: u8 = 0x80;

mod gro;
pub mod heap;

/// Largest IP packet (and GSO super-packet) the device can hand over.
const MAX_PACKET: usize = 65535;

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
    /// Ask for TCP/UDP segmentation offload (virtio-net header, GSO/GRO).
    /// Falls back to plain packets if the kernel refuses.
    pub offload: bool,
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
    // Each level's text says only its own part: the cause is `source()`, and
    // a reporter walking the chain prints it once.
    #[error("cannot create TUN device{}", create_hint(.0))]
    Create(#[source] std::io::Error),
    /// A netlink request failed.
    #[error("netlink: {what}{}", if is_permission_denied(source) { CAP_NET_ADMIN_HINT } else { "" })]
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
    #[error("cannot open netlink socket")]
    NetlinkSocket(#[source] std::io::Error),
    /// The device was still present after it should have been deleted.
    #[error("TUN device {0} still present after close")]
    NotRemoved(String),
}

/// What a person can do when the kernel refuses: said where the refusal is reported.
const CAP_NET_ADMIN_HINT: &str = " (TUN devices need root or the CAP_NET_ADMIN capability)";

/// The hint for a failed device creation, from the OS error: EPERM is the
/// kernel refusing TUNSETIFF (no CAP_NET_ADMIN), EACCES the mode of
/// /dev/net/tun refusing the open (0600 in some containers).
fn create_hint(err: &std::io::Error) -> &'static str {
    match err.kind() {
        std::io::ErrorKind::PermissionDenied if err.raw_os_error() == Some(EACCES) => {
            " (TUN devices need root, or CAP_NET_ADMIN and read-write access to /dev/net/tun)"
        }
        std::io::ErrorKind::PermissionDenied => CAP_NET_ADMIN_HINT,
        std::io::ErrorKind::NotFound => {
            " (/dev/net/tun is missing: load the tun kernel module, or pass the device into the container)"
        }
        _ => "",
    }
}

/// Whether the kernel refused a netlink request for lack of privilege (EPERM, EACCES).
fn is_permission_denied(err: &rtnetlink::Error) -> bool {
    matches!(netlink_errno(err), Some(EPERM | EACCES))
}

/// Netlink error numbers we treat specially (positive errno values).
const EPERM: i32 = 1;
const EACCES: i32 = 13;
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
    /// Whether the device runs with the virtio-net header (offload on).
    offload: bool,
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
            .field("offload", &self.offload)
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

        let dev = open_device(config)?;
        let offload = dev.tcp_gso();
        let name = dev.name().map_err(TunError::Create)?;
        let index = dev.if_index().map_err(|_| TunError::NotFound(name.clone()))?;
        tracing::debug!(name = %name, index, offload, udp_gso = dev.udp_gso(), "TUN device opened");

        let tun = Tun { dev, name, index, mtu: config.mtu, offload, netlink, routes: Mutex::new(Vec::new()) };
        if let Err(err) = tun.configure(config, &routes).await {
            tracing::debug!(name = %tun.name, error = %err, "TUN setup failed; rolling back");
            if let Err(cleanup) = tun.teardown().await {
                let cause = std::error::Error::source(&cleanup).map(ToString::to_string).unwrap_or_default();
                tracing::warn!(name = %tun.name, error = %cleanup, %cause, "TUN rollback incomplete");
            }
            return Err(err);
        }
        tracing::info!(
            name = %tun.name,
            index = tun.index,
            mtu = tun.mtu,
            addrs = ?config.addrs,
            routes = config.routes.len(),
            offload = tun.offload,
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

    /// Whether segmentation offload is in use (see the crate docs).
    pub fn offload(&self) -> bool {
        self.offload
    }

    /// Reads one packet into `buf`; returns its length.
    ///
    /// After [`Tun::shutdown`] this fails (the kernel detaches the fd).
    ///
    /// With offload on, a read can bring a GSO super-packet of many
    /// segments: this returns the first one and drops the rest. Use
    /// [`Tun::recv_batch`] instead, which keeps them all.
    pub async fn recv(&self, buf: &mut [u8]) -> std::io::Result<usize> {
        if !self.offload {
            return self.dev.recv(buf).await;
        }
        let mut batch = RecvBatch::new(self.mtu);
        let n = self.recv_batch(&mut batch).await?;
        if n > 1 {
            tracing::debug!(name = %self.name, dropped = n - 1, "recv: GSO segments dropped; use recv_batch");
        }
        let packet = batch.packets().next().unwrap_or_default();
        let dst = buf
            .get_mut(..packet.len())
            .ok_or_else(|| std::io::Error::new(std::io::ErrorKind::InvalidInput, "buffer too small for the packet"))?;
        dst.copy_from_slice(packet);
        Ok(packet.len())
    }

    /// Writes one packet (with offload on, behind an empty virtio-net header).
    pub async fn send(&self, packet: &[u8]) -> std::io::Result<usize> {
        if !self.offload {
            return self.dev.send(packet).await;
        }
        let mut framed = Vec::with_capacity(VIRTIO_NET_HDR_LEN + packet.len());
        framed.resize(VIRTIO_NET_HDR_LEN, 0);
        framed.extend_from_slice(packet);
        let n = self.dev.send(&framed).await?;
        Ok(n.saturating_sub(VIRTIO_NET_HDR_LEN))
    }

    /// Reads once from the device into `batch`, replacing its contents, and
    /// returns how many packets it holds now: one, or with offload on all
    /// the MTU-sized segments of a GSO super-packet.
    ///
    /// An error means either the device failed (after [`Tun::shutdown`]) or,
    /// with offload on, that one super-packet could not be split; the latter
    /// loses only that read (check [`RecvBatch::split_failed`]).
    pub async fn recv_batch(&self, batch: &mut RecvBatch) -> std::io::Result<usize> {
        batch.count = 0;
        batch.split_failed = false;
        let RecvBatch { raw, bufs, sizes, .. } = batch;
        match self.dev.recv_multiple(raw, bufs, sizes, 0).await {
            Ok(n) => {
                batch.count = n.min(batch.bufs.len());
                Ok(batch.count)
            }
            Err(e) => {
                // The read itself failing carries an errno; splitting errors do not.
                batch.split_failed = self.offload && e.raw_os_error().is_none();
                Err(e)
            }
        }
    }

    /// Like [`Tun::recv_batch`], but a TCP super-packet that fits a GSO frame
    /// ([`rgost_relay::gso::MAX_SUPER_PACKET`]) is kept whole (see
    /// [`RecvBatch::super_packet`]) instead of being split: for a peer that
    /// takes GSO frames. Anything else is split into packets as by
    /// [`Tun::recv_batch`] (without offload, that is all it does).
    pub async fn recv_keep_super(&self, batch: &mut RecvBatch) -> std::io::Result<Received> {
        if !self.offload {
            return self.recv_batch(batch).await.map(Received::Packets);
        }
        batch.count = 0;
        batch.split_failed = false;
        batch.super_len = 0;
        let len = self.dev.recv(&mut batch.raw).await?;
        let hdr = VirtioNetHdr::decode(batch.raw.get(..len).unwrap_or_default())?;
        let Some(packet) = batch.raw.get_mut(VIRTIO_NET_HDR_LEN..len) else {
            return Err(std::io::Error::other("TUN read shorter than its virtio-net header"));
        };
        let gso_type = hdr.gso_type & !VIRTIO_NET_HDR_GSO_ECN;
        if (gso_type == VIRTIO_NET_HDR_GSO_TCPV4 || gso_type == VIRTIO_NET_HDR_GSO_TCPV6)
            && packet.len() <= rgost_relay::gso::MAX_SUPER_PACKET
            && rgost_relay::gso::SuperPacket::new_checked(packet, hdr.gso_size).is_ok()
        {
            batch.super_len = packet.len();
            let flags = if hdr.gso_type & VIRTIO_NET_HDR_GSO_ECN != 0 { rgost_relay::gso::FLAG_ECN } else { 0 };
            return Ok(Received::Super { flags, gso_size: hdr.gso_size });
        }
        match split(hdr, packet, &mut batch.bufs, &mut batch.sizes) {
            Ok(n) => {
                batch.count = n.min(batch.bufs.len());
                Ok(Received::Packets(batch.count))
            }
            Err(e) => {
                batch.split_failed = true;
                Err(e)
            }
        }
    }

    /// Writes TCP super-packet `packet` (a GSO frame's) with segments of
    /// `gso_size` bytes: one write, without copying it, on a device with
    /// offload (the kernel completes its partial TCP checksum and cuts it as
    /// needed); its segments, one write each, otherwise.
    pub async fn send_super(&self, flags: u8, gso_size: u16, packet: &[u8]) -> std::io::Result<usize> {
        let super_packet = rgost_relay::gso::SuperPacket::new_checked(packet, gso_size)
            .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidData, e))?;
        if !self.offload {
            let mut out = Vec::with_capacity(packet.len() + super_packet.segments() * super_packet.header_len());
            let mut lens = Vec::new();
            super_packet.segment(&mut out, |len| lens.push(len));
            let (mut at, mut total) = (0, 0);
            for len in lens {
                total += self.dev.send(out.get(at..at + len).unwrap_or_default()).await?;
                at += len;
            }
            return Ok(total);
        }
        let segmented = super_packet.segments() > 1;
        let gso_type = match (segmented, super_packet.is_v6()) {
            (false, _) => VIRTIO_NET_HDR_GSO_NONE,
            (true, false) => VIRTIO_NET_HDR_GSO_TCPV4,
            (true, true) => VIRTIO_NET_HDR_GSO_TCPV6,
        };
        let ecn = if segmented && flags & rgost_relay::gso::FLAG_ECN != 0 { VIRTIO_NET_HDR_GSO_ECN } else { 0 };
        let field = |v: usize| u16::try_from(v).unwrap_or(u16::MAX);
        let hdr = VirtioNetHdr {
            flags: VIRTIO_NET_HDR_F_NEEDS_CSUM,
            gso_type: gso_type | ecn,
            hdr_len: field(super_packet.header_len()),
            gso_size: if segmented { gso_size } else { 0 },
            csum_start: field(super_packet.ip_header_len()),
            csum_offset: 16,
        };
        let mut head = [0u8; VIRTIO_NET_HDR_LEN];
        hdr.encode(&mut head)?;
        let n = self.dev.send_vectored(&[std::io::IoSlice::new(&head), std::io::IoSlice::new(packet)]).await?;
        Ok(n.saturating_sub(VIRTIO_NET_HDR_LEN))
    }

    /// Writes every packet of `batch` and empties it: with offload on, a
    /// super-packet of coalesced TCP segments is one write. Returns the
    /// bytes written (headers included).
    ///
    /// A packet the kernel rejects does not stop the rest of the batch; the
    /// last such error is returned after all were tried.
    pub async fn send_batch(&self, batch: &mut SendBatch) -> std::io::Result<usize> {
        let len = batch.len;
        batch.clear();
        // Without offload the device takes no virtio-net header.
        let skip = if self.offload { 0 } else { VIRTIO_NET_HDR_LEN };
        let mut total = 0;
        let mut err = None;
        for (buf, meta) in batch.bufs.iter_mut().zip(&batch.metas).take(len) {
            if self.offload {
                gro::finish(buf, meta);
            } else if meta.segs > 1 {
                err = Some(std::io::Error::new(
                    std::io::ErrorKind::InvalidInput,
                    "super-packet for a device without offload",
                ));
                continue;
            }
            let Some(write) = buf.get(skip..) else { continue };
            match self.dev.send(write).await {
                Ok(n) => total += n,
                Err(e) => err = Some(e),
            }
        }
        match err {
            Some(e) => Err(e),
            None => Ok(total),
        }
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

/// Opens the device, with offload if asked and the kernel allows it.
fn open_device(config: &TunConfig) -> Result<AsyncDevice, TunError> {
    let build = |offload: bool| {
        let mut builder = DeviceBuilder::new().enable(false).offload(offload);
        if let Some(name) = &config.name {
            builder = builder.name(name.clone());
        }
        builder.build_async()
    };
    if config.offload {
        match build(true) {
            Ok(dev) => return Ok(dev),
            Err(e) => tracing::debug!(error = %e, "TUN offload unavailable; using plain packets"),
        }
    }
    build(false).map_err(TunError::Create)
}

/// Buffers for [`Tun::recv_batch`]: one read, split into packets.
pub struct RecvBatch {
    /// The raw read: virtio-net header plus (super-)packet.
    raw: Vec<u8>,
    /// One packet each; the first is large enough for any packet.
    bufs: Vec<Vec<u8>>,
    sizes: Vec<usize>,
    count: usize,
    split_failed: bool,
    /// The length of the super-packet kept whole in `raw` by the last read, if any.
    super_len: usize,
}

impl fmt::Debug for RecvBatch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RecvBatch").field("count", &self.count).finish_non_exhaustive()
    }
}

impl RecvBatch {
    /// Buffers for a device of MTU `mtu`.
    pub fn new(mtu: u16) -> RecvBatch {
        // A segment is at most one MTU; leave room in case the MTU is raised
        // behind our back (such a segment would only fail to split).
        let seg = usize::from(mtu).max(1500);
        let mut bufs = vec![vec![0u8; seg]; IDEAL_BATCH_SIZE];
        if let Some(first) = bufs.first_mut() {
            // A packet that is not a super-packet lands whole in the first buffer.
            first.resize(MAX_PACKET, 0);
        }
        RecvBatch {
            raw: vec![0u8; VIRTIO_NET_HDR_LEN + MAX_PACKET],
            bufs,
            sizes: vec![0; IDEAL_BATCH_SIZE],
            count: 0,
            split_failed: false,
            super_len: 0,
        }
    }

    /// The TCP super-packet the last [`Tun::recv_keep_super`] kept whole
    /// ([`Received::Super`]); empty otherwise.
    pub fn super_packet(&self) -> &[u8] {
        self.raw.get(VIRTIO_NET_HDR_LEN..VIRTIO_NET_HDR_LEN + self.super_len).unwrap_or_default()
    }

    /// How many packets the last read produced.
    pub fn len(&self) -> usize {
        self.count
    }

    /// Whether the last read produced no packet.
    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    /// Whether the last [`Tun::recv_batch`] error was a super-packet that
    /// could not be split (only that read is lost) rather than a device error.
    pub fn split_failed(&self) -> bool {
        self.split_failed
    }

    /// The packets of the last read.
    pub fn packets(&self) -> impl Iterator<Item = &[u8]> {
        self.bufs.iter().zip(&self.sizes).take(self.count).filter_map(|(buf, &size)| buf.get(..size))
    }
}

/// What one [`Tun::recv_keep_super`] brought.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Received {
    /// This many packets, in the batch.
    Packets(usize),
    /// One TCP super-packet ([`RecvBatch::super_packet`]) of segments of `gso_size` bytes.
    Super {
        /// [`rgost_relay::gso::FLAG_ECN`] or 0.
        flags: u8,
        /// Payload bytes per segment.
        gso_size: u16,
    },
}

/// Splits what one read brought (behind header `hdr`) into `bufs`, as
/// tun-rs's own batch read does: a plain packet gets its checksum completed
/// if the kernel left it partial; a GSO packet is cut into segments.
fn split(mut hdr: VirtioNetHdr, input: &mut [u8], bufs: &mut [Vec<u8>], sizes: &mut [usize]) -> std::io::Result<usize> {
    let invalid = |what: &str| std::io::Error::new(std::io::ErrorKind::InvalidData, what.to_owned());
    if hdr.gso_type == VIRTIO_NET_HDR_GSO_NONE {
        if hdr.flags & VIRTIO_NET_HDR_F_NEEDS_CSUM != 0
            && !rgost_relay::gso::complete_checksum(input, usize::from(hdr.csum_start), usize::from(hdr.csum_offset))
        {
            return Err(invalid("checksum offsets past the packet"));
        }
        let (Some(buf), Some(size)) = (bufs.first_mut(), sizes.first_mut()) else { return Ok(0) };
        let dst = buf.get_mut(..input.len()).ok_or_else(|| invalid("packet larger than the read buffer"))?;
        dst.copy_from_slice(input);
        *size = input.len();
        return Ok(1);
    }
    let is_v6 = match input.first().map(|b| b >> 4) {
        Some(4) => false,
        Some(6) => true,
        _ => return Err(invalid("GSO packet is not IPv4 or IPv6")),
    };
    // The kernel's hdr_len may span the whole first packet on a forwarding
    // path: take the transport header's own length, as tun-rs does.
    let start = usize::from(hdr.csum_start);
    let transport = if hdr.gso_type & !VIRTIO_NET_HDR_GSO_ECN == VIRTIO_NET_HDR_GSO_UDP_L4 {
        8
    } else {
        let offset = input.get(start + 12).ok_or_else(|| invalid("TCP header cut short"))?;
        usize::from(offset >> 4) * 4
    };
    hdr.hdr_len = u16::try_from(start + transport).map_err(|_| invalid("header length overflow"))?;
    if input.len() < usize::from(hdr.hdr_len) || start + usize::from(hdr.csum_offset) + 2 > input.len() {
        return Err(invalid("GSO headers past the packet"));
    }
    tun_rs::gso_split(input, hdr, bufs, sizes, 0, is_v6)
}

/// Packets to write with [`Tun::send_batch`], each stored behind room for a
/// virtio-net header. Made for a device with offload ([`SendBatch::for_device`]),
/// it coalesces TCP segments of one flow into super-packets as they are
/// pushed (see the crate docs). Buffers are reused between batches.
pub struct SendBatch {
    bufs: Vec<Vec<u8>>,
    metas: Vec<gro::Meta>,
    len: usize,
    /// Coalesce TCP segments (the device has offload).
    coalesce: bool,
    flows: gro::Flows,
}

impl fmt::Debug for SendBatch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SendBatch").field("len", &self.len).field("coalesce", &self.coalesce).finish_non_exhaustive()
    }
}

impl Default for SendBatch {
    /// A batch that writes packets one by one (any device).
    fn default() -> Self {
        SendBatch::new(false)
    }
}

impl SendBatch {
    /// Buffers per batch; flush when [`SendBatch::is_full`].
    pub const CAPACITY: usize = IDEAL_BATCH_SIZE;

    fn new(coalesce: bool) -> SendBatch {
        SendBatch {
            bufs: Vec::with_capacity(SendBatch::CAPACITY),
            metas: Vec::with_capacity(SendBatch::CAPACITY),
            len: 0,
            coalesce,
            flows: gro::Flows::default(),
        }
    }

    /// A batch for `tun`: coalescing when the device has offload.
    pub fn for_device(tun: &Tun) -> SendBatch {
        SendBatch::new(tun.offload)
    }

    /// Adds a copy of `packet` (appended to its flow's super-packet if it
    /// continues one). Empty packets are ignored. Returns `false` (and adds
    /// nothing) when the batch is full.
    pub fn push(&mut self, packet: &[u8]) -> bool {
        if packet.is_empty() {
            return true;
        }
        let kind = if self.coalesce { gro::classify(packet) } else { gro::Kind::Unrelated };
        if let gro::Kind::Candidate(t) = &kind {
            let (Some(bufs), Some(metas)) = (self.bufs.get_mut(..self.len), self.metas.get_mut(..self.len)) else {
                return false;
            };
            if self.flows.append(bufs, metas, packet, t) {
                return true;
            }
        }
        if self.is_full() {
            return false;
        }
        if self.bufs.len() <= self.len {
            // A super-packet grows in its first segment's buffer; the memory
            // is touched only as far as it is used.
            let cap = if self.coalesce { VIRTIO_NET_HDR_LEN + MAX_PACKET } else { VIRTIO_NET_HDR_LEN + packet.len() };
            self.bufs.push(Vec::with_capacity(cap));
            self.metas.push(gro::Meta::default());
        }
        let (Some(buf), Some(meta)) = (self.bufs.get_mut(self.len), self.metas.get_mut(self.len)) else {
            return false;
        };
        buf.clear();
        buf.resize(VIRTIO_NET_HDR_LEN, 0);
        buf.extend_from_slice(packet);
        *meta = self.flows.stored(&kind, self.len);
        self.len += 1;
        true
    }

    /// Buffers waiting (a super-packet counts once).
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether no packet is waiting.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Whether the batch holds [`SendBatch::CAPACITY`] buffers.
    pub fn is_full(&self) -> bool {
        self.len >= Self::CAPACITY
    }

    /// Drops the waiting packets.
    pub fn clear(&mut self) {
        self.len = 0;
        self.flows.clear();
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
    fn send_batch_keeps_header_room_and_reuses_buffers() {
        let mut batch = SendBatch::default();
        assert!(batch.is_empty());
        assert!(batch.push(b"")); // ignored
        assert!(batch.is_empty());
        assert!(batch.push(&[0x45, 1, 2]));
        assert!(batch.push(&[0x60; 40]));
        assert_eq!(batch.len(), 2);
        let packets: Vec<&[u8]> = batch.bufs.iter().filter_map(|b| b.get(VIRTIO_NET_HDR_LEN..)).collect();
        assert_eq!(packets, vec![&[0x45, 1, 2][..], &[0x60; 40][..]]);
        for buf in &batch.bufs {
            assert_eq!(buf.get(..VIRTIO_NET_HDR_LEN), Some(&[0u8; VIRTIO_NET_HDR_LEN][..]));
        }
        let mut coalescing = SendBatch::new(true);
        assert!(coalescing.push(&[0x45, 1, 2]));
        assert!(coalescing.bufs.iter().all(|b| b.capacity() >= VIRTIO_NET_HDR_LEN + MAX_PACKET), "room to coalesce");
        batch.clear();
        assert!(batch.is_empty());
        // Reused buffers get a fresh (zeroed) header and only the new packet.
        if let Some(buf) = batch.bufs.first_mut() {
            buf.fill(0xff);
        }
        assert!(batch.push(&[0x45, 9]));
        assert_eq!(batch.bufs.first().map(Vec::as_slice), Some(&[0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x45, 9][..]));
        assert_eq!(batch.bufs.len(), 2);
    }

    #[test]
    fn send_batch_refuses_past_capacity() {
        let mut batch = SendBatch::default();
        for i in 0..SendBatch::CAPACITY {
            assert!(batch.push(&[0x45, i as u8]), "packet {i}");
        }
        assert!(batch.is_full());
        assert!(!batch.push(&[0x45]));
        assert_eq!(batch.len(), SendBatch::CAPACITY);
    }

    #[test]
    fn recv_batch_buffers_fit_any_packet() {
        let batch = RecvBatch::new(1280);
        assert!(batch.is_empty());
        assert_eq!(batch.packets().count(), 0);
        assert_eq!(batch.bufs.len(), batch.sizes.len());
        assert!(batch.raw.len() >= VIRTIO_NET_HDR_LEN + MAX_PACKET);
        assert_eq!(batch.bufs.first().map(Vec::len), Some(MAX_PACKET));
        assert!(batch.bufs.iter().all(|b| b.len() >= 1500));
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
