//! `betanet_loop_loss_ratio{peer}` and its companions: the nodes this node's
//! cover loops blame most, as a bounded label family. Only the worst
//! `cover_traffic.loss_metric_nodes` peers are exported; a peer that leaves
//! that set leaves the exposition too, so the series count stays bounded
//! however many nodes the topology has had.

/// The most peers ever exported (the upper bound of
/// `cover_traffic.loss_metric_nodes`).
pub const MAX_LOSS_METRIC_NODES: usize = 64;

/// One exported peer.
#[derive(Clone, Debug, PartialEq)]
pub struct PeerLoss {
    /// The `peer` label: the node id in hex.
    pub peer: String,
    /// `betanet_loop_loss_ratio`: share of loops estimated lost at this
    /// peer (0..1).
    pub attributed_loss: f64,
    /// `betanet_loop_peer_sent_total`: loops sent through it.
    pub sent: u64,
    /// `betanet_loop_peer_lost_total`: of those, loops lost anywhere on
    /// their path.
    pub lost: u64,
}

/// The first [`MAX_LOSS_METRIC_NODES`] distinct peers of `peers` (which
/// the caller gives worst first); a repeated label keeps its first entry,
/// since a label set may appear only once per family.
pub fn bound_peers(peers: &[PeerLoss]) -> Vec<&PeerLoss> {
    let mut seen = std::collections::HashSet::new();
    peers
        .iter()
        .filter(|p| seen.insert(p.peer.as_str()))
        .take(MAX_LOSS_METRIC_NODES)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn peer(name: String, loss: f64) -> PeerLoss {
        PeerLoss {
            peer: name,
            attributed_loss: loss,
            sent: 1,
            lost: 0,
        }
    }

    #[test]
    fn bounded_and_distinct() {
        let many: Vec<PeerLoss> = (0..100).map(|i| peer(format!("{i:032x}"), 0.5)).collect();
        assert_eq!(bound_peers(&many).len(), MAX_LOSS_METRIC_NODES);
        let twice = vec![peer("a".into(), 0.9), peer("a".into(), 0.1)];
        let bounded = bound_peers(&twice);
        assert_eq!(bounded.len(), 1);
        assert_eq!(bounded[0].attributed_loss, 0.9);
    }
}
