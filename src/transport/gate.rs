//! Who may send to this node, and how fast: checked per datagram or read
//! before any cryptography, so refused traffic costs almost nothing.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Instant;

use super::rate_limit::RateLimiter;
use super::source::{SourceClass, source_key};
use crate::config::RateLimitConfig;
use crate::pipeline::DropCause;
use crate::role::NodeRole;
use crate::topology::LiveTopology;

/// Most stranger sources (IPv4 addresses, IPv6 /64s) the limiter tracks.
const MAX_TRACKED_STRANGERS: usize = 65_536;

/// Most member addresses the limiter tracks; a topology has far fewer.
const MAX_TRACKED_MEMBERS: usize = 16_384;

/// A per-source token bucket's parameters.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Budget {
    /// Sustained packets per second.
    pub pps: f64,
    /// Packets allowed at once above that rate.
    pub burst: f64,
}

/// Per-source budgets: topology members and strangers never share one, so
/// a flood of strangers cannot use up (or evict) a member's budget.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct RateLimits {
    /// Each member address (another mix node) on its own.
    pub member: Budget,
    /// Each stranger: an IPv4 address, or an IPv6 /64.
    pub stranger: Budget,
}

impl From<&RateLimitConfig> for RateLimits {
    fn from(config: &RateLimitConfig) -> Self {
        RateLimits {
            member: Budget {
                pps: config.member_pps,
                burst: f64::from(config.member_burst),
            },
            stranger: Budget {
                pps: config.per_source_pps,
                burst: f64::from(config.burst),
            },
        }
    }
}

/// The two limiters of [`RateLimits`].
struct Limiters {
    member: RateLimiter,
    stranger: RateLimiter,
}

/// Admission rules for inbound frames and connections.
pub struct SourceGate {
    role: NodeRole,
    topology: Arc<LiveTopology>,
    limiters: Option<Limiters>,
    plaintext_refused: bool,
}

impl SourceGate {
    /// Entry nodes accept anyone; middle and exit nodes only topology
    /// members. `rate` limits each source, if given.
    pub fn new(role: NodeRole, topology: Arc<LiveTopology>, rate: Option<RateLimits>) -> Self {
        let limiter = |b: Budget, n| RateLimiter::new(b.pps, b.burst, n);
        SourceGate {
            role,
            topology,
            limiters: rate.map(|r| Limiters {
                member: limiter(r.member, MAX_TRACKED_MEMBERS),
                stranger: limiter(r.stranger, MAX_TRACKED_STRANGERS),
            }),
            plaintext_refused: false,
        }
    }

    /// Refuses frames outside link sessions (plaintext UDP datagrams and
    /// TCP frames) as `unauthenticated`, whatever their source address.
    pub fn refusing_plaintext(mut self, refused: bool) -> Self {
        self.plaintext_refused = refused;
        self
    }

    /// Whether plaintext frames are refused.
    pub fn plaintext_refused(&self) -> bool {
        self.plaintext_refused
    }

    /// The class of `ip`, or `None` if this node takes nothing from it (a
    /// stranger at a middle or exit node): TCP refuses such a connection at
    /// accept.
    pub fn classify(&self, ip: IpAddr) -> Option<SourceClass> {
        if self.topology.is_member_ip(ip) {
            Some(SourceClass::Member)
        } else if self.role == NodeRole::Entry {
            Some(SourceClass::Stranger)
        } else {
            None
        }
    }

    /// Whether `count` frames from `source` may enter the pipeline.
    pub fn admit(&self, source: SocketAddr, count: u32, now: Instant) -> Result<(), DropCause> {
        let ip = source.ip().to_canonical();
        let class = self.classify(ip).ok_or(DropCause::UnauthorizedSource)?;
        let Some(limiters) = &self.limiters else {
            return Ok(());
        };
        // Members by their own address (two nodes may share a /64);
        // strangers by IPv4 address or IPv6 /64.
        let allowed = match class {
            SourceClass::Member => limiters.member.allow(ip, count, now),
            SourceClass::Stranger => limiters.stranger.allow(source_key(ip), count, now),
        };
        if allowed {
            Ok(())
        } else {
            Err(DropCause::RateLimited)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::keys::NodeKeys;
    use crate::topology::{EgressProtocol, NodeDescriptor, SphinxKeyEntry, Topology};

    /// Three nodes on 10.0.0.1-3.
    fn topology() -> Arc<LiveTopology> {
        let nodes = NodeRole::ALL.iter().zip(1u8..).map(|(role, n)| {
            let keys = NodeKeys::generate(&mut rand::rng());
            let addr = SocketAddr::from(([10, 0, 0, n], 9000));
            let sphinx = SphinxKeyEntry {
                epoch: 0,
                public_key: crate::sphinx::SphinxSecretKey::generate(&mut rand::rng()).public_key(),
            };
            let http = SocketAddr::from(([10, 0, 0, n], 8080));
            NodeDescriptor::new_signed(&keys, *role, addr, addr, http, vec![sphinx], 86_400)
                .unwrap()
        });
        Arc::new(LiveTopology::new(
            Topology::build(nodes).unwrap(),
            EgressProtocol::Udp,
        ))
    }

    fn limits() -> RateLimits {
        RateLimits {
            member: Budget {
                pps: 1.0,
                burst: 100.0,
            },
            stranger: Budget {
                pps: 1.0,
                burst: 10.0,
            },
        }
    }

    fn at(text: &str) -> SocketAddr {
        SocketAddr::new(text.parse().unwrap(), 5000)
    }

    #[test]
    fn strangers_only_at_entry_nodes() {
        let entry = SourceGate::new(NodeRole::Entry, topology(), None);
        let middle = SourceGate::new(NodeRole::Middle, topology(), None);
        let stranger: IpAddr = "192.0.2.1".parse().unwrap();
        let member: IpAddr = "10.0.0.1".parse().unwrap();
        assert_eq!(entry.classify(stranger), Some(SourceClass::Stranger));
        assert_eq!(middle.classify(stranger), None);
        assert_eq!(middle.classify(member), Some(SourceClass::Member));
        let now = Instant::now();
        assert_eq!(
            middle.admit(at("192.0.2.1"), 1, now),
            Err(DropCause::UnauthorizedSource)
        );
    }

    #[test]
    fn members_and_strangers_have_separate_budgets() {
        let gate = SourceGate::new(NodeRole::Entry, topology(), Some(limits()));
        let now = Instant::now();
        // A stranger spends its whole budget...
        assert_eq!(gate.admit(at("192.0.2.1"), 10, now), Ok(()));
        assert_eq!(
            gate.admit(at("192.0.2.1"), 1, now),
            Err(DropCause::RateLimited)
        );
        // ...which leaves a member's untouched, and the member's is its own.
        assert_eq!(gate.admit(at("10.0.0.2"), 100, now), Ok(()));
        assert_eq!(
            gate.admit(at("10.0.0.2"), 1, now),
            Err(DropCause::RateLimited)
        );
    }

    #[test]
    fn an_ipv6_64_is_one_stranger() {
        let gate = SourceGate::new(NodeRole::Entry, topology(), Some(limits()));
        let now = Instant::now();
        assert_eq!(gate.admit(at("2001:db8::1"), 10, now), Ok(()));
        // Another address of the same /64 shares the spent budget.
        assert_eq!(
            gate.admit(at("2001:db8::ffff:2"), 1, now),
            Err(DropCause::RateLimited)
        );
        assert_eq!(gate.admit(at("2001:db8:0:1::1"), 1, now), Ok(()));
    }
}
