//! A published curve to check the simulator against, and the closed form
//! both should follow.
//!
//! Piotrowska's discrete-event mix network simulator (the one built for
//! Loopix; arXiv 2107.12172, "Studying the anonymity trilemma with a
//! discrete-event mix network simulator"; its code is
//! `github.com/aniampio/Simulator`) reports, for a stratified ("Nym")
//! mixnet of 3 layers, mean delay 0.1 s per mix and users each sending
//! Poisson real traffic at 1 message/s without cover, the entropy below
//! against the number of users. The numbers are those of the paper's
//! figure as committed with its plotting code
//! (`various_simulation_plots.py`, commit `cebeb6f`, 2020-12-07).

/// One published point.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct PublishedPoint {
    /// Users (clients), each sending 1 real message per second.
    pub users: u32,
    /// Mean entropy (bits) the simulator reports.
    pub entropy_bits: f64,
    /// Mean end-to-end latency (seconds) it reports.
    pub latency_s: f64,
}

/// The published setup: mix layers.
pub const LAYERS: usize = 3;
/// The published setup: mean delay per mix, in seconds.
pub const MEAN_DELAY_S: f64 = 0.1;
/// The published setup: real messages per second per user.
pub const USER_RATE: f64 = 1.0;
/// The published setup: Sphinx processing time per hop, in seconds
/// (`Node.py` adds 0.386 ms to every packet).
pub const PROCESSING_S: f64 = 0.000_386;

/// Piotrowska's stratified-mixnet entropy against the number of users.
pub const STRATIFIED: [PublishedPoint; 4] = [
    PublishedPoint {
        users: 100,
        entropy_bits: 5.93,
        latency_s: 0.293_462,
    },
    PublishedPoint {
        users: 1_000,
        entropy_bits: 9.314_285_176_247_05,
        latency_s: 0.314_276,
    },
    PublishedPoint {
        users: 10_000,
        entropy_bits: 12.628_285_801_149_1,
        latency_s: 0.293_368,
    },
    PublishedPoint {
        users: 100_000,
        entropy_bits: 15.794_782_851_545_175,
        latency_s: 0.299_163,
    },
];

/// The closed form for a message that crossed `layers` exponential mixes
/// of mean `mean_delay_s` each, in a network whose entry traffic is a
/// Poisson stream of `rate` packets per second: its origin is spread over
/// the entry packets like the density `f` of the total delay, a
/// Gamma(`layers`, `mean_delay_s`), sampled at the entry times, so the
/// entropy tends to `log2(rate) + h(f)` with `h` the differential entropy
/// of the Gamma: `k + ln θ + ln Γ(k) + (1 − k) ψ(k)` nats. For one layer
/// this is the Poisson-mix model `log2(e · λ · μ)`
/// ([`crate::mixing::poisson_mix_bits`]).
pub fn gamma_path_bits(rate: f64, layers: usize, mean_delay_s: f64) -> f64 {
    if rate <= 0.0 || mean_delay_s <= 0.0 || layers == 0 {
        return 0.0;
    }
    let k = layers as f64;
    // Integer k: ln Γ(k) = ln (k−1)!, ψ(k) = −γ + Σ_{j<k} 1/j.
    let ln_gamma: f64 = (1..layers).map(|j| (j as f64).ln()).sum();
    let digamma = -0.577_215_664_901_532_9 + (1..layers).map(|j| 1.0 / j as f64).sum::<f64>();
    let h_nats = k + mean_delay_s.ln() + ln_gamma + (1.0 - k) * digamma;
    (rate.log2() + h_nats / std::f64::consts::LN_2).max(0.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_layer_is_the_poisson_mix_model() {
        let model = crate::mixing::poisson_mix_bits(200.0, 0.05);
        assert!((gamma_path_bits(200.0, 1, 0.05) - model).abs() < 1e-12);
    }

    #[test]
    fn the_closed_form_is_within_a_fifth_of_a_bit_of_the_published_points() {
        for p in STRATIFIED {
            let model = gamma_path_bits(f64::from(p.users) * USER_RATE, LAYERS, MEAN_DELAY_S);
            assert!(
                (model - p.entropy_bits).abs() < 0.2,
                "{} users: model {model}, published {}",
                p.users,
                p.entropy_bits
            );
        }
    }
}
