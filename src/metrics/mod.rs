//! Prometheus metrics: a plain-data [`MetricsSnapshot`] taken at scrape time
//! and rendered as OpenMetrics text by [`render`].
//!
//! # Why prometheus-client
//!
//! `prometheus-client` is the Prometheus organisation's Rust client and
//! implements the OpenMetrics text format (escaping, `_total`/`_bucket`
//! suffixes, `# UNIT`, `# EOF`) so we do not hand-roll an exposition format.
//! Its [`Collector`](prometheus_client::collector::Collector) hook lets us
//! keep our own counters: the pipeline already counts in per-worker,
//! cache-padded relaxed atomics, so the hot path takes no lock and touches no
//! metrics library at all. A scrape folds those shards into a snapshot once
//! and the collector encodes that snapshot as constant metrics.

mod buckets;
mod collector;
mod loop_loss;
mod next_hops;
mod process;
mod snapshot;

use prometheus_client::registry::Registry;

pub use buckets::{DELAY_BUCKETS, PROCESSING_BUCKETS, cumulative_buckets};
pub use loop_loss::{MAX_LOSS_METRIC_NODES, PeerLoss, bound_peers};
pub use next_hops::{MAX_NEXT_HOP_LABELS, OTHER_NEXT_HOP, bound_next_hops};
pub use process::ProcessStats;
pub use snapshot::{LinkMetrics, MetricsSnapshot, MetricsSource, QueueDepths};

/// The `Content-Type` of [`render`]'s output (OpenMetrics 1.0 text, which
/// Prometheus negotiates and scrapes natively).
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// Takes a fresh snapshot from `source` and renders it as OpenMetrics text,
/// ending with `# EOF`.
pub fn render(source: &dyn MetricsSource) -> String {
    render_snapshot(source.snapshot())
}

/// Renders an already-taken snapshot (see [`render`]).
pub fn render_snapshot(snapshot: MetricsSnapshot) -> String {
    // A registry per scrape is cheap (one boxed collector) and lets the
    // collector own its snapshot, as `Collector: 'static` requires.
    let mut registry = Registry::default();
    registry.register_collector(Box::new(collector::SnapshotCollector::new(snapshot)));
    let mut text = String::with_capacity(16 * 1024);
    if let Err(e) = prometheus_client::encoding::text::encode(&mut text, &registry) {
        // Writing to a String cannot fail, so this is an encoder bug. The
        // partial text lacks `# EOF`, so Prometheus rejects the scrape
        // instead of recording half of it.
        tracing::error!(error = %e, "encoding metrics failed");
    }
    text
}
