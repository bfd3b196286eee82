//! Who may send to this node, and how fast: checked per datagram or read
//! before any cryptography, so refused traffic costs almost nothing.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use super::rate_limit::RateLimiter;
use crate::pipeline::DropCause;
use crate::role::NodeRole;
use crate::topology::LiveTopology;

/// Most sources the rate limiter tracks at once.
const MAX_TRACKED_SOURCES: usize = 65_536;

/// Admission rules for inbound frames.
pub struct SourceGate {
    role: NodeRole,
    topology: Arc<LiveTopology>,
    limiter: Option<RateLimiter>,
}

impl SourceGate {
    /// Entry nodes accept anyone; middle and exit nodes only topology
    /// members. `rate` limits each source (packets/s, burst), if given.
    pub fn new(role: NodeRole, topology: Arc<LiveTopology>, rate: Option<(f64, f64)>) -> Self {
        SourceGate {
            role,
            topology,
            limiter: rate.map(|(pps, burst)| RateLimiter::new(pps, burst, MAX_TRACKED_SOURCES)),
        }
    }

    /// Whether `count` frames from `source` may enter the pipeline.
    pub fn admit(&self, source: SocketAddr, count: u32, now: Instant) -> Result<(), DropCause> {
        let ip = source.ip().to_canonical();
        if self.role != NodeRole::Entry && !self.topology.is_member_ip(ip) {
            return Err(DropCause::UnauthorizedSource);
        }
        match &self.limiter {
            Some(limiter) if !limiter.allow(ip, count, now) => Err(DropCause::RateLimited),
            _ => Ok(()),
        }
    }
}
