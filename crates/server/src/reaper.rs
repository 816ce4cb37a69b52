//! Connection teardown off the packet path.
//!
//! Closing a TCP connection is real work for the kernel (the FIN exchange,
//! TIME_WAIT, leaving epoll), done in the thread that closes it; releasing
//! a connection also takes the namespace's lock and writes a log line. When
//! thousands of clients go at once, doing that on the runtime's threads
//! would put every live connection's packets behind all of it. It happens
//! on one background thread instead, which the operating system schedules
//! alongside the packet path.

use std::sync::mpsc::{SyncSender, TrySendError, sync_channel};

/// Jobs waiting, at most; beyond that they run in place.
const BACKLOG: usize = 65_536;

type Job = Box<dyn FnOnce() + Send>;

/// Runs teardown jobs on a background thread. Clones share the thread.
#[derive(Debug, Clone)]
pub struct Reaper {
    tx: Option<SyncSender<Job>>,
}

impl Reaper {
    /// Starts the thread; without one (the system refused a thread), jobs
    /// run in place.
    pub fn new() -> Reaper {
        let (tx, rx) = sync_channel::<Job>(BACKLOG);
        let thread = std::thread::Builder::new().name("rgost-reaper".to_owned()).spawn(move || {
            // Ends when the last sender is gone.
            while let Ok(job) = rx.recv() {
                job();
            }
        });
        match thread {
            Ok(_) => Reaper { tx: Some(tx) },
            Err(e) => {
                tracing::warn!(error = %e, "cannot start the teardown thread: connections are closed in place");
                Reaper { tx: None }
            }
        }
    }

    /// Runs `job` on the background thread (in place if its backlog is full).
    pub fn run(&self, job: impl FnOnce() + Send + 'static) {
        match &self.tx {
            Some(tx) => match tx.try_send(Box::new(job)) {
                Ok(()) => {}
                Err(TrySendError::Full(job) | TrySendError::Disconnected(job)) => job(),
            },
            None => job(),
        }
    }

    /// Drops `thing` (a socket, say) on the background thread.
    pub fn bury(&self, thing: impl Send + 'static) {
        self.run(move || drop(thing));
    }
}

impl Default for Reaper {
    fn default() -> Self {
        Reaper::new()
    }
}
