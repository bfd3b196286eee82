//! Pipeline counters. Each worker (and the ingress and scheduler stages)
//! writes only its own cache-padded shard with relaxed atomics; readers fold
//! the shards. No lock is taken per packet.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use crossbeam_utils::CachePadded;

use super::drop_cause::DropCause;
use super::histogram::{Histogram, HistogramSnapshot};

/// Counters written by one stage or worker.
#[derive(Default)]
pub struct StageCounters {
    /// Frames received over UDP (ingress shard).
    pub received_udp: AtomicU64,
    /// Frames received over TCP (ingress shard).
    pub received_tcp: AtomicU64,
    /// Frames the Sphinx engine accepted.
    pub processed: AtomicU64,
    /// Frames sent on to the next hop.
    pub forwarded: AtomicU64,
    /// Messages handed to DELIVER.
    pub delivered: AtomicU64,
    /// REPLY packets (built from SURBs) accepted for delivery to their
    /// creator (exit nodes; sent ones are also in `delivered`).
    pub replies: AtomicU64,
    /// LOOP packets that came back to this node.
    pub loops_returned: AtomicU64,
    /// DROP cover packets consumed.
    pub cover_dropped: AtomicU64,
    /// Drops by cause (indexed by [`DropCause::index`]).
    pub drops: [AtomicU64; DropCause::COUNT],
    /// Arrival to ready-to-send, excluding the mixing delay.
    pub processing_time: Histogram,
    /// Arrival to the start of unwrap (time queued), for packets that were
    /// unwrapped; at most `pipeline.max_dwell_ms`.
    pub dwell: Histogram,
    /// Mixing delay given to each scheduled packet.
    pub mixing_delay: Histogram,
}

impl StageCounters {
    /// Counts one drop.
    pub fn drop(&self, cause: DropCause) {
        self.drops[cause.index()].fetch_add(1, Ordering::Relaxed);
    }

    /// Counts `n` drops for the same cause.
    pub fn drops_add(&self, cause: DropCause, n: u64) {
        self.drops[cause.index()].fetch_add(n, Ordering::Relaxed);
    }

    /// Adds one to `counter`.
    pub fn inc(counter: &AtomicU64) {
        counter.fetch_add(1, Ordering::Relaxed);
    }
}

/// Every stage's counters.
pub struct PipelineCounters {
    shards: Vec<CachePadded<StageCounters>>,
    started: Instant,
}

/// Shard of the transport/ingress stage.
pub const INGRESS_SHARD: usize = 0;
/// Shard of the delay scheduler.
pub const SCHEDULER_SHARD: usize = 1;
/// Shard of the egress (sending) stage.
pub const EGRESS_SHARD: usize = 2;
/// First worker shard.
const FIRST_WORKER_SHARD: usize = 3;

impl PipelineCounters {
    /// Counters for `workers` crypto workers plus ingress and scheduler.
    pub fn new(workers: usize) -> Self {
        PipelineCounters {
            shards: (0..workers + FIRST_WORKER_SHARD)
                .map(|_| CachePadded::new(StageCounters::default()))
                .collect(),
            started: Instant::now(),
        }
    }

    /// The shard of a stage ([`INGRESS_SHARD`], [`SCHEDULER_SHARD`]).
    pub fn stage(&self, shard: usize) -> &StageCounters {
        &self.shards[shard.min(self.shards.len() - 1)]
    }

    /// The shard of crypto worker `i`.
    pub fn worker(&self, i: usize) -> &StageCounters {
        self.stage(FIRST_WORKER_SHARD + i)
    }

    /// Folds every shard into totals.
    pub fn totals(&self) -> Totals {
        let mut t = Totals::default();
        for s in &self.shards {
            let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
            t.received_udp += get(&s.received_udp);
            t.received_tcp += get(&s.received_tcp);
            t.processed += get(&s.processed);
            t.forwarded += get(&s.forwarded);
            t.delivered += get(&s.delivered);
            t.replies += get(&s.replies);
            t.loops_returned += get(&s.loops_returned);
            t.cover_dropped += get(&s.cover_dropped);
            for (total, c) in t.drops.iter_mut().zip(&s.drops) {
                *total += get(c);
            }
            s.processing_time.fold_into(&mut t.processing_time);
            s.dwell.fold_into(&mut t.dwell);
            s.mixing_delay.fold_into(&mut t.mixing_delay);
        }
        t.uptime = self.started.elapsed();
        t
    }
}

/// Folded counters.
#[derive(Clone, Debug, Default)]
pub struct Totals {
    /// See [`StageCounters::received_udp`].
    pub received_udp: u64,
    /// See [`StageCounters::received_tcp`].
    pub received_tcp: u64,
    /// See [`StageCounters::processed`].
    pub processed: u64,
    /// See [`StageCounters::forwarded`].
    pub forwarded: u64,
    /// See [`StageCounters::delivered`].
    pub delivered: u64,
    /// See [`StageCounters::replies`].
    pub replies: u64,
    /// See [`StageCounters::loops_returned`].
    pub loops_returned: u64,
    /// See [`StageCounters::cover_dropped`].
    pub cover_dropped: u64,
    /// Drops by cause index.
    pub drops: [u64; DropCause::COUNT],
    /// Processing time distribution.
    pub processing_time: HistogramSnapshot,
    /// Dwell (arrival to unwrap) distribution.
    pub dwell: HistogramSnapshot,
    /// Mixing delay distribution.
    pub mixing_delay: HistogramSnapshot,
    /// Time since the counters were created.
    pub uptime: Duration,
}

/// A snapshot of a pipeline's performance, as `pipeline.stats()` returns it.
#[derive(Clone, Debug, PartialEq)]
pub struct MixnodeStats {
    /// Frames the Sphinx engine accepted.
    pub processed: u64,
    /// Frames sent on to a next hop.
    pub forwarded: u64,
    /// Messages delivered (exit nodes).
    pub delivered: u64,
    /// The node's own cover loops that came back.
    pub loops_returned: u64,
    /// Drops by cause label (every cause present, zero included).
    pub dropped: BTreeMap<&'static str, u64>,
    /// Accepted frames per second since start.
    pub throughput_pps: f64,
    /// Median processing latency (arrival to ready-to-send, no mixing delay).
    pub latency_p50: Duration,
    /// 99th percentile processing latency.
    pub latency_p99: Duration,
    /// 99.9th percentile processing latency.
    pub latency_p999: Duration,
    /// Mean processing latency.
    pub latency_mean: Duration,
    /// Fraction of buffers served from the pool.
    pub pool_hit_rate: f64,
    /// Current depth of each bounded queue, by name.
    pub queue_depths: BTreeMap<&'static str, usize>,
}

impl MixnodeStats {
    /// Total drops over all causes.
    pub fn dropped_total(&self) -> u64 {
        self.dropped.values().sum()
    }

    /// Drops of one cause.
    pub fn dropped(&self, cause: DropCause) -> u64 {
        self.dropped.get(cause.as_str()).copied().unwrap_or(0)
    }
}

impl Totals {
    /// Builds the public snapshot.
    pub fn to_stats(
        &self,
        pool_hit_rate: f64,
        queue_depths: BTreeMap<&'static str, usize>,
    ) -> MixnodeStats {
        let secs = self.uptime.as_secs_f64();
        MixnodeStats {
            processed: self.processed,
            forwarded: self.forwarded,
            delivered: self.delivered,
            loops_returned: self.loops_returned,
            dropped: DropCause::ALL
                .iter()
                .map(|c| (c.as_str(), self.drops[c.index()]))
                .collect(),
            throughput_pps: if secs > 0.0 {
                self.processed as f64 / secs
            } else {
                0.0
            },
            latency_p50: self.processing_time.quantile(0.5),
            latency_p99: self.processing_time.quantile(0.99),
            latency_p999: self.processing_time.quantile(0.999),
            latency_mean: self.processing_time.mean(),
            pool_hit_rate,
            queue_depths,
        }
    }
}
