//! The running config as a document in GOST's schema: what the web API
//! shows (`GET /config`) and edits (`/config/routers`, ...).
//!
//! A [`Document`] is what was read (the config file and the command line),
//! kept as written, before validation. An edit replaces, adds or removes
//! one named object of a section; the caller then validates the whole
//! document ([`Document::validate`]) and applies the result only when it is
//! valid, so an invalid change changes nothing. Objects added through the
//! API are marked as coming from `api` in error messages.

use std::path::PathBuf;

use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::{Map, Value};

use crate::raw::{RawAuther, RawIngress, RawLimiter, RawObserver, RawRouter};
use crate::validate::{Input, Sourced, validate};
use crate::{ConfigError, Loaded, cli};

/// The origin of objects created or replaced through the web API.
pub const API_ORIGIN: &str = "api";

/// What rgost was started with: a config file (`-C`) and the command line
/// (`-L`, `-F`, `-api`, `-metrics`). Kept to read everything again on a reload.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Args {
    /// The config file.
    pub file: Option<PathBuf>,
    /// `-L` service URLs.
    pub services: Vec<String>,
    /// `-F` node URLs.
    pub nodes: Vec<String>,
    /// `-api` (e.g. `:18080` or `user:pass@:18080?pathPrefix=/api&accesslog=true`).
    pub api: Option<String>,
    /// `-metrics` (e.g. `:9000` or `user:pass@:9000?path=/m`).
    pub metrics: Option<String>,
}

/// The config as read, in GOST's schema, before validation.
#[derive(Debug, Clone, Default)]
pub struct Document {
    pub(crate) input: Input,
}

/// The sections the web API edits object by object.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Section {
    /// `routers`.
    Routers,
    /// `ingresses`.
    Ingresses,
    /// `authers`.
    Authers,
    /// `limiters` (traffic limits).
    Limiters,
    /// `rlimiters` (new connections per second).
    RLimiters,
    /// `observers`.
    Observers,
}

impl Section {
    /// Every section, in the order of the config file.
    pub const ALL: [Section; 6] = [
        Section::Authers,
        Section::Ingresses,
        Section::Routers,
        Section::Limiters,
        Section::RLimiters,
        Section::Observers,
    ];

    /// The section's key (and the API's path segment).
    pub fn key(self) -> &'static str {
        match self {
            Section::Routers => "routers",
            Section::Ingresses => "ingresses",
            Section::Authers => "authers",
            Section::Limiters => "limiters",
            Section::RLimiters => "rlimiters",
            Section::Observers => "observers",
        }
    }

    /// The section named `key`.
    pub fn from_key(key: &str) -> Option<Section> {
        Section::ALL.into_iter().find(|s| s.key() == key)
    }

    /// One object of the section, as people say it ("router").
    pub fn singular(self) -> &'static str {
        match self {
            Section::Routers => "router",
            Section::Ingresses => "ingress",
            Section::Authers => "auther",
            Section::Limiters | Section::RLimiters => "limiter",
            Section::Observers => "observer",
        }
    }
}

/// Why an edit was refused. Nothing changed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum EditError {
    /// The body is not an object of the section's schema (an unknown key, a
    /// value of the wrong type); the error names the key.
    #[error(transparent)]
    Invalid(ConfigError),
    /// The object has no name.
    #[error("{} name is required", .0.singular())]
    NameRequired(Section),
    /// An object of that name exists already.
    #[error("{} {name} already exists", .section.singular())]
    Duplicate {
        /// The section.
        section: Section,
        /// The name.
        name: String,
    },
    /// No object has that name.
    #[error("{} {name} not found", .section.singular())]
    NotFound {
        /// The section.
        section: Section,
        /// The name.
        name: String,
    },
}

/// An object with a name, in a section the API edits.
trait Named: Serialize + DeserializeOwned + Clone {
    fn name(&self) -> Option<&str>;
    fn set_name(&mut self, name: String);
}

macro_rules! named {
    ($($ty:ty),*) => {$(
        impl Named for $ty {
            fn name(&self) -> Option<&str> {
                self.name.as_deref().map(str::trim)
            }
            fn set_name(&mut self, name: String) {
                self.name = Some(name);
            }
        }
    )*};
}

named!(RawRouter, RawIngress, RawAuther, RawLimiter, RawObserver);

impl Document {
    /// Reads the config file (if any) and the command line into one
    /// document, as [`crate::load`] does, without validating it.
    pub fn load(args: &Args) -> Result<Document, ConfigError> {
        crate::read(args).map(|input| Document { input })
    }

    /// A document of config text (YAML or JSON) read as if from `origin`.
    pub fn parse(text: &str, origin: &str) -> Result<Document, ConfigError> {
        let mut input = Input::default();
        crate::add_file(&mut input, crate::parse_raw(text, origin)?, origin);
        Ok(Document { input })
    }

    /// Validates the whole document into the runtime model, and checks that
    /// the certificate, key and CA files it names can be read (as a start does).
    pub fn validate(&self) -> Result<Loaded, ConfigError> {
        let (loaded, files) = validate(&self.input)?;
        for file in &files {
            file.check()?;
        }
        Ok(loaded)
    }

    /// The whole document in GOST's schema (absent keys left out).
    pub fn to_json(&self) -> Value {
        let mut root = Map::new();
        let input = &self.input;
        root.insert("services".to_owned(), list(&input.services));
        put_list(&mut root, "chains", &input.chains);
        put_list(&mut root, "authers", &input.authers);
        put_list(&mut root, "ingresses", &input.ingresses);
        put_list(&mut root, "routers", &input.routers);
        put_list(&mut root, "limiters", &input.limiters);
        put_list(&mut root, "rlimiters", &input.rlimiters);
        put_list(&mut root, "observers", &input.observers);
        put_list(&mut root, "sds", &input.sds);
        if let Some(api) = &input.api {
            root.insert("api".to_owned(), to_value(&api.item));
        }
        if let Some(metrics) = &input.metrics {
            root.insert("metrics".to_owned(), to_value(&metrics.item));
        }
        Value::Object(root)
    }

    /// The whole document as YAML.
    pub fn to_yaml(&self) -> String {
        // Serialising a JSON value cannot fail: it has only maps with string keys.
        serde_saphyr::to_string(&self.to_json()).unwrap_or_default()
    }

    /// The document without what the command line added (`-L`, `-F`,
    /// `-api`, `-metrics`): what belongs in the config file.
    pub fn file_part(&self) -> Document {
        let from_file = |origin: &str| !cli::is_flag_origin(origin);
        let input = &self.input;
        Document {
            input: Input {
                services: input.services.iter().filter(|s| from_file(&s.origin)).cloned().collect(),
                chains: input.chains.iter().filter(|s| from_file(&s.origin)).cloned().collect(),
                routers: input.routers.clone(),
                ingresses: input.ingresses.clone(),
                authers: input.authers.clone(),
                // `-L` limiter keys make limiters too: they belong to the flags.
                limiters: input.limiters.iter().filter(|s| from_file(&s.origin)).cloned().collect(),
                rlimiters: input.rlimiters.iter().filter(|s| from_file(&s.origin)).cloned().collect(),
                observers: input.observers.clone(),
                sds: input.sds.clone(),
                api: input.api.clone().filter(|s| from_file(&s.origin)),
                metrics: input.metrics.clone().filter(|s| from_file(&s.origin)),
            },
        }
    }

    /// Every object of `section`, in order.
    pub fn items(&self, section: Section) -> Vec<Value> {
        match section {
            Section::Routers => items(&self.input.routers),
            Section::Ingresses => items(&self.input.ingresses),
            Section::Authers => items(&self.input.authers),
            Section::Limiters => items(&self.input.limiters),
            Section::RLimiters => items(&self.input.rlimiters),
            Section::Observers => items(&self.input.observers),
        }
    }

    /// The object of `section` named `name`.
    pub fn item(&self, section: Section, name: &str) -> Option<Value> {
        match section {
            Section::Routers => item(&self.input.routers, name),
            Section::Ingresses => item(&self.input.ingresses, name),
            Section::Authers => item(&self.input.authers, name),
            Section::Limiters => item(&self.input.limiters, name),
            Section::RLimiters => item(&self.input.rlimiters, name),
            Section::Observers => item(&self.input.observers, name),
        }
    }

    /// Adds `body` (an object of `section`'s schema) at the end of the
    /// section; returns its name.
    pub fn create(&mut self, section: Section, body: Value) -> Result<String, EditError> {
        match section {
            Section::Routers => create(&mut self.input.routers, section, body),
            Section::Ingresses => create(&mut self.input.ingresses, section, body),
            Section::Authers => create(&mut self.input.authers, section, body),
            Section::Limiters => create(&mut self.input.limiters, section, body),
            Section::RLimiters => create(&mut self.input.rlimiters, section, body),
            Section::Observers => create(&mut self.input.observers, section, body),
        }
    }

    /// Replaces the object named `name` with `body` (its name is `name`,
    /// whatever the body says).
    pub fn update(&mut self, section: Section, name: &str, body: Value) -> Result<(), EditError> {
        match section {
            Section::Routers => update(&mut self.input.routers, section, name, body),
            Section::Ingresses => update(&mut self.input.ingresses, section, name, body),
            Section::Authers => update(&mut self.input.authers, section, name, body),
            Section::Limiters => update(&mut self.input.limiters, section, name, body),
            Section::RLimiters => update(&mut self.input.rlimiters, section, name, body),
            Section::Observers => update(&mut self.input.observers, section, name, body),
        }
    }

    /// Removes the object named `name`.
    pub fn delete(&mut self, section: Section, name: &str) -> Result<(), EditError> {
        match section {
            Section::Routers => delete(&mut self.input.routers, section, name),
            Section::Ingresses => delete(&mut self.input.ingresses, section, name),
            Section::Authers => delete(&mut self.input.authers, section, name),
            Section::Limiters => delete(&mut self.input.limiters, section, name),
            Section::RLimiters => delete(&mut self.input.rlimiters, section, name),
            Section::Observers => delete(&mut self.input.observers, section, name),
        }
    }
}

/// A raw object as JSON, without its absent (null) keys.
fn to_value<T: Serialize>(item: &T) -> Value {
    let mut value = serde_json::to_value(item).unwrap_or(Value::Null);
    strip_nulls(&mut value);
    value
}

fn strip_nulls(value: &mut Value) {
    match value {
        Value::Object(map) => {
            map.retain(|_, v| !v.is_null());
            map.values_mut().for_each(strip_nulls);
        }
        Value::Array(items) => items.iter_mut().for_each(strip_nulls),
        _ => {}
    }
}

fn list<T: Serialize>(items: &[Sourced<T>]) -> Value {
    Value::Array(items.iter().map(|s| to_value(&s.item)).collect())
}

fn put_list<T: Serialize>(root: &mut Map<String, Value>, key: &str, items: &[Sourced<T>]) {
    if !items.is_empty() {
        root.insert(key.to_owned(), list(items));
    }
}

fn items<T: Named>(section: &[Sourced<T>]) -> Vec<Value> {
    section.iter().map(|s| to_value(&s.item)).collect()
}

fn item<T: Named>(section: &[Sourced<T>], name: &str) -> Option<Value> {
    section.iter().find(|s| s.item.name() == Some(name.trim())).map(|s| to_value(&s.item))
}

/// `body` read as an object of the section at index `index` (for the key
/// paths of errors, e.g. `routers[2].routes[0].dst`).
fn parse<T: Named>(section: Section, index: usize, body: Value) -> Result<T, EditError> {
    let prefix = format!("{}[{index}]", section.key());
    serde_path_to_error::deserialize::<_, T>(body).map_err(|err| {
        let path = err.path().to_string();
        let key = if path.is_empty() || path == "." { prefix.clone() } else { format!("{prefix}.{path}") };
        let message = err.inner().to_string();
        EditError::Invalid(match crate::json_unknown_field(&message) {
            Some((field, expected)) => {
                let expected: Vec<&str> = expected.iter().map(String::as_str).collect();
                crate::unknown_key(API_ORIGIN, key, &field, &expected, None)
            }
            None => ConfigError::Invalid { origin: API_ORIGIN.to_owned(), key, value: String::new(), reason: message },
        })
    })
}

fn create<T: Named>(items: &mut Vec<Sourced<T>>, section: Section, body: Value) -> Result<String, EditError> {
    let mut item: T = parse(section, items.len(), body)?;
    let name = item.name().filter(|n| !n.is_empty()).ok_or(EditError::NameRequired(section))?.to_owned();
    if items.iter().any(|s| s.item.name() == Some(name.as_str())) {
        return Err(EditError::Duplicate { section, name });
    }
    item.set_name(name.clone());
    items.push(Sourced { origin: API_ORIGIN.to_owned(), item });
    Ok(name)
}

fn update<T: Named>(items: &mut [Sourced<T>], section: Section, name: &str, body: Value) -> Result<(), EditError> {
    let name = name.trim();
    let index = items
        .iter()
        .position(|s| s.item.name() == Some(name))
        .ok_or_else(|| EditError::NotFound { section, name: name.to_owned() })?;
    let mut item: T = parse(section, index, body)?;
    item.set_name(name.to_owned());
    if let Some(slot) = items.get_mut(index) {
        *slot = Sourced { origin: API_ORIGIN.to_owned(), item };
    }
    Ok(())
}

fn delete<T: Named>(items: &mut Vec<Sourced<T>>, section: Section, name: &str) -> Result<(), EditError> {
    let name = name.trim();
    let before = items.len();
    items.retain(|s| s.item.name() != Some(name));
    if items.len() == before {
        return Err(EditError::NotFound { section, name: name.to_owned() });
    }
    Ok(())
}
