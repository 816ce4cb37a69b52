//! rgost transport
