//! Metadata maps (`handler.metadata`, `listener.metadata`, ... and the
//! command line's query keys), read the way GOST reads them: keys are
//! case-insensitive, numbers and booleans may be written as strings.
//!
//! Each key is written once, where it is read: every read registers its key
//! as known to the map, present or not, and [`check_keys`] then rejects the
//! keys that nothing read. GOST options rgost deliberately does not
//! implement are listed per map (`ignored`) and are a notice, not an error.

use std::cell::RefCell;
use std::time::Duration;

use serde_json::Value;

use crate::ConfigError;
use crate::duration::parse_duration;
use crate::raw::Metadata;
use crate::size::parse_size;
use crate::suggest;

type Result<T> = std::result::Result<T, ConfigError>;

pub(crate) fn invalid(
    origin: &str,
    key: impl Into<String>,
    value: impl Into<String>,
    reason: impl Into<String>,
) -> ConfigError {
    ConfigError::Invalid { origin: origin.to_owned(), key: key.into(), value: value.into(), reason: reason.into() }
}

/// A value as shown in messages: strings as they are, anything else as JSON.
pub(crate) fn shown(value: &Value) -> String {
    match value {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// A scalar as text (GOST's metadata readers convert numbers and bools).
pub(crate) fn scalar(value: &Value) -> Option<String> {
    match value {
        Value::String(s) => Some(s.trim().to_owned()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

/// A duration: a Go duration string, or an integer number of seconds.
pub(crate) fn duration_value(origin: &str, key: &str, value: &Value) -> Result<Duration> {
    match value {
        Value::Number(n) => n
            .as_u64()
            .map(Duration::from_secs)
            .ok_or_else(|| invalid(origin, key, shown(value), "not a duration like 10s, 1m30s or 500ms")),
        Value::String(s) => parse_duration(s).map_err(|reason| invalid(origin, key, s.as_str(), reason)),
        _ => Err(invalid(origin, key, shown(value), "not a duration like 10s, 1m30s or 500ms")),
    }
}

/// One metadata map with its key path; remembers which keys were read.
pub(crate) struct Md<'a> {
    origin: &'a str,
    path: String,
    map: Option<&'a Metadata>,
    /// GOST options rgost does not implement: accepted with a notice.
    ignored: &'static [&'static str],
    /// Every key asked for, present or not.
    read: RefCell<Vec<&'static str>>,
}

impl<'a> Md<'a> {
    /// The map at `path` (e.g. `services[0].handler.metadata`), from `origin`.
    pub(crate) fn new(
        origin: &'a str,
        path: String,
        map: Option<&'a Metadata>,
        ignored: &'static [&'static str],
    ) -> Self {
        Md { origin, path, map, ignored, read: RefCell::new(Vec::new()) }
    }

    /// Where the map was read from (file or flag).
    pub(crate) fn origin(&self) -> &'a str {
        self.origin
    }

    /// The map's key path (e.g. `services[0].handler.metadata`).
    pub(crate) fn path(&self) -> &str {
        &self.path
    }

    /// The value of `key` (case-insensitive) and its full path; null counts as absent.
    pub(crate) fn get(&self, key: &'static str) -> Option<(String, &'a Value)> {
        self.read.borrow_mut().push(key);
        let map = self.map?;
        map.iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(key))
            .filter(|(_, v)| !v.is_null())
            .map(|(k, v)| (format!("{}.{k}", self.path), v))
    }

    /// A non-empty string (numbers and booleans as text), with its path.
    pub(crate) fn string(&self, key: &'static str) -> Result<Option<(String, String)>> {
        let Some((path, value)) = self.get(key) else { return Ok(None) };
        let text = scalar(value).ok_or_else(|| invalid(self.origin, &path, shown(value), "expected a string"))?;
        Ok((!text.is_empty()).then_some((path, text)))
    }

    /// A boolean as GOST's `strconv.ParseBool` reads it (also 0 and 1).
    pub(crate) fn bool(&self, key: &'static str) -> Result<Option<bool>> {
        let Some((path, value)) = self.get(key) else { return Ok(None) };
        let parsed = match value {
            Value::Bool(b) => Some(*b),
            Value::Number(n) => match n.as_u64() {
                Some(0) => Some(false),
                Some(1) => Some(true),
                _ => None,
            },
            Value::String(s) => match s.trim() {
                "1" | "t" | "T" | "true" | "TRUE" | "True" => Some(true),
                "0" | "f" | "F" | "false" | "FALSE" | "False" => Some(false),
                _ => None,
            },
            _ => None,
        };
        parsed.map(Some).ok_or_else(|| invalid(self.origin, path, shown(value), "expected true or false"))
    }

    /// A duration (`10s`, `1m30s`; an integer is seconds).
    pub(crate) fn duration(&self, key: &'static str) -> Result<Option<Duration>> {
        let Some((path, value)) = self.get(key) else { return Ok(None) };
        duration_value(self.origin, &path, value).map(Some)
    }

    /// A duration above zero.
    pub(crate) fn positive_duration(&self, key: &'static str) -> Result<Option<Duration>> {
        let Some((path, value)) = self.get(key) else { return Ok(None) };
        let duration = duration_value(self.origin, &path, value)?;
        if duration.is_zero() {
            return Err(invalid(self.origin, path, shown(value), "must be more than zero"));
        }
        Ok(Some(duration))
    }

    /// An integer above zero.
    pub(crate) fn positive(&self, key: &'static str) -> Result<Option<usize>> {
        let Some((path, value)) = self.get(key) else { return Ok(None) };
        let parsed = scalar(value).and_then(|s| s.parse::<usize>().ok());
        match parsed {
            Some(0) => Err(invalid(self.origin, path, shown(value), "must be more than zero")),
            Some(n) => Ok(Some(n)),
            None => Err(invalid(self.origin, path, shown(value), "expected a positive integer")),
        }
    }

    /// A size in bytes above zero: an integer, or a number with a unit
    /// (`512KiB`, `4MiB`, `1GiB`, `4MB`).
    pub(crate) fn size(&self, key: &'static str) -> Result<Option<usize>> {
        let Some((path, value)) = self.get(key) else { return Ok(None) };
        let text = scalar(value).ok_or_else(|| invalid(self.origin, &path, shown(value), "expected a size"))?;
        match parse_size(&text) {
            Ok(0) => Err(invalid(self.origin, path, shown(value), "must be more than zero")),
            Ok(bytes) => Ok(Some(bytes)),
            Err(reason) => Err(invalid(self.origin, path, shown(value), reason)),
        }
    }

    /// A list: a YAML/JSON sequence of scalars, or a comma-separated string.
    pub(crate) fn list(&self, key: &'static str) -> Result<Option<(String, Vec<String>)>> {
        let Some((path, value)) = self.get(key) else { return Ok(None) };
        let items: Vec<String> = match value {
            Value::Array(items) => items
                .iter()
                .map(|item| scalar(item).ok_or_else(|| invalid(self.origin, &path, shown(item), "expected a string")))
                .collect::<Result<_>>()?,
            other => scalar(other)
                .ok_or_else(|| invalid(self.origin, &path, shown(other), "expected a string or a list"))?
                .split(',')
                .map(|item| item.trim().to_owned())
                .collect(),
        };
        let items: Vec<String> = items.into_iter().filter(|item| !item.is_empty()).collect();
        Ok(Some((path, items)))
    }

    /// The full path of `key` when the map has it (not null), for notices
    /// about keys read but not used by this component's type.
    pub(crate) fn present(&self, key: &'static str) -> Option<String> {
        self.get(key).map(|(path, _)| path)
    }

    fn has(&self, key: &str) -> bool {
        self.map.is_some_and(|map| map.keys().any(|k| k.eq_ignore_ascii_case(key)))
    }

    fn reads(&self, key: &str) -> bool {
        self.read.borrow().iter().any(|k| k.eq_ignore_ascii_case(key))
    }

    fn ignores(&self, key: &str) -> bool {
        self.ignored.iter().any(|k| k.eq_ignore_ascii_case(key))
    }

    /// Keys known here: read ones first, then ignored ones, each once.
    pub(crate) fn known(&self) -> Vec<&'static str> {
        let mut known: Vec<&'static str> = Vec::new();
        for key in self.read.borrow().iter().chain(self.ignored) {
            if !known.iter().any(|k| k.eq_ignore_ascii_case(key)) {
                known.push(key);
            }
        }
        known
    }
}

/// After one component (a service, or a node) is read: rejects metadata
/// keys that none of `maps` read, and gives one notice per ignored GOST key.
///
/// The command line puts a query key in both parts' maps (handler and
/// listener, connector and dialer): a key is fine when any map holding it
/// reads it, and is reported once.
pub(crate) fn check_keys(maps: &[&Md<'_>], warnings: &mut Vec<String>) -> Result<()> {
    let mut reported: Vec<String> = Vec::new();
    for md in maps {
        let Some(map) = md.map else { continue };
        for key in map.keys() {
            let lower = key.to_ascii_lowercase();
            if reported.contains(&lower) {
                continue;
            }
            let holders: Vec<&Md<'_>> = maps.iter().copied().filter(|m| m.has(key)).collect();
            if holders.iter().any(|m| m.reads(key)) {
                continue;
            }
            reported.push(lower);
            if holders.iter().any(|m| m.ignores(key)) {
                warnings
                    .push(format!("{}: {}.{key}: a GOST option rgost does not implement, ignored", md.origin, md.path));
                continue;
            }
            return Err(unknown(maps, &holders, key));
        }
    }
    Ok(())
}

/// The error for `key`, present in `holders` and read by none of `maps`.
fn unknown(maps: &[&Md<'_>], holders: &[&Md<'_>], key: &str) -> ConfigError {
    // Right key, wrong map (e.g. the listener's `path` in the handler's
    // metadata): point at the map that reads it. Otherwise the closest key
    // among the holders' known keys, reported at the holder that knows it
    // (on the command line: the part the user most likely meant).
    let elsewhere = maps.iter().find(|m| m.reads(key)).map(|m| format!("{}.{key}", m.path));
    let candidates: Vec<(usize, &'static str)> =
        holders.iter().enumerate().flat_map(|(i, m)| m.known().into_iter().map(move |k| (i, k))).collect();
    let closest = suggest::closest(key, candidates.iter().map(|(_, k)| *k));
    let (at, suggestion) = match (elsewhere, closest.and_then(|c| candidates.iter().find(|(_, k)| *k == c))) {
        (Some(elsewhere), _) => (holders[0], Some(elsewhere)),
        (None, Some((i, k))) => (holders[*i], Some((*k).to_owned())),
        (None, None) => (holders[0], None),
    };
    ConfigError::UnknownKey {
        origin: at.origin.to_owned(),
        key: format!("{}.{key}", at.path),
        suggestion,
        known: at.known().into_iter().map(str::to_owned).collect(),
        line: None,
    }
}
