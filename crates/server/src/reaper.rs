//! Connection teardown off the packet path.
//!
//! Closing a TCP connection is real work for the kernel (the FIN exchange,
//! TIME_WAIT, leaving epoll), done in the thread that closes it; releasing
//! a connection also takes the namespace's lock and writes a log line. When
//! thousands of clients go at once, doing that on the runtime's threads
//! would put every live connection's packets behind all of it. It happens
//! on one background thread instead, which the operating system schedules
//! alongside the packet path.
//!
//! Once teardown has been quiet for a second (or after every 10,240 jobs under
//! steady churn), the same thread gives the memory the closed connections
//! freed back to the kernel ([`rgost_tun::heap::release_free_memory`]):
//! packets queued for receivers that left would otherwise keep the process
//! at its peak size.

use std::sync::mpsc::{RecvTimeoutError, SyncSender, TrySendError, sync_channel};
use std::time::Duration;

/// Jobs waiting, at most; beyond that they run in place.
const BACKLOG: usize = 65_536;
/// Quiet time after teardown before freed memory goes back.
const RELEASE_AFTER: Duration = Duration::from_secs(1);
/// Teardown jobs between two releases, at most, under steady churn.
const RELEASE_EVERY_JOBS: usize = 10 * 1024;

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
            let mut since_release = 0usize;
            loop {
                match rx.recv_timeout(RELEASE_AFTER) {
                    Ok(job) => {
                        job();
                        since_release += 1;
                        if since_release < RELEASE_EVERY_JOBS {
                            continue;
                        }
                    }
                    Err(RecvTimeoutError::Timeout) if since_release > 0 => {}
                    Err(RecvTimeoutError::Timeout) => continue,
                    Err(RecvTimeoutError::Disconnected) => break,
                }
                rgost_tun::heap::release_free_memory();
                since_release = 0;
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
