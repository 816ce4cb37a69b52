//! rgost client
