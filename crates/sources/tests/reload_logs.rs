//! The reloader's log lines. In a process of its own: tracing caches each
//! log line's interest globally, so a parallel test without a subscriber
//! could hide lines from this one's.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::sync::{Arc, Mutex};

use common::TempDir;
use rgost_config::{FileSource, Sources};
use rgost_sources::Reloader;

/// Captures formatted log output.
#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Captured {
    fn take(&self) -> String {
        String::from_utf8(std::mem::take(&mut *self.0.lock().unwrap())).unwrap()
    }
}

#[tokio::test(flavor = "current_thread")]
async fn failures_are_logged_once_per_streak() {
    let captured = Captured::default();
    let writer = captured.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_writer(move || writer.clone())
        .with_ansi(false)
        .with_max_level(tracing::Level::INFO)
        .finish();
    let _guard = tracing::subscriber::set_default(subscriber);
    // Callsites first hit by a parallel test (with no subscriber) cached
    // "never" as their interest; ask again with this subscriber in place.
    tracing::callsite::rebuild_interest_cache();

    let dir = TempDir::new("logs");
    let path = dir.path().join("r.txt");
    std::fs::write(&path, "k v\n").unwrap();
    let sources = Sources { file: Some(FileSource { path: path.clone() }), ..Sources::default() };
    let mut reloader = Reloader::new("router-a", sources, vec![]);
    reloader.load_initial().await;
    assert_eq!(captured.take(), "");

    std::fs::remove_file(&path).unwrap();
    reloader.reload().await;
    let log = captured.take();
    assert_eq!(log.matches("WARN").count(), 1, "{log}");
    assert!(log.contains("router-a") && log.contains("r.txt"), "{log}");
    reloader.reload().await;
    reloader.reload().await;
    assert_eq!(captured.take(), "", "a failure streak is logged once");

    std::fs::write(&path, "k v\nbad line here\n").unwrap();
    reloader.reload().await;
    let log = captured.take();
    assert!(log.contains("INFO") && log.contains("recovered"), "{log}");
    assert!(log.contains("WARN") && log.contains("bad line here"), "{log}");
    reloader.reload().await;
    assert_eq!(captured.take(), "", "unchanged bad lines are not logged again");
}
