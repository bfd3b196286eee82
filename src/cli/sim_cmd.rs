//! `betanet sim`: the network simulated in virtual time (see [`crate::sim`]).

use std::path::PathBuf;

use clap::Args;

use super::Failure;
use crate::sim::{SimConfig, plot, run};

#[derive(Args, Debug)]
pub struct SimArgs {
    /// Mix layers (every path crosses one node of each).
    #[arg(long, default_value_t = 3)]
    layers: usize,
    /// Nodes in each layer.
    #[arg(long, default_value_t = 10)]
    nodes_per_layer: usize,
    /// Clients.
    #[arg(long, default_value_t = 1000)]
    clients: usize,
    /// Virtual seconds to simulate.
    #[arg(long, default_value_t = 120.0)]
    virtual_seconds: f64,
    /// Virtual seconds left out of latency and entropy statistics
    /// (default: ten end-to-end mixing delays, at most a fifth of the run).
    #[arg(long)]
    warmup_seconds: Option<f64>,
    /// Mean mixing delay per node (exponential, as the VRF rule).
    #[arg(long, default_value_t = 50.0)]
    mean_delay_ms: f64,
    /// Real messages per second per client (Poisson).
    #[arg(long, default_value_t = 1.0)]
    client_rate: f64,
    /// Cover loops per second per client (Poisson).
    #[arg(long, default_value_t = 1.0)]
    client_cover_rate: f64,
    /// Cover loops per second per node (Poisson).
    #[arg(long, default_value_t = 1.0)]
    node_loop_rate: f64,
    /// One-way latency of every link.
    #[arg(long, default_value_t = 20.0)]
    link_latency_ms: f64,
    /// Uniform extra latency per packet, in [0, jitter).
    #[arg(long, default_value_t = 10.0)]
    link_jitter_ms: f64,
    /// Crypto workers per node.
    #[arg(long, default_value_t = 2)]
    workers: usize,
    /// Unwrap time per packet per worker (default: the measured portable
    /// per-packet cost in BENCHMARKS.md).
    #[arg(long, default_value_t = 51.0)]
    crypto_us: f64,
    /// Most packets a node's pool holds.
    #[arg(long, default_value_t = 10_000)]
    pool_capacity: usize,
    /// Fraction of nodes that fail at --fail-at.
    #[arg(long, default_value_t = 0.0)]
    fail_fraction: f64,
    /// When nodes fail, in virtual seconds.
    #[arg(long, default_value_t = 60.0)]
    fail_at: f64,
    /// Fraction of nodes the adversary controls.
    #[arg(long, default_value_t = 0.0)]
    compromised_fraction: f64,
    /// Fraction of delivered messages whose sender entropy is computed
    /// (default: enough for about 20,000 messages).
    #[arg(long)]
    entropy_sample: Option<f64>,
    /// Also build and unwrap real Sphinx packets (small runs: at most
    /// 50,000 packets) and check they route as simulated.
    #[arg(long)]
    real_crypto: bool,
    /// Seed: the same seed gives the same report.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Print the report as JSON instead of text.
    #[arg(long)]
    json: bool,
    /// Also write report.json, report.txt and SVG plots into this directory.
    #[arg(long, value_name = "DIR")]
    out: Option<PathBuf>,
}

impl SimArgs {
    fn config(&self) -> SimConfig {
        SimConfig {
            layers: self.layers,
            nodes_per_layer: self.nodes_per_layer,
            clients: self.clients,
            virtual_seconds: self.virtual_seconds,
            warmup_seconds: self.warmup_seconds,
            mean_delay_ms: self.mean_delay_ms,
            client_rate: self.client_rate,
            client_cover_rate: self.client_cover_rate,
            node_loop_rate: self.node_loop_rate,
            link_latency_ms: self.link_latency_ms,
            link_jitter_ms: self.link_jitter_ms,
            workers: self.workers,
            crypto_us: self.crypto_us,
            pool_capacity: self.pool_capacity,
            fail_fraction: self.fail_fraction,
            fail_at_seconds: self.fail_at,
            compromised_fraction: self.compromised_fraction,
            entropy_sample: self.entropy_sample,
            real_crypto: self.real_crypto,
            seed: self.seed,
        }
    }
}

pub fn run_sim(args: SimArgs) -> Result<(), Failure> {
    let config = args.config();
    let report =
        run(&config).map_err(|e| Failure::with_code(format!("sim: {e}"), super::EXIT_CONFIG))?;
    if let Some(dir) = &args.out {
        std::fs::create_dir_all(dir)
            .map_err(|e| Failure::general(format!("cannot create {}: {e}", dir.display())))?;
        let write = |name: &str, body: &str| {
            std::fs::write(dir.join(name), body)
                .map_err(|e| Failure::general(format!("{}: {e}", dir.join(name).display())))
        };
        write("report.json", &report.to_json())?;
        write("report.txt", &report.to_text())?;
        plot::write_all(&report, dir).map_err(Failure::general)?;
    }
    if args.json {
        println!("{}", report.to_json());
    } else {
        print!("{}", report.to_text());
    }
    Ok(())
}
