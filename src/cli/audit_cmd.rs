//! `betanet audit`: check that a node holds packets as long as its VRF
//! proofs require (see [`crate::audit`]). Exit 0 when it does; 1 when it
//! does not, when a proof fails to verify, or when nothing can be concluded.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::Args;

use super::Failure;
use crate::audit::{self, AuditParams};
use crate::config::MixingConfig;
use crate::sphinx::NodeId;
use crate::topology::Topology;

/// `betanet audit` arguments. The delay parameters are the network's (every
/// node must use the same ones), so they default to the config defaults.
#[derive(Args, Debug)]
pub struct AuditArgs {
    /// The network's topology.json (descriptors with the VRF keys).
    #[arg(long, value_name = "PATH")]
    topology: PathBuf,
    /// The id of the node to audit (32 hex digits).
    #[arg(long, value_name = "ID")]
    node: NodeId,
    /// Packets to send through the node.
    #[arg(long, value_name = "N", default_value_t = 200)]
    samples: usize,
    /// Where the exits deliver the packets back (UDP). Every exit's
    /// `exit.allow` must include this address (the default allows loopback
    /// only).
    #[arg(long, value_name = "IP:PORT", default_value = "127.0.0.1:0")]
    listen: SocketAddr,
    /// The network's mean mixing delay (mixing.mean_delay_ms).
    #[arg(long, value_name = "MS", default_value_t = MixingConfig::default().mean_delay_ms)]
    mean_delay_ms: f64,
    /// The network's delay cap (mixing.max_delay_ms).
    #[arg(long, value_name = "MS", default_value_t = MixingConfig::default().max_delay_ms)]
    max_delay_ms: f64,
    /// How much sooner than required a node may release packets on average.
    #[arg(long, value_name = "MS", default_value_t = 2.0)]
    tolerance_ms: f64,
    /// Pause between two packets sent.
    #[arg(long, value_name = "MS", default_value_t = 5)]
    interval_ms: u64,
    /// The network's neighbour-set size (vrf.neighbors_k; 0 = whole layer).
    #[arg(long, value_name = "K", default_value_t = 0)]
    neighbors_k: usize,
}

pub fn run(args: AuditArgs) -> Result<(), Failure> {
    let mut topology = Topology::load(&args.topology).map_err(Failure::general)?;
    let params = AuditParams {
        samples: args.samples,
        listen: args.listen,
        mean_delay: millis("--mean-delay-ms", args.mean_delay_ms)?,
        max_delay: millis("--max-delay-ms", args.max_delay_ms)?,
        tolerance: millis("--tolerance-ms", args.tolerance_ms)?,
        interval: Duration::from_millis(args.interval_ms),
        neighbors_k: args.neighbors_k,
        ..AuditParams::default()
    };
    // Current Sphinx keys, checked against the identity keys in the file.
    let refresh = topology.refresh_from_network(params.http_timeout);
    super::client_cmd::warn_refresh_failures(&refresh);
    let report = audit::run(&topology, args.node, &params).map_err(Failure::general)?;
    print!("{report}");
    if report.passed() {
        Ok(())
    } else {
        Err(Failure::general(report.summary()))
    }
}

/// A non-negative, finite number of milliseconds.
fn millis(flag: &str, ms: f64) -> Result<Duration, Failure> {
    Duration::try_from_secs_f64(ms / 1e3)
        .map_err(|_| Failure::general(format!("{flag}: expected a non-negative number, got {ms}")))
}
