//! The simulated network: clients, nodes driven through their
//! [`MixCore`]s exactly as the node's scheduler thread drives its own, and
//! links, in virtual time.

use std::net::{Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant};

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use super::config::{MAX_LAYERS, SimConfig};
use super::events::EventQueue;
use super::observer::{Estimator, NodeLog, Origin};
use super::real_crypto::{Expect, RealCrypto, RealCryptoStats};
use super::report::{NodeStats, Tally};
use crate::mixing::{CoreConfig, ExponentialDelay, Input, MixCore};
use crate::pipeline::{Decision, Target};
use crate::sphinx::{FinalCommand, LoopId, MessageId, NodeId, ReplayTag};

/// Longest delay drawn, in mean delays: e^-50 of the mass is cut.
const DELAY_CAP_MEANS: u32 = 50;

/// `SimPacket::at` of a node loop still in its maker's pool.
const AT_ORIGIN: u8 = u8::MAX;

/// How often transcripts are pruned, in virtual nanoseconds.
const PRUNE_EVERY_NS: u64 = 1_000_000_000;

/// What a packet is, which the adversary cannot see.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    /// A client's real message.
    Real,
    /// A client's cover loop (back to the client).
    ClientLoop,
    /// A node's cover loop (back to the node).
    NodeLoop,
}

/// The simulated packet body the cores hold.
#[derive(Clone, Copy, Debug)]
struct SimPacket {
    /// Unique per run (real crypto keeps its frame by it).
    id: u64,
    kind: Kind,
    /// The client (or node, for node loops) that made it.
    owner: u32,
    born_ns: u64,
    route: [u32; MAX_LAYERS],
    hops: u8,
    /// Index in `route` of the node it is at or heading to
    /// ([`AT_ORIGIN`]: a node loop still in its maker's pool).
    at: u8,
    /// What its next arrival records.
    from: Origin,
    /// Its arrival's sequence number at the node holding it.
    arrival: u64,
}

#[derive(Debug)]
enum Event {
    RealMessage,
    ClientLoop,
    NodeLoop,
    /// On the wire into a node: it queues for a crypto worker.
    Arrive {
        node: u32,
        packet: SimPacket,
    },
    /// A worker finished unwrapping it: the core takes it.
    Unwrapped {
        node: u32,
        packet: SimPacket,
    },
    /// The node's core is due (valid only if it is the node's `wake`).
    Wake {
        node: u32,
    },
    Fail,
    Prune,
}

/// A time-weighted gauge: ∫ value dt and the maximum.
#[derive(Clone, Copy, Debug, Default)]
struct Gauge {
    value: u64,
    max: u64,
    since_ns: u64,
    integral: f64,
}

impl Gauge {
    fn set(&mut self, now: u64, value: u64) {
        self.integral += self.value as f64 * now.saturating_sub(self.since_ns) as f64;
        self.since_ns = now;
        self.value = value;
        self.max = self.max.max(value);
    }

    fn mean(&self, now: u64) -> f64 {
        let integral = self.integral + self.value as f64 * now.saturating_sub(self.since_ns) as f64;
        if now > 0 { integral / now as f64 } else { 0.0 }
    }
}

struct SimNode {
    core: MixCore<SimPacket>,
    /// When each crypto worker is next free.
    workers_free: Vec<u64>,
    crypto_queue: Gauge,
    held: Gauge,
    /// The one pending valid wake-up.
    wake: Option<u64>,
    failed: bool,
}

/// One simulation run (see the module docs of [`crate::sim`]).
pub(crate) struct Network<'a> {
    config: &'a SimConfig,
    rng: ChaCha8Rng,
    /// A separate stream for the choices of which messages to estimate,
    /// so the sample fraction does not change the traffic.
    sample_rng: ChaCha8Rng,
    events: EventQueue<Event>,
    base: Instant,
    nodes: Vec<SimNode>,
    /// Which nodes the adversary controls.
    compromised: Vec<bool>,
    logs: Vec<NodeLog>,
    estimator: Estimator,
    delay: ExponentialDelay,
    outbox: Vec<SimPacket>,
    end_ns: u64,
    warmup_ns: u64,
    /// Packets born after this are not expected back by the end.
    due_before_ns: u64,
    retention_ms: u32,
    entropy_fraction: f64,
    next_id: u64,
    crypto: Option<RealCrypto>,
    tally: Tally,
}

fn ns(seconds: f64) -> u64 {
    (seconds * 1e9).round() as u64
}

fn node_addr(node: u32) -> SocketAddr {
    let [_, b, c, d] = node.to_be_bytes();
    SocketAddr::from((Ipv4Addr::new(10, b, c, d), 1789))
}

/// A node's id: its index, padded with a constant so that no id is all
/// zeros (an unset id looks like that).
fn node_id(node: u32) -> NodeId {
    let mut bytes = [0xb7; 16];
    bytes[..4].copy_from_slice(&node.to_be_bytes());
    NodeId::from_bytes(bytes)
}

impl<'a> Network<'a> {
    /// Builds the network for `config` (which must be valid).
    pub(crate) fn new(config: &'a SimConfig) -> Self {
        let mut rng = ChaCha8Rng::seed_from_u64(config.seed);
        let sample_rng = ChaCha8Rng::seed_from_u64(config.seed ^ 0x5eed_5a3b_1e00_0000);
        let mean = Duration::from_secs_f64(config.mean_delay_ms / 1e3);
        let delay = ExponentialDelay::new(mean, mean * DELAY_CAP_MEANS);
        let nodes = config.nodes();
        let mut compromised = vec![false; nodes];
        let count = (config.compromised_fraction * nodes as f64).round() as usize;
        for n in choose(&mut rng, nodes, count) {
            compromised[n] = true;
        }
        let nodes: Vec<SimNode> = (0..nodes)
            .map(|_| SimNode {
                core: MixCore::new(
                    CoreConfig {
                        capacity: config.pool_capacity,
                        ..CoreConfig::default()
                    },
                    Arc::new(delay),
                ),
                workers_free: vec![0; config.workers],
                crypto_queue: Gauge::default(),
                held: Gauge::default(),
                wake: None,
                failed: false,
            })
            .collect();
        let hop_ms = config.link_latency_ms + config.link_jitter_ms + config.crypto_us / 1e3;
        // The estimator reaches back about 21 mean delays per node (its
        // 10⁻⁹ cut-off) plus the links: keep more than that.
        let retention_ms =
            config.layers as f64 * (25.0 * config.mean_delay_ms + 2.0 * hop_ms) + 2_000.0;
        let end_ns = ns(config.virtual_seconds);
        let due_before_ns = end_ns.saturating_sub(ns(retention_ms / 1e3).min(end_ns / 2));
        Network {
            config,
            rng,
            sample_rng,
            events: EventQueue::default(),
            base: Instant::now(),
            logs: (0..nodes.len()).map(|_| NodeLog::default()).collect(),
            nodes,
            compromised,
            estimator: Estimator::new(config.clients, MAX_LAYERS),
            delay,
            outbox: Vec::new(),
            end_ns,
            warmup_ns: ns(config.warmup()),
            due_before_ns,
            retention_ms: retention_ms.min(f64::from(u32::MAX)) as u32,
            entropy_fraction: config.entropy_fraction(),
            next_id: 0,
            crypto: config
                .real_crypto
                .then(|| RealCrypto::new(config.nodes(), config.seed)),
            tally: Tally::default(),
        }
    }

    /// Runs to the end of virtual time; returns what was counted and the
    /// per-node statistics.
    pub(crate) fn run(mut self) -> (Tally, Vec<NodeStats>, Option<RealCryptoStats>) {
        let c = self.config;
        if c.clients as f64 * c.client_rate > 0.0 {
            self.schedule_next(0, Event::RealMessage);
        }
        if c.clients as f64 * c.client_cover_rate > 0.0 {
            self.schedule_next(0, Event::ClientLoop);
        }
        if c.nodes() as f64 * c.node_loop_rate > 0.0 {
            self.schedule_next(0, Event::NodeLoop);
        }
        if c.fail_fraction > 0.0 {
            self.events.push(ns(c.fail_at_seconds), Event::Fail);
        }
        self.events.push(PRUNE_EVERY_NS, Event::Prune);
        while let Some((now, event)) = self.events.pop() {
            if now >= self.end_ns {
                break;
            }
            self.handle(now, event);
        }
        let stats = self.node_stats();
        let crypto = self.crypto.as_ref().map(RealCrypto::stats);
        (self.tally, stats, crypto)
    }

    fn handle(&mut self, now: u64, event: Event) {
        match event {
            Event::RealMessage => {
                self.client_send(now, Kind::Real);
                self.schedule_next(now, Event::RealMessage);
            }
            Event::ClientLoop => {
                self.client_send(now, Kind::ClientLoop);
                self.schedule_next(now, Event::ClientLoop);
            }
            Event::NodeLoop => {
                self.node_loop(now);
                self.schedule_next(now, Event::NodeLoop);
            }
            Event::Arrive { node, packet } => self.arrive(now, node, packet),
            Event::Unwrapped { node, packet } => self.unwrapped(now, node, packet),
            Event::Wake { node } => {
                let n = &mut self.nodes[node as usize];
                if n.wake == Some(now) && !n.failed {
                    n.wake = None;
                    self.release(now, node);
                }
            }
            Event::Fail => self.fail(now),
            Event::Prune => {
                let t_ms = (now / 1_000_000) as u32;
                let before = t_ms.saturating_sub(self.retention_ms);
                for log in &mut self.logs {
                    log.prune_before(before);
                }
                self.events.push(now + PRUNE_EVERY_NS, Event::Prune);
            }
        }
    }

    /// The next event of a superposed Poisson process (one per kind of
    /// traffic: the sum of independent Poisson senders is Poisson, with
    /// the sender uniform).
    fn schedule_next(&mut self, now: u64, event: Event) {
        let c = self.config;
        let rate = match event {
            Event::RealMessage => c.clients as f64 * c.client_rate,
            Event::ClientLoop => c.clients as f64 * c.client_cover_rate,
            Event::NodeLoop => c.nodes() as f64 * c.node_loop_rate,
            _ => return,
        };
        let gap = -unit_open(&mut self.rng).ln() / rate;
        self.events.push(now + ns(gap).max(1), event);
    }

    fn link(&mut self) -> u64 {
        let c = self.config;
        let jitter = c.link_jitter_ms * unit(&mut self.rng);
        ns((c.link_latency_ms + jitter) / 1e3)
    }

    fn client_send(&mut self, now: u64, kind: Kind) {
        let c = self.config;
        let owner = below(&mut self.rng, c.clients) as u32;
        let mut route = [0; MAX_LAYERS];
        for (layer, hop) in route.iter_mut().enumerate().take(c.layers) {
            *hop = (layer * c.nodes_per_layer + below(&mut self.rng, c.nodes_per_layer)) as u32;
        }
        self.next_id += 1;
        let packet = SimPacket {
            id: self.next_id,
            kind,
            owner,
            born_ns: now,
            route,
            hops: c.layers as u8,
            at: 0,
            from: Origin::Client(owner),
            arrival: 0,
        };
        match kind {
            Kind::Real => {
                self.tally.sent += 1;
                self.tally.sent_due += u64::from(now < self.due_before_ns);
            }
            _ => self.tally.loops_sent += u64::from(now < self.due_before_ns),
        }
        self.build(&packet, DELIVER);
        let at = now + self.link();
        self.events.push(
            at,
            Event::Arrive {
                node: route[0],
                packet,
            },
        );
    }

    /// With real crypto: the packet's Sphinx frame along its route.
    fn build(&mut self, packet: &SimPacket, last: FinalCommand) {
        if let Some(crypto) = &mut self.crypto {
            let route: Vec<(u32, NodeId)> = packet.route[..usize::from(packet.hops)]
                .iter()
                .map(|&n| (n, node_id(n)))
                .collect();
            crypto.build(packet.id, &route, last);
        }
    }

    fn forget(&mut self, packet: &SimPacket) {
        if let Some(crypto) = &mut self.crypto {
            crypto.forget(packet.id);
        }
    }

    /// A node's cover loop: through one node of each other layer, in
    /// order, and back to the node.
    fn node_loop(&mut self, now: u64) {
        let c = self.config;
        let node = below(&mut self.rng, c.nodes()) as u32;
        if self.nodes[node as usize].failed {
            return;
        }
        let layer = node as usize / c.nodes_per_layer;
        let mut route = [0; MAX_LAYERS];
        for k in 1..c.layers {
            let l = (layer + k) % c.layers;
            route[k - 1] = (l * c.nodes_per_layer + below(&mut self.rng, c.nodes_per_layer)) as u32;
        }
        route[c.layers - 1] = node;
        self.next_id += 1;
        let mut packet = SimPacket {
            id: self.next_id,
            kind: Kind::NodeLoop,
            owner: node,
            born_ns: now,
            route,
            hops: c.layers as u8,
            at: AT_ORIGIN,
            from: Origin::Own,
            arrival: 0,
        };
        self.tally.loops_sent += u64::from(now < self.due_before_ns);
        if self.nodes[node as usize].core.held() >= self.config.pool_capacity {
            return;
        }
        self.build(&packet, LOOP);
        let n = &mut self.nodes[node as usize];
        packet.arrival = self.logs[node as usize].arrive(ms(now), Origin::Own);
        let target = hop_target(route[0]);
        let delay = self.delay.from_uniform_bits(self.rng.next_u64());
        n.core.handle(
            self.base + Duration::from_nanos(now),
            Input::Own {
                target,
                delay,
                packet,
            },
        );
        n.held.set(now, n.core.held() as u64);
        self.reschedule(now, node);
    }

    fn arrive(&mut self, now: u64, node: u32, packet: SimPacket) {
        let service = (self.config.crypto_us * 1e3).round() as u64;
        if self.nodes[node as usize].failed {
            self.forget(&packet);
            return;
        }
        let n = &mut self.nodes[node as usize];
        // FIFO to the first free worker.
        let (i, free) = n
            .workers_free
            .iter()
            .copied()
            .enumerate()
            .min_by_key(|&(_, free)| free)
            .unwrap_or((0, now));
        let done = free.max(now) + service;
        if let Some(w) = n.workers_free.get_mut(i) {
            *w = done;
        }
        let queued = n.crypto_queue.value + 1;
        n.crypto_queue.set(now, queued);
        self.events.push(done, Event::Unwrapped { node, packet });
    }

    fn unwrapped(&mut self, now: u64, node: u32, mut packet: SimPacket) {
        self.tally.hop_events += 1;
        let n = &mut self.nodes[node as usize];
        let queued = n.crypto_queue.value.saturating_sub(1);
        n.crypto_queue.set(now, queued);
        if n.failed {
            self.forget(&packet);
            return;
        }
        let last = packet.at + 1 == packet.hops;
        if let Some(crypto) = &mut self.crypto {
            let expect = match (last, packet.kind) {
                (true, Kind::NodeLoop) => Expect::Final(LOOP),
                (true, _) => Expect::Final(DELIVER),
                (false, _) => Expect::Relay(node_id(packet.route[usize::from(packet.at) + 1])),
            };
            crypto.unwrap(packet.id, node, expect);
        }
        let n = &mut self.nodes[node as usize];
        let instant = self.base + Duration::from_nanos(now);
        let decision = if last && packet.kind == Kind::NodeLoop {
            Decision::LoopReturned {
                loop_id: LoopId([0; 16]),
            }
        } else if last {
            // Real messages to their recipient, client loops back to their
            // client: either way a delivery to an address.
            Decision::Send(Target::Deliver {
                destination: SocketAddr::from((Ipv4Addr::new(192, 0, 2, 1), 0)),
                message_id: MessageId([0; 16]),
                len: 1024,
            })
        } else {
            Decision::Send(hop_target(packet.route[usize::from(packet.at) + 1]))
        };
        let enters_pool = matches!(decision, Decision::Send(_));
        if enters_pool {
            if n.core.held() >= self.config.pool_capacity {
                // Overload: lost, and never seen entering the pool.
                self.forget(&packet);
                return;
            }
            packet.arrival = self.logs[node as usize].arrive(ms(now), packet.from);
        }
        n.core.handle(
            instant,
            Input::Unwrapped {
                decision,
                tag: ReplayTag([0; 32]),
                random: self.rng.next_u64(),
                packet,
            },
        );
        while n.core.poll_event().is_some() {
            if packet.born_ns < self.due_before_ns {
                self.tally.loops_returned += 1;
            }
        }
        n.held.set(now, n.core.held() as u64);
        self.reschedule(now, node);
    }

    /// The node's core is due: everything released goes on its way.
    fn release(&mut self, now: u64, node: u32) {
        let instant = self.base + Duration::from_nanos(now);
        let n = &mut self.nodes[node as usize];
        while let Some(transmit) = n.core.poll_transmit(instant) {
            self.outbox
                .extend(transmit.packets.into_iter().map(|h| h.packet));
        }
        n.held.set(now, n.core.held() as u64);
        let mut outbox = std::mem::take(&mut self.outbox);
        for packet in outbox.drain(..) {
            self.depart(now, node, packet);
        }
        self.outbox = outbox;
        self.reschedule(now, node);
    }

    fn depart(&mut self, now: u64, node: u32, mut packet: SimPacket) {
        let departure = self.logs[node as usize].depart(ms(now), packet.arrival);
        // A node's own loop leaves its maker at `AT_ORIGIN`, before route[0].
        let next_at = packet.at.wrapping_add(1);
        if next_at < packet.hops {
            packet.at = next_at;
            packet.from = Origin::Node { node, departure };
            let next = packet.route[usize::from(packet.at)];
            let at = now + self.link();
            self.events.push(at, Event::Arrive { node: next, packet });
            return;
        }
        // Delivered (one more link to the recipient or client).
        let delivered_ns = now + self.link();
        match packet.kind {
            Kind::ClientLoop => {
                if packet.born_ns < self.due_before_ns {
                    self.tally.loops_returned += 1;
                }
            }
            Kind::NodeLoop => {}
            Kind::Real => {
                self.tally.delivered += 1;
                if packet.born_ns < self.due_before_ns {
                    self.tally.delivered_due += 1;
                }
                if packet.born_ns < self.warmup_ns {
                    return;
                }
                let latency_ms = (delivered_ns - packet.born_ns) as f64 / 1e6;
                self.tally.latency(latency_ms, &mut self.sample_rng);
                if unit(&mut self.sample_rng) < self.entropy_fraction {
                    let estimate = self.estimator.estimate(
                        &self.logs,
                        &self.compromised,
                        node,
                        departure,
                        Some(packet.owner),
                    );
                    self.tally.entropy(estimate);
                }
            }
        }
    }

    fn reschedule(&mut self, now: u64, node: u32) {
        let n = &mut self.nodes[node as usize];
        let Some(due) = n.core.poll_timeout() else {
            return;
        };
        let due = (due.saturating_duration_since(self.base).as_nanos() as u64).max(now);
        if n.wake.is_none_or(|w| due < w) {
            n.wake = Some(due);
            self.events.push(due, Event::Wake { node });
        }
    }

    fn fail(&mut self, now: u64) {
        let nodes = self.nodes.len();
        let count = (self.config.fail_fraction * nodes as f64).round() as usize;
        for i in choose(&mut self.rng, nodes, count) {
            let n = &mut self.nodes[i];
            n.failed = true;
            n.wake = None;
            n.core
                .begin_shutdown(self.base + Duration::from_nanos(now), Duration::ZERO);
            n.held.set(now, 0);
            self.logs[i].clear_pool();
            self.tally.failed_nodes += 1;
        }
    }

    fn node_stats(&mut self) -> Vec<NodeStats> {
        let end = self.base + Duration::from_nanos(self.end_ns);
        let mean_delay_s = self.config.mean_delay_ms / 1e3;
        self.nodes
            .iter()
            .enumerate()
            .map(|(i, n)| {
                let occupancy = n.core.occupancy(end);
                let seconds = self.end_ns as f64 / 1e9;
                NodeStats {
                    node: i,
                    layer: i / self.config.nodes_per_layer,
                    failed: n.failed,
                    compromised: self.compromised[i],
                    load_pps: occupancy.arrivals as f64 / seconds,
                    packet_seconds: occupancy.packet_seconds,
                    model_packet_seconds: occupancy.arrivals as f64 * mean_delay_s,
                    mean_held: n.held.mean(self.end_ns),
                    max_held: n.held.max,
                    mean_crypto_queue: n.crypto_queue.mean(self.end_ns),
                    max_crypto_queue: n.crypto_queue.max,
                    log_entries: self.logs[i].len(),
                }
            })
            .collect()
    }
}

/// How real messages and client loops end (the exits deliver them).
const DELIVER: FinalCommand = FinalCommand::Deliver {
    destination: SocketAddr::new(std::net::IpAddr::V4(Ipv4Addr::new(192, 0, 2, 1)), 0),
    message_id: MessageId([0; 16]),
};

/// How node loops end.
const LOOP: FinalCommand = FinalCommand::Loop {
    loop_id: LoopId([0; 16]),
};

fn hop_target(node: u32) -> Target {
    Target::Hop {
        next: node_id(node),
        addr: node_addr(node),
    }
}

fn ms(now_ns: u64) -> u32 {
    u32::try_from(now_ns / 1_000_000).unwrap_or(u32::MAX)
}

/// Uniform in [0, 1).
fn unit(rng: &mut impl Rng) -> f64 {
    (rng.next_u64() >> 11) as f64 / (1u64 << 53) as f64
}

/// Uniform in (0, 1].
fn unit_open(rng: &mut impl Rng) -> f64 {
    ((rng.next_u64() >> 11) + 1) as f64 / (1u64 << 53) as f64
}

/// Uniform in 0..n (Lemire's multiply-shift; the bias is < n / 2^64).
fn below(rng: &mut impl Rng, n: usize) -> usize {
    ((u128::from(rng.next_u64()) * n as u128) >> 64) as usize
}

/// `count` distinct indices of `0..n`, in a seeded random order.
fn choose(rng: &mut impl Rng, n: usize, count: usize) -> Vec<usize> {
    let mut all: Vec<usize> = (0..n).collect();
    let count = count.min(n);
    for i in 0..count {
        let j = i + below(rng, n - i);
        all.swap(i, j);
    }
    all.truncate(count);
    all
}
