//! How the node tells sources apart: topology members from strangers, and
//! which addresses count as one source for per-source caps and budgets.

use std::net::{IpAddr, Ipv6Addr};

/// Whether a source is a topology member (another mix node) or not.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum SourceClass {
    /// Its IP is the address of a node in the current topology.
    Member,
    /// Anyone else: clients at an entry node, or an attacker.
    Stranger,
}

/// The key a stranger's per-source caps and budgets are counted under: an
/// IPv4 address as itself, an IPv6 address as its /64.
///
/// A single host is routinely given a whole IPv6 /64, so counting IPv6 by
/// address would let one host pose as 2^64 sources. IPv4-mapped IPv6 (as a
/// dual-stack socket reports IPv4 peers) counts as its IPv4 address.
pub fn source_key(ip: IpAddr) -> IpAddr {
    match ip.to_canonical() {
        IpAddr::V6(v6) => {
            let s = v6.segments();
            IpAddr::V6(Ipv6Addr::new(s[0], s[1], s[2], s[3], 0, 0, 0, 0))
        }
        v4 => v4,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(text: &str) -> String {
        source_key(text.parse().unwrap()).to_string()
    }

    #[test]
    fn ipv6_groups_by_64_and_ipv4_by_address() {
        assert_eq!(key("2001:db8:1:2:aaaa::1"), "2001:db8:1:2::");
        assert_eq!(key("2001:db8:1:2:ffff:ffff:ffff:ffff"), "2001:db8:1:2::");
        assert_ne!(key("2001:db8:1:3::1"), "2001:db8:1:2::");
        assert_eq!(key("10.0.0.7"), "10.0.0.7");
        assert_eq!(key("::ffff:10.0.0.7"), "10.0.0.7");
    }
}
