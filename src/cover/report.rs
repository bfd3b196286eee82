//! The loop table as operators read it (`GET /loops`, the per-node loss
//! metric): totals, every node with its counts and attributed loss, every
//! next hop, worst first. Built from a [`LoopSnapshot`] outside the
//! tracker's lock, since the attribution fit is the costly part.

use std::cmp::Ordering;
use std::collections::HashMap;
use std::time::Duration;

use serde::Serialize;

use super::attribution::fit;
use super::loops::LoopSnapshot;
use super::loss::NodeCounts;
use crate::sphinx::NodeId;

/// Everything this node knows about its cover loops.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct LoopReport {
    /// Always true here; a node that sends no loops answers
    /// `{"enabled": false}` instead of a report.
    pub enabled: bool,
    /// A loop not back after this long is lost.
    pub loop_timeout_ms: u64,
    /// All loops since the node started.
    pub totals: LoopTotals,
    /// The recent loops the attribution is fitted to.
    pub window: WindowReport,
    /// Per other node on the loops' paths, highest attributed loss first.
    pub nodes: Vec<NodeReport>,
    /// Per node the loops were first handed to, highest loss ratio first.
    pub next_hops: Vec<HopReport>,
}

/// All loops since the node started.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct LoopTotals {
    /// Loops sent.
    pub sent: u64,
    /// Loops back within the timeout.
    pub returned: u64,
    /// Loops lost.
    pub lost: u64,
    /// Loops in flight.
    pub outstanding: usize,
    /// Returns matching no outstanding loop (unknown, duplicate or late).
    pub unknown_returns: u64,
    /// Round-trip times of returned loops (`null` before the first).
    pub rtt_ms: Option<RttSummary>,
}

/// Round-trip time summary in milliseconds (quantiles within ~9%, the
/// histogram's bucket precision).
#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
pub struct RttSummary {
    /// Mean.
    pub mean: f64,
    /// Median.
    pub p50: f64,
    /// 90th percentile.
    pub p90: f64,
    /// 99th percentile.
    pub p99: f64,
}

/// The attribution window.
#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
pub struct WindowReport {
    /// Resolved loops it holds.
    pub loops: usize,
    /// Resolved loops it holds at most (older ones are forgotten).
    pub capacity: usize,
}

/// Loops through one other node.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct NodeReport {
    /// Its node id (hex).
    pub id: String,
    /// Loops sent through it since it was first seen.
    pub sent: u64,
    /// Of those, loops back in time.
    pub returned: u64,
    /// Of those, loops lost (anywhere on their path).
    pub lost: u64,
    /// Loops of the attribution window through it.
    pub window_loops: u64,
    /// Of those, loops back in time.
    pub window_returned: u64,
    /// Share of loops this node is estimated to lose itself (0..1; `null`
    /// when no recent loop went through it).
    pub attributed_loss: Option<f64>,
    /// Mean round-trip time of its returned loops (`null` before the first).
    pub rtt_ms_mean: Option<f64>,
}

/// Loops first handed to one next hop.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct HopReport {
    /// Its node id (hex).
    pub id: String,
    /// Loops handed to it since it was first seen.
    pub sent: u64,
    /// Of those, loops back in time.
    pub returned: u64,
    /// Of those, loops lost (anywhere on their path).
    pub lost: u64,
    /// `lost / (returned + lost)` (`null` before the first resolved loop).
    pub loss_ratio: Option<f64>,
    /// Mean round-trip time of its returned loops.
    pub rtt_ms_mean: Option<f64>,
}

impl LoopReport {
    /// Fits the attribution to `snapshot`'s window and sorts it all, worst
    /// first (ties by id, so the order is stable).
    pub fn from_snapshot(snapshot: LoopSnapshot) -> Self {
        let attributed: HashMap<NodeId, _> = fit(&snapshot.paths)
            .into_iter()
            .map(|a| (a.node, a))
            .collect();
        let mut counts: HashMap<NodeId, NodeCounts> = snapshot.nodes.into_iter().collect();
        // A node of the window evicted from the bounded table still shows.
        for id in attributed.keys() {
            counts.entry(*id).or_default();
        }
        let mut nodes: Vec<(NodeId, NodeReport)> = counts
            .into_iter()
            .map(|(id, c)| {
                let a = attributed.get(&id);
                let report = NodeReport {
                    id: id.to_string(),
                    sent: c.sent,
                    returned: c.returned,
                    lost: c.lost,
                    window_loops: a.map_or(0, |a| a.loops),
                    window_returned: a.map_or(0, |a| a.returned),
                    attributed_loss: a.map(|a| round6(a.loss())),
                    rtt_ms_mean: c.mean_rtt().map(ms),
                };
                (id, report)
            })
            .collect();
        nodes.sort_by(|(ia, a), (ib, b)| {
            worse(a.attributed_loss, b.attributed_loss)
                .then(b.lost.cmp(&a.lost))
                .then(ia.cmp(ib))
        });

        let mut next_hops: Vec<(NodeId, HopReport)> = snapshot
            .next_hops
            .into_iter()
            .map(|(id, c)| {
                let report = HopReport {
                    id: id.to_string(),
                    sent: c.sent,
                    returned: c.returned,
                    lost: c.lost,
                    loss_ratio: c.loss_ratio().map(round6),
                    rtt_ms_mean: c.mean_rtt().map(ms),
                };
                (id, report)
            })
            .collect();
        next_hops.sort_by(|(ia, a), (ib, b)| {
            worse(a.loss_ratio, b.loss_ratio)
                .then(b.lost.cmp(&a.lost))
                .then(ia.cmp(ib))
        });

        let c = snapshot.counts;
        let rtt = &snapshot.rtt;
        LoopReport {
            enabled: true,
            loop_timeout_ms: u64::try_from(snapshot.timeout.as_millis()).unwrap_or(u64::MAX),
            totals: LoopTotals {
                sent: c.sent,
                returned: c.returned,
                lost: c.lost,
                outstanding: c.outstanding,
                unknown_returns: c.unknown_returns,
                rtt_ms: (rtt.count() > 0).then(|| RttSummary {
                    mean: ms(rtt.mean()),
                    p50: ms(rtt.quantile(0.5)),
                    p90: ms(rtt.quantile(0.9)),
                    p99: ms(rtt.quantile(0.99)),
                }),
            },
            window: WindowReport {
                loops: snapshot.window_loops,
                capacity: snapshot.window_capacity,
            },
            nodes: nodes.into_iter().map(|(_, r)| r).collect(),
            next_hops: next_hops.into_iter().map(|(_, r)| r).collect(),
        }
    }

    /// The `k` nodes with the highest attributed loss (only nodes of the
    /// window have one), worst first.
    pub fn worst(&self, k: usize) -> impl Iterator<Item = &NodeReport> {
        self.nodes
            .iter()
            .filter(|n| n.attributed_loss.is_some())
            .take(k)
    }

    /// The node report of `id`.
    pub fn node(&self, id: &NodeId) -> Option<&NodeReport> {
        let id = id.to_string();
        self.nodes.iter().find(|n| n.id == id)
    }
}

/// Higher first, `None` last.
fn worse(a: Option<f64>, b: Option<f64>) -> Ordering {
    match (a, b) {
        (Some(a), Some(b)) => b.total_cmp(&a),
        (Some(_), None) => Ordering::Less,
        (None, Some(_)) => Ordering::Greater,
        (None, None) => Ordering::Equal,
    }
}

/// Rounded to 6 decimals: the fit is no more precise, and JSON stays
/// readable.
fn round6(x: f64) -> f64 {
    (x * 1e6).round() / 1e6
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

#[cfg(test)]
mod tests {
    use std::time::Instant;

    use super::*;
    use crate::cover::LoopTracker;
    use crate::sphinx::LoopId;

    fn node(n: u8) -> NodeId {
        NodeId::from_bytes([n; 16])
    }

    #[test]
    fn a_dead_middle_tops_the_report_and_its_next_hop_too() {
        let t0 = Instant::now();
        let timeout = Duration::from_millis(100);
        let mut tracker = LoopTracker::new(timeout, 1000);
        let (dead, alive) = (node(10), node(11));
        for k in 0..400u32 {
            let middle = if k % 2 == 0 { dead } else { alive };
            let exit = node(20 + (k / 2 % 2) as u8);
            let mut id = [0u8; 16];
            id[..4].copy_from_slice(&k.to_be_bytes());
            let at = t0 + Duration::from_millis(k.into());
            tracker.record_sent(LoopId(id), &[middle, exit], at);
            if middle == alive {
                tracker.record_return(LoopId(id), at + Duration::from_millis(20));
            }
        }
        tracker.expire(t0 + Duration::from_secs(10));
        let report = LoopReport::from_snapshot(tracker.snapshot());
        assert_eq!(
            (
                report.totals.sent,
                report.totals.returned,
                report.totals.lost
            ),
            (400, 200, 200)
        );
        // Quantiles are bucket upper bounds (within ~9%).
        let p50 = report.totals.rtt_ms.unwrap().p50;
        assert!((20.0..22.0).contains(&p50), "{p50}");
        assert_eq!(report.loop_timeout_ms, 100);
        assert_eq!(report.window.loops, 400);

        let ids: Vec<&str> = report.nodes.iter().map(|n| n.id.as_str()).collect();
        assert_eq!(ids[0], dead.to_string());
        let top = &report.nodes[0];
        assert_eq!((top.sent, top.returned, top.lost), (200, 0, 200));
        assert_eq!(top.attributed_loss, Some(1.0));
        assert_eq!(top.rtt_ms_mean, None);
        // The exits lost half their loops, but none of it is theirs.
        let exit = report.node(&node(20)).unwrap();
        assert_eq!((exit.sent, exit.lost), (200, 100));
        assert_eq!(exit.attributed_loss, Some(0.0));
        assert_eq!(exit.rtt_ms_mean.map(f64::round), Some(20.0));

        assert_eq!(report.next_hops.len(), 2);
        assert_eq!(report.next_hops[0].id, dead.to_string());
        assert_eq!(report.next_hops[0].loss_ratio, Some(1.0));
        assert_eq!(report.next_hops[1].loss_ratio, Some(0.0));

        let worst: Vec<&str> = report.worst(2).map(|n| n.id.as_str()).collect();
        assert_eq!(worst.len(), 2);
        assert_eq!(worst[0], dead.to_string());
        assert_eq!(report.worst(0).count(), 0);
        assert_eq!(report.worst(99).count(), 4);

        let json = serde_json::to_value(&report).unwrap();
        assert_eq!(json["enabled"], true);
        assert_eq!(json["nodes"][0]["attributed_loss"], 1.0);
        assert_eq!(json["next_hops"][0]["lost"], 200);
    }

    #[test]
    fn an_empty_tracker_reports_nothing_but_totals() {
        let tracker = LoopTracker::new(Duration::from_secs(1), 10);
        let report = LoopReport::from_snapshot(tracker.snapshot());
        assert!(report.nodes.is_empty() && report.next_hops.is_empty());
        assert_eq!(report.totals.rtt_ms, None);
        let json = serde_json::to_value(&report).unwrap();
        assert!(json["totals"]["rtt_ms"].is_null());
    }
}
