//! `betanet sim`: the whole network in virtual time, with the anonymity a
//! global passive adversary is left with.
//!
//! Every node is a [`MixCore`](crate::mixing::MixCore) driven as the
//! node's scheduler thread drives its own: packets are fed with
//! `handle(now, Input::Unwrapped{..})` once a crypto worker is done with
//! them, the node wakes at `poll_timeout()` and sends what
//! `poll_transmit(now)` releases. Around the cores: clients sending
//! Poisson real messages and cover loops on paths of one random node per
//! layer, node cover loops, links with latency and jitter, crypto workers
//! as a FIFO queue with the measured per-packet cost, node failures. Time
//! is virtual (an event queue), every choice comes from one seeded RNG:
//! the same [`SimConfig`] gives the same report.
//!
//! Anonymity: for each delivered real message, the entropy of the
//! adversary's distribution over its sender, computed exactly from the
//! transcript the adversary records (see [`observer`]). The model and
//! its validation are in `docs/simulation.md`.
//!
//! ```
//! use betanet::sim::{SimConfig, run};
//!
//! let config = SimConfig {
//!     nodes_per_layer: 2,
//!     clients: 50,
//!     virtual_seconds: 5.0,
//!     ..SimConfig::default()
//! };
//! let report = run(&config).unwrap();
//! assert!(report.delivered > 0);
//! assert!(report.mean_entropy_bits > 0.0);
//! ```

pub mod config;
pub mod events;
mod network;
pub mod observer;
pub mod plot;
pub mod published;
pub mod real_crypto;
pub mod report;

pub use config::SimConfig;
pub use report::{SimReport, Summary};

/// Runs the simulation `config` describes; refuses an invalid one
/// (naming the parameter).
pub fn run(config: &SimConfig) -> Result<SimReport, String> {
    config.validate()?;
    let started = std::time::Instant::now();
    let (tally, nodes, crypto) = network::Network::new(config).run();
    let mut report = SimReport::new(config, tally, nodes, started.elapsed().as_secs_f64());
    report.real_crypto = crypto;
    Ok(report)
}
