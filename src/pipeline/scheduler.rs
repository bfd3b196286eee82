//! The scheduler thread: the driver of the node's [`MixCore`]. It is the
//! only place the mixing logic meets a clock: it feeds the core what the
//! workers (and cover traffic) hand over, sleeps until the core's next
//! timeout or the next input, and passes what the core releases on — send
//! groups to egress, loop returns to the loop sink, counts to the
//! counters. Everything it decides is the core's, and the core is tested
//! in virtual time.

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crossbeam_channel::RecvTimeoutError;

use super::drop_cause::DropCause;
use super::handoff::{HandoffReceiver, HandoffSender};
use super::pool::PacketBuf;
use super::stats::StageCounters;
use crate::mixing::{CoreCounts, Event, Input, MixCore, Transmit};
use crate::sphinx::LoopId;

/// Receives the ids of this node's cover loops that came back, with when.
pub type LoopSink = Box<dyn Fn(LoopId, Instant) + Send>;

/// Batches the scheduler takes in one wake-up before it releases what is
/// due (bounds the time between two releases under a flood of inputs).
const MAX_BATCHES_PER_WAKE: usize = 64;

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

/// Where loop returns go; set once cover traffic is running.
pub type LoopSlot = Mutex<Option<LoopSink>>;

/// The scheduler's connections.
pub struct SchedulerIo<'a> {
    /// Its counters (the scheduler shard).
    pub counters: &'a StageCounters,
    /// Batches from the workers and injectors.
    pub input: HandoffReceiver<Vec<Input<PacketBuf>>>,
    /// Groups for egress.
    pub output: HandoffSender<Transmit<PacketBuf>>,
    /// Where loop returns go.
    pub loops: Arc<LoopSlot>,
    /// Pool size and entropy, for metrics.
    pub gauges: Arc<MixingGauges>,
    /// On shutdown, packets due within this are still sent.
    pub grace: Duration,
}

/// Runs until every worker and injector has gone (the input disconnects),
/// then sends what is due within the grace period and drops the rest.
pub fn run(mut core: MixCore<PacketBuf>, io: SchedulerIo<'_>) {
    loop {
        let received = match core.poll_timeout() {
            Some(at) => io.input.recv_deadline(at),
            None => io.input.recv().map_err(|_| RecvTimeoutError::Disconnected),
        };
        let now = Instant::now();
        match received {
            Ok(batch) => {
                feed(&mut core, &io, now, batch);
                // Whatever else is already queued joins this wake-up, so
                // the core groups it with the rest.
                for _ in 1..MAX_BATCHES_PER_WAKE {
                    match io.input.try_recv() {
                        Ok(batch) => feed(&mut core, &io, now, batch),
                        Err(_) => break,
                    }
                }
            }
            Err(RecvTimeoutError::Timeout) => {}
            Err(RecvTimeoutError::Disconnected) => break,
        }
        release(&mut core, &io, now);
    }

    core.begin_shutdown(Instant::now(), io.grace);
    loop {
        release(&mut core, &io, Instant::now());
        if core.is_drained() {
            break;
        }
        match core.poll_timeout() {
            Some(at) => std::thread::sleep(at.saturating_duration_since(Instant::now())),
            None => break,
        }
    }
    io.gauges.publish(&core);
}

/// Hands one batch to the core, recording the mixing delay each forwarded
/// packet was given.
fn feed(
    core: &mut MixCore<PacketBuf>,
    io: &SchedulerIo<'_>,
    now: Instant,
    batch: Vec<Input<PacketBuf>>,
) {
    for input in batch {
        let forwarded = matches!(input, Input::Unwrapped { .. });
        core.handle(now, input);
        if forwarded && let Some(delay) = core.last_delay() {
            io.counters.mixing_delay.record(delay);
        }
    }
}

/// Passes on everything the core has for the driver at `now`.
fn release(core: &mut MixCore<PacketBuf>, io: &SchedulerIo<'_>, now: Instant) {
    while let Some(transmit) = core.poll_transmit(now) {
        if let Err(refused) = io.output.send(transmit) {
            io.counters
                .drops_add(refused.cause, refused.batch.packets.len() as u64);
        }
    }
    while let Some(event) = core.poll_event() {
        match event {
            Event::LoopReturned { loop_id, at } => {
                // A poisoned lock means a sink panicked once; the slot
                // itself is still usable.
                let sink = io.loops.lock().unwrap_or_else(|e| e.into_inner());
                if let Some(sink) = sink.as_ref() {
                    sink(loop_id, at);
                }
            }
        }
    }
    fold(io.counters, core.take_counts());
    io.gauges.publish(core);
}

/// Adds what the core counted to the scheduler's counters.
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
