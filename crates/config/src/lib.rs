//! GOST v3's command line (`-L`, `-F`) and config file schema (YAML or JSON),
//! turned into rgost's validated runtime model ([`Config`]).
//!
//! Both inputs are first read into the same raw schema, then validated in a
//! single step, so a command line and the equivalent file give the same
//! [`Config`]. Anything rgost does not implement (a service type, a top-level
//! section, a dialer) is an error naming the key. An unknown key, in the
//! schema or in a metadata map (the command line's query keys are
//! metadata), is an error naming its dotted path and the closest known key;
//! GOST options rgost deliberately ignores are a notice in
//! [`Loaded::warnings`].
#![forbid(unsafe_code)]
#![warn(missing_docs)]

mod cli;
pub mod defaults;
mod document;
mod duration;
mod limits;
mod metadata;
mod model;
mod raw;
mod size;
mod suggest;
mod summary;
mod validate;
mod web;

pub use document::{API_ORIGIN, Args, Document, EditError, Section};
pub use limits::{LimitLineError, LimitScope, RateLimit, RateScope, TrafficLimit, parse_rate};
pub use model::*;

use std::path::Path;

use raw::{RawChain, RawConfig, RawHop, RawLimiter};
use validate::{Input, Sourced};

/// The result of loading: the config and the warnings to log.
#[derive(Debug, Clone)]
pub struct Loaded {
    /// The validated config.
    pub config: Config,
    /// Things worth a warning in the log: GOST options rgost ignores, the
    /// chain chosen for a service that names none, ...
    pub warnings: Vec<String>,
}

/// Loads a config from an optional file (`-C`) plus `-L` service URLs and
/// `-F` node URLs, and checks that the certificate, key and CA files it
/// names are readable (relative paths are relative to the working
/// directory). As GOST does, the `-F` nodes form one chain `chain-0`
/// (one hop per node) used by every `-L` service; a `-F` URL with several
/// comma-separated addresses is one hop of several nodes, with the
/// selector of its `strategy`, `maxFails` and `failTimeout` query keys.
///
/// rgost supports chains of one hop, so more than one `-F` is an error.
pub fn load(file: Option<&Path>, services: &[String], nodes: &[String]) -> Result<Loaded, ConfigError> {
    let args = Args {
        file: file.map(Path::to_path_buf),
        services: services.to_vec(),
        nodes: nodes.to_vec(),
        ..Args::default()
    };
    load_args(&args)
}

/// [`load`] with everything the command line gives, `-api` and `-metrics`
/// included: the same as [`Document::load`] then [`Document::validate`].
pub fn load_args(args: &Args) -> Result<Loaded, ConfigError> {
    Document::load(args)?.validate()
}

/// Reads the file and the command line into one raw input (see [`load`]).
fn read(args: &Args) -> Result<Input, ConfigError> {
    let mut input = Input::default();
    if let Some(path) = &args.file {
        let origin = path.display().to_string();
        let text = std::fs::read_to_string(path)
            .map_err(|err| ConfigError::Read { origin: origin.clone(), reason: err.to_string() })?;
        add_file(&mut input, parse_raw(&text, &origin)?, &origin);
    }
    let (services, nodes) = (&args.services, &args.nodes);

    let chain = match nodes.as_slice() {
        [] => None,
        [url] => {
            let origin = cli::flag_origin("-F", url);
            let (nodes, selector) = cli::nodes(url, &origin)?;
            let name = "chain-0".to_owned();
            let hop = RawHop { name: Some("hop-0".to_owned()), nodes: Some(nodes), selector };
            input.chains.push(Sourced {
                origin,
                item: RawChain { name: Some(name.clone()), hops: Some(vec![hop]), metadata: None },
            });
            Some(name)
        }
        [_, second, ..] => {
            return Err(ConfigError::Unsupported {
                origin: cli::flag_origin("-F", second),
                key: format!("chains[{}].hops", input.chains.len()),
                value: format!("{} hops", nodes.len()),
                hint: "rgost supports chains of exactly one hop: give one -F".to_owned(),
            });
        }
    };

    for (k, url) in services.iter().enumerate() {
        let origin = cli::flag_origin("-L", url);
        let mut service = cli::service(url, &origin)?;
        service.name = Some(free_service_name(&input, k));
        // GOST's limiter keys on the URL make limiters named like GOST's.
        let limits = cli::take_limits(&mut service);
        if !limits.traffic.is_empty() {
            let name = free_name("limiter", input.limiters.iter().map(|l| &l.item.name));
            service.limiter = Some(name.clone());
            let item = RawLimiter { name: Some(name), limits: Some(limits.traffic), ..RawLimiter::default() };
            input.limiters.push(Sourced { origin: origin.clone(), item });
        }
        if let Some(line) = limits.rate {
            let name = free_name("rlimiter", input.rlimiters.iter().map(|l| &l.item.name));
            service.rlimiter = Some(name.clone());
            let item = RawLimiter { name: Some(name), limits: Some(vec![line]), ..RawLimiter::default() };
            input.rlimiters.push(Sourced { origin: origin.clone(), item });
        }
        if let (Some(handler), Some(chain)) = (service.handler.as_mut(), chain.as_ref()) {
            handler.chain = Some(chain.clone());
        }
        input.services.push(Sourced { origin, item: service });
    }
    // As in GOST, the flags replace the file's sections.
    if let Some(url) = &args.api {
        let origin = cli::flag_origin("-api", url);
        input.api = Some(Sourced { item: cli::api(url, &origin)?, origin });
    }
    if let Some(url) = &args.metrics {
        let origin = cli::flag_origin("-metrics", url);
        input.metrics = Some(Sourced { item: cli::metrics(url, &origin)?, origin });
    }
    Ok(input)
}

/// GOST names `-L` services `service-{k}`; skip names the file already uses.
fn free_service_name(input: &Input, k: usize) -> String {
    (k..)
        .map(|n| format!("service-{n}"))
        .find(|name| !input.services.iter().any(|s| s.item.name.as_deref().map(str::trim) == Some(name.as_str())))
        .unwrap_or_else(|| format!("service-{k}"))
}

/// `{prefix}-{n}` for the first n from the number of names on: GOST's name,
/// unless the file already uses it.
fn free_name<'a>(prefix: &str, names: impl Iterator<Item = &'a Option<String>> + Clone) -> String {
    let taken = |name: &str| names.clone().any(|n| n.as_deref().map(str::trim) == Some(name));
    let start = names.clone().count();
    (start..).map(|n| format!("{prefix}-{n}")).find(|name| !taken(name)).unwrap_or_else(|| format!("{prefix}-{start}"))
}

/// Parses config text (YAML, or JSON which is read as YAML's subset) as if
/// read from `origin` (used in error messages). Touches no file: the files
/// the config names are not checked (see [`load`]).
pub fn parse_str(text: &str, origin: &str) -> Result<Loaded, ConfigError> {
    let document = Document::parse(text, origin)?;
    validate::validate(&document.input).map(|(loaded, _files)| loaded)
}

/// Reads the raw schema and rejects GOST sections rgost does not implement.
fn parse_raw(text: &str, origin: &str) -> Result<RawConfig, ConfigError> {
    // The key path of the first error, e.g. `services[0].handler.metdata`:
    // the YAML reader gives only the line.
    let mut path = None;
    let yaml = serde_saphyr::with_deserializer_from_str(text, |de| {
        serde_path_to_error::deserialize(de).map_err(|err| {
            path = Some(err.path().to_string());
            err.into_inner()
        })
    });
    let raw: RawConfig = match yaml {
        Ok(raw) => raw,
        Err(yaml_err) => {
            if let serde_saphyr::Error::SerdeUnknownField { field, expected, location } = yaml_err.without_snippet() {
                let key = path.unwrap_or_else(|| field.clone());
                let line = (location.line() > 0).then(|| (location.line(), location.column()));
                return Err(unknown_key(origin, key, field, expected, line));
            }
            // JSON is YAML's subset; should the YAML reader still refuse a
            // JSON document, serde_json gets a try.
            let looks_like_json = text.trim_start().starts_with('{');
            let json = looks_like_json.then(|| {
                serde_path_to_error::deserialize::<_, RawConfig>(&mut serde_json::Deserializer::from_str(text))
            });
            match json {
                Some(Ok(raw)) => raw,
                Some(Err(json_err)) if !json_err.inner().is_syntax() && !json_err.inner().is_eof() => {
                    if let Some((field, expected)) = json_unknown_field(&json_err.inner().to_string()) {
                        let line = Some((json_err.inner().line() as u64, json_err.inner().column() as u64));
                        let expected: Vec<&str> = expected.iter().map(String::as_str).collect();
                        return Err(unknown_key(origin, json_err.path().to_string(), &field, &expected, line));
                    }
                    let message = format!("{}: {}", json_err.path(), json_err.inner());
                    return Err(ConfigError::Syntax { origin: origin.to_owned(), message });
                }
                _ => {
                    let mut message = yaml_err.to_string().replace("--> <input>", &format!("--> {origin}"));
                    if let Some(path) = path.filter(|p| !p.is_empty() && p != ".") {
                        message = format!("{path}: {message}");
                    }
                    return Err(ConfigError::Syntax { origin: origin.to_owned(), message });
                }
            }
        }
    };
    if let Some(section) = raw.unsupported_section() {
        return Err(ConfigError::Unsupported {
            origin: origin.to_owned(),
            key: section.to_owned(),
            value: section.to_owned(),
            hint: "rgost implements the sections services, chains, routers, ingresses, authers, limiters, rlimiters, observers, sds, api and metrics"
                .to_owned(),
        });
    }
    Ok(raw)
}

/// An unknown schema key, with the closest known key of that object.
fn unknown_key(origin: &str, key: String, field: &str, expected: &[&str], line: Option<(u64, u64)>) -> ConfigError {
    ConfigError::UnknownKey {
        origin: origin.to_owned(),
        key,
        suggestion: suggest::closest(field, expected.iter().copied()).map(str::to_owned),
        known: expected.iter().map(|k| (*k).to_owned()).collect(),
        line,
    }
}

/// The field and the expected ones of serde's "unknown field `x`, expected
/// one of `a`, `b`" message (serde_json has no structured form of it).
fn json_unknown_field(message: &str) -> Option<(String, Vec<String>)> {
    let rest = message.strip_prefix("unknown field `")?;
    let (field, rest) = rest.split_once('`')?;
    let expected = rest.split('`').skip(1).step_by(2).map(str::to_owned).collect();
    Some((field.to_owned(), expected))
}

fn add_file(input: &mut Input, raw: RawConfig, origin: &str) {
    fn from<T>(origin: &str) -> impl Fn(T) -> Sourced<T> + '_ {
        move |item| Sourced { origin: origin.to_owned(), item }
    }
    input.services.extend(raw.services.into_iter().flatten().map(from(origin)));
    input.chains.extend(raw.chains.into_iter().flatten().map(from(origin)));
    input.routers.extend(raw.routers.into_iter().flatten().map(from(origin)));
    input.ingresses.extend(raw.ingresses.into_iter().flatten().map(from(origin)));
    input.authers.extend(raw.authers.into_iter().flatten().map(from(origin)));
    input.api = raw.api.map(from(origin));
    input.metrics = raw.metrics.map(from(origin));
    input.limiters.extend(raw.limiters.into_iter().flatten().map(from(origin)));
    input.rlimiters.extend(raw.rlimiters.into_iter().flatten().map(from(origin)));
    input.observers.extend(raw.observers.into_iter().flatten().map(from(origin)));
    input.sds.extend(raw.sds.into_iter().flatten().map(from(origin)));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn serde_json_unknown_field_messages() {
        let err = serde_json::from_str::<RawConfig>(r#"{"servics": []}"#).map(|_| ()).unwrap_err();
        let (field, expected) = json_unknown_field(&err.to_string()).unwrap();
        assert_eq!(field, "servics");
        assert_eq!(&expected[..3], ["services", "chains", "routers"]);
        assert_eq!(json_unknown_field("invalid type: string, expected a map"), None);
    }
}
