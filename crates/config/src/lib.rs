//! GOST v3's command line (`-L`, `-F`) and config file schema (YAML or JSON),
//! turned into rgost's validated runtime model ([`Config`]).
//!
//! Both inputs are first read into the same raw schema, then validated in a
//! single step, so a command line and the equivalent file give the same
//! [`Config`]. Anything rgost does not implement (a service type, a top-level
//! section, a dialer) is an error naming the key; unknown metadata keys are
//! warnings (GOST ignores them).
#![forbid(unsafe_code)]
#![warn(missing_docs)]

mod model;

pub use model::*;

use std::path::Path;

/// The result of loading: the config and the warnings to log.
#[derive(Debug, Clone)]
pub struct Loaded {
    /// The validated config.
    pub config: Config,
    /// Things worth a warning in the log: unknown metadata keys, the chain
    /// chosen for a service that names none, ...
    pub warnings: Vec<String>,
}

/// Loads a config from an optional file (`-C`) plus `-L` service URLs and
/// `-F` node URLs, as GOST does: the `-F` nodes form one chain `chain-0`
/// (one hop per node) used by every `-L` service.
pub fn load(file: Option<&Path>, services: &[String], nodes: &[String]) -> Result<Loaded, ConfigError> {
    todo!()
}

/// Parses config text (YAML, or JSON which is read as YAML's subset) as if
/// read from `origin` (used in error messages).
pub fn parse_str(text: &str, origin: &str) -> Result<Loaded, ConfigError> {
    todo!()
}
