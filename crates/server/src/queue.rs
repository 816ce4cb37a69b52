//! A connection's outgoing queue, bounded in bytes.
//!
//! Every queued packet is charged its length plus [`PACKET_OVERHEAD`] against
//! three bounds at once: its connection's queue (`queueBytes`, and
//! `queuePackets`), its host's connections together (`hostQueueBytes`) and
//! the whole service (`serverQueueBytes`). A packet over any of them is
//! dropped and counted; nothing a sender does can make the server hold more.
//! The charge is released when the packet has been written, or when the
//! connection closes (its queue is emptied at once).
//!
//! Senders push from their read loops; the connection's writer takes
//! everything queued in one go and writes it out.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use bytes::Bytes;
use rgost_forward::DropReason;
use tokio::sync::Notify;

/// Bytes charged per packet beyond its length: its handle in the queue and
/// the allocator's share.
pub const PACKET_OVERHEAD: usize = 64;

/// A byte budget shared by several queues (a host's, or the service's).
#[derive(Debug)]
pub struct Budget {
    used: AtomicUsize,
    limit: usize,
}

impl Budget {
    /// A budget of `limit` bytes.
    pub fn new(limit: usize) -> Budget {
        Budget { used: AtomicUsize::new(0), limit }
    }

    /// Bytes charged now.
    pub fn used(&self) -> usize {
        self.used.load(Ordering::Relaxed)
    }

    /// The limit.
    pub fn limit(&self) -> usize {
        self.limit
    }

    fn try_charge(&self, n: usize) -> bool {
        let before = self.used.fetch_add(n, Ordering::Relaxed);
        if before + n > self.limit {
            self.used.fetch_sub(n, Ordering::Relaxed);
            return false;
        }
        true
    }

    fn release(&self, n: usize) {
        self.used.fetch_sub(n, Ordering::Relaxed);
    }
}

/// Bounds of one connection's queue.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct QueueLimits {
    /// Packets queued at most.
    pub packets: usize,
    /// Bytes charged at most.
    pub bytes: usize,
}

/// One connection's outgoing queue.
#[derive(Debug)]
pub struct Queue {
    state: Mutex<State>,
    ready: Notify,
    limits: QueueLimits,
    host: Arc<Budget>,
    server: Arc<Budget>,
    /// Whether the writer paces its output (a traffic limit): a full queue
    /// then means the limit, not a slow reader.
    paced: AtomicBool,
}

#[derive(Debug, Default)]
struct State {
    packets: VecDeque<Bytes>,
    /// Bytes charged for queued packets and for packets being written.
    charged: usize,
    closed: bool,
}

impl Queue {
    /// An empty queue charging `host` and `server` besides its own bounds.
    pub fn new(limits: QueueLimits, host: Arc<Budget>, server: Arc<Budget>) -> Queue {
        Queue { state: Mutex::default(), ready: Notify::new(), limits, host, server, paced: AtomicBool::new(false) }
    }

    /// Says whether the writer paces this queue's output: packets that do
    /// not fit are then dropped as [`DropReason::RateLimited`].
    pub fn set_paced(&self, paced: bool) {
        self.paced.store(paced, Ordering::Relaxed);
    }

    /// The host budget this queue charges (shared with the host's other connections).
    pub fn host_budget(&self) -> &Arc<Budget> {
        &self.host
    }

    /// Queues `packet`, or says why it cannot be.
    pub fn push(&self, packet: Bytes) -> Result<(), DropReason> {
        let charge = packet.len() + PACKET_OVERHEAD;
        let mut state = self.lock();
        if state.closed {
            return Err(DropReason::Closed);
        }
        if state.packets.len() >= self.limits.packets || state.charged + charge > self.limits.bytes {
            // Read only here, when the packet is dropped anyway.
            if self.paced.load(Ordering::Relaxed) {
                return Err(DropReason::RateLimited);
            }
            return Err(DropReason::QueueFull);
        }
        if !self.host.try_charge(charge) {
            return Err(DropReason::HostBudget);
        }
        if !self.server.try_charge(charge) {
            self.host.release(charge);
            return Err(DropReason::ServerBudget);
        }
        state.charged += charge;
        let was_empty = state.packets.is_empty();
        state.packets.push_back(packet);
        drop(state);
        if was_empty {
            self.ready.notify_one();
        }
        Ok(())
    }

    /// Waits until packets are queued, then moves them all into `batch`
    /// (which must be empty) and returns the bytes they are charged. `None`
    /// once the queue is closed. Call [`Queue::written`] with the charge
    /// once they are written.
    pub async fn take(&self, batch: &mut VecDeque<Bytes>) -> Option<usize> {
        loop {
            {
                let mut state = self.lock();
                if state.closed {
                    return None;
                }
                if !state.packets.is_empty() {
                    std::mem::swap(&mut state.packets, batch);
                    let charge = batch.iter().map(|p| p.len() + PACKET_OVERHEAD).sum();
                    return Some(charge);
                }
            }
            self.ready.notified().await;
        }
    }

    /// Releases the charge of packets taken and written.
    pub fn written(&self, charge: usize) {
        let mut state = self.lock();
        state.charged = state.charged.saturating_sub(charge);
        drop(state);
        self.host.release(charge);
        self.server.release(charge);
    }

    /// Closes the queue: further pushes fail and everything queued is
    /// dropped and released now. Packets taken by the writer are released
    /// by its [`Queue::written`] call.
    pub fn close(&self) {
        let mut state = self.lock();
        state.closed = true;
        let queued = std::mem::take(&mut state.packets);
        let charge: usize = queued.iter().map(|p| p.len() + PACKET_OVERHEAD).sum();
        state.charged = state.charged.saturating_sub(charge);
        drop(state);
        self.host.release(charge);
        self.server.release(charge);
        drop(queued);
        self.ready.notify_one();
    }

    /// Packets and bytes queued now (not counting a batch being written).
    pub fn depth(&self) -> (usize, usize) {
        let state = self.lock();
        (state.packets.len(), state.packets.iter().map(Bytes::len).sum())
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // Every update leaves the state consistent; a panicked holder does not poison it for us.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn packet(len: usize) -> Bytes {
        Bytes::from(vec![0u8; len])
    }

    fn queue(packets: usize, bytes: usize, host: &Arc<Budget>, server: &Arc<Budget>) -> Queue {
        Queue::new(QueueLimits { packets, bytes }, Arc::clone(host), Arc::clone(server))
    }

    #[tokio::test]
    async fn every_bound_holds_and_is_released_after_writing() {
        let host = Arc::new(Budget::new(10 * 1064));
        let server = Arc::new(Budget::new(100 * 1064));
        let q = queue(4, 3 * 1064, &host, &server);
        for _ in 0..3 {
            q.push(packet(1000)).unwrap();
        }
        assert_eq!(q.push(packet(1000)), Err(DropReason::QueueFull), "bytes");
        assert_eq!(host.used(), 3 * 1064);
        let mut batch = VecDeque::new();
        let charge = q.take(&mut batch).await.unwrap();
        assert_eq!((batch.len(), charge), (3, 3 * 1064));
        assert_eq!(q.push(packet(1000)), Err(DropReason::QueueFull), "still charged while being written");
        q.written(charge);
        assert_eq!((host.used(), server.used()), (0, 0));
        q.push(packet(10)).unwrap();
        q.push(packet(10)).unwrap();
        q.push(packet(10)).unwrap();
        q.push(packet(10)).unwrap();
        assert_eq!(q.push(packet(10)), Err(DropReason::QueueFull), "packets");
        q.set_paced(true);
        assert_eq!(q.push(packet(10)), Err(DropReason::RateLimited), "full because the writer is paced");
        q.set_paced(false);
        q.close();
        assert_eq!(q.push(packet(10)), Err(DropReason::Closed));
        assert_eq!((host.used(), server.used()), (0, 0), "closing releases what was queued");
        assert_eq!(q.take(&mut VecDeque::new()).await, None);
    }

    #[test]
    fn host_and_server_budgets_are_shared() {
        let host = Arc::new(Budget::new(2 * 1064));
        let server = Arc::new(Budget::new(3 * 1064));
        let a = queue(100, 1 << 20, &host, &server);
        let b = queue(100, 1 << 20, &host, &server);
        a.push(packet(1000)).unwrap();
        b.push(packet(1000)).unwrap();
        assert_eq!(a.push(packet(1000)), Err(DropReason::HostBudget));
        let other_host = Arc::new(Budget::new(1 << 20));
        let c = queue(100, 1 << 20, &other_host, &server);
        c.push(packet(1000)).unwrap();
        assert_eq!(c.push(packet(1000)), Err(DropReason::ServerBudget));
        assert_eq!(other_host.used(), 1064, "a refused charge is given back");
        a.close();
        c.push(packet(1000)).unwrap();
    }
}
