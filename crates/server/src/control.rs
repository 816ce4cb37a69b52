//! The running config and the one way to change it: a SIGHUP (the config
//! file and the command line read again) and an edit through the web API
//! both end in [`Control::apply`].
//!
//! A new config is validated whole first; then every router service's new
//! settings are built (data sources loaded, plugins prepared); only when all
//! of them could be built are they put in force together. Anything that
//! fails changes nothing. Connections stay up: the next packet and the next
//! handshake see the new config. What a running process cannot change (a
//! listen address, a service added or removed, a TUN client's settings) is
//! reported as needing a restart, and the rest is applied.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use rgost_config::{Args, Config, ConfigError, Document, EditError, ServiceKind};
use tokio::sync::Mutex;

use crate::build::BuildError;
use crate::events::{Event, Events};
use crate::service::Service;

/// Why a new config was refused. The running config stays.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ApplyError {
    /// The config does not load or validate (the error names the key).
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// The edit itself was refused (an unknown name, a duplicate, a body of the wrong shape).
    #[error(transparent)]
    Edit(#[from] EditError),
    /// The config defines no service.
    #[error("nothing to run: {0}")]
    NothingToRun(String),
    /// A router service's settings could not be built (e.g. a plugin's TLS files).
    #[error("service {service}: {source}")]
    Build {
        /// The service.
        service: String,
        /// What failed.
        #[source]
        source: BuildError,
    },
}

/// What an applied config changed, beyond the settings put in force.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Outcome {
    /// Changes not applied: each says what needs a restart.
    pub need_restart: Vec<String>,
    /// Warnings of the new config (GOST options ignored, ...).
    pub warnings: Vec<String>,
}

/// Where a saved config goes and in which format.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// YAML.
    Yaml,
    /// JSON.
    Json,
}

/// Why the config could not be saved.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SaveError {
    /// No path was given and rgost was started without a config file.
    #[error("no config file to save to: give a path")]
    NoFile,
    /// The path does not name a config file (`.yaml`, `.yml` or `.json`).
    #[error("{0}: a config file's name ends in .yaml, .yml or .json")]
    NotAConfigFile(PathBuf),
    /// Writing failed.
    #[error("cannot write {path}: {source}")]
    Write {
        /// The file.
        path: PathBuf,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
}

#[derive(Debug)]
struct State {
    document: Document,
    config: Config,
}

/// The running config of the process, its router services and the event bus.
#[derive(Debug)]
pub struct Control {
    args: Args,
    routers: Vec<Arc<Service>>,
    events: Events,
    state: Mutex<State>,
    applied: AtomicU64,
    refused: AtomicU64,
}

impl Control {
    /// Control of a process started from `args`, running `config` (validated
    /// from `document`) with these router services.
    pub fn new(args: Args, document: Document, config: Config, routers: Vec<Arc<Service>>, events: Events) -> Control {
        Control {
            args,
            routers,
            events,
            state: Mutex::new(State { document, config }),
            applied: AtomicU64::new(0),
            refused: AtomicU64::new(0),
        }
    }

    /// Config changes applied and refused so far (SIGHUP and API together).
    pub fn reloads(&self) -> (u64, u64) {
        (self.applied.load(Ordering::Relaxed), self.refused.load(Ordering::Relaxed))
    }

    /// The router services.
    pub fn routers(&self) -> &[Arc<Service>] {
        &self.routers
    }

    /// The event bus.
    pub fn events(&self) -> &Events {
        &self.events
    }

    /// What the process was started with.
    pub fn args(&self) -> &Args {
        &self.args
    }

    /// The config in force.
    pub async fn config(&self) -> Config {
        self.state.lock().await.config.clone()
    }

    /// The config in force as a document in GOST's schema.
    pub async fn document(&self) -> Document {
        self.state.lock().await.document.clone()
    }

    /// Reads the config file and the command line again (SIGHUP, or the
    /// API's reload) and applies them.
    pub async fn reload(&self, by: &str) -> Result<Outcome, ApplyError> {
        match Document::load(&self.args) {
            Ok(document) => self.apply(document, by).await,
            Err(e) => {
                let e = ApplyError::from(e);
                self.refused(by, &e);
                Err(e)
            }
        }
    }

    /// Applies an edit of the running document (the web API). An edit that
    /// is refused, or whose result does not validate, changes nothing.
    pub async fn edit<T>(
        &self,
        by: &str,
        edit: impl FnOnce(&mut Document) -> Result<T, EditError>,
    ) -> Result<(T, Outcome), ApplyError> {
        let mut state = self.state.lock().await;
        let mut document = state.document.clone();
        let result = edit(&mut document).map_err(ApplyError::from)?;
        let outcome = self.apply_locked(&mut state, document, by).await?;
        Ok((result, outcome))
    }

    /// Validates `document` and puts it in force (see the module docs).
    pub async fn apply(&self, document: Document, by: &str) -> Result<Outcome, ApplyError> {
        let mut state = self.state.lock().await;
        self.apply_locked(&mut state, document, by).await
    }

    async fn apply_locked(&self, state: &mut State, document: Document, by: &str) -> Result<Outcome, ApplyError> {
        let result = self.try_apply(state, document).await;
        match &result {
            Ok(outcome) => {
                self.applied.fetch_add(1, Ordering::Relaxed);
                for warning in &outcome.warnings {
                    tracing::warn!("{warning}");
                }
                for note in &outcome.need_restart {
                    tracing::warn!("{note}");
                }
                tracing::info!(by, not_applied = outcome.need_restart.len(), "config reloaded");
                self.events.send_with(|| Event::Reload {
                    by: by.to_owned(),
                    applied: true,
                    error: None,
                    need_restart: outcome.need_restart.clone(),
                });
            }
            Err(e) => self.refused(by, e),
        }
        result
    }

    fn refused(&self, by: &str, error: &ApplyError) {
        self.refused.fetch_add(1, Ordering::Relaxed);
        // A refused API request is the client's mistake, answered to it; a
        // SIGHUP's refusal is only seen in the log.
        if by == "api" {
            tracing::warn!(by, "reload refused, the running config stays: {}", report(error));
        } else {
            tracing::error!(by, "reload refused, the running config stays: {}", report(error));
        }
        self.events.send_with(|| Event::Reload {
            by: by.to_owned(),
            applied: false,
            error: Some(report(error)),
            need_restart: Vec::new(),
        });
    }

    async fn try_apply(&self, state: &mut State, document: Document) -> Result<Outcome, ApplyError> {
        let loaded = document.validate()?;
        let new = loaded.config;
        if new.services.is_empty() {
            return Err(ApplyError::NothingToRun("the config defines no services".to_owned()));
        }
        let old = &state.config;
        let mut need_restart = Vec::new();
        let mut prepared = Vec::new();
        for service in &new.services {
            let before = old.services.iter().find(|s| s.name == service.name).map(|s| &s.kind);
            let restart = |what: &str| format!("service {}: {what}: restart to apply them", service.name);
            match (&service.kind, before) {
                (ServiceKind::Router(router), Some(ServiceKind::Router(_))) => {
                    let Some(running) = self.routers.iter().find(|r| r.name() == service.name) else { continue };
                    let ready = running
                        .prepare(router, &new)
                        .await
                        .map_err(|source| ApplyError::Build { service: service.name.clone(), source })?;
                    prepared.push((service.name.clone(), router, ready));
                }
                (kind, Some(before)) if std::mem::discriminant(kind) != std::mem::discriminant(before) => {
                    need_restart.push(restart("its kind changed"));
                }
                (kind, Some(before)) if kind != before => need_restart.push(restart("its settings changed")),
                (_, Some(_)) => {}
                (_, None) => need_restart.push(format!("service {}: new: restart to start it", service.name)),
            }
        }
        for service in &old.services {
            if !new.services.iter().any(|s| s.name == service.name) {
                need_restart.push(format!("service {}: removed: restart to stop it", service.name));
            }
        }
        need_restart.extend(web_changes("@api", old.api.as_ref().map(web_api), new.api.as_ref().map(web_api)));
        need_restart.extend(web_changes(
            "@metrics",
            old.metrics.as_ref().map(web_metrics),
            new.metrics.as_ref().map(web_metrics),
        ));
        // Every service could be built: put them in force together.
        for (name, router, ready) in prepared {
            let applied = ready.commit();
            need_restart.extend(applied.need_restart.into_iter().map(|n| format!("service {name}: {n}")));
            warn_if_no_routes(&name, router, &new);
        }
        state.document = document;
        state.config = new;
        Ok(Outcome { need_restart, warnings: loaded.warnings })
    }

    /// Writes the running document, without what the command line added,
    /// to `path` or the config file rgost was started with.
    pub async fn save(&self, path: Option<&Path>, format: Option<Format>) -> Result<PathBuf, SaveError> {
        let path = path.map(Path::to_path_buf).or_else(|| self.args.file.clone()).ok_or(SaveError::NoFile)?;
        // The API writes where it is told: only config files, so that it
        // cannot be used to write, say, a cron job.
        let config_file = path
            .extension()
            .and_then(|e| e.to_str())
            .is_some_and(|e| ["yaml", "yml", "json"].iter().any(|x| e.eq_ignore_ascii_case(x)));
        if !config_file {
            return Err(SaveError::NotAConfigFile(path));
        }
        let format = format.unwrap_or_else(|| {
            if path.extension().is_some_and(|e| e.eq_ignore_ascii_case("json")) { Format::Json } else { Format::Yaml }
        });
        let document = self.state.lock().await.document.file_part();
        let text = match format {
            Format::Yaml => document.to_yaml(),
            Format::Json => {
                // A JSON value always serialises.
                let mut text = serde_json::to_string_pretty(&document.to_json()).unwrap_or_default();
                text.push('\n');
                text
            }
        };
        // Written next to the file and renamed over it: a reader never sees half a config.
        let tmp = path.with_extension("rgost-tmp");
        let write = std::fs::write(&tmp, text).and_then(|()| std::fs::rename(&tmp, &path));
        write.map_err(|source| {
            let _ = std::fs::remove_file(&tmp);
            SaveError::Write { path: path.clone(), source }
        })?;
        tracing::info!(path = %path.display(), "config saved");
        Ok(path)
    }
}

/// What of an api or metrics endpoint cannot change while it runs.
fn web_api(api: &rgost_config::ApiConfig) -> String {
    format!("{:?} {:?} {} {}", api.listen, api.listener, api.path_prefix, api.access_log)
}

fn web_metrics(metrics: &rgost_config::MetricsConfig) -> String {
    format!("{:?} {:?} {} {}", metrics.listen, metrics.listener, metrics.path, metrics.host_labels)
}

fn web_changes(name: &str, old: Option<String>, new: Option<String>) -> Option<String> {
    match (old, new) {
        (None, None) => None,
        (Some(a), Some(b)) if a == b => None,
        (None, Some(_)) => Some(format!("{name}: new: restart to start it")),
        (Some(_), None) => Some(format!("{name}: removed: restart to stop it")),
        (Some(_), Some(_)) => Some(format!("{name}: its address, listener or path changed: restart to apply it")),
    }
}

/// An error and its causes, each once.
fn report(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        let cause_text = cause.to_string();
        if !text.ends_with(&cause_text) {
            text.push_str(": ");
            text.push_str(&cause_text);
        }
        source = cause.source();
    }
    text
}

/// A server whose routers have no route at all forwards nothing: say so.
pub fn warn_if_no_routes(name: &str, service: &rgost_config::RouterService, config: &Config) {
    let routed = config.routers.iter().any(|r| !r.routes.is_empty() || !r.sources.is_empty() || r.plugin.is_some());
    if !routed {
        tracing::warn!(service = %name, "no router has any route, source or plugin: every packet will be dropped (no route)");
    } else if service.default_router.is_none() && !config.routers.iter().any(|r| uuid::Uuid::parse_str(&r.name).is_ok())
    {
        tracing::warn!(service = %name, "no default router (handler metadata router) and no router named by a router id: every packet will be dropped (no route)");
    }
}
