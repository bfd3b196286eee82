//! From timed samples to per-node verdicts: pure, no sockets or clocks.
//!
//! Each sample is one packet: the delay each hop had to hold it (recomputed
//! from the hop's verified VRF proof and the packet's replay tag) and the
//! transit the auditor measured. The packet cannot arrive sooner than the
//! network takes plus the sum of those delays; a node that skips or shortens
//! its delays makes its packets arrive sooner.
//!
//! # The model
//!
//! `transit ≈ baseline + Σ_hop held_node · expected_hop`, fitted by least
//! squares (in the private `fit` module):
//!
//! - `baseline` is the transit of a packet with zero delays (the network and
//!   processing time), measured as the fit's intercept. It cannot be the
//!   minimum of `transit − Σ expected`: when the audited node cheats, every
//!   sample is short by its own random amount, and the minimum is just the
//!   most-shortened packet.
//! - `held_node` is the share of its required delay the node really holds:
//!   1 for an honest node, 0 for one that skips mixing, 0.3 for one that
//!   holds packets 30 % of the time it must. Since the other hops vary from
//!   sample to sample while the audited node is always there, the fit can
//!   tell whose delays are missing.
//!
//! Late packets (queueing, scheduling hiccups) are never evidence of
//! cheating but would skew the fit, so samples far later than the first fit
//! predicts are left out (trimmed) and the fit is done once more. Only once:
//! when a node skips the delays of some packets but not others, repeated
//! trimming would keep discarding one group as outliers and converge on the
//! other. Early samples are never trimmed: they are the evidence.
//!
//! # The verdict
//!
//! A node's mean shortfall is `(1 − held) · mean expected delay` of its
//! samples: how much sooner than required it releases a packet, on average.
//! With `±` [`CONFIDENCE`] standard errors on `held`:
//!
//! - **OK** when even the pessimistic bound of the shortfall is within the
//!   tolerance;
//! - **NOT MIXING** when even the optimistic bound exceeds it;
//! - **INCONCLUSIVE** otherwise, or with fewer than [`MIN_SAMPLES`] samples.
//!
//! For the table, each of the node's samples also gets a deviation: the
//! packet's arrival relative to `floor + what the other hops hold (per the
//! fit) + this node's full required delay`, where the floor is the fastest
//! zero-delay transit (the baseline less the spread of the fastest
//! [`FLOOR_QUANTILE`] of samples). Honest packets arrive after it; negative
//! means early. The share of samples at most `tolerance` early and the worst
//! one show how the node behaves packet by packet.
//!
//! # Limits
//!
//! A node that shortens only some delays (say, only the short ones, or a
//! random few) shows up as a `held` between 0 and 1 and is flagged only if
//! its *mean* shortfall exceeds the tolerance. Such selective cheating also
//! spreads into the residuals of the honest nodes it shares samples with,
//! lowering their "within" share (their `held`, and so their verdict, is not
//! affected). A node that holds packets too long is not flagged: lateness
//! cannot be told apart from congestion.

use std::collections::BTreeMap;
use std::fmt;

use super::fit::{Row, fit};
use crate::sphinx::NodeId;

/// Fewer samples than this through a node leave its verdict inconclusive.
pub const MIN_SAMPLES: usize = 10;
/// How many standard errors the verdict's bounds on `held` span.
pub const CONFIDENCE: f64 = 3.0;
/// The quantile of the fit's residuals that sets the floor (see
/// [`Analysis::floor_ms`]).
pub const FLOOR_QUANTILE: f64 = 0.05;
/// Samples later than the median residual by this many robust standard
/// deviations are trimmed.
const TRIM_SIGMAS: f64 = 4.0;

/// One hop of a sample: the node and the delay it had to hold the packet.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct HopDelay {
    /// The node.
    pub node: NodeId,
    /// The delay its VRF proof and the packet's replay tag dictate, in ms.
    pub expected_ms: f64,
}

/// One packet: its hops and how long it took from send to delivery.
#[derive(Clone, Debug, PartialEq)]
pub struct Sample {
    /// The hops in path order.
    pub hops: Vec<HopDelay>,
    /// Measured transit (send to delivery), in ms.
    pub transit_ms: f64,
}

impl Sample {
    /// The sum of the hops' required delays, in ms.
    pub fn expected_total_ms(&self) -> f64 {
        self.hops.iter().map(|h| h.expected_ms).sum()
    }
}

/// The network parameters and thresholds of an analysis.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct AnalysisParams {
    /// How much sooner than required a node may release packets on average
    /// (and a packet may arrive) before it counts, in ms.
    pub tolerance_ms: f64,
    /// The network's mean mixing delay, in ms (sets the fit's prior).
    pub mean_delay_ms: f64,
}

/// What the audit concludes about one node.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// Holds its packets as long as its VRF proof requires.
    Ok,
    /// Releases its packets measurably sooner than required.
    NotMixing,
    /// Too few samples, or too noisy, to tell.
    Inconclusive,
    /// Publishes other network parameters (delays, epochs, neighbours,
    /// cover rates) than the rest of the network: whatever its timing, it
    /// does not mix as the network promises.
    Misconfigured,
}

impl fmt::Display for Verdict {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Verdict::Ok => "OK",
            Verdict::NotMixing => "NOT MIXING",
            Verdict::Inconclusive => "INCONCLUSIVE",
            Verdict::Misconfigured => "MISCONFIGURED",
        })
    }
}

/// The evidence about one node.
#[derive(Clone, Debug, PartialEq)]
pub struct NodeFinding {
    /// The node.
    pub node: NodeId,
    /// Samples whose path passed through it.
    pub samples: usize,
    /// Fitted share of its required delay it holds (1 = honest).
    pub held: f64,
    /// Standard error of `held`.
    pub held_stderr: f64,
    /// `(1 − held) ·` the mean required delay of its samples, in ms.
    pub mean_shortfall_ms: f64,
    /// Share of its samples at most `tolerance` early (see module docs).
    pub within_tolerance: f64,
    /// The most negative deviation among its samples, in ms.
    pub worst_deviation_ms: f64,
    /// The conclusion.
    pub verdict: Verdict,
}

/// The result of [`analyse`].
#[derive(Clone, Debug, PartialEq)]
pub struct Analysis {
    /// Transit of a packet with zero delays, in ms (`None`: no fit).
    pub baseline_ms: Option<f64>,
    /// The fastest transit at zero delays: `baseline` plus the
    /// [`FLOOR_QUANTILE`] of the residuals, in ms.
    pub floor_ms: Option<f64>,
    /// Spread of the fitted samples around the model, in ms.
    pub residual_sd_ms: f64,
    /// Samples analysed.
    pub samples: usize,
    /// Samples left out of the fit as late outliers.
    pub trimmed: usize,
    /// Samples that arrived more than `tolerance` before `floor + Σ required
    /// delays`.
    pub early: usize,
    /// One finding per node seen on a path, ordered by node id.
    pub nodes: Vec<NodeFinding>,
}

impl Analysis {
    /// The finding about `node`, if it was on any sampled path.
    pub fn finding(&self, node: &NodeId) -> Option<&NodeFinding> {
        self.nodes.iter().find(|f| f.node == *node)
    }
}

/// Fits the samples and judges every node on their paths (see the module
/// docs for the method).
pub fn analyse(samples: &[Sample], params: &AnalysisParams) -> Analysis {
    let columns: BTreeMap<NodeId, usize> = samples
        .iter()
        .flat_map(|s| s.hops.iter().map(|h| h.node))
        .collect::<std::collections::BTreeSet<_>>()
        .into_iter()
        .enumerate()
        .map(|(i, node)| (node, i + 1))
        .collect();
    let rows: Vec<Row> = samples
        .iter()
        .map(|s| Row {
            hops: s
                .hops
                .iter()
                .map(|h| (columns[&h.node], h.expected_ms))
                .collect(),
            transit_ms: s.transit_ms,
        })
        .collect();
    // One pseudo-packet of mean delay that says "held = 1".
    let prior = params.mean_delay_ms.powi(2).max(1.0);
    let tolerance = params.tolerance_ms.max(0.0);

    let all: Vec<&Row> = rows.iter().collect();
    let first = fit(&all, columns.len() + 1, prior);
    let kept: Vec<&Row> = match &first {
        Some(f) => {
            let residuals: Vec<f64> = rows.iter().map(|r| r.transit_ms - f.predict(r)).collect();
            let cutoff = late_cutoff(&residuals, tolerance);
            rows.iter()
                .zip(&residuals)
                .filter(|&(_, r)| *r <= cutoff)
                .map(|(row, _)| row)
                .collect()
        }
        None => all.clone(),
    };
    // Trimming could leave too few rows; the untrimmed fit is better than none.
    let (f, trimmed) = match (fit(&kept, columns.len() + 1, prior), first) {
        (Some(f), _) => (f, rows.len() - kept.len()),
        (None, Some(f)) => (f, 0),
        (None, None) => return unfitted(&columns, samples),
    };
    let residuals: Vec<f64> = rows.iter().map(|r| r.transit_ms - f.predict(r)).collect();
    // The floor: honest packets arrive no sooner than floor + their delays
    // (but for the few, by chance, below the quantile).
    let floor = quantile(residuals.clone(), FLOOR_QUANTILE);
    let above_floor: Vec<f64> = residuals.iter().map(|r| r - floor).collect();
    let early = rows
        .iter()
        .zip(&above_floor)
        .filter(|&(row, r)| {
            let shortfall: f64 = row.hops.iter().map(|&(j, e)| (1.0 - f.coef[j]) * e).sum();
            r - shortfall < -tolerance
        })
        .count();
    let nodes = columns
        .iter()
        .map(|(&node, &j)| {
            let (held, stderr) = (f.coef[j], f.stderr[j]);
            judge(node, held, stderr, samples, &above_floor, tolerance)
        })
        .collect();
    Analysis {
        baseline_ms: Some(f.coef[0]),
        floor_ms: Some(f.coef[0] + floor),
        residual_sd_ms: f.residual_sd,
        samples: samples.len(),
        trimmed,
        early,
        nodes,
    }
}

/// The analysis when nothing could be fitted: every node inconclusive.
fn unfitted(columns: &BTreeMap<NodeId, usize>, samples: &[Sample]) -> Analysis {
    Analysis {
        baseline_ms: None,
        floor_ms: None,
        residual_sd_ms: f64::NAN,
        samples: samples.len(),
        trimmed: 0,
        early: 0,
        nodes: columns
            .keys()
            .map(|&node| unfitted_node(node, samples))
            .collect(),
    }
}

/// The finding about `node`, given its fitted `held` and each sample's
/// residual above the floor.
fn judge(
    node: NodeId,
    held: f64,
    stderr: f64,
    samples: &[Sample],
    above_floor: &[f64],
    tolerance: f64,
) -> NodeFinding {
    // Deviation: the residual, less this node's fitted shortfall on the
    // packet — i.e. arrival against floor + the others' fitted holds +
    // this node's full required delay.
    let deviations: Vec<(f64, f64)> = samples
        .iter()
        .zip(above_floor)
        .filter_map(|(s, r)| {
            let hop = s.hops.iter().find(|h| h.node == node)?;
            Some((hop.expected_ms, r - (1.0 - held) * hop.expected_ms))
        })
        .collect();
    let n = deviations.len();
    let mean_expected = deviations.iter().map(|(e, _)| e).sum::<f64>() / n.max(1) as f64;
    let shortfall = |h: f64| (1.0 - h) * mean_expected;
    let verdict = if n < MIN_SAMPLES {
        Verdict::Inconclusive
    } else if shortfall(held + CONFIDENCE * stderr) > tolerance {
        Verdict::NotMixing
    } else if shortfall(held - CONFIDENCE * stderr) <= tolerance {
        Verdict::Ok
    } else {
        Verdict::Inconclusive
    };
    let within = deviations.iter().filter(|(_, d)| *d >= -tolerance).count();
    NodeFinding {
        node,
        samples: n,
        held,
        held_stderr: stderr,
        mean_shortfall_ms: shortfall(held),
        within_tolerance: within as f64 / n.max(1) as f64,
        worst_deviation_ms: deviations
            .iter()
            .map(|(_, d)| *d)
            .fold(f64::INFINITY, f64::min),
        verdict,
    }
}

/// A node's finding when no fit was possible (too few samples).
fn unfitted_node(node: NodeId, samples: &[Sample]) -> NodeFinding {
    let n = samples
        .iter()
        .filter(|s| s.hops.iter().any(|h| h.node == node))
        .count();
    NodeFinding {
        node,
        samples: n,
        held: f64::NAN,
        held_stderr: f64::NAN,
        mean_shortfall_ms: f64::NAN,
        within_tolerance: f64::NAN,
        worst_deviation_ms: f64::NAN,
        verdict: Verdict::Inconclusive,
    }
}

/// Residuals above this are late outliers: the median plus
/// [`TRIM_SIGMAS`] robust standard deviations (1.4826 · MAD), and never less
/// than the tolerance above it (so a very tight fit does not trim ordinary
/// jitter).
fn late_cutoff(residuals: &[f64], tolerance: f64) -> f64 {
    let median = median(residuals.to_vec());
    let mad = median_abs(residuals, median);
    median + (TRIM_SIGMAS * 1.4826 * mad).max(tolerance)
}

fn median_abs(values: &[f64], center: f64) -> f64 {
    median(values.iter().map(|v| (v - center).abs()).collect())
}

fn median(values: Vec<f64>) -> f64 {
    quantile(values, 0.5)
}

/// The `q` quantile (nearest rank below), 0 for no values.
fn quantile(mut values: Vec<f64>, q: f64) -> f64 {
    if values.is_empty() {
        return 0.0;
    }
    values.sort_by(f64::total_cmp);
    let i = ((values.len() as f64 * q) as usize).min(values.len() - 1);
    values[i]
}

#[cfg(test)]
mod tests;
