//! File source, merge priority across sources, and the reloader.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::{HttpServer, Reply, TempDir};
use rgost_config::{FileSource, HttpSource, Sources};
use rgost_sources::{Reloader, SourceError, fetch, spawn_reloader};
use tokio_util::sync::CancellationToken;

/// Every list of entries handed to `apply`.
type Applied = Arc<Mutex<Vec<Vec<(String, String)>>>>;

fn e(k: &str, v: &str) -> (String, String) {
    (k.to_owned(), v.to_owned())
}

#[tokio::test]
async fn file_source_reads_lines() {
    let dir = TempDir::new("file");
    let path = dir.path().join("routes.txt");
    std::fs::write(&path, "# c\n10.0.0.0/8 host-1 # gw\n\nx\n10.1.0.0/16\thost-2\n").unwrap();
    let sources = Sources { file: Some(FileSource { path: path.clone() }), ..Sources::default() };
    let fetched = fetch(&sources).await.file.unwrap().unwrap();
    assert_eq!(fetched.entries, vec![e("10.0.0.0/8", "host-1"), e("10.1.0.0/16", "host-2")]);
    assert_eq!(fetched.bad.len(), 1);
    assert_eq!(fetched.bad[0].line_no, 4);
}

#[tokio::test]
async fn missing_file_is_an_error_naming_it() {
    let dir = TempDir::new("missing");
    let path = dir.path().join("nope.txt");
    let sources = Sources { file: Some(FileSource { path: path.clone() }), ..Sources::default() };
    let err = fetch(&sources).await.file.unwrap().unwrap_err();
    assert!(matches!(err, SourceError::File { .. }), "{err:?}");
    assert!(err.to_string().starts_with(&format!("file {}: ", path.display())), "{err}");

    std::fs::write(&path, [0xff, 0xfe, b' ', b'x']).unwrap();
    let err = fetch(&sources).await.file.unwrap().unwrap_err();
    assert!(matches!(err, SourceError::FileNotUtf8 { .. }), "{err:?}");
}

#[tokio::test]
async fn initial_load_merges_with_priority_and_reports_failures() {
    let dir = TempDir::new("prio");
    let path = dir.path().join("r.txt");
    std::fs::write(&path, "a file\nb file\nc file\n").unwrap();
    let server = HttpServer::start(Reply::ok("a http\n")).await;
    let sources = Sources {
        file: Some(FileSource { path }),
        http: Some(HttpSource { url: server.url("/"), timeout: Duration::from_secs(2) }),
        ..Sources::default()
    };
    let inline = vec![e("a", "inline"), e("d", "inline"), e("c", "inline")];
    let mut reloader = Reloader::new("r", sources.clone(), inline.clone());
    let initial = reloader.load_initial().await;
    assert!(initial.errors.is_empty());
    assert_eq!(initial.entries, vec![e("a", "http"), e("b", "file"), e("c", "file"), e("d", "inline")]);
    // Nothing changed since: no apply.
    assert_eq!(reloader.reload().await, None);

    // A failing source at start: reported, the rest still loads.
    server.set_reply(Reply::status(500, ""));
    let mut reloader = Reloader::new("r", sources, inline);
    let initial = reloader.load_initial().await;
    assert_eq!(initial.errors.len(), 1);
    assert!(matches!(initial.errors[0], SourceError::HttpStatus { status: 500, .. }));
    assert_eq!(initial.entries, vec![e("a", "file"), e("b", "file"), e("c", "file"), e("d", "inline")]);
}

#[tokio::test]
async fn reload_keeps_last_good_data_per_source_and_recovers() {
    let dir = TempDir::new("reload");
    let path = dir.path().join("r.txt");
    std::fs::write(&path, "f1 file\n").unwrap();
    let server = HttpServer::start(Reply::ok("h1 http\n")).await;
    let sources = Sources {
        file: Some(FileSource { path: path.clone() }),
        http: Some(HttpSource { url: server.url("/"), timeout: Duration::from_secs(2) }),
        reload: Some(Duration::from_millis(50)),
        ..Sources::default()
    };
    let mut reloader = Reloader::new("r", sources, vec![e("i", "inline")]);
    let initial = reloader.load_initial().await;
    assert_eq!(initial.entries, vec![e("h1", "http"), e("f1", "file"), e("i", "inline")]);

    // http fails: its last good data stays; the file change still comes through.
    server.set_reply(Reply::status(503, ""));
    std::fs::write(&path, "f2 file\n").unwrap();
    assert_eq!(reloader.reload().await, Some(vec![e("h1", "http"), e("f2", "file"), e("i", "inline")]));
    // Still failing, nothing else changed: nothing to apply.
    assert_eq!(reloader.reload().await, None);

    // The file disappears too: both keep their last good data.
    std::fs::remove_file(&path).unwrap();
    assert_eq!(reloader.reload().await, None);

    // Both recover with new data.
    server.set_reply(Reply::ok("h2 http\n"));
    std::fs::write(&path, "f3 file\n").unwrap();
    assert_eq!(reloader.reload().await, Some(vec![e("h2", "http"), e("f3", "file"), e("i", "inline")]));

    // A source that answers empty keeps its last good entries (an empty
    // answer is a failure: a broken write must not empty a router).
    server.set_reply(Reply::ok(""));
    assert_eq!(reloader.reload().await, None);
    assert_eq!(reloader.current(), vec![e("h2", "http"), e("f3", "file"), e("i", "inline")]);
}

#[tokio::test]
async fn spawned_reloader_applies_changes_only_and_stops_on_shutdown() {
    let dir = TempDir::new("spawn");
    let path = dir.path().join("r.txt");
    std::fs::write(&path, "k v1\n").unwrap();
    let sources = Sources {
        file: Some(FileSource { path: path.clone() }),
        reload: Some(Duration::from_millis(30)),
        ..Sources::default()
    };
    let applied: Applied = Arc::default();
    let sink = applied.clone();
    let shutdown = CancellationToken::new();
    let task =
        spawn_reloader("r", sources, vec![], move |entries| sink.lock().unwrap().push(entries), shutdown.clone());

    wait_for(|| applied.lock().unwrap().len() == 1).await;
    // Several periods without a change: no further apply.
    tokio::time::sleep(Duration::from_millis(150)).await;
    assert_eq!(applied.lock().unwrap().len(), 1);

    std::fs::write(&path, "k v2\nk2 v\n").unwrap();
    wait_for(|| applied.lock().unwrap().len() == 2).await;
    assert_eq!(applied.lock().unwrap()[1], vec![e("k", "v2"), e("k2", "v")]);

    shutdown.cancel();
    tokio::time::timeout(Duration::from_secs(2), task).await.unwrap().unwrap();
    assert_eq!(applied.lock().unwrap()[0], vec![e("k", "v1")]);
}

#[tokio::test]
async fn without_a_reload_period_it_loads_once() {
    let dir = TempDir::new("once");
    let path = dir.path().join("r.txt");
    std::fs::write(&path, "k v\n").unwrap();
    let sources = Sources { file: Some(FileSource { path }), ..Sources::default() };
    let applied: Applied = Arc::default();
    let sink = applied.clone();
    let task = spawn_reloader(
        "r",
        sources,
        vec![],
        move |entries| sink.lock().unwrap().push(entries),
        CancellationToken::new(),
    );
    // The task ends by itself after the first load.
    tokio::time::timeout(Duration::from_secs(2), task).await.unwrap().unwrap();
    assert_eq!(*applied.lock().unwrap(), vec![vec![e("k", "v")]]);
}

async fn wait_for(cond: impl Fn() -> bool) {
    for _ in 0..200 {
        if cond() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("condition not reached in 2 s");
}

/// A source that reads as empty keeps its last good entries, however it got
/// empty, and says so once per streak; it takes new entries again as soon
/// as it has valid ones.
#[tokio::test]
async fn a_source_without_a_valid_entry_keeps_its_last_good_entries() {
    let dir = TempDir::new("empty");
    let path = dir.path().join("routes.txt");
    std::fs::write(&path, "10.0.0.1 host-1\n10.0.0.2 host-2\n").unwrap();
    let sources = Sources { file: Some(FileSource { path: path.clone() }), ..Sources::default() };
    // Only entries whose key is an address count, as a router's do.
    let valid = |(dst, _): &(String, String)| dst.parse::<std::net::IpAddr>().is_ok();
    let mut reloader = Reloader::new("router-a", sources, vec![]).with_validity(valid);
    let good = vec![e("10.0.0.1", "host-1"), e("10.0.0.2", "host-2")];
    assert_eq!(reloader.load_initial().await.entries, good);
    for broken in ["", "# only a comment\n\n", "one-field\nthree fields here\n", "not-an-address host-1\n"] {
        std::fs::write(&path, broken).unwrap();
        assert_eq!(reloader.reload().await, None, "{broken:?} emptied the router");
        assert_eq!(reloader.current(), good);
    }
    std::fs::write(&path, "10.0.0.3 host-3\nbad-address host-4\n").unwrap();
    assert_eq!(reloader.reload().await, Some(vec![e("10.0.0.3", "host-3"), e("bad-address", "host-4")]));
    // At start, a source without a valid entry is reported as failing.
    std::fs::write(&path, "\n").unwrap();
    let sources = Sources { file: Some(FileSource { path: path.clone() }), ..Sources::default() };
    let initial =
        Reloader::new("router-b", sources, vec![e("10.9.9.9", "inline")]).with_validity(valid).load_initial().await;
    assert_eq!(initial.entries, vec![e("10.9.9.9", "inline")]);
    assert!(matches!(initial.errors.as_slice(), [SourceError::NoValidEntry { .. }]), "{:?}", initial.errors);
    assert!(initial.errors[0].to_string().starts_with(&format!("file {}: no valid entry", path.display())));
}

#[tokio::test]
async fn reads_are_counted_by_source_and_result() {
    let dir = TempDir::new("stats");
    let path = dir.path().join("r.txt");
    std::fs::write(&path, "10.0.0.0/8 h1\n").unwrap();
    let sources = Sources { file: Some(FileSource { path: path.clone() }), ..Sources::default() };
    let stats = Arc::new(rgost_sources::ReloadStats::default());
    let mut reloader = Reloader::new("r", sources, Vec::new()).with_stats(Arc::clone(&stats));
    assert!(stats.snapshot().is_empty(), "nothing read yet");
    reloader.load_initial().await;
    std::fs::remove_file(&path).unwrap();
    reloader.reload().await;
    reloader.reload().await;
    let counts = stats.snapshot();
    assert_eq!(counts.len(), 1, "only the file source is configured");
    assert_eq!((counts[0].source, counts[0].ok, counts[0].failed), ("file", 1, 2));
    assert!(counts[0].last_good_age.is_some_and(|age| age < Duration::from_secs(60)));
}
