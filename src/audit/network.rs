//! Which network parameters an audit applies: the ones the nodes publish in
//! their signed descriptors, not defaults the auditor would have to guess.
//!
//! The network's parameters are the set published by the most nodes of the
//! topology (ties go to the audited node's set, then to the smallest, so the
//! rule is deterministic). Each hop's required delay is computed with that
//! hop's own published delays, so an honest node that merely runs other
//! settings is reported `MISCONFIGURED`, not `NOT MIXING`, and does not
//! disturb the fit of the nodes around it. An operator may override a
//! parameter; the audit then says so.

use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

use crate::sphinx::NodeId;
use crate::topology::{NetworkParams, Topology};

/// Parameters given on the command line instead of the published ones.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Overrides {
    /// The mean mixing delay.
    pub mean_delay: Option<Duration>,
    /// The delay cap.
    pub max_delay: Option<Duration>,
    /// The neighbour-set size.
    pub neighbors_k: Option<usize>,
}

/// The parameters an audit works with.
#[derive(Clone, Debug, PartialEq)]
pub struct NetworkView {
    /// The network's parameters, overrides applied.
    pub network: NetworkParams,
    /// What each node publishes (`None`: its descriptor predates published
    /// parameters; the network's are assumed for it).
    pub published: BTreeMap<NodeId, Option<NetworkParams>>,
    /// Nodes publishing parameters other than the network's, with the
    /// differences (`"mean_delay_us 50000 ≠ 20000"`: the node's, then the
    /// network's).
    pub misconfigured: BTreeMap<NodeId, Vec<String>>,
    /// What the operator should know: overrides in force, nodes without
    /// published parameters, no published parameters at all.
    pub warnings: Vec<String>,
}

impl NetworkView {
    /// Reads the parameters `topology`'s descriptors publish (refresh them
    /// first: a running node re-signs its descriptor with its real
    /// settings) and applies `overrides`.
    pub fn resolve(topology: &Topology, target: NodeId, overrides: &Overrides) -> NetworkView {
        let published: BTreeMap<NodeId, Option<NetworkParams>> =
            topology.nodes().iter().map(|d| (d.id, d.network)).collect();
        let mut warnings = Vec::new();
        let majority = majority(&published, target);
        let mut network = majority.unwrap_or_else(|| {
            warnings.push(
                "no node publishes its network parameters (descriptors from an older \
                 betanet); assuming the defaults: pass --mean-delay-ms and --max-delay-ms \
                 if the network uses others"
                    .to_owned(),
            );
            NetworkParams::default()
        });
        apply(&mut network, overrides, &mut warnings);
        let unpublished: Vec<String> = published
            .iter()
            .filter(|(_, p)| p.is_none())
            .map(|(id, _)| id.to_string())
            .collect();
        if majority.is_some() && !unpublished.is_empty() {
            warnings.push(format!(
                "node(s) {} publish no network parameters; the network's are assumed for them",
                unpublished.join(", ")
            ));
        }
        let misconfigured = published
            .iter()
            .filter_map(|(id, p)| {
                let differences = p.as_ref()?.differences(&network);
                (!differences.is_empty()).then_some((*id, differences))
            })
            .collect();
        NetworkView {
            network,
            published,
            misconfigured,
            warnings,
        }
    }

    /// The parameters `node` mixes with: its own published ones, else the
    /// network's.
    pub fn of(&self, node: &NodeId) -> NetworkParams {
        self.published
            .get(node)
            .copied()
            .flatten()
            .unwrap_or(self.network)
    }

    /// `node`'s mean and maximum delay.
    pub fn delays_of(&self, node: &NodeId) -> (Duration, Duration) {
        let p = self.of(node);
        (
            Duration::from_micros(p.mean_delay_us),
            Duration::from_micros(p.max_delay_us),
        )
    }
}

/// The most published set; ties go to the target's, then to the smallest.
fn majority(
    published: &BTreeMap<NodeId, Option<NetworkParams>>,
    target: NodeId,
) -> Option<NetworkParams> {
    let mut counts: HashMap<NetworkParams, usize> = HashMap::new();
    for params in published.values().flatten() {
        *counts.entry(*params).or_default() += 1;
    }
    let target_params = published.get(&target).copied().flatten();
    counts
        .into_iter()
        .max_by(|(a, na), (b, nb)| {
            na.cmp(nb)
                .then_with(|| (Some(*a) == target_params).cmp(&(Some(*b) == target_params)))
                .then_with(|| key(b).cmp(&key(a)))
        })
        .map(|(params, _)| params)
}

/// A total order on parameter sets, for deterministic tie-breaking.
fn key(p: &NetworkParams) -> [u64; 6] {
    [
        p.mean_delay_us,
        p.max_delay_us,
        p.vrf_epoch_seconds,
        p.neighbors_k.into(),
        p.loop_cover_millihertz,
        p.drop_cover_millihertz,
    ]
}

fn apply(network: &mut NetworkParams, overrides: &Overrides, warnings: &mut Vec<String>) {
    let mut said = Vec::new();
    if let Some(mean) = overrides.mean_delay {
        network.mean_delay_us = micros(mean);
        said.push(format!("mean delay {} ms", mean.as_secs_f64() * 1e3));
    }
    if let Some(max) = overrides.max_delay {
        network.max_delay_us = micros(max);
        said.push(format!("max delay {} ms", max.as_secs_f64() * 1e3));
    }
    if let Some(k) = overrides.neighbors_k {
        network.neighbors_k = u32::try_from(k).unwrap_or(u32::MAX);
        said.push(format!("neighbors_k {k}"));
    }
    if !said.is_empty() {
        warnings.push(format!(
            "overriding the published network parameters with {}: nodes that publish \
             other values will be reported MISCONFIGURED",
            said.join(", ")
        ));
    }
}

fn micros(d: Duration) -> u64 {
    u64::try_from(d.as_micros()).unwrap_or(u64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn params(mean_ms: u64) -> NetworkParams {
        NetworkParams {
            mean_delay_us: mean_ms * 1000,
            ..NetworkParams::default()
        }
    }

    fn id(n: u8) -> NodeId {
        NodeId::from_bytes([n; 16])
    }

    #[test]
    fn the_majority_wins_and_ties_go_to_the_target() {
        let published: BTreeMap<NodeId, Option<NetworkParams>> = [
            (id(1), Some(params(20))),
            (id(2), Some(params(20))),
            (id(3), Some(params(50))),
            (id(4), None),
        ]
        .into();
        assert_eq!(majority(&published, id(3)), Some(params(20)));
        let tie: BTreeMap<_, _> = [(id(1), Some(params(20))), (id(2), Some(params(50)))].into();
        assert_eq!(majority(&tie, id(2)), Some(params(50)));
        assert_eq!(majority(&tie, id(1)), Some(params(20)));
        // Neither is the target's: the smaller set, whatever the map order.
        assert_eq!(majority(&tie, id(9)), Some(params(20)));
        let none: BTreeMap<_, _> = [(id(1), None)].into();
        assert_eq!(majority(&none, id(1)), None);
    }

    #[test]
    fn overrides_are_applied_and_announced() {
        let mut network = params(20);
        let mut warnings = Vec::new();
        apply(&mut network, &Overrides::default(), &mut warnings);
        assert!(warnings.is_empty());
        let overrides = Overrides {
            mean_delay: Some(Duration::from_millis(5)),
            neighbors_k: Some(2),
            ..Overrides::default()
        };
        apply(&mut network, &overrides, &mut warnings);
        assert_eq!(network.mean_delay_us, 5_000);
        assert_eq!(network.neighbors_k, 2);
        assert_eq!(warnings.len(), 1);
        assert!(warnings[0].contains("mean delay 5 ms"), "{warnings:?}");
    }
}
