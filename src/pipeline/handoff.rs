//! A channel between pipeline threads that carries batches of packets but
//! is bounded in packets: the mixing core's drivers hand egress one
//! [`Transmit`] group per message, while the depth limit
//! (`max_queue_depth`) still counts packets, whatever the group sizes.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, RecvError, RecvTimeoutError, Sender, TryRecvError, unbounded};

use super::drop_cause::DropCause;
use crate::mixing::Transmit;

/// Something that holds a number of packets.
pub trait Batch {
    /// Packets in it.
    fn packets(&self) -> usize;
}

impl<P> Batch for Transmit<P> {
    fn packets(&self) -> usize {
        self.packets.len()
    }
}

/// A batch the channel refused, with the reason.
#[derive(Debug)]
pub struct Refused<T> {
    /// The batch, handed back.
    pub batch: T,
    /// `overload` (the channel is at its limit) or `shutdown` (the
    /// receiving thread is gone).
    pub cause: DropCause,
}

/// The sending half; cheap to clone.
pub struct HandoffSender<T> {
    tx: Sender<T>,
    queued: Arc<AtomicUsize>,
    limit: usize,
}

impl<T> Clone for HandoffSender<T> {
    fn clone(&self) -> Self {
        HandoffSender {
            tx: self.tx.clone(),
            queued: Arc::clone(&self.queued),
            limit: self.limit,
        }
    }
}

/// The receiving half; cheap to clone.
pub struct HandoffReceiver<T> {
    rx: Receiver<T>,
    queued: Arc<AtomicUsize>,
}

impl<T> Clone for HandoffReceiver<T> {
    fn clone(&self) -> Self {
        HandoffReceiver {
            rx: self.rx.clone(),
            queued: Arc::clone(&self.queued),
        }
    }
}

/// A channel holding at most `limit` packets (at least one batch of any
/// size is always admitted into an empty channel, so a batch larger than
/// the limit cannot wedge it).
pub fn handoff<T: Batch>(limit: usize) -> (HandoffSender<T>, HandoffReceiver<T>) {
    // Unbounded as a channel: `queued` is the bound, counted in packets.
    let (tx, rx) = unbounded();
    let queued = Arc::new(AtomicUsize::new(0));
    (
        HandoffSender {
            tx,
            queued: Arc::clone(&queued),
            limit: limit.max(1),
        },
        HandoffReceiver { rx, queued },
    )
}

impl<T: Batch> HandoffSender<T> {
    /// Queues `batch`; never blocks. The whole batch is refused when it
    /// would take the channel past its limit.
    pub fn send(&self, batch: T) -> Result<(), Refused<T>> {
        let n = batch.packets();
        let limit = self.limit;
        let reserved = self
            .queued
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |queued| {
                (queued == 0 || queued + n <= limit).then_some(queued + n)
            });
        if reserved.is_err() {
            return Err(Refused {
                batch,
                cause: DropCause::Overload,
            });
        }
        self.tx.send(batch).map_err(|e| {
            self.queued.fetch_sub(n, Ordering::AcqRel);
            Refused {
                batch: e.into_inner(),
                cause: DropCause::Shutdown,
            }
        })
    }

    /// Packets queued and not yet received.
    pub fn packets(&self) -> usize {
        self.queued.load(Ordering::Relaxed)
    }
}

impl<T: Batch> HandoffReceiver<T> {
    /// Waits for the next batch; fails once every sender is gone and the
    /// channel is empty.
    pub fn recv(&self) -> Result<T, RecvError> {
        self.rx.recv().map(|batch| self.taken(batch))
    }

    /// Waits at most `timeout` for the next batch.
    pub fn recv_timeout(&self, timeout: Duration) -> Result<T, RecvTimeoutError> {
        self.rx.recv_timeout(timeout).map(|batch| self.taken(batch))
    }

    /// Waits until `deadline` for the next batch.
    pub fn recv_deadline(&self, deadline: Instant) -> Result<T, RecvTimeoutError> {
        self.rx
            .recv_deadline(deadline)
            .map(|batch| self.taken(batch))
    }

    /// The next batch if one is queued.
    pub fn try_recv(&self) -> Result<T, TryRecvError> {
        self.rx.try_recv().map(|batch| self.taken(batch))
    }

    /// Packets queued and not yet received.
    pub fn packets(&self) -> usize {
        self.queued.load(Ordering::Relaxed)
    }

    fn taken(&self, batch: T) -> T {
        self.queued.fetch_sub(batch.packets(), Ordering::AcqRel);
        batch
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    impl Batch for Vec<u8> {
        fn packets(&self) -> usize {
            self.len()
        }
    }

    #[test]
    fn bounded_in_packets_not_batches() {
        let (tx, rx) = handoff::<Vec<u8>>(4);
        tx.send(vec![1, 2, 3]).unwrap();
        let refused = tx.send(vec![4, 5]).unwrap_err();
        assert_eq!(
            (refused.batch, refused.cause),
            (vec![4, 5], DropCause::Overload)
        );
        tx.send(vec![4]).unwrap();
        assert_eq!(rx.packets(), 4);
        assert_eq!(rx.try_recv().unwrap(), vec![1, 2, 3]);
        assert_eq!(tx.packets(), 1);
        tx.send(vec![5, 6, 7]).unwrap();
        assert_eq!(rx.packets(), 4);
    }

    #[test]
    fn an_empty_channel_takes_any_batch() {
        let (tx, rx) = handoff::<Vec<u8>>(2);
        tx.send(vec![0; 5]).unwrap();
        assert!(tx.send(vec![1]).is_err());
        assert_eq!(rx.recv().unwrap().len(), 5);
        assert_eq!(rx.packets(), 0);
    }

    #[test]
    fn refuses_as_shutdown_once_the_receiver_is_gone() {
        let (tx, rx) = handoff::<Vec<u8>>(8);
        drop(rx);
        let refused = tx.send(vec![1]).unwrap_err();
        assert_eq!(refused.cause, DropCause::Shutdown);
        assert_eq!(tx.packets(), 0);
    }
}
