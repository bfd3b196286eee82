//! A crypto worker: takes a batch of frames (up to `batch_size`; fewer when
//! the queue is short, see [`take_limit`]), drops those that waited past
//! the dwell bound, unwraps the rest with one `unwrap_batch`, decides each
//! packet's fate and feeds the batch's survivors to the mixing core in one
//! go (see [`Feeder`]). The mixing delay is the core's to choose.

use std::sync::Arc;
use std::time::Instant;

use crossbeam_channel::Receiver;
use rand::Rng;

use super::drop_cause::DropCause;
use super::dwell::SharedDwell;
use super::keys::{KeyRing, LiveKeys};
use super::packet::Packet;
use super::pool::PacketBuf;
use super::route::{Decision, NextHops, RoutingPolicy};
use super::scheduler::Feeder;
use super::stats::StageCounters;
use crate::mixing::Input;
use crate::replay::Check;
use crate::sphinx::{DropReason, ReplayTag};

/// The replay filter as the workers share it.
pub trait SharedReplay: Send + Sync {
    /// Looks `tag` up and records it if new: [`Check::Fresh`] (pass),
    /// [`Check::Seen`] (a replay, or a false positive of the filter) or
    /// [`Check::Full`] (not recorded: the filter is at its budget).
    fn check(&self, tag: &ReplayTag) -> Check;
}

/// The Sphinx engine's replay callback over a [`SharedReplay`]: drops both
/// `Seen` and `Full`, and counts the `Full` ones so the worker can label
/// them `replay_capacity` rather than `replay` (the engine only reports
/// "replay").
struct CountingReplay<'a> {
    replay: &'a dyn SharedReplay,
    full: usize,
}

impl CountingReplay<'_> {
    fn check(&mut self, tag: &ReplayTag) -> bool {
        match self.replay.check(tag) {
            Check::Fresh => false,
            Check::Seen => true,
            Check::Full => {
                self.full += 1;
                true
            }
        }
    }
}

/// Everything a worker needs; cloned into each worker thread.
#[derive(Clone)]
pub struct WorkerContext {
    /// The accepted Sphinx keys, each with its replay cache.
    pub keys: Arc<LiveKeys>,
    /// Role and exit rules.
    pub policy: Arc<RoutingPolicy>,
    /// Next-hop table (the topology, reloadable).
    pub hops: Arc<dyn NextHops>,
    /// Frames per `unwrap_batch`.
    pub batch_size: usize,
    /// The dwell bound, fed each batch's cost.
    pub dwell: Arc<SharedDwell>,
}

/// Runs until the ingress channel closes and is drained.
pub fn run(
    ctx: WorkerContext,
    counters: &StageCounters,
    ingress: Receiver<Packet>,
    feeder: Feeder,
) {
    let mut rng = rand::rng();
    let mut batch: Vec<Packet> = Vec::with_capacity(ctx.batch_size);
    let mut decisions: Vec<(Decision, ReplayTag)> = Vec::with_capacity(ctx.batch_size);
    let mut inputs: Vec<Input<PacketBuf>> = Vec::with_capacity(ctx.batch_size);

    while let Ok(first) = ingress.recv() {
        batch.push(first);
        let take = take_limit(ingress.len() + 1, ctx.batch_size);
        while batch.len() < take {
            match ingress.try_recv() {
                Ok(packet) => batch.push(packet),
                Err(_) => break,
            }
        }

        // Too late is dropped before any cryptography: the work would be
        // wasted on a packet the node promised not to hold this long, and
        // would make everything behind it later still.
        let started = Instant::now();
        batch.retain(|packet| {
            let fresh = ctx.dwell.is_fresh(packet.received_at, started);
            if fresh {
                counters
                    .dwell
                    .record(started.saturating_duration_since(packet.received_at));
            } else {
                counters.drop(DropCause::Dwell);
            }
            fresh
        });
        if batch.is_empty() {
            continue;
        }

        decisions.clear();
        unwrap_and_decide(&ctx, &ctx.keys.load(), &mut batch, counters, &mut decisions);

        let now = Instant::now();
        let unwrapped = batch.len();
        for (packet, (decision, tag)) in batch.drain(..).zip(decisions.drain(..)) {
            match triage(decision) {
                Triage::Schedule => {
                    if matches!(decision, Decision::Send(_)) {
                        counters
                            .processing_time
                            .record(now.saturating_duration_since(packet.received_at));
                    }
                    inputs.push(Input::Unwrapped {
                        decision,
                        tag,
                        random: rng.next_u64(),
                        packet: packet.buf,
                    });
                }
                Triage::CoverConsumed => StageCounters::inc(&counters.cover_dropped),
                Triage::Drop(cause) => counters.drop(cause),
            }
        }
        if !inputs.is_empty() {
            feeder.feed(now, &mut inputs, counters);
        }
        ctx.dwell
            .record_batch(unwrapped, Instant::now().saturating_duration_since(started));
    }
}

/// Unwraps `batch` under the current key (one `unwrap_batch`), retries the
/// MAC failures under the other accepted keys, and decides each packet's
/// fate while the results still borrow the buffers.
fn unwrap_and_decide(
    ctx: &WorkerContext,
    ring: &KeyRing,
    batch: &mut [Packet],
    counters: &StageCounters,
    decisions: &mut Vec<(Decision, ReplayTag)>,
) {
    // How many of the engine's `Replay` drops were really refusals of a
    // full filter. Which of the dropped packets gets which label does not
    // matter: they are all dropped, and only the counts are reported.
    let full = std::cell::Cell::new(0usize);
    let decide = |result: Result<crate::sphinx::Unwrapped<'_>, DropReason>| match result {
        Ok(unwrapped) => {
            StageCounters::inc(&counters.processed);
            let decision = ctx.policy.decide(&unwrapped, &*ctx.hops);
            if decision.is_reply() {
                StageCounters::inc(&counters.replies);
            }
            (decision, *unwrapped.replay_tag())
        }
        Err(DropReason::Replay) if full.get() > 0 => {
            full.set(full.get() - 1);
            (
                Decision::Drop(DropCause::ReplayCapacity),
                ReplayTag([0; 32]),
            )
        }
        Err(reason) => (Decision::Drop(reason.into()), ReplayTag([0; 32])),
    };
    let current = ring.current();
    let mut counting = CountingReplay {
        replay: &*current.replay,
        full: 0,
    };
    let mut replay = |tag: &ReplayTag| counting.check(tag);
    let results = current.processor.unwrap_batch(batch, &mut replay);
    full.set(counting.full);
    let mut retry = Vec::new();
    for (i, result) in results.into_iter().enumerate() {
        if result.as_ref().err() == Some(&DropReason::Mac) && !ring.fallbacks().is_empty() {
            retry.push(i);
        }
        decisions.push(decide(result));
    }
    // Rare (only near a rotation, or junk): one frame at a time.
    for i in retry {
        for key in ring.fallbacks() {
            let mut counting = CountingReplay {
                replay: &*key.replay,
                full: 0,
            };
            let mut replay = |tag: &ReplayTag| counting.check(tag);
            let result = key.processor.unwrap(batch[i].as_mut(), &mut replay);
            if result.as_ref().err() != Some(&DropReason::Mac) {
                full.set(full.get() + counting.full);
                decisions[i] = decide(result);
                break;
            }
        }
    }
}

/// Fewest frames a worker takes at once when that many are queued. Below
/// this, `unwrap_batch`'s shared inversions stop paying: per packet, a batch
/// of 8 costs ~2% more than one of 64, a batch of 16 ~1% (native build).
const MIN_TAKE: usize = 8;

/// How many of the `queued` frames (the one in hand included) a worker
/// takes for its next `unwrap_batch`: half, so that a burst is shared with
/// another worker instead of queueing behind one (a frame waits for its
/// whole batch, ~36 µs a frame); at least [`MIN_TAKE`]; at most
/// `batch_size`. A deep queue thus gets full batches (best throughput) and
/// a short one small batches (low latency).
fn take_limit(queued: usize, batch_size: usize) -> usize {
    queued.div_ceil(2).max(MIN_TAKE).min(batch_size.max(1))
}

/// What a worker does with a decision.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Triage {
    /// Feed it to the mixing core: a packet to send after its delay, or a
    /// returned loop (the core reports those in order with the rest).
    Schedule,
    /// Drop cover reached its end: counted here.
    CoverConsumed,
    /// Dropped here: a packet that ends at the worker never takes the
    /// core's lock, so a flood of junk does not contend for it.
    Drop(DropCause),
}

fn triage(decision: Decision) -> Triage {
    match decision {
        Decision::Send(_) | Decision::LoopReturned { .. } => Triage::Schedule,
        Decision::CoverConsumed => Triage::CoverConsumed,
        Decision::Drop(cause) => Triage::Drop(cause),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn take_limit_shares_short_queues_and_fills_long_ones() {
        assert_eq!(
            take_limit(1, 128),
            MIN_TAKE,
            "a lone frame: take what comes"
        );
        assert_eq!(
            take_limit(40, 128),
            20,
            "a burst is split with another worker"
        );
        assert_eq!(take_limit(10_000, 128), 128, "a deep queue: full batches");
        assert_eq!(take_limit(40, 4), 4, "never more than batch_size");
        assert_eq!(take_limit(40, 0), 1, "always at least one");
    }

    #[test]
    fn only_packets_with_a_future_reach_the_scheduler() {
        let target = super::super::packet::Target::Hop {
            next: crate::sphinx::NodeId::from_bytes([1; 16]),
            addr: "127.0.0.1:1".parse().unwrap(),
        };
        let loop_id = crate::sphinx::LoopId([2; 16]);
        assert_eq!(triage(Decision::Send(target)), Triage::Schedule);
        assert_eq!(triage(Decision::LoopReturned { loop_id }), Triage::Schedule);
        assert_eq!(triage(Decision::CoverConsumed), Triage::CoverConsumed);
        assert_eq!(
            triage(Decision::Drop(DropCause::ExitPolicy)),
            Triage::Drop(DropCause::ExitPolicy)
        );
    }
}
