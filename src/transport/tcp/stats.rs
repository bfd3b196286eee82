//! Counters of the TCP transport, for metrics. Frame drops go to the
//! pipeline's counters like every other drop; these count what only TCP
//! has: connections, and frames queued towards next hops.

use std::sync::atomic::{AtomicU64, Ordering};

/// Inbound listener counters. Relaxed atomics: these are statistics, not
/// synchronisation.
#[derive(Debug, Default)]
pub struct TcpStats {
    /// Connections accepted and served.
    pub accepted: AtomicU64,
    /// Connections closed at once because their source (or the node) was at
    /// its connection cap.
    pub rejected_connections: AtomicU64,
    /// Connections closed at once because their source is not a topology
    /// member (middle and exit nodes).
    pub unauthorized_connections: AtomicU64,
    /// Idle stranger connections closed to make room for a new one.
    pub evicted_connections: AtomicU64,
    /// Connections open now (a gauge).
    pub active_connections: AtomicU64,
    /// Connections dropped for stalling mid-frame past the read timeout.
    pub read_timeouts: AtomicU64,
    /// Connections closed for carrying nothing past the idle timeout.
    pub idle_timeouts: AtomicU64,
    /// Connections that ended (EOF or error) with part of a frame unread.
    pub truncated_frames: AtomicU64,
}

/// Egress counters, summed over next hops.
#[derive(Debug, Default)]
pub struct EgressStats {
    /// Frames written to a next hop's connection.
    pub sent: AtomicU64,
    /// Frames lost because the connection broke while writing them (they
    /// may or may not have arrived; they are not retried, which would risk
    /// duplicates for no gain: the next hop's replay cache drops those).
    pub lost: AtomicU64,
    /// Frames refused by `send` because their next hop's queue was full or
    /// there were too many next hops.
    pub queue_full: AtomicU64,
    /// Frames dropped unsent: still queued at shutdown, or queued for a
    /// next hop that stayed unreachable for the idle timeout.
    pub abandoned: AtomicU64,
    /// Connections re-established after one broke or went idle.
    pub reconnects: AtomicU64,
    /// Connect attempts that failed (each is followed by a backoff pause).
    pub connect_failures: AtomicU64,
}

/// Adds `n` to a counter.
pub(super) fn add(counter: &AtomicU64, n: u64) {
    counter.fetch_add(n, Ordering::Relaxed);
}

/// Subtracts one from a gauge.
pub(super) fn dec(counter: &AtomicU64) {
    counter.fetch_sub(1, Ordering::Relaxed);
}
