//! Which node loses this node's loops: binary network tomography over a
//! bounded window of recent loop outcomes.
//!
//! A lost loop only says that *some* node on its path dropped it. Charging
//! it to every node on the path (as [`LossTable`](super::LossTable) counts
//! do) blames healthy nodes that merely shared a path with a dead one. Here
//! each node `n` gets a delivery rate `s_n`, the chance it passes a loop on,
//! fitted so that a loop's chance to return is the product of the rates of
//! the nodes on it:
//!
//! ```text
//! s_n ← returned_n / Σ_{loops through n} Π_{m on that loop, m ≠ n} s_m
//! ```
//!
//! starting from `s_n = returned_n / loops_n` and clamped to `[0, 1]`. A
//! healthy node whose loops fail only when they also cross a dead node sees
//! that dead node's `s ≈ 0` in its denominator and is exonerated; the loss
//! attributed to `n` is `1 − s_n`.
//!
//! Each step moves `s_n` only part of the way (geometrically, by `1/h` of
//! the ratio for paths of `h` nodes): every node of a path corrects for the
//! same deficit at once, and the full step would make them overshoot
//! together and oscillate. The fixed point is the same.
//!
//! Paths are kept grouped (identical paths share one counter), so a fit
//! costs per distinct path, not per loop, and the window's memory is
//! bounded by its capacity whatever node ids come and go.

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::time::Duration;

use crate::sphinx::NodeId;

/// The most loop outcomes a window ever holds.
pub const MAX_WINDOW: usize = 10_000;

/// The fewest outcomes a window holds, so that a low loop rate still has
/// enough of them to tell nodes apart.
pub const MIN_WINDOW: usize = 256;

/// How much history the window aims to cover at the configured loop rate
/// (within [`MIN_WINDOW`]`..=`[`MAX_WINDOW`]).
pub const WINDOW_SPAN: Duration = Duration::from_secs(300);

/// Iterations of the fit at most (it stops earlier once it has settled).
pub const FIT_ITERATIONS: usize = 64;

/// A change below this in every rate ends the fit.
const SETTLED: f64 = 1e-9;

/// The window size for a loop rate: the loops of [`WINDOW_SPAN`], within
/// [`MIN_WINDOW`]`..=`[`MAX_WINDOW`].
pub fn window_bound(rate_pps: f64) -> usize {
    let expected = rate_pps * WINDOW_SPAN.as_secs_f64();
    if !expected.is_finite() || expected >= MAX_WINDOW as f64 {
        return MAX_WINDOW;
    }
    // Non-negative and below the cap here (NaN was caught above).
    (expected.max(0.0).ceil() as usize).clamp(MIN_WINDOW, MAX_WINDOW)
}

/// The loops of the window that took one path.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PathGroup {
    /// The other nodes on the path, each once, sorted.
    pub nodes: Arc<[NodeId]>,
    /// Loops of the window along this path.
    pub loops: u64,
    /// Of those, the loops that came back.
    pub returned: u64,
}

/// The fit's verdict on one node.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Attribution {
    /// The node.
    pub node: NodeId,
    /// Estimated share of loops it passes on (0..1).
    pub delivery: f64,
    /// Loops of the window through it.
    pub loops: u64,
    /// Of those, the loops that came back.
    pub returned: u64,
}

impl Attribution {
    /// Loss attributed to the node: `1 − delivery` (0..1).
    pub fn loss(&self) -> f64 {
        1.0 - self.delivery
    }
}

/// The last `capacity` resolved loops (returned or lost) and their paths.
#[derive(Clone, Debug)]
pub struct AttributionWindow {
    capacity: usize,
    /// Oldest first; the path is shared with its entry in `groups`.
    outcomes: VecDeque<(Arc<[NodeId]>, bool)>,
    groups: HashMap<Arc<[NodeId]>, (u64, u64)>,
}

impl AttributionWindow {
    /// An empty window of `capacity` outcomes (within `1..=`[`MAX_WINDOW`]).
    pub fn new(capacity: usize) -> Self {
        AttributionWindow {
            capacity: capacity.clamp(1, MAX_WINDOW),
            outcomes: VecDeque::new(),
            groups: HashMap::new(),
        }
    }

    /// Outcomes held at most.
    pub fn capacity(&self) -> usize {
        self.capacity
    }

    /// Outcomes held.
    pub fn len(&self) -> usize {
        self.outcomes.len()
    }

    /// True if no loop was resolved yet.
    pub fn is_empty(&self) -> bool {
        self.outcomes.is_empty()
    }

    /// Records a resolved loop through `path` (the nodes other than this
    /// one; order and repeats do not matter), forgetting the oldest outcome
    /// when full. A loop through no other node says nothing and is ignored.
    pub fn record(&mut self, path: &[NodeId], returned: bool) {
        let mut nodes = path.to_vec();
        nodes.sort_unstable();
        nodes.dedup();
        if nodes.is_empty() {
            return;
        }
        if self.outcomes.len() >= self.capacity {
            self.forget_oldest();
        }
        let key = match self.groups.get_key_value(nodes.as_slice()) {
            Some((key, _)) => Arc::clone(key),
            None => Arc::from(nodes),
        };
        let group = self.groups.entry(Arc::clone(&key)).or_default();
        group.0 += 1;
        group.1 += u64::from(returned);
        self.outcomes.push_back((key, returned));
    }

    /// The window grouped by path (in no particular order).
    pub fn paths(&self) -> Vec<PathGroup> {
        self.groups
            .iter()
            .map(|(nodes, &(loops, returned))| PathGroup {
                nodes: Arc::clone(nodes),
                loops,
                returned,
            })
            .collect()
    }

    /// [`fit`] over this window.
    pub fn fit(&self) -> Vec<Attribution> {
        fit(&self.paths())
    }

    fn forget_oldest(&mut self) {
        let Some((path, returned)) = self.outcomes.pop_front() else {
            return;
        };
        if let Some(group) = self.groups.get_mut(&path) {
            group.0 = group.0.saturating_sub(1);
            group.1 = group.1.saturating_sub(u64::from(returned));
            if group.0 == 0 {
                self.groups.remove(&path);
            }
        }
    }
}

/// Fits every node's delivery rate to `groups` (see the module docs);
/// worst (lowest delivery) first, then by id. Pure: the same groups in any
/// order give the same answer.
pub fn fit(groups: &[PathGroup]) -> Vec<Attribution> {
    // Nodes by index, in id order so the arithmetic does not depend on the
    // order of `groups`.
    let mut ids: Vec<NodeId> = groups
        .iter()
        .flat_map(|g| g.nodes.iter().copied())
        .collect();
    ids.sort_unstable();
    ids.dedup();
    let index: HashMap<NodeId, usize> = ids.iter().enumerate().map(|(i, id)| (*id, i)).collect();
    let mut members: Vec<(Vec<usize>, f64)> = groups
        .iter()
        .filter(|g| g.loops > 0)
        .map(|g| {
            let mut m: Vec<usize> = g.nodes.iter().map(|id| index[id]).collect();
            m.sort_unstable();
            m.dedup();
            (m, g.loops as f64)
        })
        .collect();
    members.sort_by(|a, b| a.0.cmp(&b.0));

    let n = ids.len();
    let mut loops = vec![0u64; n];
    let mut returned = vec![0u64; n];
    for g in groups {
        for id in g.nodes.iter() {
            let i = index[id];
            loops[i] += g.loops;
            returned[i] += g.returned.min(g.loops);
        }
    }
    let mut s: Vec<f64> = (0..n)
        .map(|i| match loops[i] {
            0 => 1.0,
            l => (returned[i] as f64 / l as f64).clamp(0.0, 1.0),
        })
        .collect();
    let longest = members.iter().map(|(m, _)| m.len()).max().unwrap_or(1);
    let step = 1.0 / longest.max(1) as f64;

    let mut denominator = vec![0.0f64; n];
    let mut others = Vec::new();
    for _ in 0..FIT_ITERATIONS {
        denominator.fill(0.0);
        for (m, weight) in &members {
            products_of_others(m, &s, &mut others);
            for (&i, product) in m.iter().zip(&others) {
                denominator[i] += weight * product;
            }
        }
        let mut change = 0.0f64;
        for i in 0..n {
            // Every other node on its loops is believed dead: those loops
            // say nothing about this one, so keep the current estimate.
            if denominator[i] <= f64::MIN_POSITIVE {
                continue;
            }
            let target = (returned[i] as f64 / denominator[i]).clamp(0.0, 1.0);
            let next = (s[i].powf(1.0 - step) * target.powf(step)).clamp(0.0, 1.0);
            if next.is_finite() {
                change = change.max((next - s[i]).abs());
                s[i] = next;
            }
        }
        if change < SETTLED {
            break;
        }
    }

    let mut out: Vec<Attribution> = (0..n)
        .map(|i| Attribution {
            node: ids[i],
            delivery: s[i],
            loops: loops[i],
            returned: returned[i],
        })
        .collect();
    out.sort_by(|a, b| a.delivery.total_cmp(&b.delivery).then(a.node.cmp(&b.node)));
    out
}

/// For each member `i` of a path, the product of the rates of the others
/// (prefix and suffix products: linear in the path length).
fn products_of_others(members: &[usize], s: &[f64], out: &mut Vec<f64>) {
    out.clear();
    let mut prefix = 1.0;
    for &i in members {
        out.push(prefix);
        prefix *= s[i];
    }
    let mut suffix = 1.0;
    for (k, &i) in members.iter().enumerate().rev() {
        out[k] *= suffix;
        suffix *= s[i];
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;
    use rand::{Rng, RngExt};
    use rand_chacha::ChaCha20Rng;

    fn node(n: u8) -> NodeId {
        NodeId::from_bytes([n; 16])
    }

    fn loss_of(fit: &[Attribution], id: NodeId) -> f64 {
        fit.iter()
            .find(|a| a.node == id)
            .map(Attribution::loss)
            .unwrap()
    }

    /// Loops from an entry node through a random middle and a random exit
    /// (the normal 3-hop loop): middles 10.., exits 20...
    fn random_loops(
        window: &mut AttributionWindow,
        rng: &mut impl Rng,
        loops: usize,
        per_layer: u8,
        delivers: impl Fn(NodeId) -> bool,
    ) {
        for _ in 0..loops {
            let middle = node(10 + rng.random_range(0..per_layer));
            let exit = node(20 + rng.random_range(0..per_layer));
            window.record(&[middle, exit], delivers(middle) && delivers(exit));
        }
    }

    #[test]
    fn one_dead_node_takes_the_blame_and_the_healthy_are_exonerated() {
        let mut rng = ChaCha20Rng::seed_from_u64(1);
        let mut window = AttributionWindow::new(MAX_WINDOW);
        let dead = node(11);
        random_loops(&mut window, &mut rng, 3000, 3, |n| n != dead);
        let fit = window.fit();
        assert_eq!(fit[0].node, dead, "{fit:?}");
        assert!(loss_of(&fit, dead) > 0.99, "{fit:?}");
        for a in &fit[1..] {
            assert!(a.loss() < 0.01, "{a:?} blamed: {fit:?}");
        }
        // Naive per-node counting would have blamed every exit for about a
        // third of its loops.
        let exit = fit.iter().find(|a| a.node == node(20)).unwrap();
        assert!(exit.returned * 10 < exit.loops * 8, "{exit:?}");
    }

    #[test]
    fn all_healthy_means_no_loss() {
        let mut rng = ChaCha20Rng::seed_from_u64(2);
        let mut window = AttributionWindow::new(MAX_WINDOW);
        random_loops(&mut window, &mut rng, 2000, 3, |_| true);
        let fit = window.fit();
        assert_eq!(fit.len(), 6);
        for a in &fit {
            assert_eq!(a.loss(), 0.0, "{a:?}");
        }
    }

    /// Loops cycling evenly through the 2 × 2 (middle, exit) pairs.
    fn even_loops(window: &mut AttributionWindow, loops: u32, fails: impl Fn(u32, NodeId) -> bool) {
        for k in 0..loops {
            let (middle, exit) = (node(10 + (k % 2) as u8), node(20 + (k / 2 % 2) as u8));
            window.record(&[middle, exit], !fails(k, middle));
        }
    }

    #[test]
    fn a_dead_node_with_earlier_successes_is_still_the_worst() {
        // The window holds loops from before the node died and after.
        let mut window = AttributionWindow::new(MAX_WINDOW);
        let dead = node(10);
        even_loops(&mut window, 400, |_, _| false);
        even_loops(&mut window, 100, |_, m| m == dead);
        let fit = window.fit();
        assert_eq!(fit[0].node, dead);
        // 50 of its 250 loops failed, all of them because of it.
        assert!((loss_of(&fit, dead) - 0.2).abs() < 1e-6, "{fit:?}");
        for a in &fit[1..] {
            assert!(a.loss() < 1e-6, "{a:?}: {fit:?}");
        }

        // Randomly mixed paths: sampling noise, but the same verdict.
        let mut rng = ChaCha20Rng::seed_from_u64(3);
        let mut window = AttributionWindow::new(MAX_WINDOW);
        random_loops(&mut window, &mut rng, 400, 2, |_| true);
        random_loops(&mut window, &mut rng, 200, 2, |n| n != dead);
        let fit = window.fit();
        assert_eq!(fit[0].node, dead);
        let dead_loss = loss_of(&fit, dead);
        assert!(dead_loss > 0.2, "{fit:?}");
        for a in &fit[1..] {
            assert!(a.loss() < dead_loss / 3.0, "{a:?}: {fit:?}");
        }
    }

    #[test]
    fn uniform_loss_is_shared_not_pinned_on_one_layer() {
        // 19 of every 100 loops fail on every path: no node stands out, and
        // both nodes of a path share the blame (0.9 × 0.9 = 0.81).
        let mut window = AttributionWindow::new(MAX_WINDOW);
        even_loops(&mut window, 400, |k, _| k / 4 < 19);
        let fit = window.fit();
        assert_eq!(fit.len(), 4);
        for a in &fit {
            assert!((a.delivery - 0.9).abs() < 1e-6, "{fit:?}");
        }
    }

    #[test]
    fn the_window_is_bounded_and_forgets_the_oldest() {
        let mut window = AttributionWindow::new(100);
        // Churn through many node ids: memory is bounded by the window.
        for k in 0..10_000u32 {
            let a = NodeId::from_bytes([
                (k % 251) as u8,
                (k / 251) as u8,
                1,
                0,
                0,
                0,
                0,
                0,
                0,
                0,
                0,
                0,
                0,
                0,
                0,
                0,
            ]);
            window.record(&[a, node(200)], false);
        }
        assert_eq!(window.len(), 100);
        assert!(window.paths().len() <= 100);
        let total: u64 = window.paths().iter().map(|g| g.loops).sum();
        assert_eq!(total, 100);
        assert!(window.fit().len() <= 101);

        // Old failures age out: after 100 returned loops, nobody is blamed.
        for _ in 0..100 {
            window.record(&[node(1), node(2)], true);
        }
        assert_eq!(window.paths().len(), 1);
        assert!(window.fit().iter().all(|a| a.loss() == 0.0));
        // Empty paths are ignored; repeats count once.
        window.record(&[], false);
        window.record(&[node(1), node(1), node(2)], true);
        assert_eq!(window.paths().len(), 1);
        assert_eq!(window.len(), 100);
    }

    #[test]
    fn degenerate_input_never_gives_nan() {
        assert!(fit(&[]).is_empty());
        let all_lost = vec![PathGroup {
            nodes: Arc::from(vec![node(1), node(2)]),
            loops: 5,
            returned: 0,
        }];
        let f = fit(&all_lost);
        assert!(f.iter().all(|a| a.loss() == 1.0), "{f:?}");
        // Inconsistent counts (more returned than sent) are clamped.
        let odd = vec![
            PathGroup {
                nodes: Arc::from(vec![node(1)]),
                loops: 1,
                returned: 9,
            },
            PathGroup {
                nodes: Arc::from(vec![node(2)]),
                loops: 0,
                returned: 0,
            },
        ];
        for a in fit(&odd) {
            assert!(a.delivery.is_finite() && (0.0..=1.0).contains(&a.delivery));
        }
        // Group order does not matter.
        let mut rng = ChaCha20Rng::seed_from_u64(4);
        let mut window = AttributionWindow::new(MAX_WINDOW);
        random_loops(&mut window, &mut rng, 500, 3, |n| n != node(21));
        let mut groups = window.paths();
        let a = fit(&groups);
        groups.reverse();
        assert_eq!(a, fit(&groups));
    }

    #[test]
    fn window_bounds() {
        assert_eq!(window_bound(10.0), 3000);
        assert_eq!(window_bound(0.0), MIN_WINDOW);
        assert_eq!(window_bound(1e9), MAX_WINDOW);
        assert_eq!(window_bound(f64::NAN), MAX_WINDOW);
        assert_eq!(AttributionWindow::new(0).capacity(), 1);
        assert_eq!(AttributionWindow::new(usize::MAX).capacity(), MAX_WINDOW);
    }
}
