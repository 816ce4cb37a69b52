//! Routing decisions for the routing tunnel: pure data structures, no I/O.
//!
//! * [`RouteTable`]: destination address -> gateway host name, longest-prefix match.
//! * [`Ingress`]: host name -> namespace id (exact, then wildcard walking up the labels).
//! * [`HostBinding`]: which host names a user may register, in which namespaces.
#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod binding;
pub mod ingress;
pub mod table;

pub use binding::{BindingError, HostBinding, HostRule};
pub use ingress::Ingress;
pub use table::{Route, RouteError, RouteTable, parse_dst};
