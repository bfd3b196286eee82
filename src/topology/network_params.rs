//! The network parameters a node publishes in its signed descriptor: the
//! mixing and cover settings every node of a network must share, so that a
//! verifier (`betanet audit`) reads them instead of assuming defaults.
//!
//! Every value is an unsigned integer (microseconds, seconds, millihertz) so
//! the canonical signed JSON is the same bytes in every language: floats have
//! no single canonical text form. See `docs/spec/descriptor-v1.md`.

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::config::Config;

/// The parameters of the network a node runs in, as it publishes them.
///
/// Field order is the canonical (signed) order.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NetworkParams {
    /// Mean of the exponential mixing delay, µs (`mixing.mean_delay_ms`).
    pub mean_delay_us: u64,
    /// Cap on one packet's mixing delay, µs (`mixing.max_delay_ms`).
    pub max_delay_us: u64,
    /// Length of a VRF epoch, seconds (`vrf.epoch_seconds`).
    pub vrf_epoch_seconds: u64,
    /// Next-layer nodes a node forwards to; 0 = the whole next layer
    /// (`vrf.neighbors_k`).
    pub neighbors_k: u32,
    /// Loop cover rate, packets per 1000 s
    /// (`cover_traffic.generation_rate_pps` × 1000; 0 when cover is off).
    pub loop_cover_millihertz: u64,
    /// Drop cover rate, packets per 1000 s
    /// (`cover_traffic.drop_rate_pps` × 1000; 0 when cover is off).
    pub drop_cover_millihertz: u64,
}

impl Default for NetworkParams {
    /// The parameters of the default configuration.
    fn default() -> Self {
        NetworkParams::from_config(&Config::default())
    }
}

impl NetworkParams {
    /// The parameters a node running `config` applies.
    pub fn from_config(config: &Config) -> Self {
        let cover = |rate: f64| {
            if config.cover_traffic.enabled {
                thousandths(rate)
            } else {
                0
            }
        };
        NetworkParams {
            mean_delay_us: thousandths(config.mixing.mean_delay_ms),
            max_delay_us: thousandths(config.mixing.max_delay_ms),
            vrf_epoch_seconds: config.vrf.epoch_seconds,
            neighbors_k: u32::try_from(config.vrf.neighbors_k).unwrap_or(u32::MAX),
            loop_cover_millihertz: cover(config.cover_traffic.generation_rate_pps),
            drop_cover_millihertz: cover(config.cover_traffic.drop_rate_pps),
        }
    }

    /// The mean mixing delay in milliseconds.
    pub fn mean_delay_ms(&self) -> f64 {
        self.mean_delay_us as f64 / 1e3
    }

    /// The delay cap in milliseconds.
    pub fn max_delay_ms(&self) -> f64 {
        self.max_delay_us as f64 / 1e3
    }

    /// The names of the fields on which `self` and `other` differ, with
    /// both values (`"mean_delay_us 50000 ≠ 20000"`), for reports.
    pub fn differences(&self, other: &NetworkParams) -> Vec<String> {
        let fields: [(&str, u64, u64); 6] = [
            ("mean_delay_us", self.mean_delay_us, other.mean_delay_us),
            ("max_delay_us", self.max_delay_us, other.max_delay_us),
            (
                "vrf_epoch_seconds",
                self.vrf_epoch_seconds,
                other.vrf_epoch_seconds,
            ),
            (
                "neighbors_k",
                self.neighbors_k.into(),
                other.neighbors_k.into(),
            ),
            (
                "loop_cover_millihertz",
                self.loop_cover_millihertz,
                other.loop_cover_millihertz,
            ),
            (
                "drop_cover_millihertz",
                self.drop_cover_millihertz,
                other.drop_cover_millihertz,
            ),
        ];
        fields
            .into_iter()
            .filter(|(_, a, b)| a != b)
            .map(|(name, a, b)| format!("{name} {a} ≠ {b}"))
            .collect()
    }
}

impl fmt::Display for NetworkParams {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "mean delay {} ms, max delay {} ms, VRF epoch {} s, neighbors_k {}, \
             cover {}/{} mHz (loop/drop)",
            self.mean_delay_ms(),
            self.max_delay_ms(),
            self.vrf_epoch_seconds,
            self.neighbors_k,
            self.loop_cover_millihertz,
            self.drop_cover_millihertz
        )
    }
}

/// `round(x × 1000)` as an integer; config validation keeps `x` finite and
/// non-negative, and anything else saturates rather than wraps.
fn thousandths(x: f64) -> u64 {
    // `as` saturates (NaN → 0), which is the safe reading of a bad value.
    (x * 1e3).round() as u64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn from_config_rounds_to_integers() {
        let mut config = Config::default();
        config.mixing.mean_delay_ms = 20.0004;
        config.mixing.max_delay_ms = 500.0;
        config.vrf.epoch_seconds = 60;
        config.vrf.neighbors_k = 2;
        config.cover_traffic.generation_rate_pps = 12.5;
        config.cover_traffic.drop_rate_pps = 0.001;
        let p = NetworkParams::from_config(&config);
        assert_eq!(
            p,
            NetworkParams {
                mean_delay_us: 20_000,
                max_delay_us: 500_000,
                vrf_epoch_seconds: 60,
                neighbors_k: 2,
                loop_cover_millihertz: 12_500,
                drop_cover_millihertz: 1,
            }
        );
        config.cover_traffic.enabled = false;
        let off = NetworkParams::from_config(&config);
        assert_eq!(
            (off.loop_cover_millihertz, off.drop_cover_millihertz),
            (0, 0)
        );
        assert_eq!(p.differences(&off).len(), 2);
        assert_eq!(
            p.differences(&off)[0],
            "loop_cover_millihertz 12500 ≠ 0".to_owned()
        );
    }

    #[test]
    fn canonical_json_is_integers_in_order() {
        let p = NetworkParams::from_config(&Config::default());
        assert_eq!(
            serde_json::to_string(&p).unwrap(),
            "{\"mean_delay_us\":50000,\"max_delay_us\":2000000,\"vrf_epoch_seconds\":3600,\
             \"neighbors_k\":0,\"loop_cover_millihertz\":100000,\"drop_cover_millihertz\":0}"
        );
        assert!(serde_json::from_str::<NetworkParams>("{\"mean_delay_us\":1.5}").is_err());
    }
}
