//! Forwarding over TCP: a bounded queue and a writer task per next hop.
//!
//! [`TcpEgress::send_frames`] is called from the pipeline's egress thread (a
//! plain std thread) with a whole group of frames for one next hop, and
//! never blocks: it only pushes the group into that hop's queue, so the
//! writer task is woken once per group rather than once per frame.
//! The writer tasks run on a tokio runtime given by handle.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use tokio::runtime::Handle;
use tokio::sync::mpsc;
use tokio::sync::mpsc::error::TrySendError;
use tokio_util::sync::CancellationToken;

use super::limits::TcpLimits;
use super::peer;
use super::stats::{self, EgressStats};
use crate::pipeline::{DropCause, PacketBuf};
use crate::sphinx::{DropReason, FRAME_LEN};
use crate::transport::{LinkContext, TcpRefused};

/// How often `flush` looks at the queues. Flushing happens once, at
/// shutdown, so polling is simpler than wiring a notification through.
const FLUSH_POLL: Duration = Duration::from_millis(5);

/// Per-next-hop TCP queues and the tasks that drain them.
///
/// Dropping it (or [`shutdown`](Self::shutdown)) stops the tasks; call
/// [`flush`](Self::flush) first to let queued frames go out.
pub struct TcpEgress {
    inner: Arc<Inner>,
}

/// State shared between the handle and the writer tasks.
pub(super) struct Inner {
    pub(super) limits: TcpLimits,
    pub(super) stats: Arc<EgressStats>,
    pub(super) shutdown: CancellationToken,
    peers: Mutex<HashMap<SocketAddr, Arc<PeerQueue>>>,
    runtime: Handle,
    /// Link sessions to members, when links are on.
    pub(super) links: Option<Arc<LinkContext>>,
}

/// One next hop's queue, as `send` sees it.
pub(super) struct PeerQueue {
    /// Groups of frames; `pending` counts the frames.
    tx: mpsc::Sender<Vec<PacketBuf>>,
    /// Frames accepted by `send` and neither written nor dropped yet: those
    /// in the channel plus the batch the writer holds. This, not the
    /// channel, enforces the queue depth, so the bound covers both.
    pending: AtomicUsize,
}

impl PeerQueue {
    /// Frames accepted and not yet written or dropped.
    pub(super) fn pending(&self) -> usize {
        self.pending.load(Ordering::Acquire)
    }

    /// Marks `n` frames as written or dropped.
    pub(super) fn release(&self, n: usize) {
        self.pending.fetch_sub(n, Ordering::AcqRel);
    }
}

impl TcpEgress {
    /// An egress whose writer tasks run on `runtime`.
    pub fn new(limits: TcpLimits, runtime: Handle) -> Self {
        Self::with_links(limits, runtime, None)
    }

    /// As [`new`](Self::new), opening a link session to every next hop
    /// that is a member publishing a link key, when `links` is given.
    pub fn with_links(limits: TcpLimits, runtime: Handle, links: Option<Arc<LinkContext>>) -> Self {
        TcpEgress {
            inner: Arc::new(Inner {
                limits: limits.sanitized(),
                stats: Arc::new(EgressStats::default()),
                shutdown: CancellationToken::new(),
                peers: Mutex::new(HashMap::new()),
                runtime,
                links,
            }),
        }
    }

    /// Queues `frame` for `to`; never blocks. The first frame for a next
    /// hop starts its writer task, which connects.
    ///
    /// Fails with `Overload` when that queue is full or too many next hops
    /// have queues, `Shutdown` after shutdown, and `malformed` for a buffer
    /// that is not one frame (it could only desynchronise the stream).
    pub fn send(&self, to: SocketAddr, frame: PacketBuf) -> Result<(), DropCause> {
        self.send_frames(to, vec![frame]).map_err(|e| e.cause)
    }

    /// Queues `frames` for `to`, in order, as one hand-over to its writer;
    /// never blocks. As [`send`](Self::send) for each frame, except that a
    /// queue with room for only some takes the first of them and refuses
    /// the rest. A buffer that is not one frame refuses the whole group.
    pub fn send_frames(
        &self,
        to: SocketAddr,
        mut frames: Vec<PacketBuf>,
    ) -> Result<(), TcpRefused> {
        let all = frames.len();
        let refuse = |frames: usize, cause| Err(TcpRefused { frames, cause });
        if all == 0 {
            return Ok(());
        }
        if self.inner.shutdown.is_cancelled() {
            return refuse(all, DropCause::Shutdown);
        }
        if frames.iter().any(|frame| frame.len() != FRAME_LEN) {
            return refuse(all, DropCause::Sphinx(DropReason::Malformed));
        }
        // The lock is held through the push so a writer retiring its idle
        // queue (under the same lock) can never strand a frame in it.
        let mut peers = self.inner.lock_peers();
        let queue = match peers.get(&to) {
            Some(queue) => Arc::clone(queue),
            None => {
                if peers.len() >= self.inner.limits.max_peers {
                    return refuse(all, self.inner.refuse(all));
                }
                let queue = self.inner.start_peer(to);
                peers.insert(to, Arc::clone(&queue));
                queue
            }
        };

        let depth = self.inner.limits.egress_queue_depth;
        let mut taken = 0;
        let _ = queue
            .pending
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                taken = all.min(depth.saturating_sub(n));
                (taken > 0).then_some(n + taken)
            });
        if taken == 0 {
            return refuse(all, self.inner.refuse(all));
        }
        frames.truncate(taken);
        let refused = all - taken;
        match queue.tx.try_send(frames) {
            Ok(()) if refused == 0 => Ok(()),
            Ok(()) => refuse(refused, self.inner.refuse(refused)),
            // Cannot happen while `pending` bounds the channel (a group
            // holds at least one frame); handled anyway.
            Err(TrySendError::Full(_)) => {
                queue.release(taken);
                refuse(all, self.inner.refuse(all))
            }
            // The writer task is gone (it panicked, or the runtime shut
            // down). Forget it so the next frame starts a fresh one.
            Err(TrySendError::Closed(_)) => {
                queue.release(taken);
                peers.remove(&to);
                refuse(all, self.inner.refuse(all))
            }
        }
    }

    /// Frames waiting per next hop (queued or being written), for metrics.
    pub fn queue_depths(&self) -> Vec<(SocketAddr, usize)> {
        self.inner
            .lock_peers()
            .iter()
            .map(|(addr, queue)| (*addr, queue.pending()))
            .collect()
    }

    /// Frames waiting over all next hops.
    pub fn pending(&self) -> usize {
        self.inner
            .lock_peers()
            .values()
            .map(|queue| queue.pending())
            .sum()
    }

    /// The egress counters.
    pub fn stats(&self) -> &Arc<EgressStats> {
        &self.inner.stats
    }

    /// Waits until every queue is empty or `timeout` passes; true if empty.
    /// For graceful shutdown, before [`shutdown`](Self::shutdown).
    pub async fn flush(&self, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        loop {
            if self.pending() == 0 {
                return true;
            }
            if Instant::now() >= deadline {
                return false;
            }
            tokio::time::sleep(FLUSH_POLL).await;
        }
    }

    /// [`flush`](Self::flush) for std threads. Must not be called on a
    /// runtime thread: it sleeps the thread, which could starve the very
    /// writers it waits for.
    pub fn flush_blocking(&self, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        loop {
            if self.pending() == 0 {
                return true;
            }
            if Instant::now() >= deadline {
                return false;
            }
            std::thread::sleep(FLUSH_POLL);
        }
    }

    /// Stops every writer task; frames still queued are dropped (counted as
    /// `abandoned`) and later sends fail with `Shutdown`. Idempotent.
    pub fn shutdown(&self) {
        self.inner.shutdown.cancel();
    }
}

impl Drop for TcpEgress {
    fn drop(&mut self) {
        self.shutdown();
    }
}

impl Inner {
    pub(super) fn lock_peers(&self) -> MutexGuard<'_, HashMap<SocketAddr, Arc<PeerQueue>>> {
        // Every critical section leaves the map consistent, so a poisoned
        // lock (a panic elsewhere) is still safe to use.
        self.peers.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Creates `to`'s queue and spawns its writer. Called under the lock.
    fn start_peer(self: &Arc<Self>, to: SocketAddr) -> Arc<PeerQueue> {
        let (tx, rx) = mpsc::channel(self.limits.egress_queue_depth);
        let queue = Arc::new(PeerQueue {
            tx,
            pending: AtomicUsize::new(0),
        });
        self.runtime
            .spawn(peer::run(Arc::clone(self), to, Arc::clone(&queue), rx));
        queue
    }

    /// Removes `to`'s queue if it is still `queue` and `keep` allows; the
    /// check runs under the lock, where no frame can be added meanwhile.
    pub(super) fn retire_if(
        &self,
        to: SocketAddr,
        queue: &Arc<PeerQueue>,
        keep: impl FnOnce(&PeerQueue) -> bool,
    ) -> bool {
        let mut peers = self.lock_peers();
        if keep(queue) {
            return false;
        }
        if peers
            .get(&to)
            .is_some_and(|current| Arc::ptr_eq(current, queue))
        {
            peers.remove(&to);
        }
        true
    }

    /// Counts `n` refused frames and names the cause.
    fn refuse(&self, n: usize) -> DropCause {
        stats::add(&self.stats.queue_full, n as u64);
        DropCause::Overload
    }
}
