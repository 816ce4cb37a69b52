//! Ingress: which namespace a host name may register in.

use std::fmt::Debug;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use arc_swap::ArcSwap;
use rgost_routing::Ingress;

/// Answers ingress lookups one host at a time (an HTTP plugin). Failures
/// count as "no rule": log them inside.
pub trait IngressResolver: Send + Sync + Debug + 'static {
    /// The endpoint (namespace UUID) for `host` on service `service`.
    fn resolve(&self, host: &str, service: &str) -> Pin<Box<dyn Future<Output = Option<[u8; 16]>> + Send>>;
}

/// Where a service's ingress rules come from. Clones share the rules, so a
/// reloader holds a clone and replaces them for everyone.
#[derive(Debug, Clone)]
pub enum IngressSource {
    /// Rules (inline and data sources), replaced as a whole on reload.
    Rules(Arc<ArcSwap<Ingress>>),
    /// A plugin.
    Plugin(Arc<dyn IngressResolver>),
}

impl IngressSource {
    /// Rules that can be reloaded.
    pub fn rules(ingress: Ingress) -> IngressSource {
        IngressSource::Rules(Arc::new(ArcSwap::from_pointee(ingress)))
    }

    /// The endpoint for `host`, if a rule matches.
    pub async fn lookup(&self, host: &str, service: &str) -> Option<[u8; 16]> {
        match self {
            IngressSource::Rules(rules) => rules.load().lookup(host),
            IngressSource::Plugin(plugin) => plugin.resolve(host, service).await,
        }
    }

    /// Replaces the rules (a reload); no effect on a plugin.
    pub fn replace(&self, ingress: Ingress) {
        if let IngressSource::Rules(rules) = self {
            rules.store(Arc::new(ingress));
        }
    }
}
