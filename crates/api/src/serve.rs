//! Serving an axum router on one of rgost's listeners (plain TCP, or TLS
//! for an api/metrics service whose listener is `tls`).
//!
//! Each accepted connection finishes its TLS handshake on its own task,
//! bounded in time, so a slow client never holds up the accept loop. On
//! shutdown the listener stops and every connection (an event stream
//! included) is closed.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::ConnectInfo;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use rgost_config::{Keepalive, ListenAddr, ListenerKind};
use rgost_transport::{Listener, TransportError};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

/// Time for a client to finish its TLS handshake, and to send a request's headers.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// Why a web endpoint could not start.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ServeError {
    /// Its listener.
    #[error("cannot listen on {addr}")]
    Bind {
        /// The address.
        addr: String,
        /// What failed.
        #[source]
        source: TransportError,
    },
}

/// A bound web listener; nothing is served until [`WebListener::serve`].
#[derive(Debug)]
pub struct WebListener {
    inner: Listener,
}

impl WebListener {
    /// Binds `addr` (TLS material is loaded now, so bad files stop the start).
    pub fn bind(addr: ListenAddr, kind: &ListenerKind) -> Result<WebListener, ServeError> {
        Listener::bind(addr, kind)
            .map(|l| WebListener { inner: l.with_keepalive(Keepalive::default()) })
            .map_err(|source| ServeError::Bind { addr: addr.to_string(), source })
    }

    /// The bound address.
    pub fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.inner.local_addr()
    }

    /// Serves `router` until `shutdown`. Handlers see the client's address
    /// as `ConnectInfo<SocketAddr>`.
    pub async fn serve(self, router: Router, shutdown: CancellationToken) {
        let tasks = TaskTracker::new();
        let router = Arc::new(router);
        loop {
            let incoming = tokio::select! {
                () = shutdown.cancelled() => break,
                incoming = self.inner.accept() => incoming,
            };
            let incoming = match incoming {
                Ok(incoming) => incoming,
                Err(e) => {
                    tracing::debug!(error = %e, "web: accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            };
            let (router, shutdown) = (Arc::clone(&router), shutdown.clone());
            tasks.spawn(async move {
                let peer = incoming.peer;
                let conn = match tokio::time::timeout(HANDSHAKE_TIMEOUT, incoming.upgrade()).await {
                    Ok(Ok(conn)) => conn,
                    Ok(Err(e)) => {
                        tracing::debug!(remote = %peer, error = %e, "web: handshake failed");
                        return;
                    }
                    Err(_) => return,
                };
                let io = TokioIo::new(tokio::io::join(conn.reader, conn.writer));
                let service = (*router).clone().layer(axum::Extension(ConnectInfo(peer)));
                let service = TowerToHyperService::new(service);
                let mut builder = hyper::server::conn::http1::Builder::new();
                builder.timer(TokioTimer::new()).header_read_timeout(HANDSHAKE_TIMEOUT);
                let connection = builder.serve_connection(io, service);
                tokio::pin!(connection);
                tokio::select! {
                    result = connection.as_mut() => {
                        if let Err(e) = result {
                            tracing::debug!(remote = %peer, error = %e, "web: connection ended with an error");
                        }
                    }
                    () = shutdown.cancelled() => {
                        connection.as_mut().graceful_shutdown();
                        // An event stream never ends by itself: bound the wait.
                        let _ = tokio::time::timeout(Duration::from_secs(1), connection).await;
                    }
                }
            });
        }
        tasks.close();
        tasks.wait().await;
    }
}
