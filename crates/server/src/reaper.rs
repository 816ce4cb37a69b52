//! Closing sockets off the packet path.
//!
//! Closing a TCP connection is real work for the kernel (the FIN exchange,
//! TIME_WAIT, leaving epoll), done in the thread that closes it. When
//! thousands of clients go at once, doing it on the runtime's threads
//! would put every live connection's packets behind all of those closes.
//! A connection's sockets are handed to one background thread instead,
//! which the operating system schedules alongside the packet path.

use std::sync::mpsc::{SyncSender, TrySendError, sync_channel};

/// Sockets waiting to be closed, at most; beyond that they are closed in place.
const BACKLOG: usize = 65_536;

/// Hands things to a background thread that drops them.
#[derive(Debug)]
pub struct Reaper {
    tx: Option<SyncSender<Box<dyn Send>>>,
}

impl Reaper {
    /// Starts the thread; without one (the system refused a thread), things
    /// are dropped in place.
    pub fn new() -> Reaper {
        let (tx, rx) = sync_channel::<Box<dyn Send>>(BACKLOG);
        let thread = std::thread::Builder::new().name("rgost-reaper".to_owned()).spawn(move || {
            // Ends when the last sender (the server) is gone.
            while let Ok(thing) = rx.recv() {
                drop(thing);
            }
        });
        match thread {
            Ok(_) => Reaper { tx: Some(tx) },
            Err(e) => {
                tracing::warn!(error = %e, "cannot start the socket reaper thread: sockets are closed in place");
                Reaper { tx: None }
            }
        }
    }

    /// Drops `thing` on the reaper thread (in place if its backlog is full).
    pub fn bury(&self, thing: impl Send + 'static) {
        if let Some(tx) = &self.tx {
            match tx.try_send(Box::new(thing)) {
                Ok(()) => {}
                Err(TrySendError::Full(thing) | TrySendError::Disconnected(thing)) => drop(thing),
            }
        }
    }
}

impl Default for Reaper {
    fn default() -> Self {
        Reaper::new()
    }
}
