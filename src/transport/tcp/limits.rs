//! The TCP transport's timeouts and bounds, as durations and counts.

use std::time::Duration;

use crate::config::TransportConfig;

/// Most next hops [`TcpEgress`](super::TcpEgress) keeps queues for. Peers
/// come from the topology, so this is generous; it only stops a bug or a
/// hostile topology from growing memory without bound.
pub const DEFAULT_MAX_PEERS: usize = 1024;

/// Most inbound connections open at once, over all sources. The per-source
/// cap alone would let many addresses exhaust file descriptors.
pub const DEFAULT_MAX_CONNECTIONS: usize = 8192;

/// How long a stranger's connection must have moved no byte before a new
/// stranger may take its slot when the strangers' slots are full.
pub const DEFAULT_STRANGER_EVICTABLE_AFTER: Duration = Duration::from_secs(2);

/// First pause after a failed connect; it doubles up to the configured
/// ceiling.
pub const DEFAULT_BACKOFF_INITIAL: Duration = Duration::from_millis(50);

/// Timeouts and bounds of the TCP listener and egress.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TcpLimits {
    /// A frame must arrive whole within this of its first byte, or the
    /// peer is dropped (stops slow senders holding a connection and buffer).
    pub read_timeout: Duration,
    /// A connection that carries nothing for this long is closed (inbound),
    /// or retired with its queue (egress).
    pub idle_timeout: Duration,
    /// Simultaneous inbound connections from one source (IPv4 address or
    /// IPv6 /64).
    pub max_connections_per_source: usize,
    /// Simultaneous inbound connections over all sources.
    pub max_connections: usize,
    /// Of `max_connections`, slots only topology members may take.
    pub reserved_member_connections: usize,
    /// When the strangers' slots are full, a new stranger replaces the
    /// stranger connection idle longest if it has been idle this long.
    pub stranger_evictable_after: Duration,
    /// Frames queued per next hop before `send` reports overload.
    pub egress_queue_depth: usize,
    /// Next hops with a queue at once.
    pub max_peers: usize,
    /// First reconnect pause.
    pub reconnect_backoff_initial: Duration,
    /// Longest reconnect pause.
    pub reconnect_backoff_max: Duration,
    /// A connect attempt that takes longer fails (a silent next hop would
    /// otherwise hold the attempt for minutes of SYN retries).
    pub connect_timeout: Duration,
    /// A write that makes no headway this long breaks the connection (a
    /// next hop that stops reading must not wedge its queue forever).
    pub write_timeout: Duration,
}

impl TcpLimits {
    /// The same limits with every zero raised to the smallest usable value,
    /// so a timer never fires at once and a cap never refuses everything.
    pub fn sanitized(mut self) -> Self {
        let min = Duration::from_millis(1);
        for d in [
            &mut self.read_timeout,
            &mut self.idle_timeout,
            &mut self.reconnect_backoff_initial,
            &mut self.connect_timeout,
            &mut self.write_timeout,
        ] {
            *d = (*d).max(min);
        }
        self.reconnect_backoff_max = self
            .reconnect_backoff_max
            .max(self.reconnect_backoff_initial);
        for n in [
            &mut self.max_connections_per_source,
            &mut self.max_connections,
            &mut self.egress_queue_depth,
            &mut self.max_peers,
        ] {
            *n = (*n).max(1);
        }
        self.reserved_member_connections =
            self.reserved_member_connections.min(self.max_connections);
        self
    }
}

impl From<&TransportConfig> for TcpLimits {
    fn from(config: &TransportConfig) -> Self {
        let read_timeout = Duration::from_millis(config.tcp_read_timeout_ms);
        TcpLimits {
            read_timeout,
            idle_timeout: Duration::from_millis(config.tcp_idle_timeout_ms),
            max_connections_per_source: config.max_connections_per_source,
            max_connections: DEFAULT_MAX_CONNECTIONS,
            reserved_member_connections: DEFAULT_MAX_CONNECTIONS
                * usize::from(config.member_reserved_percent.min(100))
                / 100,
            stranger_evictable_after: DEFAULT_STRANGER_EVICTABLE_AFTER,
            egress_queue_depth: config.egress_queue_depth,
            max_peers: DEFAULT_MAX_PEERS,
            reconnect_backoff_initial: DEFAULT_BACKOFF_INITIAL,
            reconnect_backoff_max: Duration::from_millis(config.reconnect_backoff_max_ms),
            // The config has no separate knobs; the read timeout is the
            // operator's statement of how long a peer may be unresponsive.
            connect_timeout: read_timeout,
            write_timeout: read_timeout,
        }
        .sanitized()
    }
}

impl Default for TcpLimits {
    /// The limits of the default configuration.
    fn default() -> Self {
        TcpLimits::from(&TransportConfig::default())
    }
}
