//! rgost server
