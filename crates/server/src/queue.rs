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

/// What [`Queue::push_many`] did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Pushed {
    /// Packets queued.
    pub packets: u64,
    /// Their bytes.
    pub bytes: u64,
    /// Packets not queued, and why (the first bound they met).
    pub dropped: (u64, Option<DropReason>),
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

    /// Queues the packets of `run` in order, as many as every bound allows,
    /// with one lock and one charge of each shared budget (a run of packets
    /// for one connection is the common case: a read batch of one flow).
    /// Empties `run`; returns what was queued (packets, bytes) and what was
    /// not (how many, and why).
    pub fn push_many(&self, run: &mut Vec<Bytes>) -> Pushed {
        let mut pushed = Pushed::default();
        if run.is_empty() {
            return pushed;
        }
        let mut state = self.lock();
        if state.closed {
            pushed.dropped = (run.len() as u64, Some(DropReason::Closed));
            run.clear();
            return pushed;
        }
        // How many fit this connection's own bounds.
        let (mut fit, mut charge) = (0, 0);
        for packet in run.iter() {
            let c = packet.len() + PACKET_OVERHEAD;
            if state.packets.len() + fit >= self.limits.packets || state.charged + charge + c > self.limits.bytes {
                // Read only here, when packets are dropped anyway: a paced
                // writer's queue is full because of its limit.
                let paced = self.paced.load(Ordering::Relaxed);
                pushed.dropped.1 = Some(if paced { DropReason::RateLimited } else { DropReason::QueueFull });
                break;
            }
            fit += 1;
            charge += c;
        }
        // Then the shared budgets, all at once, or packet by packet when short.
        let taken = if self.host.try_charge(charge) {
            if self.server.try_charge(charge) {
                fit
            } else {
                self.host.release(charge);
                pushed.dropped.1 = Some(DropReason::ServerBudget);
                self.charge_each(run, fit)
            }
        } else {
            pushed.dropped.1 = Some(DropReason::HostBudget);
            self.charge_each(run, fit)
        };
        let was_empty = state.packets.is_empty();
        for packet in run.drain(..taken) {
            let c = packet.len() + PACKET_OVERHEAD;
            state.charged += c;
            pushed.packets += 1;
            pushed.bytes += packet.len() as u64;
            state.packets.push_back(packet);
        }
        drop(state);
        pushed.dropped.0 = run.len() as u64;
        if pushed.dropped.0 == 0 {
            pushed.dropped.1 = None;
        }
        run.clear();
        if was_empty && pushed.packets > 0 {
            self.ready.notify_one();
        }
        pushed
    }

    /// Charges the first packets of `run` (at most `fit`) one by one against
    /// the shared budgets; how many were charged.
    fn charge_each(&self, run: &[Bytes], fit: usize) -> usize {
        let mut taken = 0;
        for packet in run.iter().take(fit) {
            let c = packet.len() + PACKET_OVERHEAD;
            if !self.host.try_charge(c) {
                break;
            }
            if !self.server.try_charge(c) {
                self.host.release(c);
                break;
            }
            taken += 1;
        }
        taken
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

    impl Queue {
        /// One packet through [`Queue::push_many`].
        fn push(&self, packet: Bytes) -> Result<(), DropReason> {
            match self.push_many(&mut vec![packet]).dropped {
                (0, _) => Ok(()),
                (_, reason) => Err(reason.unwrap_or(DropReason::Closed)),
            }
        }
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

    #[tokio::test]
    async fn a_run_is_queued_as_far_as_every_bound_allows() {
        let host = Arc::new(Budget::new(4 * 1064));
        let server = Arc::new(Budget::new(100 * 1064));
        let q = queue(100, 3 * 1064, &host, &server);
        let mut run: Vec<Bytes> = (0..5).map(|_| packet(1000)).collect();
        let pushed = q.push_many(&mut run);
        assert_eq!(pushed, Pushed { packets: 3, bytes: 3000, dropped: (2, Some(DropReason::QueueFull)) });
        assert!(run.is_empty());
        // The host budget is shorter than this queue's room: charged one by one.
        let other = queue(100, 1 << 20, &host, &server);
        let mut run: Vec<Bytes> = (0..3).map(|_| packet(1000)).collect();
        assert_eq!(
            other.push_many(&mut run),
            Pushed { packets: 1, bytes: 1000, dropped: (2, Some(DropReason::HostBudget)) }
        );
        assert_eq!(host.used(), 4 * 1064);
        let mut batch = VecDeque::new();
        let charge = q.take(&mut batch).await.unwrap();
        assert_eq!(batch.len(), 3);
        q.written(charge);
        q.close();
        let mut run = vec![packet(10)];
        assert_eq!(q.push_many(&mut run).dropped, (1, Some(DropReason::Closed)));
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
