//! The network parameters the consensus carries: the mixing and cover
//! settings of [`NetworkParams`] plus the Sphinx key schedule and the size
//! of the active set. Integers only, so the signed JSON is canonical.

use serde::{Deserialize, Serialize};

use crate::config::Config;
use crate::topology::NetworkParams;

/// The parameters every node of the network runs with, agreed by the
/// authorities (each field the median of the votes, see
/// [`median_params`]). Field order is the canonical (signed) order.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConsensusParams {
    /// Mixing delays, VRF epoch, neighbours, cover rates.
    pub network: NetworkParams,
    /// Sphinx key lifetime, seconds (`sphinx.key_epoch_seconds`).
    pub key_epoch_seconds: u64,
    /// How long a replaced Sphinx key is still accepted, seconds
    /// (`sphinx.key_grace_seconds`).
    pub key_grace_seconds: u64,
    /// Most nodes listed per layer; 0 = no limit. When a layer has more
    /// candidates, the shared random value picks which are active.
    pub max_nodes_per_layer: u32,
}

impl Default for ConsensusParams {
    fn default() -> Self {
        ConsensusParams::from_config(&Config::default(), 0)
    }
}

impl ConsensusParams {
    /// The parameters an authority configured with `config` proposes.
    pub fn from_config(config: &Config, max_nodes_per_layer: u32) -> Self {
        ConsensusParams {
            network: NetworkParams::from_config(config),
            key_epoch_seconds: config.sphinx.key_epoch_seconds,
            key_grace_seconds: config.sphinx.key_grace_seconds,
            max_nodes_per_layer,
        }
    }

    /// Every field as a number, in canonical order (for the median rule).
    fn to_fields(self) -> [u64; 9] {
        let n = self.network;
        [
            n.mean_delay_us,
            n.max_delay_us,
            n.vrf_epoch_seconds,
            n.neighbors_k.into(),
            n.loop_cover_millihertz,
            n.drop_cover_millihertz,
            self.key_epoch_seconds,
            self.key_grace_seconds,
            self.max_nodes_per_layer.into(),
        ]
    }

    fn from_fields(f: [u64; 9]) -> Self {
        let small = |v: u64| u32::try_from(v).unwrap_or(u32::MAX);
        ConsensusParams {
            network: NetworkParams {
                mean_delay_us: f[0],
                max_delay_us: f[1],
                vrf_epoch_seconds: f[2],
                neighbors_k: small(f[3]),
                loop_cover_millihertz: f[4],
                drop_cover_millihertz: f[5],
            },
            key_epoch_seconds: f[6],
            key_grace_seconds: f[7],
            max_nodes_per_layer: small(f[8]),
        }
    }
}

/// Each field the lower median of the proposals, then made coherent (the
/// delay cap at least the mean, epochs at least 1 s, the grace shorter than
/// the key epoch). `None` for no proposals.
///
/// A value proposed by more than half of the voters is the median, and any
/// median lies between two honest proposals when honest voters are the
/// majority: a minority can neither choose nor push a parameter outside
/// the honest range.
pub fn median_params(proposals: &[ConsensusParams]) -> Option<ConsensusParams> {
    if proposals.is_empty() {
        return None;
    }
    let rows: Vec<[u64; 9]> = proposals.iter().map(|p| p.to_fields()).collect();
    let mut out = [0u64; 9];
    for (i, slot) in out.iter_mut().enumerate() {
        let mut column: Vec<u64> = rows.iter().map(|r| r[i]).collect();
        column.sort_unstable();
        *slot = column[(column.len() - 1) / 2];
    }
    let mut params = ConsensusParams::from_fields(out);
    params.network.max_delay_us = params
        .network
        .max_delay_us
        .max(params.network.mean_delay_us);
    params.network.vrf_epoch_seconds = params.network.vrf_epoch_seconds.max(1);
    params.key_epoch_seconds = params.key_epoch_seconds.max(1);
    params.key_grace_seconds = params
        .key_grace_seconds
        .min(params.key_epoch_seconds.saturating_sub(1));
    Some(params)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn majority_value_wins_and_outliers_cannot_pull() {
        let honest = ConsensusParams::default();
        let mut evil = honest;
        evil.network.mean_delay_us = 0;
        evil.network.max_delay_us = u64::MAX;
        evil.key_epoch_seconds = 1;
        assert_eq!(median_params(&[honest, evil, honest]), Some(honest));
        assert_eq!(median_params(&[evil, honest, honest]), Some(honest));
        // Two honest authorities disagreeing: the lower of the two, never
        // the outlier.
        let mut other = honest;
        other.network.mean_delay_us = honest.network.mean_delay_us * 2;
        let got = median_params(&[honest, other, evil]).unwrap();
        assert_eq!(got.network.mean_delay_us, honest.network.mean_delay_us);
        assert_eq!(median_params(&[]), None);
    }

    #[test]
    fn result_is_coherent() {
        let mut a = ConsensusParams::default();
        a.network.mean_delay_us = 10;
        a.network.max_delay_us = 5;
        a.key_grace_seconds = a.key_epoch_seconds + 5;
        let got = median_params(&[a]).unwrap();
        assert!(got.network.max_delay_us >= got.network.mean_delay_us);
        assert!(got.key_grace_seconds < got.key_epoch_seconds);
    }
}
