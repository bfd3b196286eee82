//! Loop monitoring: which of this node's cover loops came back, how fast,
//! and which went missing (and through whom, counted per node and per next
//! hop, and attributed to the node that most likely lost them by the
//! [`AttributionWindow`]).
//!
//! Pure: every call takes the time, so it is tested without clocks. The
//! rule for a loop is deterministic: it is *returned* if it comes back
//! within the timeout of being sent, and *lost* otherwise, whether the
//! timeout is noticed by [`LoopTracker::expire`] or by a late return.

use std::collections::{BTreeMap, HashMap};
use std::time::{Duration, Instant};

use super::attribution::{AttributionWindow, MAX_WINDOW, PathGroup};
use super::loss::{DEFAULT_LOSS_NODES, LossTable, NodeCounts};
use crate::pipeline::{Histogram, HistogramSnapshot};
use crate::sphinx::{LoopId, NodeId};

/// The most loops ever tracked at once, whatever the rate.
pub const MAX_OUTSTANDING_CAP: usize = 100_000;

/// The fewest loops tracked at once, so that a low rate still tolerates a
/// burst.
pub const MIN_OUTSTANDING: usize = 64;

/// The outstanding-loop bound for a rate and timeout: twice the loops
/// expected in flight (`rate × timeout`), within
/// [`MIN_OUTSTANDING`]`..=`[`MAX_OUTSTANDING_CAP`].
pub fn outstanding_bound(rate_pps: f64, timeout: Duration) -> usize {
    let expected = rate_pps * timeout.as_secs_f64() * 2.0;
    if !expected.is_finite() || expected >= MAX_OUTSTANDING_CAP as f64 {
        return MAX_OUTSTANDING_CAP;
    }
    // Non-negative and below the cap here (NaN was caught above).
    (expected.max(0.0).ceil() as usize).clamp(MIN_OUTSTANDING, MAX_OUTSTANDING_CAP)
}

/// What a return meant.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ReturnOutcome {
    /// A loop of ours, back within the timeout after `rtt`.
    Returned {
        /// Time from sending to return.
        rtt: Duration,
    },
    /// A loop of ours, back after the timeout: counted lost, and the
    /// return itself counted as unknown.
    Late,
    /// Not an outstanding loop: never sent, already returned (a
    /// duplicate), or already declared lost.
    Unknown,
}

/// The tracker's counters.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct LoopCounts {
    /// Loops sent.
    pub sent: u64,
    /// Loops back within the timeout.
    pub returned: u64,
    /// Loops not back within the timeout, or pushed out by the bound.
    pub lost: u64,
    /// Returns that matched no outstanding loop (unknown ids, duplicates,
    /// late returns).
    pub unknown_returns: u64,
    /// Loops sent and not yet returned or lost.
    pub outstanding: usize,
}

struct Outstanding {
    seq: u64,
    sent_at: Instant,
    /// The other nodes on the path (each once), charged if the loop is lost.
    path: Box<[NodeId]>,
    /// The node the loop was handed to first.
    next_hop: Option<NodeId>,
}

/// A copy of everything the tracker knows about loops, taken under its
/// lock; the costly parts (the attribution fit, sorting) are left to the
/// reader (see [`LoopReport`](super::LoopReport)).
#[derive(Clone, Debug, PartialEq)]
pub struct LoopSnapshot {
    /// The loss timeout.
    pub timeout: Duration,
    /// The counters.
    pub counts: LoopCounts,
    /// Round-trip times of returned loops.
    pub rtt: HistogramSnapshot,
    /// Loops through each other node (bounded table), by id.
    pub nodes: Vec<(NodeId, NodeCounts)>,
    /// Loops by the node they were first handed to (bounded table), by id.
    pub next_hops: Vec<(NodeId, NodeCounts)>,
    /// The recent resolved loops, grouped by path.
    pub paths: Vec<PathGroup>,
    /// Resolved loops in the window.
    pub window_loops: usize,
    /// The window's capacity.
    pub window_capacity: usize,
}

/// Tracks this node's outstanding loops.
pub struct LoopTracker {
    timeout: Duration,
    max_outstanding: usize,
    by_id: HashMap<LoopId, Outstanding>,
    /// Send order, for expiry and for evicting the oldest.
    by_seq: BTreeMap<u64, LoopId>,
    next_seq: u64,
    counts: LoopCounts,
    rtt: Histogram,
    loss: LossTable,
    next_hops: LossTable,
    window: AttributionWindow,
}

impl LoopTracker {
    /// A tracker declaring loops lost after `timeout`, holding at most
    /// `max_outstanding` (at least 1), with loss tables (per node, per next
    /// hop) of [`DEFAULT_LOSS_NODES`] ids and an attribution window of
    /// [`MAX_WINDOW`] loops.
    pub fn new(timeout: Duration, max_outstanding: usize) -> Self {
        LoopTracker {
            timeout,
            max_outstanding: max_outstanding.max(1),
            by_id: HashMap::new(),
            by_seq: BTreeMap::new(),
            next_seq: 0,
            counts: LoopCounts::default(),
            rtt: Histogram::default(),
            loss: LossTable::new(DEFAULT_LOSS_NODES),
            next_hops: LossTable::new(DEFAULT_LOSS_NODES),
            window: AttributionWindow::new(MAX_WINDOW),
        }
    }

    /// Replaces the loss tables (per node and per next hop) with empty ones
    /// of at most `nodes` ids each.
    pub fn with_loss_capacity(mut self, nodes: usize) -> Self {
        self.loss = LossTable::new(nodes);
        self.next_hops = LossTable::new(nodes);
        self
    }

    /// Replaces the attribution window with an empty one of `loops`
    /// resolved loops (see [`window_bound`](super::window_bound)).
    pub fn with_window(mut self, loops: usize) -> Self {
        self.window = AttributionWindow::new(loops);
        self
    }

    /// The loss timeout.
    pub fn timeout(&self) -> Duration {
        self.timeout
    }

    /// The outstanding-loop bound.
    pub fn max_outstanding(&self) -> usize {
        self.max_outstanding
    }

    /// Records a loop sent at `now` through the nodes `path` (the other
    /// nodes on it, in path order, so the first is the next hop; this
    /// node's own id is better left out). At the bound, the oldest
    /// outstanding loop is declared lost first. Returns false, and records
    /// nothing, if `id` is already outstanding.
    pub fn record_sent(&mut self, id: LoopId, path: &[NodeId], now: Instant) -> bool {
        if self.by_id.contains_key(&id) {
            return false;
        }
        while self.by_id.len() >= self.max_outstanding {
            let Some((_, oldest)) = self.by_seq.pop_first() else {
                break;
            };
            self.lose(oldest);
        }
        // A node twice on a long path is still one node that lost it.
        let next_hop = path.first().copied();
        let mut nodes = path.to_vec();
        nodes.sort_unstable();
        nodes.dedup();
        for node in &nodes {
            self.loss.record_sent(*node);
        }
        if let Some(hop) = next_hop {
            self.next_hops.record_sent(hop);
        }
        let seq = self.next_seq;
        self.next_seq += 1;
        self.by_seq.insert(seq, id);
        self.by_id.insert(
            id,
            Outstanding {
                seq,
                sent_at: now,
                path: nodes.into(),
                next_hop,
            },
        );
        self.counts.sent += 1;
        true
    }

    /// Forgets a loop that never left (its packet could not be queued), as
    /// if it had not been sent. Returns false if it was not outstanding.
    pub fn cancel(&mut self, id: LoopId) -> bool {
        match self.by_id.remove(&id) {
            Some(loop_) => {
                self.by_seq.remove(&loop_.seq);
                self.counts.sent -= 1;
                for node in &loop_.path {
                    self.loss.unsend(node);
                }
                if let Some(hop) = &loop_.next_hop {
                    self.next_hops.unsend(hop);
                }
                true
            }
            None => false,
        }
    }

    /// Records a loop coming back at `at`.
    pub fn record_return(&mut self, id: LoopId, at: Instant) -> ReturnOutcome {
        let Some(loop_) = self.by_id.get(&id) else {
            self.counts.unknown_returns += 1;
            return ReturnOutcome::Unknown;
        };
        let rtt = at.saturating_duration_since(loop_.sent_at);
        if rtt > self.timeout {
            let seq = loop_.seq;
            self.by_seq.remove(&seq);
            self.lose(id);
            self.counts.unknown_returns += 1;
            return ReturnOutcome::Late;
        }
        if let Some(loop_) = self.by_id.remove(&id) {
            self.by_seq.remove(&loop_.seq);
            for node in &loop_.path {
                self.loss.record_returned(*node, rtt);
            }
            if let Some(hop) = loop_.next_hop {
                self.next_hops.record_returned(hop, rtt);
            }
            self.window.record(&loop_.path, true);
        }
        self.counts.returned += 1;
        self.rtt.record(rtt);
        ReturnOutcome::Returned { rtt }
    }

    /// Declares lost every loop sent more than the timeout before `now`
    /// (which must not go backwards between calls); returns how many.
    pub fn expire(&mut self, now: Instant) -> u64 {
        let mut lost = 0;
        while let Some((&seq, &id)) = self.by_seq.first_key_value() {
            let due = self
                .by_id
                .get(&id)
                .is_none_or(|l| now.saturating_duration_since(l.sent_at) > self.timeout);
            if !due {
                break;
            }
            self.by_seq.remove(&seq);
            if self.lose(id) {
                lost += 1;
            }
        }
        lost
    }

    /// The first instant at which [`expire`](Self::expire) declares an
    /// outstanding loop lost (`None`: none outstanding), so the cover thread
    /// can sleep until then.
    pub fn next_expiry(&self) -> Option<Instant> {
        let oldest = self.by_seq.values().find_map(|id| self.by_id.get(id))?;
        // `expire` wants strictly more than the timeout.
        Some(oldest.sent_at + self.timeout + Duration::from_nanos(1))
    }

    /// The counters.
    pub fn counts(&self) -> LoopCounts {
        LoopCounts {
            outstanding: self.by_id.len(),
            ..self.counts
        }
    }

    /// Round-trip times of returned loops.
    pub fn rtt(&self) -> HistogramSnapshot {
        let mut snapshot = HistogramSnapshot::default();
        self.rtt.fold_into(&mut snapshot);
        snapshot
    }

    /// Lost loops charged to each node, most first.
    pub fn loss_by_node(&self) -> Vec<(NodeId, u64)> {
        self.loss.sorted()
    }

    /// Lost loops charged to `node`.
    pub fn lost_through(&self, node: &NodeId) -> u64 {
        self.loss.get(node)
    }

    /// Everything counted for loops through `node`, if it is tracked.
    pub fn through(&self, node: &NodeId) -> Option<NodeCounts> {
        self.loss.counts(node)
    }

    /// Everything counted for loops first handed to `hop`, if it is
    /// tracked.
    pub fn via_next_hop(&self, hop: &NodeId) -> Option<NodeCounts> {
        self.next_hops.counts(hop)
    }

    /// The attribution window of recent resolved loops.
    pub fn window(&self) -> &AttributionWindow {
        &self.window
    }

    /// A copy of everything above, for a [`LoopReport`](super::LoopReport).
    pub fn snapshot(&self) -> LoopSnapshot {
        LoopSnapshot {
            timeout: self.timeout,
            counts: self.counts(),
            rtt: self.rtt(),
            nodes: self.loss.all(),
            next_hops: self.next_hops.all(),
            paths: self.window.paths(),
            window_loops: self.window.len(),
            window_capacity: self.window.capacity(),
        }
    }

    /// Counts `id` (already removed from `by_seq`) as lost; false if it
    /// was not outstanding.
    fn lose(&mut self, id: LoopId) -> bool {
        let Some(loop_) = self.by_id.remove(&id) else {
            return false;
        };
        self.counts.lost += 1;
        for node in &loop_.path {
            self.loss.record_lost(*node);
        }
        if let Some(hop) = loop_.next_hop {
            self.next_hops.record_lost(hop);
        }
        self.window.record(&loop_.path, false);
        true
    }
}
