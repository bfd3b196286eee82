//! What a run measured: counters while it runs ([`Tally`]), and the
//! report it ends with ([`SimReport`]: JSON and text).

use std::fmt::Write as _;

use rand::Rng;
use serde::Serialize;

use super::config::SimConfig;
use super::observer::Estimate;
use super::real_crypto::RealCryptoStats;

/// Latencies kept for percentiles at most (a uniform reservoir beyond).
const LATENCY_SAMPLES: usize = 1 << 21;

/// Counters kept while a run goes.
#[derive(Debug, Default)]
pub struct Tally {
    /// Real messages sent.
    pub sent: u64,
    /// Real messages sent early enough to be expected by the end.
    pub sent_due: u64,
    /// Real messages delivered.
    pub delivered: u64,
    /// Of `sent_due`, those delivered.
    pub delivered_due: u64,
    /// Loops (client and node) sent early enough to be expected back.
    pub loops_sent: u64,
    /// Of those, the ones that came back.
    pub loops_returned: u64,
    /// Packets a node unwrapped (one per hop).
    pub hop_events: u64,
    /// Nodes that failed.
    pub failed_nodes: u64,
    latencies_ms: Vec<f32>,
    latencies_seen: u64,
    latency_sum_ms: f64,
    entropies: Vec<f32>,
    cover_mass: f64,
    lost_mass: f64,
    truth: f64,
    truth_zero: u64,
}

impl Tally {
    /// One delivered message's end-to-end latency.
    pub fn latency(&mut self, ms: f64, rng: &mut impl Rng) {
        self.latencies_seen += 1;
        self.latency_sum_ms += ms;
        if self.latencies_ms.len() < LATENCY_SAMPLES {
            self.latencies_ms.push(ms as f32);
        } else {
            let j = (rng.next_u64() % self.latencies_seen) as usize;
            if let Some(slot) = self.latencies_ms.get_mut(j) {
                *slot = ms as f32;
            }
        }
    }

    /// One delivered message's anonymity.
    pub fn entropy(&mut self, estimate: Estimate) {
        self.entropies.push(estimate.bits as f32);
        self.cover_mass += estimate.cover_mass;
        self.lost_mass += estimate.lost_mass;
        let truth = estimate.truth.unwrap_or(0.0);
        self.truth += truth;
        self.truth_zero += u64::from(truth <= 0.0);
    }
}

/// One node's load and queues.
#[derive(Clone, Debug, Serialize)]
pub struct NodeStats {
    /// Index (layer-major).
    pub node: usize,
    /// Its layer.
    pub layer: usize,
    /// It failed during the run.
    pub failed: bool,
    /// The adversary controls it.
    pub compromised: bool,
    /// Packets taken into its pool per virtual second.
    pub load_pps: f64,
    /// ∫ held dt (packet-seconds), from the core's [`crate::mixing::Occupancy`].
    pub packet_seconds: f64,
    /// Arrivals × mean delay: what Little's law says `packet_seconds` is.
    pub model_packet_seconds: f64,
    /// Mean packets held.
    pub mean_held: f64,
    /// Most packets held at once.
    pub max_held: u64,
    /// Mean packets waiting for or in a crypto worker.
    pub mean_crypto_queue: f64,
    /// Most packets waiting for or in a crypto worker.
    pub max_crypto_queue: u64,
    /// Transcript entries the adversary model keeps for it at the end.
    pub log_entries: usize,
}

/// Percentiles of a sample.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize)]
pub struct Summary {
    /// Mean.
    pub mean: f64,
    /// 1st percentile.
    pub p1: f64,
    /// 10th percentile.
    pub p10: f64,
    /// Median.
    pub p50: f64,
    /// 90th percentile.
    pub p90: f64,
    /// 99th percentile.
    pub p99: f64,
    /// Largest.
    pub max: f64,
}

impl Summary {
    fn of(sorted: &[f32], mean: f64) -> Self {
        let q = |p: f64| -> f64 {
            if sorted.is_empty() {
                return 0.0;
            }
            let i = ((sorted.len() - 1) as f64 * p).round() as usize;
            f64::from(sorted[i.min(sorted.len() - 1)])
        };
        Summary {
            mean,
            p1: q(0.01),
            p10: q(0.10),
            p50: q(0.50),
            p90: q(0.90),
            p99: q(0.99),
            max: q(1.0),
        }
    }
}

/// Aggregates of one layer.
#[derive(Clone, Debug, Serialize)]
pub struct LayerStats {
    /// The layer.
    pub layer: usize,
    /// Mean packets per second into a node's pool.
    pub mean_load_pps: f64,
    /// The busiest node's.
    pub max_load_pps: f64,
    /// Mean packets held per node.
    pub mean_held: f64,
    /// Most packets any node held at once.
    pub max_held: u64,
    /// Mean crypto queue per node.
    pub mean_crypto_queue: f64,
    /// Longest crypto queue of any node.
    pub max_crypto_queue: u64,
    /// Little's law ratio of the layer's nodes that did not fail.
    pub little_law_ratio: f64,
}

/// Everything a run reports (`betanet sim --json` prints it).
#[derive(Clone, Debug, Serialize)]
pub struct SimReport {
    /// Mean packets held per node over arrival rate × mean delay, summed
    /// over the nodes that did not fail: 1 by Little's law.
    pub little_law_ratio: f64,
    /// Mean entropy, in bits, of the adversary's distribution over the
    /// sender of a delivered real message.
    pub mean_entropy_bits: f64,
    /// Its distribution over messages.
    pub entropy_bits: Summary,
    /// Messages whose entropy was computed.
    pub entropy_samples: usize,
    /// The Poisson-mix model's entropy of ONE node at the mean load:
    /// `log2(e · λ · μ)` (a reference: a path of nodes hides more).
    pub poisson_mix_bits_per_node: f64,
    /// Mean mass the adversary puts on node-made cover (left out of the
    /// entropy, which is over real senders).
    pub mean_cover_mass: f64,
    /// Mean mass the estimator could not place (≈ 0 unless logs were
    /// pruned too early).
    pub mean_lost_mass: f64,
    /// Mean probability the adversary gives the true sender (its chance
    /// of guessing right by sampling its distribution).
    pub mean_true_sender_probability: f64,
    /// Messages whose true sender got probability 0: must be 0 (the
    /// estimator follows every path the packet could have taken), unless
    /// logs were pruned.
    pub true_sender_excluded: u64,
    /// End-to-end latency of delivered real messages, in milliseconds.
    pub latency_ms: Summary,
    /// Real messages sent.
    pub sent: u64,
    /// Real messages delivered.
    pub delivered: u64,
    /// Real messages sent early enough to arrive by the end but not
    /// delivered (failed nodes, full pools).
    pub lost: u64,
    /// Loops (client and node cover) that did not come back, over those
    /// sent early enough to.
    pub loop_loss_ratio: f64,
    /// Loops counted in `loop_loss_ratio`.
    pub loops_sent: u64,
    /// Nodes that failed.
    pub failed_nodes: u64,
    /// Per layer: load and queues.
    pub layers: Vec<LayerStats>,
    /// Per node: load and queues.
    pub nodes: Vec<NodeStats>,
    /// Virtual time simulated.
    pub virtual_seconds: f64,
    /// Wall-clock time the run took.
    pub wall_seconds: f64,
    /// Hop events: packets a node unwrapped.
    pub simulated_packets: u64,
    /// Wall nanoseconds per hop event.
    pub ns_per_packet: f64,
    /// Peak resident memory of the process (VmHWM), in bytes.
    pub peak_rss_bytes: u64,
    /// With `--real-crypto`: what the real Sphinx packets showed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub real_crypto: Option<RealCryptoStats>,
    /// The configuration.
    pub config: SimConfig,
    /// Sorted sample of latencies (for plots), not serialised.
    #[serde(skip)]
    pub latency_sample_ms: Vec<f32>,
    /// Sorted entropies (for plots), not serialised.
    #[serde(skip)]
    pub entropy_sample_bits: Vec<f32>,
}

impl SimReport {
    /// Assembles the report.
    pub fn new(
        config: &SimConfig,
        mut tally: Tally,
        nodes: Vec<NodeStats>,
        wall_seconds: f64,
    ) -> Self {
        let alive = || nodes.iter().filter(|n| !n.failed);
        let ratio = |it: &mut dyn Iterator<Item = &NodeStats>| {
            let (held, model) = it.fold((0.0, 0.0), |(h, m), n| {
                (h + n.packet_seconds, m + n.model_packet_seconds)
            });
            if model > 0.0 { held / model } else { 0.0 }
        };
        let little_law_ratio = ratio(&mut alive());
        let layers = (0..config.layers)
            .map(|layer| {
                let of: Vec<&NodeStats> = nodes.iter().filter(|n| n.layer == layer).collect();
                let count = of.len().max(1) as f64;
                LayerStats {
                    layer,
                    mean_load_pps: of.iter().map(|n| n.load_pps).sum::<f64>() / count,
                    max_load_pps: of.iter().map(|n| n.load_pps).fold(0.0, f64::max),
                    mean_held: of.iter().map(|n| n.mean_held).sum::<f64>() / count,
                    max_held: of.iter().map(|n| n.max_held).max().unwrap_or(0),
                    mean_crypto_queue: of.iter().map(|n| n.mean_crypto_queue).sum::<f64>() / count,
                    max_crypto_queue: of.iter().map(|n| n.max_crypto_queue).max().unwrap_or(0),
                    little_law_ratio: ratio(&mut of.iter().copied().filter(|n| !n.failed)),
                }
            })
            .collect();
        let mean_load = nodes.iter().map(|n| n.load_pps).sum::<f64>() / nodes.len().max(1) as f64;
        tally.latencies_ms.sort_unstable_by(f32::total_cmp);
        tally.entropies.sort_unstable_by(f32::total_cmp);
        let samples = tally.entropies.len();
        let per = |x: f64| if samples > 0 { x / samples as f64 } else { 0.0 };
        let mean_entropy_bits = per(tally.entropies.iter().map(|&b| f64::from(b)).sum());
        let latency_mean = if tally.latencies_seen > 0 {
            tally.latency_sum_ms / tally.latencies_seen as f64
        } else {
            0.0
        };
        SimReport {
            little_law_ratio,
            mean_entropy_bits,
            entropy_bits: Summary::of(&tally.entropies, mean_entropy_bits),
            entropy_samples: samples,
            poisson_mix_bits_per_node: crate::mixing::poisson_mix_bits(
                mean_load,
                config.mean_delay_ms / 1e3,
            ),
            mean_cover_mass: per(tally.cover_mass),
            mean_lost_mass: per(tally.lost_mass),
            mean_true_sender_probability: per(tally.truth),
            true_sender_excluded: tally.truth_zero,
            latency_ms: Summary::of(&tally.latencies_ms, latency_mean),
            sent: tally.sent,
            delivered: tally.delivered,
            lost: tally.sent_due.saturating_sub(tally.delivered_due),
            loop_loss_ratio: if tally.loops_sent > 0 {
                1.0 - tally.loops_returned as f64 / tally.loops_sent as f64
            } else {
                0.0
            },
            loops_sent: tally.loops_sent,
            failed_nodes: tally.failed_nodes,
            layers,
            nodes,
            virtual_seconds: config.virtual_seconds,
            wall_seconds,
            simulated_packets: tally.hop_events,
            ns_per_packet: if tally.hop_events > 0 {
                wall_seconds * 1e9 / tally.hop_events as f64
            } else {
                0.0
            },
            peak_rss_bytes: peak_rss_bytes(),
            real_crypto: None,
            config: config.clone(),
            latency_sample_ms: tally.latencies_ms,
            entropy_sample_bits: tally.entropies,
        }
    }

    /// The report as pretty JSON.
    pub fn to_json(&self) -> String {
        serde_json::to_string_pretty(self).unwrap_or_else(|e| format!("{{\"error\":\"{e}\"}}"))
    }

    /// A short human-readable summary.
    pub fn to_text(&self) -> String {
        let c = &self.config;
        let mut s = String::new();
        let _ = writeln!(
            s,
            "betanet sim: {} layers x {} nodes, {} clients, {} virtual s (seed {})",
            c.layers, c.nodes_per_layer, c.clients, c.virtual_seconds, c.seed
        );
        let _ = writeln!(
            s,
            "  traffic: {} real + {} cover msg/s per client, {} loops/s per node; mean delay {} ms",
            c.client_rate, c.client_cover_rate, c.node_loop_rate, c.mean_delay_ms
        );
        let _ = writeln!(
            s,
            "  anonymity: mean {:.2} bits (p1 {:.2}, p50 {:.2}, p99 {:.2}) over {} messages; \
             one node alone (Poisson-mix model): {:.2} bits",
            self.mean_entropy_bits,
            self.entropy_bits.p1,
            self.entropy_bits.p50,
            self.entropy_bits.p99,
            self.entropy_samples,
            self.poisson_mix_bits_per_node
        );
        let _ = writeln!(
            s,
            "  latency: mean {:.1} ms, p50 {:.1}, p90 {:.1}, p99 {:.1}",
            self.latency_ms.mean, self.latency_ms.p50, self.latency_ms.p90, self.latency_ms.p99
        );
        let _ = writeln!(
            s,
            "  Little's law: held / (arrival rate x mean delay) = {:.4}",
            self.little_law_ratio
        );
        let _ = writeln!(
            s,
            "  delivered {} of {} sent, {} lost; loop loss {:.4} ({} failed nodes)",
            self.delivered, self.sent, self.lost, self.loop_loss_ratio, self.failed_nodes
        );
        for l in &self.layers {
            let _ = writeln!(
                s,
                "  layer {}: {:.1} pkt/s per node (max {:.1}), held mean {:.2} max {}, \
                 crypto queue mean {:.3} max {}",
                l.layer,
                l.mean_load_pps,
                l.max_load_pps,
                l.mean_held,
                l.max_held,
                l.mean_crypto_queue,
                l.max_crypto_queue
            );
        }
        if let Some(c) = &self.real_crypto {
            let _ = writeln!(
                s,
                "  real crypto: {} packets built, {} hops unwrapped ({:.1} µs each), \
                 {} route mismatches, {} refused",
                c.built,
                c.unwrapped,
                c.wall_ns_per_unwrap / 1e3,
                c.route_mismatches,
                c.refused
            );
        }
        let _ = writeln!(
            s,
            "  cost: {} hop events in {:.2} s wall ({:.0} ns each), peak RSS {:.1} MiB",
            self.simulated_packets,
            self.wall_seconds,
            self.ns_per_packet,
            self.peak_rss_bytes as f64 / (1 << 20) as f64
        );
        s
    }
}

/// The process's peak resident set (Linux `VmHWM`), 0 where unknown.
pub fn peak_rss_bytes() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|status| {
            status
                .lines()
                .find(|l| l.starts_with("VmHWM:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|kb| kb.parse::<u64>().ok())
        })
        .map_or(0, |kb| kb * 1024)
}
