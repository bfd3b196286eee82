//! Lost loops per node: a lost loop is evidence against every other node on
//! its path. The table is bounded so that a topology churning through many
//! node ids (or a long-running node) cannot grow it without limit.

use std::collections::HashMap;

use crate::sphinx::NodeId;

/// Node ids tracked by default.
pub const DEFAULT_LOSS_NODES: usize = 4096;

#[derive(Clone, Copy, Debug)]
struct Entry {
    lost: u64,
    /// When this entry last grew (a logical clock), for tie-breaking evictions.
    touched: u64,
}

/// Loss counts per node id, holding at most `capacity` ids.
///
/// When full, a new id evicts the entry with the fewest losses (the oldest
/// of those on a tie): heavy losers — the nodes an operator wants to see —
/// stay, one-off losses make room.
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

    /// Counts one loss against `id`.
    pub fn record(&mut self, id: NodeId) {
        self.clock += 1;
        if !self.entries.contains_key(&id) && self.entries.len() >= self.capacity {
            self.evict_one();
        }
        let entry = self.entries.entry(id).or_insert(Entry {
            lost: 0,
            touched: 0,
        });
        entry.lost += 1;
        entry.touched = self.clock;
    }

    /// Losses counted against `id` (0 if unknown or evicted).
    pub fn get(&self, id: &NodeId) -> u64 {
        self.entries.get(id).map_or(0, |e| e.lost)
    }

    /// Ids tracked.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// True if no loss was counted (or all were evicted).
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Every tracked id with its count, most losses first (then by id, so
    /// the order is stable).
    pub fn sorted(&self) -> Vec<(NodeId, u64)> {
        let mut out: Vec<(NodeId, u64)> =
            self.entries.iter().map(|(id, e)| (*id, e.lost)).collect();
        out.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
        out
    }

    fn evict_one(&mut self) {
        // A linear scan, but only when a new id arrives at a full table:
        // real topologies are far smaller than the bound.
        let victim = self
            .entries
            .iter()
            .min_by_key(|(_, e)| (e.lost, e.touched))
            .map(|(id, _)| *id);
        if let Some(id) = victim {
            self.entries.remove(&id);
        }
    }
}
