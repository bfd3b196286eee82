//! The mixing-delay scheduler thread: holds each packet until its release
//! time, then hands it to egress. On shutdown it sends what is due within
//! the grace period and drops (and counts) the rest.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, RecvTimeoutError, Sender, TrySendError};

use super::drop_cause::DropCause;
use super::packet::{Outbound, Output};
use super::stats::StageCounters;
use crate::mixing::DelayQueue;

/// A packet waiting for its release time.
#[derive(Debug)]
pub struct Scheduled {
    /// When it may leave.
    pub release_at: Instant,
    /// The packet.
    pub outbound: Outbound,
}

/// Runs until every worker has gone (the channel disconnects), then drains.
pub fn run(
    counters: &StageCounters,
    input: Receiver<Scheduled>,
    output: Sender<Output>,
    capacity: usize,
    depth: Arc<AtomicUsize>,
    grace: Duration,
) {
    let mut queue = DelayQueue::new(capacity);
    let emit = |outbound: Outbound| match output.try_send(Output::Send(outbound)) {
        Ok(()) => {}
        Err(TrySendError::Full(_)) => counters.drop(DropCause::Overload),
        Err(TrySendError::Disconnected(_)) => counters.drop(DropCause::Shutdown),
    };

    loop {
        let received = match queue.next_release() {
            Some(at) => input.recv_timeout(at.saturating_duration_since(Instant::now())),
            None => input.recv().map_err(|_| RecvTimeoutError::Disconnected),
        };
        match received {
            Ok(item) => {
                if let Err(item) = queue.push(item.release_at, item.outbound) {
                    drop(item);
                    counters.drop(DropCause::Overload);
                }
            }
            Err(RecvTimeoutError::Timeout) => {}
            Err(RecvTimeoutError::Disconnected) => break,
        }
        let now = Instant::now();
        while let Some(outbound) = queue.pop_due(now) {
            emit(outbound);
        }
        depth.store(queue.len(), Ordering::Relaxed);
    }

    // Shutdown: honour delays that end within the grace period.
    let deadline = Instant::now() + grace;
    for (release_at, outbound) in queue.drain() {
        if release_at > deadline {
            counters.drop(DropCause::Shutdown);
            continue;
        }
        let wait = release_at.saturating_duration_since(Instant::now());
        if !wait.is_zero() {
            std::thread::sleep(wait);
        }
        emit(outbound);
    }
    depth.store(0, Ordering::Relaxed);
}
