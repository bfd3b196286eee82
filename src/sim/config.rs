//! What a simulation runs: the network, its traffic and the adversary.

use serde::Serialize;

/// Most mix layers a path may cross (a packet's route is a fixed array).
pub const MAX_LAYERS: usize = 7;

/// Most nodes (origins pack a node index into 23 bits).
pub const MAX_NODES: usize = 1 << 20;

/// Messages whose entropy is computed when the sample is left to the
/// simulator (the mean's standard error is then below 0.01 bit).
pub const AUTO_ENTROPY_MESSAGES: f64 = 5_000.0;

/// Most packets a `real_crypto` run may create (each is real Sphinx work,
/// ~50 µs a hop, and its frame is kept while it travels).
pub const REAL_CRYPTO_PACKETS: f64 = 50_000.0;

/// Most clients (client ids are `u32`, and the estimator keeps one
/// accumulator per client).
pub const MAX_CLIENTS: usize = 10_000_000;

/// A simulation's parameters. [`Default`] gives the Loopix-like defaults
/// the `betanet sim` flags start from.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct SimConfig {
    /// Mix layers; every path crosses one node of each.
    pub layers: usize,
    /// Nodes in each layer.
    pub nodes_per_layer: usize,
    /// Clients sending into the network.
    pub clients: usize,
    /// Virtual time simulated, in seconds.
    pub virtual_seconds: f64,
    /// Virtual seconds at the start left out of latency and entropy
    /// statistics while the pools fill (`None`: ten mean end-to-end mixing
    /// delays, at most a fifth of the run).
    pub warmup_seconds: Option<f64>,
    /// Mean mixing delay per node, in milliseconds (exponential, as the
    /// VRF rule draws it).
    pub mean_delay_ms: f64,
    /// Real messages per second per client (Poisson).
    pub client_rate: f64,
    /// Client cover loops per second per client (Poisson): they cross
    /// every layer and come back to the client, indistinguishable from
    /// real messages on the wire.
    pub client_cover_rate: f64,
    /// Cover loops per second per node (Poisson).
    pub node_loop_rate: f64,
    /// Fixed one-way latency of every link, in milliseconds.
    pub link_latency_ms: f64,
    /// Uniform extra latency in `[0, jitter)` per packet, in milliseconds.
    pub link_jitter_ms: f64,
    /// Crypto workers per node.
    pub workers: usize,
    /// Service time of one unwrap on one worker, in microseconds.
    pub crypto_us: f64,
    /// Most packets a node's pool holds (the node's `CoreConfig::capacity`).
    pub pool_capacity: usize,
    /// Fraction of nodes that fail at `fail_at_seconds` (packets to or in
    /// them are lost).
    pub fail_fraction: f64,
    /// When the failures happen, in virtual seconds.
    pub fail_at_seconds: f64,
    /// Fraction of nodes the adversary controls (they reveal how they
    /// map inputs to outputs).
    pub compromised_fraction: f64,
    /// Fraction of delivered real messages whose sender entropy is
    /// computed (the estimator is exact per message; this bounds its
    /// cost). `None`: enough for about [`AUTO_ENTROPY_MESSAGES`].
    pub entropy_sample: Option<f64>,
    /// Build and unwrap real Sphinx packets too (small networks: at most
    /// [`REAL_CRYPTO_PACKETS`]), checking the simulated routing.
    pub real_crypto: bool,
    /// Seed of every random choice: the same seed gives the same report.
    pub seed: u64,
}

impl Default for SimConfig {
    fn default() -> Self {
        SimConfig {
            layers: 3,
            nodes_per_layer: 10,
            clients: 1000,
            virtual_seconds: 120.0,
            warmup_seconds: None,
            mean_delay_ms: 50.0,
            client_rate: 1.0,
            client_cover_rate: 1.0,
            node_loop_rate: 1.0,
            link_latency_ms: 20.0,
            link_jitter_ms: 10.0,
            workers: 2,
            // BENCHMARKS.md, "Quiet re-measure on main (2026-11-29)":
            // `unwrap_batch` per packet, portable build, wall clock.
            crypto_us: 51.0,
            pool_capacity: 10_000,
            fail_fraction: 0.0,
            fail_at_seconds: 60.0,
            compromised_fraction: 0.0,
            entropy_sample: None,
            real_crypto: false,
            seed: 1,
        }
    }
}

impl SimConfig {
    /// Nodes in the network.
    pub fn nodes(&self) -> usize {
        self.layers.saturating_mul(self.nodes_per_layer)
    }

    /// The warm-up actually used (see [`SimConfig::warmup_seconds`]).
    pub fn warmup(&self) -> f64 {
        self.warmup_seconds.unwrap_or_else(|| {
            let end_to_end = self.layers as f64 * self.mean_delay_ms / 1e3;
            (10.0 * end_to_end).min(self.virtual_seconds / 5.0)
        })
    }

    /// The entropy sample actually used (see [`SimConfig::entropy_sample`]).
    pub fn entropy_fraction(&self) -> f64 {
        self.entropy_sample.unwrap_or_else(|| {
            let measured = (self.virtual_seconds - self.warmup()).max(0.0);
            let messages = self.clients as f64 * self.client_rate * measured;
            if messages > 0.0 {
                (AUTO_ENTROPY_MESSAGES / messages).min(1.0)
            } else {
                1.0
            }
        })
    }

    /// Checks every parameter, naming the first one out of range.
    pub fn validate(&self) -> Result<(), String> {
        let finite_nonneg = |name: &str, v: f64| {
            if v.is_finite() && v >= 0.0 {
                Ok(())
            } else {
                Err(format!("{name} must be a finite number ≥ 0, got {v}"))
            }
        };
        let fraction = |name: &str, v: f64| {
            if (0.0..=1.0).contains(&v) {
                Ok(())
            } else {
                Err(format!("{name} must be in [0, 1], got {v}"))
            }
        };
        if !(1..=MAX_LAYERS).contains(&self.layers) {
            return Err(format!("layers must be 1..={MAX_LAYERS}"));
        }
        if self.nodes_per_layer == 0 || self.nodes() > MAX_NODES {
            return Err(format!(
                "nodes_per_layer must be ≥ 1, and at most {MAX_NODES} nodes in all"
            ));
        }
        if !(1..=MAX_CLIENTS).contains(&self.clients) {
            return Err(format!("clients must be 1..={MAX_CLIENTS}"));
        }
        if !(self.virtual_seconds > 0.0 && self.virtual_seconds <= 86_400.0) {
            return Err("virtual_seconds must be in (0, 86400]".into());
        }
        if let Some(w) = self.warmup_seconds {
            finite_nonneg("warmup_seconds", w)?;
            if w >= self.virtual_seconds {
                return Err("warmup_seconds must be shorter than the run".into());
            }
        }
        finite_nonneg("mean_delay_ms", self.mean_delay_ms)?;
        if self.mean_delay_ms > 3_600_000.0 {
            return Err("mean_delay_ms must be at most an hour".into());
        }
        finite_nonneg("client_rate", self.client_rate)?;
        finite_nonneg("client_cover_rate", self.client_cover_rate)?;
        finite_nonneg("node_loop_rate", self.node_loop_rate)?;
        finite_nonneg("link_latency_ms", self.link_latency_ms)?;
        finite_nonneg("link_jitter_ms", self.link_jitter_ms)?;
        finite_nonneg("crypto_us", self.crypto_us)?;
        finite_nonneg("fail_at_seconds", self.fail_at_seconds)?;
        for (name, ms) in [
            ("link_latency_ms", self.link_latency_ms),
            ("link_jitter_ms", self.link_jitter_ms),
            ("crypto_us", self.crypto_us / 1e3),
        ] {
            if ms > 3_600_000.0 {
                return Err(format!("{name} must be at most an hour"));
            }
        }
        // The event count is what costs: refuse runs that could not finish.
        let packets_per_second = self.clients as f64 * (self.client_rate + self.client_cover_rate)
            + self.nodes() as f64 * self.node_loop_rate;
        if packets_per_second * self.virtual_seconds > 1e10 {
            return Err("more than 10^10 packets: lower the rates, clients or duration".into());
        }
        if self.real_crypto {
            if packets_per_second * self.virtual_seconds > REAL_CRYPTO_PACKETS {
                return Err(format!(
                    "real_crypto is for small runs: at most {REAL_CRYPTO_PACKETS} packets"
                ));
            }
            if self.layers > crate::sphinx::MAX_HOPS {
                return Err(format!(
                    "real_crypto: a Sphinx path has at most {} hops",
                    crate::sphinx::MAX_HOPS
                ));
            }
        }
        if !(1..=64).contains(&self.workers) {
            return Err("workers must be 1..=64".into());
        }
        if !(1..=10_000_000).contains(&self.pool_capacity) {
            return Err("pool_capacity must be 1..=10^7".into());
        }
        fraction("fail_fraction", self.fail_fraction)?;
        fraction("compromised_fraction", self.compromised_fraction)?;
        if let Some(f) = self.entropy_sample {
            fraction("entropy_sample", f)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_valid_and_bad_values_are_named() {
        assert_eq!(SimConfig::default().validate(), Ok(()));
        let bad = |f: fn(&mut SimConfig)| {
            let mut c = SimConfig::default();
            f(&mut c);
            c.validate().unwrap_err()
        };
        assert!(bad(|c| c.layers = 0).contains("layers"));
        assert!(bad(|c| c.mean_delay_ms = f64::NAN).contains("mean_delay_ms"));
        assert!(bad(|c| c.client_rate = -1.0).contains("client_rate"));
        assert!(bad(|c| c.compromised_fraction = 1.5).contains("compromised_fraction"));
        assert!(bad(|c| c.virtual_seconds = f64::INFINITY).contains("virtual_seconds"));
        assert!(bad(|c| c.client_rate = 1e9).contains("10^10"));
        assert!(bad(|c| c.workers = 100_000).contains("workers"));
        assert!(bad(|c| c.nodes_per_layer = usize::MAX / 2).contains("nodes"));
        assert!(
            bad(|c| {
                c.real_crypto = true;
                c.clients = 100_000;
            })
            .contains("real_crypto")
        );
    }
}
