//! Encodes a [`MetricsSnapshot`] through prometheus-client's
//! [`Collector`] hook as constant counters, gauges and histograms.

use std::fmt;
use std::time::Duration;

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{
    DescriptorEncoder, EncodeCounterValue, EncodeGaugeValue, EncodeLabelSet, NoLabelSet,
};
use prometheus_client::metrics::MetricType;
use prometheus_client::registry::Unit;

use super::buckets::{DELAY_BUCKETS, PROCESSING_BUCKETS, cumulative_buckets};
use super::loop_loss::bound_peers;
use super::next_hops::{MAX_NEXT_HOP_LABELS, bound_next_hops};
use super::snapshot::MetricsSnapshot;
use crate::pipeline::{DropCause, HistogramSnapshot};

/// A collector owning one scrape's snapshot.
#[derive(Debug)]
pub(super) struct SnapshotCollector(MetricsSnapshot);

impl SnapshotCollector {
    pub(super) fn new(snapshot: MetricsSnapshot) -> Self {
        SnapshotCollector(snapshot)
    }
}

impl Collector for SnapshotCollector {
    fn encode(&self, mut enc: DescriptorEncoder) -> fmt::Result {
        let s = &self.0;
        let enc = &mut enc;
        encode_node(enc, s)?;
        encode_traffic(enc, s)?;
        encode_queues(enc, s)?;
        encode_cover(enc, s)?;
        encode_links(enc, s)?;
        encode_process(enc, s)
    }
}

// Names are given without the `_total`/unit suffixes: the encoder appends
// them (`betanet_packets_processed` → `betanet_packets_processed_total`).

/// Build info, epochs, replay cache size and Sphinx key housekeeping.
fn encode_node(enc: &mut DescriptorEncoder, s: &MetricsSnapshot) -> fmt::Result {
    let role = s.role.map_or("unknown", |r| r.as_str());
    enc.encode_descriptor(
        "betanet_build",
        "Build and role of this node.",
        None,
        MetricType::Info,
    )?
    .encode_info(&[("version", s.version), ("role", role)])?;
    gauge(enc, "betanet_epoch", "Current key and VRF epoch.", s.epoch)?;
    gauge(
        enc,
        "betanet_replay_cache_entries",
        "Replay tags held by the replay filters of all held Sphinx keys.",
        s.replay_cache_entries,
    )?;
    gauge(
        enc,
        "betanet_replay_fill_ratio",
        "Fill of the fullest held key's replay filter (tags / tags its memory budget holds); \
         /ready fails from 0.9, new packets are dropped as replay_capacity at 1.",
        s.replay_fill_ratio,
    )?;
    gauge(
        enc,
        "betanet_replay_capacity_bytes",
        "Memory the replay filters of all held Sphinx keys take now (each grows up to \
         replay.memory_budget_mb).",
        s.replay_capacity_bytes,
    )?;
    counter(
        enc,
        "betanet_replay_journal_errors",
        "Failed replay journal syncs (accepted tags not yet durable; /ready fails meanwhile).",
        s.replay_journal_errors,
    )?;
    gauge(
        enc,
        "betanet_sphinx_key_epoch",
        "Current Sphinx key epoch (unix time / sphinx.key_epoch_seconds).",
        s.sphinx_key_epoch,
    )?;
    gauge(
        enc,
        "betanet_sphinx_keys_held",
        "Sphinx secret keys held: current, next, and the previous one during its grace window.",
        s.sphinx_keys_held,
    )?;
    counter(
        enc,
        "betanet_key_deletion_failures",
        "Failed attempts to delete a retired Sphinx key file (retried until deleted).",
        s.key_deletion_failures,
    )?;
    gauge(
        enc,
        "betanet_key_deletions_pending",
        "Retired Sphinx key files still on disk because deleting them failed.",
        s.key_deletions_pending,
    )
}

/// Packet counters and per-packet latencies.
fn encode_traffic(enc: &mut DescriptorEncoder, s: &MetricsSnapshot) -> fmt::Result {
    labelled_counters(
        enc,
        "betanet_packets_received",
        "Sphinx frames received, by transport.",
        "transport",
        [("udp", s.received_udp), ("tcp", s.received_tcp)],
    )?;
    counter(
        enc,
        "betanet_packets_processed",
        "Frames the Sphinx engine accepted.",
        s.processed,
    )?;
    counter(
        enc,
        "betanet_packets_forwarded",
        "Frames sent on to a next hop.",
        s.forwarded,
    )?;
    counter(
        enc,
        "betanet_packets_delivered",
        "Messages delivered (exit nodes).",
        s.delivered,
    )?;
    counter(
        enc,
        "betanet_replies_delivered",
        "Replies (packets built from SURBs) this exit accepted for delivery to their creator.",
        s.replies,
    )?;
    labelled_counters(
        enc,
        "betanet_packets_dropped",
        "Packets dropped, by reason.",
        "reason",
        DropCause::ALL.map(|c| (c.as_str(), s.drops[c.index()])),
    )?;

    histogram(
        enc,
        "betanet_processing_time",
        "Arrival to ready-to-send, excluding the mixing delay.",
        &s.processing_time,
        PROCESSING_BUCKETS,
    )?;
    histogram(
        enc,
        "betanet_mixing_delay",
        "Mixing delay given to each scheduled packet.",
        &s.mixing_delay,
        DELAY_BUCKETS,
    )?;
    histogram(
        enc,
        "betanet_dwell",
        "Arrival to unwrap (time queued for a worker), for unwrapped packets.",
        &s.dwell,
        PROCESSING_BUCKETS,
    )
}

/// Buffer pool and queue depths.
fn encode_queues(enc: &mut DescriptorEncoder, s: &MetricsSnapshot) -> fmt::Result {
    gauge(
        enc,
        "betanet_memory_pool_hit_rate",
        "Fraction of packet buffers served from the pool (0..1).",
        s.pool_hit_rate,
    )?;
    let q = s.queue_depths;
    labelled_gauges(
        enc,
        "betanet_queue_depth",
        "Packets in each bounded pipeline queue.",
        "queue",
        [
            ("ingress", q.ingress),
            ("mixing", q.mixing),
            ("egress", q.egress),
        ],
    )?;
    gauge(
        enc,
        "betanet_mixing_pool_packets",
        "Packets held for their mixing delay (the pool a departing packet hides among).",
        s.mixing_pool_packets,
    )?;
    gauge(
        enc,
        "betanet_mixing_entropy_bits",
        "Entropy in bits of the adversary's guess of which input a departing packet was, \
         from timing alone; log2(e*rate*mean delay) in steady state. Low means too little \
         traffic to hide anyone.",
        s.mixing_entropy_bits,
    )?;
    gauge(
        enc,
        "betanet_ingress_queue_limit",
        "Packets the ingress queue admits now: what the workers drain in half of pipeline.max_dwell_ms.",
        s.ingress_limit,
    )?;
    let hops = bound_next_hops(&s.egress_depths, MAX_NEXT_HOP_LABELS);
    labelled_gauges(
        enc,
        "betanet_egress_queue_depth",
        "Packets waiting to be sent, by next hop (the least loaded folded into \"other\").",
        "next_hop",
        hops.iter().map(|(hop, depth)| (hop.as_str(), *depth)),
    )
}

/// Cover loops (zero until cover traffic reports them).
fn encode_cover(enc: &mut DescriptorEncoder, s: &MetricsSnapshot) -> fmt::Result {
    counter(
        enc,
        "betanet_cover_loops_sent",
        "Cover loop packets sent.",
        s.cover_loops_sent,
    )?;
    counter(
        enc,
        "betanet_cover_loops_returned",
        "Cover loop packets that came back.",
        s.cover_loops_returned,
    )?;
    counter(
        enc,
        "betanet_cover_loops_lost",
        "Cover loop packets that did not come back in time.",
        s.cover_loops_lost,
    )?;
    histogram(
        enc,
        "betanet_loop_rtt",
        "Round-trip time of returned cover loops.",
        &s.loop_rtt,
        DELAY_BUCKETS,
    )?;
    encode_loop_loss(enc, s)
}

/// Link sessions: open now by class, handshakes by result, rekeys and
/// rejected records. (Frames refused outside any session are
/// `betanet_packets_dropped_total{reason="unauthenticated"}`.)
fn encode_links(enc: &mut DescriptorEncoder, s: &MetricsSnapshot) -> fmt::Result {
    let l = &s.links;
    labelled_gauges(
        enc,
        "betanet_link_sessions",
        "Encrypted link sessions open now, by peer class.",
        "class",
        [
            ("member_inbound", l.sessions_member_inbound),
            ("member_outbound", l.sessions_member_outbound),
            ("client", l.sessions_client),
        ],
    )?;
    let failed = crate::link::HandshakeFailure::ALL
        .iter()
        .enumerate()
        .map(|(i, why)| {
            (
                why.as_str(),
                l.handshakes_failed.get(i).copied().unwrap_or(0),
            )
        });
    labelled_counters(
        enc,
        "betanet_link_handshakes",
        "Link handshakes, by result: ok or why it failed.",
        "result",
        std::iter::once(("ok", l.handshakes_ok)).chain(failed),
    )?;
    counter(
        enc,
        "betanet_link_rekeys",
        "Link session rekeys, sent and received.",
        l.rekeys,
    )?;
    counter(
        enc,
        "betanet_link_records_rejected",
        "Link records that failed authentication (each ends its session).",
        l.records_rejected,
    )
}

/// Per-peer loop loss for the worst peers; nothing at all when there are
/// none (cover off, no loop resolved yet, or `loss_metric_nodes = 0`).
fn encode_loop_loss(enc: &mut DescriptorEncoder, s: &MetricsSnapshot) -> fmt::Result {
    let peers = bound_peers(&s.loop_loss);
    if peers.is_empty() {
        return Ok(());
    }
    labelled_gauges(
        enc,
        "betanet_loop_loss_ratio",
        "Share of this node's cover loops lost at each peer, estimated over recent loops \
         by network tomography (0..1); the cover_traffic.loss_metric_nodes worst peers.",
        "peer",
        peers
            .iter()
            .map(|p| (p.peer.as_str(), p.attributed_loss.clamp(0.0, 1.0))),
    )?;
    labelled_counters(
        enc,
        "betanet_loop_peer_sent",
        "Cover loops sent through each peer (the peers of betanet_loop_loss_ratio).",
        "peer",
        peers.iter().map(|p| (p.peer.as_str(), p.sent)),
    )?;
    labelled_counters(
        enc,
        "betanet_loop_peer_lost",
        "Cover loops through each peer lost anywhere on their path (the peers of \
         betanet_loop_loss_ratio).",
        "peer",
        peers.iter().map(|p| (p.peer.as_str(), p.lost)),
    )
}

/// `process_*`; a value that could not be read is left out entirely.
fn encode_process(enc: &mut DescriptorEncoder, s: &MetricsSnapshot) -> fmt::Result {
    let p = &s.process;
    if let Some(bytes) = p.resident_memory_bytes {
        let mut m = enc.encode_descriptor(
            "process_resident_memory",
            "Resident memory size in bytes.",
            Some(&Unit::Bytes),
            MetricType::Gauge,
        )?;
        m.encode_gauge(&bytes)?;
    }
    if let Some(cpu) = p.cpu_seconds {
        let mut m = enc.encode_descriptor(
            "process_cpu",
            "Total user and system CPU time spent in seconds.",
            Some(&Unit::Seconds),
            MetricType::Counter,
        )?;
        m.encode_counter::<NoLabelSet, _, u64>(&cpu, None)?;
    }
    if let Some(fds) = p.open_fds {
        gauge(
            enc,
            "process_open_fds",
            "Number of open file descriptors.",
            fds,
        )?;
    }
    if let Some(start) = p.start_time_seconds {
        let mut m = enc.encode_descriptor(
            "process_start_time",
            "Start time of the process since the Unix epoch in seconds.",
            Some(&Unit::Seconds),
            MetricType::Gauge,
        )?;
        m.encode_gauge(&start)?;
    }
    Ok(())
}

fn counter(
    enc: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    value: impl EncodeCounterValue,
) -> fmt::Result {
    enc.encode_descriptor(name, help, None, MetricType::Counter)?
        .encode_counter::<NoLabelSet, _, u64>(&value, None)
}

fn gauge(
    enc: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    value: impl EncodeGaugeValue,
) -> fmt::Result {
    enc.encode_descriptor(name, help, None, MetricType::Gauge)?
        .encode_gauge(&value)
}

fn labelled_counters<'a, V: EncodeCounterValue>(
    enc: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    key: &str,
    samples: impl IntoIterator<Item = (&'a str, V)>,
) -> fmt::Result {
    let mut family = enc.encode_descriptor(name, help, None, MetricType::Counter)?;
    for (label, value) in samples {
        family
            .encode_family(&label_set(key, label))?
            .encode_counter::<NoLabelSet, _, u64>(&value, None)?;
    }
    Ok(())
}

fn labelled_gauges<'a, V: EncodeGaugeValue>(
    enc: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    key: &str,
    samples: impl IntoIterator<Item = (&'a str, V)>,
) -> fmt::Result {
    let mut family = enc.encode_descriptor(name, help, None, MetricType::Gauge)?;
    for (label, value) in samples {
        family
            .encode_family(&label_set(key, label))?
            .encode_gauge(&value)?;
    }
    Ok(())
}

fn label_set<'a>(key: &'a str, value: &'a str) -> impl EncodeLabelSet + 'a {
    [(key, value)]
}

/// A classic histogram in seconds; `name` gets the `_seconds` unit suffix.
fn histogram(
    enc: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    snapshot: &HistogramSnapshot,
    bounds: &[Duration],
) -> fmt::Result {
    let buckets = cumulative_buckets(snapshot, bounds);
    // The +Inf bucket is the sum of the per-bucket counts, so `_count` is
    // taken from the same numbers to stay equal to it.
    let count = buckets.iter().map(|(_, c)| c).sum();
    enc.encode_descriptor(name, help, Some(&Unit::Seconds), MetricType::Histogram)?
        .encode_histogram::<NoLabelSet>(snapshot.sum().as_secs_f64(), count, &buckets, None)
}
