//! Which epoch each hop mixed a packet in, or why that is not certain.
//!
//! A hop's delay depends on the epoch in which it unwrapped the packet. The
//! auditor polls every candidate node's `/vrf/current` before sending, at
//! least once a second while the run lasts, and once after the last packet
//! arrived ([`Poll`]). Epochs only move forward, so when a hop reports the
//! same epoch in the last poll before a packet was sent and in the first
//! poll after it arrived, the hop was in that epoch the whole time. Any
//! other sample straddles a boundary (or an unknown epoch) and is skipped.

use std::time::{Duration, Instant};

use super::proofs::Poll;
use crate::sphinx::NodeId;
use crate::vrf::Epoch;

/// A node switches its delay key a moment before it publishes the new
/// epoch's proofs; a poll this soon after an arrival does not count as
/// "after" it.
pub(crate) const EPOCH_MARGIN: Duration = Duration::from_millis(50);

/// Why a delivered packet is not analysed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Skip {
    /// A hop's epoch changed (or was unknown) during the packet's transit.
    Straddled,
    /// A hop's proofs for the epoch did not verify or were not fetched.
    Unverifiable,
}

/// The epoch of each node of `path` for a packet sent after poll
/// `polls[sent_after]` finished and delivered at `arrived`.
pub(crate) fn hop_epochs(
    path: &[NodeId],
    polls: &[Poll],
    sent_after: usize,
    arrived: Instant,
) -> Result<Vec<Epoch>, Skip> {
    let before = polls.get(sent_after).ok_or(Skip::Straddled)?;
    let after = polls.partition_point(|p| p.started < arrived + EPOCH_MARGIN);
    let after = polls.get(after).ok_or(Skip::Straddled)?;
    path.iter()
        .map(
            |node| match (before.epochs.get(node), after.epochs.get(node)) {
                (Some(e1), Some(e2)) if e1 == e2 => Ok(*e1),
                _ => Err(Skip::Straddled),
            },
        )
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(n: u8) -> NodeId {
        NodeId::from_bytes([n; 16])
    }

    fn poll(at: Instant, epochs: &[(u8, u64)]) -> Poll {
        Poll {
            started: at,
            finished: at + Duration::from_millis(1),
            epochs: epochs.iter().map(|&(n, e)| (id(n), Epoch(e))).collect(),
        }
    }

    #[test]
    fn a_hop_must_report_the_same_epoch_before_and_after() {
        let t0 = Instant::now();
        let ms = Duration::from_millis;
        let polls = [
            poll(t0, &[(1, 7), (2, 7), (3, 7)]),
            poll(t0 + ms(1000), &[(1, 7), (2, 8), (3, 7)]),
            poll(t0 + ms(2000), &[(1, 8), (2, 8)]),
        ];
        let path = [id(1), id(2), id(3)];
        // Sent after poll 0, arrived before poll 1: node 2 moved to epoch 8.
        assert_eq!(
            hop_epochs(&path, &polls, 0, t0 + ms(100)),
            Err(Skip::Straddled)
        );
        assert_eq!(
            hop_epochs(&path[..1], &polls, 0, t0 + ms(100)),
            Ok(vec![Epoch(7)])
        );
        // Poll 1 came too soon after the arrival to count: poll 2 decides,
        // and node 1 has moved on by then.
        assert_eq!(
            hop_epochs(&path[..1], &polls, 0, t0 + ms(990)),
            Err(Skip::Straddled)
        );
        // Node 3 did not answer poll 2: its epoch is unknown.
        assert_eq!(
            hop_epochs(&path[2..], &polls, 1, t0 + ms(1500)),
            Err(Skip::Straddled)
        );
        // Nothing polled after the arrival.
        assert_eq!(
            hop_epochs(&path[1..2], &polls, 2, t0 + ms(2500)),
            Err(Skip::Straddled)
        );
        assert_eq!(
            hop_epochs(&path[1..2], &polls, 1, t0 + ms(1500)),
            Ok(vec![Epoch(8)])
        );
    }
}
