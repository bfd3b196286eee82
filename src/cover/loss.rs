//! Loops per node: how many of this node's loops went through each other
//! node (or left through each next hop), came back, or were lost. A lost
//! loop is evidence against every other node on its path; see
//! [`attribution`](super::attribution) for telling which one lost it. The
//! table is bounded so that a topology churning through many node ids (or a
//! long-running node) cannot grow it without limit.

use std::collections::HashMap;
use std::time::Duration;

use crate::sphinx::NodeId;

/// Node ids tracked by default.
pub const DEFAULT_LOSS_NODES: usize = 4096;

/// What happened to the loops through one node since it entered the table.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct NodeCounts {
    /// Loops sent through it.
    pub sent: u64,
    /// Of those, loops back within the timeout.
    pub returned: u64,
    /// Of those, loops lost.
    pub lost: u64,
    /// Sum of the round-trip times of the returned ones.
    pub rtt_sum: Duration,
}

impl NodeCounts {
    /// Mean round-trip time of the returned loops (`None` before the first).
    pub fn mean_rtt(&self) -> Option<Duration> {
        let n = u32::try_from(self.returned).ok().filter(|n| *n > 0)?;
        Some(self.rtt_sum / n)
    }

    /// Lost share of the resolved (returned or lost) loops; `None` before
    /// the first.
    pub fn loss_ratio(&self) -> Option<f64> {
        let resolved = self.returned + self.lost;
        (resolved > 0).then(|| self.lost as f64 / resolved as f64)
    }
}

#[derive(Clone, Copy, Debug)]
struct Entry {
    counts: NodeCounts,
    /// When this entry last changed (a logical clock), for tie-breaking
    /// evictions.
    touched: u64,
}

/// Loop counts per node id, holding at most `capacity` ids.
///
/// When full, a new id evicts the entry with the fewest losses (the least
/// recently changed of those on a tie): heavy losers — the nodes an
/// operator wants to see — stay, idle or one-off entries make room. An
/// evicted id that comes back starts again from zero.
#[derive(Clone, Debug)]
pub struct LossTable {
    entries: HashMap<NodeId, Entry>,
    capacity: usize,
    clock: u64,
}

impl LossTable {
    /// An empty table for at most `capacity` ids (at least one).
    pub fn new(capacity: usize) -> Self {
        LossTable {
            entries: HashMap::new(),
            capacity: capacity.max(1),
            clock: 0,
        }
    }

    /// Counts one loss against `id` (same as [`record_lost`](Self::record_lost)).
    pub fn record(&mut self, id: NodeId) {
        self.record_lost(id);
    }

    /// Counts a loop sent through `id`.
    pub fn record_sent(&mut self, id: NodeId) {
        self.entry(id).sent += 1;
    }

    /// Takes back a loop counted by [`record_sent`](Self::record_sent) that
    /// never left; nothing if `id` is not tracked.
    pub fn unsend(&mut self, id: &NodeId) {
        if let Some(e) = self.entries.get_mut(id) {
            e.counts.sent = e.counts.sent.saturating_sub(1);
        }
    }

    /// Counts a loop through `id` back after `rtt`.
    pub fn record_returned(&mut self, id: NodeId, rtt: Duration) {
        let counts = self.entry(id);
        counts.returned += 1;
        counts.rtt_sum = counts.rtt_sum.saturating_add(rtt);
    }

    /// Counts a loop through `id` lost.
    pub fn record_lost(&mut self, id: NodeId) {
        self.entry(id).lost += 1;
    }

    /// Losses counted against `id` (0 if unknown or evicted).
    pub fn get(&self, id: &NodeId) -> u64 {
        self.entries.get(id).map_or(0, |e| e.counts.lost)
    }

    /// Everything counted for `id`, if it is tracked.
    pub fn counts(&self, id: &NodeId) -> Option<NodeCounts> {
        self.entries.get(id).map(|e| e.counts)
    }

    /// Ids tracked.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// True if nothing was counted (or all was evicted).
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Every tracked id with at least one loss, most losses first (then by
    /// id, so the order is stable).
    pub fn sorted(&self) -> Vec<(NodeId, u64)> {
        let mut out: Vec<(NodeId, u64)> = self
            .entries
            .iter()
            .filter(|(_, e)| e.counts.lost > 0)
            .map(|(id, e)| (*id, e.counts.lost))
            .collect();
        out.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
        out
    }

    /// Every tracked id with its counts, by id.
    pub fn all(&self) -> Vec<(NodeId, NodeCounts)> {
        let mut out: Vec<(NodeId, NodeCounts)> =
            self.entries.iter().map(|(id, e)| (*id, e.counts)).collect();
        out.sort_by_key(|(id, _)| *id);
        out
    }

    /// The counts of `id`, inserted (evicting another if full) if needed.
    fn entry(&mut self, id: NodeId) -> &mut NodeCounts {
        self.clock += 1;
        if !self.entries.contains_key(&id) && self.entries.len() >= self.capacity {
            self.evict_one();
        }
        let entry = self.entries.entry(id).or_insert(Entry {
            counts: NodeCounts::default(),
            touched: 0,
        });
        entry.touched = self.clock;
        &mut entry.counts
    }

    fn evict_one(&mut self) {
        // A linear scan, but only when a new id arrives at a full table:
        // real topologies are far smaller than the bound.
        let victim = self
            .entries
            .iter()
            .min_by_key(|(_, e)| (e.counts.lost, e.touched))
            .map(|(id, _)| *id);
        if let Some(id) = victim {
            self.entries.remove(&id);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn node(n: u8) -> NodeId {
        NodeId::from_bytes([n; 16])
    }

    #[test]
    fn counts_sent_returned_lost_and_rtt() {
        let mut table = LossTable::new(8);
        table.record_sent(node(1));
        table.record_sent(node(1));
        table.record_sent(node(1));
        table.record_returned(node(1), Duration::from_millis(10));
        table.record_returned(node(1), Duration::from_millis(30));
        table.record_lost(node(1));
        table.record_sent(node(2));
        table.unsend(&node(2));
        table.unsend(&node(3));
        let c = table.counts(&node(1)).unwrap();
        assert_eq!((c.sent, c.returned, c.lost), (3, 2, 1));
        assert_eq!(c.mean_rtt(), Some(Duration::from_millis(20)));
        assert!((c.loss_ratio().unwrap() - 1.0 / 3.0).abs() < 1e-12);
        let idle = table.counts(&node(2)).unwrap();
        assert_eq!(
            (idle.sent, idle.mean_rtt(), idle.loss_ratio()),
            (0, None, None)
        );
        assert_eq!(table.counts(&node(3)), None);
        // Only ids with losses are in the loss ranking.
        assert_eq!(table.sorted(), vec![(node(1), 1)]);
        assert_eq!(table.all().len(), 2);
    }

    #[test]
    fn eviction_keeps_the_heaviest_losers_under_churn() {
        let mut table = LossTable::new(4);
        for _ in 0..3 {
            table.record_lost(node(1));
        }
        for n in 2..=255 {
            table.record_sent(node(n));
            table.record_returned(node(n), Duration::ZERO);
        }
        assert_eq!(table.len(), 4);
        assert_eq!(table.get(&node(1)), 3);
        // The newest idle ids are kept over older ones.
        assert!(table.counts(&node(255)).is_some());
        assert!(table.counts(&node(2)).is_none());
    }
}
