//! rgost's forwarding core: where each packet goes, decided without I/O.
//!
//! Given a packet, the host that sent it and a namespace's current tables,
//! [`View::route`] returns an [`Action`]: deliver to a local connection,
//! forward to the node a host is connected to, wait for a plugin lookup, or
//! drop with a [`DropReason`]. The core never touches a socket, a queue or a
//! clock: time comes in as an argument, and the connection code (the
//! server's `conn` module) is the only place that acts on the answer. Table
//! and plugin routers take the same path, so the source check holds for both.
//!
//! * [`hosts`]: namespaces and who receives for each host name (the newest
//!   connection; older ones are standbys).
//! * [`view`]: the per-packet decision.
//! * [`lookup`]: plugin answers cached per (namespace, address), and the
//!   few packets held while a lookup runs.
//! * [`packet`]: the checks every packet passes first.
#![forbid(unsafe_code)]
#![warn(missing_docs)]
// Time is an argument here, never read: std's Instant is only a value type.
#![allow(clippy::disallowed_types)]

pub mod drop;
pub mod hosts;
pub mod lookup;
pub mod packet;
pub mod view;

pub use drop::DropReason;
pub use hosts::{ConnId, Fabric, HostInfo, Namespace, NodeId, OwnerId, Registration, Unregistered};
pub use lookup::{Held, Plugin, ReaderCache};
pub use view::{Action, Lookups, Routes, View};
