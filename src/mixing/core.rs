//! The mixing core: what a node does with a packet between unwrap and the
//! wire, as a deterministic state machine (the quinn-proto pattern).
//!
//! It is fed the current time and [`Input`]s — packets unwrapped with
//! their fate decided, and the node's own cover packets — and polled for
//! [`Transmit`]s (packets whose mixing delay has ended, grouped by next
//! hop), [`Event`]s (loop returns) and its next timeout. It reads no clock
//! and touches no socket: the node's scheduler thread drives it with
//! `Instant::now()`, the tests and `betanet sim` with virtual time, and all
//! run the same code.

use std::collections::{HashMap, VecDeque};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::delay::DelayPolicy;
use super::delay_queue::DelayQueue;
use super::entropy::PoolEntropy;
use crate::pipeline::{Decision, DropCause, Target};
use crate::sphinx::{LoopId, NodeId, ReplayTag};

/// Groups whose (empty) buffers are kept between releases before they are
/// forgotten.
const MAX_REMEMBERED_KEYS: usize = 1024;

/// Sizes of a [`MixCore`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CoreConfig {
    /// Most packets held at once; more are dropped as `overload`.
    pub capacity: usize,
    /// Most packets in one [`Transmit`] (one GSO send, one TCP write).
    pub max_group: usize,
}

impl Default for CoreConfig {
    fn default() -> Self {
        CoreConfig {
            capacity: 10_000,
            max_group: 256,
        }
    }
}

/// What the core is fed.
#[derive(Debug)]
pub enum Input<P> {
    /// A packet the crypto workers unwrapped, with its fate decided
    /// ([`crate::pipeline::RoutingPolicy::decide`]) and its replay tag
    /// (verifiable delays are derived from it); `random` is 64 fresh bits
    /// for the delay policy.
    Unwrapped {
        /// What to do with it.
        decision: Decision,
        /// Its replay tag.
        tag: ReplayTag,
        /// Fresh random bits for the delay.
        random: u64,
        /// The packet.
        packet: P,
    },
    /// A packet this node built itself (cover), held for `delay` and then
    /// sent to `target` exactly like a forwarded one.
    Own {
        /// Where it goes.
        target: Target,
        /// How long it is held.
        delay: Duration,
        /// The packet.
        packet: P,
    },
}

/// A packet in the pool, or on its way out.
#[derive(Debug)]
pub struct Held<P> {
    /// Where it goes.
    pub target: Target,
    /// The packet.
    pub packet: P,
}

/// What packets of one [`Transmit`] share: one next hop, or one
/// destination and message length (so DELIVER messages can leave in one
/// GSO send as equal-sized datagrams).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum EgressKey {
    /// Frames for the next mix.
    Hop {
        /// The next node's id.
        next: NodeId,
        /// Its address.
        addr: SocketAddr,
    },
    /// Messages for a destination (exit nodes).
    Deliver {
        /// The destination.
        destination: SocketAddr,
        /// The length of every message in the group.
        len: usize,
    },
}

impl EgressKey {
    /// The group a target belongs to.
    pub fn of(target: &Target) -> Self {
        match *target {
            Target::Hop { next, addr } => EgressKey::Hop { next, addr },
            Target::Deliver {
                destination, len, ..
            } => EgressKey::Deliver { destination, len },
        }
    }
}

/// Packets whose mixing delay has ended, for one [`EgressKey`].
#[derive(Debug)]
pub struct Transmit<P> {
    /// Where they all go.
    pub key: EgressKey,
    /// The packets, in release order (at most [`CoreConfig::max_group`]).
    pub packets: Vec<Held<P>>,
}

/// Something the driver acts on besides sending.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Event {
    /// One of this node's cover loops came back at `at`.
    LoopReturned {
        /// The loop's id.
        loop_id: LoopId,
        /// When it arrived.
        at: Instant,
    },
}

/// What the core has counted since the last [`MixCore::take_counts`].
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct CoreCounts {
    /// Packets dropped, by [`DropCause::index`].
    pub dropped: [u64; DropCause::COUNT],
    /// Packets taken into the pool.
    pub admitted: u64,
    /// Packets released to egress.
    pub released: u64,
    /// Loop returns handed out as [`Event`]s.
    pub loops_returned: u64,
    /// Drop cover that reached its end.
    pub cover_consumed: u64,
}

impl CoreCounts {
    /// Packets dropped for `cause`.
    pub fn dropped(&self, cause: DropCause) -> u64 {
        self.dropped[cause.index()]
    }

    fn drop(&mut self, cause: DropCause) {
        self.dropped[cause.index()] += 1;
    }
}

/// Time spent holding packets, for Little's law: the mean number held is
/// `packet_seconds / elapsed`, and it should equal the arrival rate times
/// the mean delay.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Occupancy {
    /// ∫ held(t) dt since the core was made, in packet-seconds.
    pub packet_seconds: f64,
    /// Packets taken into the pool.
    pub arrivals: u64,
    /// Packets released from it.
    pub departures: u64,
    /// Time since the core was first fed.
    pub elapsed: Duration,
}

impl Occupancy {
    /// The time-averaged number of packets held.
    pub fn mean_held(&self) -> f64 {
        let secs = self.elapsed.as_secs_f64();
        if secs > 0.0 {
            self.packet_seconds / secs
        } else {
            0.0
        }
    }
}

/// The mixing core of one node (see the module docs).
pub struct MixCore<P> {
    pool: DelayQueue<Held<P>>,
    delay: Arc<dyn DelayPolicy>,
    max_group: usize,
    /// Released packets not yet handed out, by group, and the groups in
    /// the order their first packet was released.
    released: HashMap<EgressKey, Vec<Held<P>>>,
    ready: VecDeque<EgressKey>,
    events: VecDeque<Event>,
    counts: CoreCounts,
    entropy: PoolEntropy,
    /// When the pool was last measured, and ∫ held dt up to then.
    first_seen: Option<Instant>,
    last_seen: Option<Instant>,
    packet_seconds: f64,
    arrivals: u64,
    departures: u64,
    /// Set by [`begin_shutdown`](Self::begin_shutdown).
    closing: bool,
}

impl<P> MixCore<P> {
    /// An empty core choosing delays with `delay`.
    pub fn new(config: CoreConfig, delay: Arc<dyn DelayPolicy>) -> Self {
        MixCore {
            pool: DelayQueue::new(config.capacity.max(1)),
            delay,
            max_group: config.max_group.max(1),
            released: HashMap::new(),
            ready: VecDeque::new(),
            events: VecDeque::new(),
            counts: CoreCounts::default(),
            entropy: PoolEntropy::new(),
            first_seen: None,
            last_seen: None,
            packet_seconds: 0.0,
            arrivals: 0,
            departures: 0,
            closing: false,
        }
    }

    /// Takes one input at `now`. Never fails: a packet the core refuses is
    /// dropped and counted (see [`take_counts`](Self::take_counts)).
    ///
    /// Returns the mixing delay the packet was given if it was taken into
    /// the pool; `None` otherwise (a loop return, a drop, a full pool).
    /// Drivers feed their delay histograms from it.
    pub fn handle(&mut self, now: Instant, input: Input<P>) -> Option<Duration> {
        self.advance(now);
        match input {
            Input::Unwrapped {
                decision,
                tag,
                random,
                packet,
            } => match decision {
                Decision::Send(target) => {
                    let delay = self.delay.delay(&tag, random);
                    self.hold(now, target, delay, packet)
                }
                Decision::LoopReturned { loop_id } => {
                    // Anyone can address a Loop command to this node, so
                    // the queue of returns is bounded like the pool.
                    if self.events.len() >= self.pool_capacity() {
                        self.counts.drop(DropCause::Overload);
                    } else {
                        self.counts.loops_returned += 1;
                        self.events
                            .push_back(Event::LoopReturned { loop_id, at: now });
                    }
                    None
                }
                Decision::CoverConsumed => {
                    self.counts.cover_consumed += 1;
                    None
                }
                Decision::Drop(cause) => {
                    self.counts.drop(cause);
                    None
                }
            },
            Input::Own {
                target,
                delay,
                packet,
            } => self.hold(now, target, delay, packet),
        }
    }

    /// Puts a packet into the pool; its delay if it was taken.
    fn hold(
        &mut self,
        now: Instant,
        target: Target,
        delay: Duration,
        packet: P,
    ) -> Option<Duration> {
        if self.closing {
            self.counts.drop(DropCause::Shutdown);
            return None;
        }
        let release_at = now.checked_add(delay).unwrap_or(now);
        match self.pool.push(release_at, Held { target, packet }) {
            Ok(()) => {
                self.counts.admitted += 1;
                self.arrivals += 1;
                self.entropy.arrive();
                Some(delay)
            }
            Err(_) => {
                self.counts.drop(DropCause::Overload);
                None
            }
        }
    }

    fn pool_capacity(&self) -> usize {
        self.pool.capacity()
    }

    /// Adds the time since the last call to ∫ held dt.
    fn advance(&mut self, now: Instant) {
        let first = *self.first_seen.get_or_insert(now);
        let last = self.last_seen.unwrap_or(first);
        if now > last {
            self.packet_seconds += self.pool.len() as f64 * (now - last).as_secs_f64();
            self.last_seen = Some(now);
        } else if self.last_seen.is_none() {
            self.last_seen = Some(now);
        }
    }

    /// When the next held packet is due: the driver sleeps until then (or
    /// until the next input). `None` while nothing is held or waiting.
    pub fn poll_timeout(&self) -> Option<Instant> {
        if self.ready.is_empty() {
            self.pool.next_release()
        } else {
            // Released packets are waiting to be polled: now.
            self.last_seen
        }
    }

    /// Releases every packet due at `now` and hands out the next group of
    /// them bound for one [`EgressKey`]. Call until it returns `None`.
    ///
    /// Groups keep the release order of their first packet; packets of
    /// one group keep release order among themselves.
    pub fn poll_transmit(&mut self, now: Instant) -> Option<Transmit<P>> {
        self.advance(now);
        while let Some(held) = self.pool.pop_due(now) {
            self.departures += 1;
            self.counts.released += 1;
            self.entropy.depart();
            let key = EgressKey::of(&held.target);
            let group = self.released.entry(key).or_default();
            if group.is_empty() {
                self.ready.push_back(key);
            }
            group.push(held);
        }
        let key = self.ready.pop_front()?;
        let group = self.released.get_mut(&key)?;
        let packets = if group.len() > self.max_group {
            // The rest leave in a later group, after the others' turn.
            let rest = group.split_off(self.max_group);
            self.ready.push_back(key);
            std::mem::replace(group, rest)
        } else {
            std::mem::take(group)
        };
        if self.ready.is_empty() && self.released.len() > MAX_REMEMBERED_KEYS {
            // Bounded memory when packets go to many destinations.
            self.released.clear();
        }
        Some(Transmit { key, packets })
    }

    /// The next event (loop returns), if any.
    pub fn poll_event(&mut self) -> Option<Event> {
        self.events.pop_front()
    }

    /// Starts an orderly stop at `now`: packets due within `grace` will
    /// still be released by [`poll_transmit`](Self::poll_transmit); the
    /// rest are dropped as `shutdown`, and so is anything fed from now on.
    pub fn begin_shutdown(&mut self, now: Instant, grace: Duration) {
        self.advance(now);
        self.closing = true;
        let deadline = now.checked_add(grace).unwrap_or(now);
        let kept: Vec<_> = self.pool.drain().collect();
        for (release_at, held) in kept {
            if release_at > deadline {
                self.counts.drop(DropCause::Shutdown);
                self.entropy.depart();
                self.departures += 1;
            } else if self.pool.push(release_at, held).is_err() {
                // Cannot happen: the pool was just emptied of at least as many.
                self.counts.drop(DropCause::Shutdown);
            }
        }
    }

    /// True once shutdown began and nothing is left to release.
    pub fn is_drained(&self) -> bool {
        self.closing && self.pool.is_empty() && self.ready.is_empty()
    }

    /// Packets held (waiting for their delay to end).
    pub fn held(&self) -> usize {
        self.pool.len()
    }

    /// The pool's mixing entropy: what a departure now would hide.
    pub fn entropy(&self) -> &PoolEntropy {
        &self.entropy
    }

    /// Time spent holding packets up to `now` (Little's law).
    pub fn occupancy(&self, now: Instant) -> Occupancy {
        let mut packet_seconds = self.packet_seconds;
        if let Some(last) = self.last_seen
            && now > last
        {
            packet_seconds += self.pool.len() as f64 * (now - last).as_secs_f64();
        }
        Occupancy {
            packet_seconds,
            arrivals: self.arrivals,
            departures: self.departures,
            elapsed: self
                .first_seen
                .map_or(Duration::ZERO, |first| now.saturating_duration_since(first)),
        }
    }

    /// What the core counted since the last call, and resets the counts.
    pub fn take_counts(&mut self) -> CoreCounts {
        std::mem::take(&mut self.counts)
    }
}

#[cfg(test)]
mod tests;
