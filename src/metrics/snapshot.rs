//! What a scrape reports: plain data, filled by whoever owns the counters.

use crate::pipeline::{DropCause, HistogramSnapshot, PipelineMonitor, Totals};
use crate::role::NodeRole;

use super::loop_loss::PeerLoss;
use super::process::ProcessStats;

/// Current depth of each bounded pipeline queue (`betanet_queue_depth`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct QueueDepths {
    /// Received frames waiting for a crypto worker.
    pub ingress: usize,
    /// Packets held for their mixing delay.
    pub mixing: usize,
    /// Packets due to be sent, waiting for the egress thread.
    pub egress: usize,
}

/// Every value `/metrics` reports, taken at once at scrape time.
///
/// Plain data so it can be built in tests and by any node layout. Values
/// the node cannot provide yet (cover loops, say) stay at their zero
/// defaults and are still exported, so dashboards see a series from day one.
#[derive(Clone, Debug, PartialEq)]
pub struct MetricsSnapshot {
    /// `betanet_build_info{version}`; defaults to this crate's version.
    pub version: &'static str,
    /// `betanet_build_info{role}`; `None` is reported as `unknown`.
    pub role: Option<NodeRole>,
    /// `betanet_epoch`: the current key/VRF epoch.
    pub epoch: u64,
    /// `betanet_packets_received_total{transport="udp"}`.
    pub received_udp: u64,
    /// `betanet_packets_received_total{transport="tcp"}`.
    pub received_tcp: u64,
    /// `betanet_packets_processed_total`.
    pub processed: u64,
    /// `betanet_packets_forwarded_total`.
    pub forwarded: u64,
    /// `betanet_packets_delivered_total`.
    pub delivered: u64,
    /// `betanet_replies_delivered_total`.
    pub replies: u64,
    /// `betanet_packets_dropped_total{reason}`, by [`DropCause::index`].
    pub drops: [u64; DropCause::COUNT],
    /// `betanet_processing_time_seconds`.
    pub processing_time: HistogramSnapshot,
    /// `betanet_mixing_delay_seconds`.
    pub mixing_delay: HistogramSnapshot,
    /// `betanet_dwell_seconds`: arrival to unwrap, for unwrapped packets.
    pub dwell: HistogramSnapshot,
    /// `betanet_ingress_queue_limit`: packets the ingress queue admits now
    /// (what the workers drain in half of `pipeline.max_dwell_ms`).
    pub ingress_limit: usize,
    /// `betanet_memory_pool_hit_rate`, 0..1.
    pub pool_hit_rate: f64,
    /// `betanet_queue_depth{queue}`.
    pub queue_depths: QueueDepths,
    /// `betanet_mixing_pool_packets`: packets held for their mixing delay.
    pub mixing_pool_packets: u64,
    /// `betanet_mixing_entropy_bits`: the entropy of a departure from the
    /// mixing pool now (see [`PoolEntropy`](crate::mixing::PoolEntropy)).
    pub mixing_entropy_bits: f64,
    /// `betanet_egress_queue_depth{next_hop}`: label (node id hex or
    /// address) and depth. Bounded at render time, see
    /// [`bound_next_hops`](super::bound_next_hops).
    pub egress_depths: Vec<(String, usize)>,
    /// `betanet_cover_loops_sent_total`.
    pub cover_loops_sent: u64,
    /// `betanet_cover_loops_returned_total`.
    pub cover_loops_returned: u64,
    /// `betanet_cover_loops_lost_total`.
    pub cover_loops_lost: u64,
    /// `betanet_loop_rtt_seconds`.
    pub loop_rtt: HistogramSnapshot,
    /// `betanet_loop_loss_ratio{peer}`, `betanet_loop_peer_sent_total{peer}`
    /// and `betanet_loop_peer_lost_total{peer}`: the peers with the highest
    /// attributed loss, worst first (at most
    /// [`MAX_LOSS_METRIC_NODES`](super::MAX_LOSS_METRIC_NODES) are
    /// rendered). Empty: the families are left out.
    pub loop_loss: Vec<PeerLoss>,
    /// `betanet_replay_cache_entries`: tags held by the replay filters of
    /// all held keys.
    pub replay_cache_entries: u64,
    /// `betanet_replay_fill_ratio`: the fullest held key's filter, tags
    /// held / tags its budget holds (new packets are refused at 1).
    pub replay_fill_ratio: f64,
    /// `betanet_replay_capacity_bytes`: memory the held keys' filters take.
    pub replay_capacity_bytes: u64,
    /// `betanet_replay_journal_errors_total`: failed journal syncs.
    pub replay_journal_errors: u64,
    /// `betanet_sphinx_key_epoch`: the current Sphinx key epoch.
    pub sphinx_key_epoch: u64,
    /// `betanet_sphinx_keys_held`: Sphinx secrets held (2, or 3 while the
    /// previous key is in its grace window).
    pub sphinx_keys_held: u64,
    /// `betanet_key_deletion_failures_total`: failed attempts to delete a
    /// retired Sphinx key file (each is retried until it succeeds).
    pub key_deletion_failures: u64,
    /// `betanet_key_deletions_pending`: retired Sphinx key files still on
    /// disk because their deletion failed.
    pub key_deletions_pending: u64,
    /// `betanet_link_*`: encrypted link sessions (all zero with links off).
    pub links: LinkMetrics,
    /// `process_*` metrics.
    pub process: ProcessStats,
}

/// Link session counters, as `/metrics` reports them.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct LinkMetrics {
    /// `betanet_link_sessions{class="member_inbound"}`.
    pub sessions_member_inbound: i64,
    /// `betanet_link_sessions{class="member_outbound"}`.
    pub sessions_member_outbound: i64,
    /// `betanet_link_sessions{class="client"}`.
    pub sessions_client: i64,
    /// `betanet_link_handshakes_total{result="ok"}`.
    pub handshakes_ok: u64,
    /// `betanet_link_handshakes_total{result=<reason>}`, in the order of
    /// [`HandshakeFailure::ALL`](crate::link::HandshakeFailure::ALL).
    pub handshakes_failed: Vec<u64>,
    /// `betanet_link_rekeys_total`.
    pub rekeys: u64,
    /// `betanet_link_records_rejected_total`.
    pub records_rejected: u64,
}

impl Default for MetricsSnapshot {
    fn default() -> Self {
        MetricsSnapshot {
            version: env!("CARGO_PKG_VERSION"),
            role: None,
            epoch: 0,
            received_udp: 0,
            received_tcp: 0,
            processed: 0,
            forwarded: 0,
            delivered: 0,
            replies: 0,
            drops: [0; DropCause::COUNT],
            processing_time: HistogramSnapshot::default(),
            mixing_delay: HistogramSnapshot::default(),
            dwell: HistogramSnapshot::default(),
            ingress_limit: 0,
            pool_hit_rate: 0.0,
            queue_depths: QueueDepths::default(),
            mixing_pool_packets: 0,
            mixing_entropy_bits: 0.0,
            egress_depths: Vec::new(),
            cover_loops_sent: 0,
            cover_loops_returned: 0,
            cover_loops_lost: 0,
            loop_rtt: HistogramSnapshot::default(),
            links: LinkMetrics::default(),
            loop_loss: Vec::new(),
            replay_cache_entries: 0,
            replay_fill_ratio: 0.0,
            replay_capacity_bytes: 0,
            replay_journal_errors: 0,
            sphinx_key_epoch: 0,
            sphinx_keys_held: 0,
            key_deletion_failures: 0,
            key_deletions_pending: 0,
            process: ProcessStats::default(),
        }
    }
}

impl MetricsSnapshot {
    /// Everything a [`PipelineMonitor`] knows, plus fresh [`ProcessStats`]:
    /// folds the per-worker counters once (the only cost of a scrape). The
    /// caller adds role, epoch, replay cache size, per-hop egress depths
    /// and cover-loop counts.
    pub fn from_pipeline(pipeline: &PipelineMonitor) -> Self {
        let depths = pipeline.queue_depths();
        let depth = |name: &str| depths.get(name).copied().unwrap_or(0);
        MetricsSnapshot {
            pool_hit_rate: pipeline.pool().hit_rate(),
            ingress_limit: pipeline.ingress_limit(),
            queue_depths: QueueDepths {
                ingress: depth("ingress"),
                mixing: depth("mixing"),
                egress: depth("egress"),
            },
            mixing_pool_packets: pipeline.mixing().held() as u64,
            mixing_entropy_bits: pipeline.mixing().entropy_bits(),
            process: ProcessStats::read(),
            ..MetricsSnapshot::default()
        }
        .with_totals(pipeline.counters().totals())
    }

    /// Copies the folded pipeline counters in (returned loops count as
    /// `cover_loops_returned`).
    pub fn with_totals(mut self, totals: Totals) -> Self {
        self.received_udp = totals.received_udp;
        self.received_tcp = totals.received_tcp;
        self.processed = totals.processed;
        self.forwarded = totals.forwarded;
        self.delivered = totals.delivered;
        self.replies = totals.replies;
        self.cover_loops_returned = totals.loops_returned;
        self.drops = totals.drops;
        self.processing_time = totals.processing_time;
        self.mixing_delay = totals.mixing_delay;
        self.dwell = totals.dwell;
        self
    }
}

/// Anything that can produce a [`MetricsSnapshot`] on demand (the node;
/// fakes in tests).
pub trait MetricsSource {
    /// A fresh snapshot; called once per scrape.
    fn snapshot(&self) -> MetricsSnapshot;
}

/// A fixed snapshot is its own source (handy in tests and tools).
impl MetricsSource for MetricsSnapshot {
    fn snapshot(&self) -> MetricsSnapshot {
        self.clone()
    }
}
