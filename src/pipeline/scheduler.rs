//! The drivers of the node's [`MixCore`]: the only places the mixing logic
//! meets a clock. Everything they decide is the core's, and the core is
//! tested in virtual time.
//!
//! The core sits behind one lock, driven from two sides (as quinn drives a
//! connection's state machine from several tasks):
//!
//! - a [`Feeder`] — each crypto worker, each cover-traffic injector —
//!   hands the core its inputs at `now` and at once passes on whatever the
//!   core releases then: with zero delays a packet leaves from the worker
//!   that unwrapped it, with no thread hop, exactly as before the core;
//! - the scheduler thread ([`run`]) sleeps until the core's next timeout,
//!   releases what is due, and on shutdown drains the core within the
//!   grace period. A feeder wakes it only when the core's next timeout
//!   moved earlier than the thread planned to wake, so it is not woken per
//!   packet or per batch.
//!
//! Released groups go to egress, loop returns to the loop sink (outside
//! the lock: the sink takes cover traffic's own lock), and the core's
//! counts into the counters of whichever thread drove it.

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use super::drop_cause::DropCause;
use super::handoff::HandoffSender;
use super::pool::PacketBuf;
use super::stats::StageCounters;
use crate::mixing::{CoreCounts, Event, Input, MixCore, Transmit};
use crate::sphinx::LoopId;

/// Receives the ids of this node's cover loops that came back, with when.
pub type LoopSink = Box<dyn Fn(LoopId, Instant) + Send>;

/// What the scheduler publishes about its pool for `/metrics` (read from
/// other threads).
#[derive(Debug, Default)]
pub struct MixingGauges {
    held: AtomicUsize,
    /// `f64::to_bits` of the pool's entropy.
    entropy_bits: AtomicU64,
}

impl MixingGauges {
    /// Packets held for their mixing delay.
    pub fn held(&self) -> usize {
        self.held.load(Ordering::Relaxed)
    }

    /// The entropy, in bits, of a departure from the pool now (see
    /// [`PoolEntropy`](crate::mixing::PoolEntropy)).
    pub fn entropy_bits(&self) -> f64 {
        f64::from_bits(self.entropy_bits.load(Ordering::Relaxed))
    }

    fn publish<P>(&self, core: &MixCore<P>) {
        self.held.store(core.held(), Ordering::Relaxed);
        self.entropy_bits
            .store(core.entropy().bits().to_bits(), Ordering::Relaxed);
    }
}

/// The core and what its drivers share.
pub struct SharedCore {
    state: Mutex<State>,
    /// Wakes the scheduler thread: an earlier timeout, or no feeders left.
    wake: Condvar,
    loops: Mutex<Option<LoopSink>>,
    gauges: Arc<MixingGauges>,
}

struct State {
    core: MixCore<PacketBuf>,
    /// Live [`Feeder`]s; the scheduler drains and stops at zero.
    feeders: usize,
    /// When the scheduler thread will wake by itself (`None`: only when
    /// notified).
    timer_at: Option<Instant>,
    /// Where released groups go; dropped once the core is drained, which
    /// tells egress to finish.
    output: Option<HandoffSender<Transmit<PacketBuf>>>,
}

impl SharedCore {
    /// A core whose releases go to `output`, with one [`Feeder`] for it.
    pub fn new(
        core: MixCore<PacketBuf>,
        output: HandoffSender<Transmit<PacketBuf>>,
        gauges: Arc<MixingGauges>,
    ) -> (Arc<Self>, Feeder) {
        let shared = Arc::new(SharedCore {
            state: Mutex::new(State {
                core,
                feeders: 1,
                timer_at: None,
                output: Some(output),
            }),
            wake: Condvar::new(),
            loops: Mutex::new(None),
            gauges,
        });
        let feeder = Feeder {
            shared: Arc::clone(&shared),
        };
        (shared, feeder)
    }

    /// Where loop returns go from now on.
    pub fn set_loop_sink(&self, sink: LoopSink) {
        *self.loops.lock().unwrap_or_else(|e| e.into_inner()) = Some(sink);
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // Every critical section leaves the core consistent (it never
        // panics mid-update), so a poisoned lock is still safe to use.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Passes on everything the core has at `now`: groups to egress (under
    /// the lock, so egress sees them in the core's order), counts to
    /// `counters`; loop returns are collected for the caller to deliver
    /// once the lock is released.
    fn release(
        &self,
        state: &mut State,
        now: Instant,
        counters: &StageCounters,
        returns: &mut Vec<(LoopId, Instant)>,
    ) {
        let core = &mut state.core;
        while let Some(transmit) = core.poll_transmit(now) {
            let sent = match &state.output {
                Some(output) => output.send(transmit).map_err(|e| (e.cause, e.batch)),
                None => Err((DropCause::Shutdown, transmit)),
            };
            if let Err((cause, transmit)) = sent {
                counters.drops_add(cause, transmit.packets.len() as u64);
            }
        }
        while let Some(event) = core.poll_event() {
            match event {
                Event::LoopReturned { loop_id, at } => returns.push((loop_id, at)),
            }
        }
        fold(counters, core.take_counts());
        self.gauges.publish(core);
    }

    fn deliver(&self, returns: &mut Vec<(LoopId, Instant)>) {
        if returns.is_empty() {
            return;
        }
        let sink = self.loops.lock().unwrap_or_else(|e| e.into_inner());
        for (loop_id, at) in returns.drain(..) {
            if let Some(sink) = sink.as_ref() {
                sink(loop_id, at);
            }
        }
    }
}

/// Feeds the core from a worker or an injector; cheap to clone. The
/// scheduler shuts the core down once every feeder has been dropped.
pub struct Feeder {
    shared: Arc<SharedCore>,
}

impl Clone for Feeder {
    fn clone(&self) -> Self {
        self.shared.lock().feeders += 1;
        Feeder {
            shared: Arc::clone(&self.shared),
        }
    }
}

impl Drop for Feeder {
    fn drop(&mut self) {
        let mut state = self.shared.lock();
        state.feeders -= 1;
        if state.feeders == 0 {
            self.shared.wake.notify_all();
        }
    }
}

impl Feeder {
    /// Hands `inputs` (drained) to the core at `now`, records the mixing
    /// delay each forwarded packet was given, and passes on whatever the
    /// core releases now. Returns how many of them the core took into its
    /// pool.
    pub fn feed(
        &self,
        now: Instant,
        inputs: &mut Vec<Input<PacketBuf>>,
        counters: &StageCounters,
    ) -> usize {
        let mut returns = Vec::new();
        let mut held = 0;
        {
            let mut state = self.shared.lock();
            for input in inputs.drain(..) {
                let forwarded = matches!(input, Input::Unwrapped { .. });
                if let Some(delay) = state.core.handle(now, input) {
                    held += 1;
                    if forwarded {
                        counters.mixing_delay.record(delay);
                    }
                }
            }
            self.shared.release(&mut state, now, counters, &mut returns);
            // The scheduler thread sleeps until `timer_at`; wake it only if
            // the core now wants it earlier.
            if let Some(next) = state.core.poll_timeout()
                && state.timer_at.is_none_or(|at| next < at)
            {
                state.timer_at = Some(next);
                self.shared.wake.notify_one();
            }
        }
        self.shared.deliver(&mut returns);
        held
    }
}

/// The scheduler thread: releases what is due until every [`Feeder`] has
/// gone, then sends what is due within `grace` and drops the rest.
pub fn run(shared: &SharedCore, counters: &StageCounters, grace: Duration) {
    let mut returns = Vec::new();
    let mut state = shared.lock();
    while state.feeders > 0 {
        let now = Instant::now();
        shared.release(&mut state, now, counters, &mut returns);
        state = deliver_unlocked(shared, state, &mut returns);
        state = sleep(shared, state, now);
    }

    let now = Instant::now();
    state.core.begin_shutdown(now, grace);
    loop {
        let now = Instant::now();
        shared.release(&mut state, now, counters, &mut returns);
        state = deliver_unlocked(shared, state, &mut returns);
        if state.core.is_drained() {
            break;
        }
        state = sleep(shared, state, now);
    }
    state.output = None;
}

/// Delivers loop returns with the lock released, and takes it back.
fn deliver_unlocked<'a>(
    shared: &'a SharedCore,
    state: MutexGuard<'a, State>,
    returns: &mut Vec<(LoopId, Instant)>,
) -> MutexGuard<'a, State> {
    if returns.is_empty() {
        return state;
    }
    drop(state);
    shared.deliver(returns);
    shared.lock()
}

/// Waits, lock released, until the core's next timeout or a notification
/// (an earlier timeout, the last feeder gone). No timeout: waits for one.
fn sleep<'a>(
    shared: &'a SharedCore,
    mut state: MutexGuard<'a, State>,
    now: Instant,
) -> MutexGuard<'a, State> {
    let next = state.core.poll_timeout();
    state.timer_at = next;
    let state = match next {
        Some(at) => {
            let wait = at.saturating_duration_since(now);
            shared
                .wake
                .wait_timeout(state, wait)
                .map(|(state, _)| state)
                .unwrap_or_else(|e| e.into_inner().0)
        }
        None if state.feeders == 0 => state,
        None => shared.wake.wait(state).unwrap_or_else(|e| e.into_inner()),
    };
    let mut state = state;
    state.timer_at = None;
    state
}

/// Adds what the core counted to a driver's counters.
fn fold(counters: &StageCounters, counts: CoreCounts) {
    for cause in DropCause::ALL {
        let n = counts.dropped(cause);
        if n > 0 {
            counters.drops_add(cause, n);
        }
    }
    counters
        .loops_returned
        .fetch_add(counts.loops_returned, Ordering::Relaxed);
    counters
        .cover_dropped
        .fetch_add(counts.cover_consumed, Ordering::Relaxed);
}
