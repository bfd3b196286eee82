//! The figures an operator-reward scheme would consume, honestly measured:
//! the integration guide's `RewardCalculator::compute_reward(stats)`.
//!
//! No tokens and no chain: a [`Reward`] is a score and the figures it is
//! made of. Two sources, kept apart because only one is independent:
//!
//! - **The node's own [`MixnodeStats`]** (self-reported): packets it mixed
//!   and passed on, and the share of accepted packets it lost by its own
//!   fault (overload, dwell, send failures, replay capacity, shutdown).
//!   Drops caused by senders — bad MACs, replays, rate limits, strangers —
//!   do not count against it.
//! - **The consensus's reliability figure** (measured by the authorities'
//!   probes, median over the voters): see [`ConsensusNode`].
//!
//! `score = work × service‰ × reliability‰ / 10⁶`. Self-reported work can
//! be inflated by a node that lies about its stats; a scheme paying on it
//! should cap work by what its neighbours' loop evidence supports. That
//! cross-check is not built here.

use super::document::ConsensusNode;
use crate::MixnodeStats;

/// Drop causes that are the node's own fault (label names of `DropCause`).
const OWN_FAULT: [&str; 5] = [
    "overload",
    "dwell",
    "send_failed",
    "replay_capacity",
    "shutdown",
];

/// A node's reward figures.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Reward {
    /// Packets mixed and passed on: forwarded + delivered + own loops
    /// returned.
    pub work: u64,
    /// Accepted packets not lost by the node's own fault, ‰.
    pub service_permille: u16,
    /// The authorities' reliability figure, ‰ (1000 when not known, see
    /// [`RewardCalculator::compute_reward`]).
    pub reliability_permille: u16,
    /// `work × service‰ × reliability‰ / 10⁶`.
    pub score: u64,
}

/// Computes [`Reward`]s.
#[derive(Clone, Copy, Debug, Default)]
pub struct RewardCalculator;

impl RewardCalculator {
    /// The reward figures from the node's own stats alone (the integration
    /// guide's call). With no independent evidence the reliability is taken
    /// as 1000‰: prefer [`compute_reward_with`](Self::compute_reward_with)
    /// whenever the node's consensus entry is at hand.
    pub fn compute_reward(stats: &MixnodeStats) -> Reward {
        Self::from_parts(stats, 1000)
    }

    /// The reward figures from the node's stats and its entry in the
    /// consensus (the authorities' reliability figure).
    pub fn compute_reward_with(stats: &MixnodeStats, node: &ConsensusNode) -> Reward {
        Self::from_parts(stats, node.reliability_permille.min(1000))
    }

    fn from_parts(stats: &MixnodeStats, reliability_permille: u16) -> Reward {
        let work = stats
            .forwarded
            .saturating_add(stats.delivered)
            .saturating_add(stats.loops_returned);
        let lost: u64 = OWN_FAULT
            .iter()
            .filter_map(|cause| stats.dropped.get(cause))
            .sum();
        let service_permille = if stats.processed == 0 {
            1000
        } else {
            let kept = stats.processed.saturating_sub(lost.min(stats.processed));
            u16::try_from(u128::from(kept) * 1000 / u128::from(stats.processed)).unwrap_or(1000)
        };
        let score =
            u128::from(work) * u128::from(service_permille) * u128::from(reliability_permille)
                / 1_000_000;
        Reward {
            work,
            service_permille,
            reliability_permille,
            score: u64::try_from(score).unwrap_or(u64::MAX),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stats(processed: u64, forwarded: u64, drops: &[(&'static str, u64)]) -> MixnodeStats {
        let mut s = MixnodeStats {
            processed,
            forwarded,
            delivered: 0,
            loops_returned: 0,
            dropped: Default::default(),
            throughput_pps: 0.0,
            latency_p50: Default::default(),
            latency_p99: Default::default(),
            latency_p999: Default::default(),
            latency_mean: Default::default(),
            pool_hit_rate: 1.0,
            queue_depths: Default::default(),
        };
        for (cause, n) in drops {
            s.dropped.insert(cause, *n);
        }
        s
    }

    #[test]
    fn own_faults_cost_and_senders_faults_do_not() {
        let clean = RewardCalculator::compute_reward(&stats(1000, 1000, &[]));
        assert_eq!(
            (clean.work, clean.service_permille, clean.score),
            (1000, 1000, 1000)
        );
        // Replays and bad MACs are the senders' doing.
        let attacked =
            RewardCalculator::compute_reward(&stats(1000, 900, &[("replay", 50), ("mac", 50)]));
        assert_eq!(attacked.service_permille, 1000);
        // Overload and send failures are the node's.
        let weak = RewardCalculator::compute_reward(&stats(
            1000,
            800,
            &[("overload", 150), ("send_failed", 50)],
        ));
        assert_eq!(weak.service_permille, 800);
        assert_eq!(weak.score, 640);
        let idle = RewardCalculator::compute_reward(&stats(0, 0, &[]));
        assert_eq!((idle.work, idle.score), (0, 0));
    }
}
