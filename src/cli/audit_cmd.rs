//! `betanet audit`: check that a node holds packets as long as its VRF
//! proofs require (see [`crate::audit`]), with the network parameters the
//! nodes publish in their signed descriptors. Exit codes: 0 the node mixes
//! as required; 1 it does not, or a proof fails to verify; 3 nothing could
//! be concluded (no packet came back, or too few); 4 the node publishes
//! other network parameters than the network's (MISCONFIGURED).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::Args;

use super::Failure;
use crate::audit::{self, AuditParams, Overrides};
use crate::sphinx::NodeId;
use crate::topology::Topology;

/// `betanet audit` arguments. The network parameters (delays, neighbour
/// sets) come from the nodes' signed descriptors; the flags that override
/// them are for networks whose nodes do not publish them.
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
    /// Override the published mean mixing delay (prints a warning)
    /// [default: what the nodes publish]
    #[arg(long, value_name = "MS")]
    mean_delay_ms: Option<f64>,
    /// Override the published delay cap (prints a warning)
    /// [default: what the nodes publish]
    #[arg(long, value_name = "MS")]
    max_delay_ms: Option<f64>,
    /// How much sooner than required a node may release packets on average.
    #[arg(long, value_name = "MS", default_value_t = 2.0)]
    tolerance_ms: f64,
    /// Pause between two packets sent.
    #[arg(long, value_name = "MS", default_value_t = 5)]
    interval_ms: u64,
    /// Override the published neighbour-set size (0 = whole layer; prints a
    /// warning) [default: what the nodes publish]
    #[arg(long, value_name = "K")]
    neighbors_k: Option<usize>,
    /// Send probes as plaintext UDP frames rather than over an encrypted
    /// link session to each entry node (for entries that publish no link
    /// key).
    #[arg(long)]
    plaintext: bool,
}

pub fn run(args: AuditArgs) -> Result<(), Failure> {
    let mut topology = Topology::load(&args.topology).map_err(Failure::general)?;
    let optional = |flag, ms: Option<f64>| ms.map(|ms| millis(flag, ms)).transpose();
    let params = AuditParams {
        samples: args.samples,
        listen: args.listen,
        overrides: Overrides {
            mean_delay: optional("--mean-delay-ms", args.mean_delay_ms)?,
            max_delay: optional("--max-delay-ms", args.max_delay_ms)?,
            neighbors_k: args.neighbors_k,
        },
        tolerance: millis("--tolerance-ms", args.tolerance_ms)?,
        interval: Duration::from_millis(args.interval_ms),
        plaintext: args.plaintext,
        ..AuditParams::default()
    };
    // Current Sphinx keys and network parameters, checked against the
    // identity keys in the file.
    let refresh = crate::directory_client::refresh_topology(&mut topology, params.http_timeout);
    super::client_cmd::warn_refresh_failures(&refresh);
    let report = audit::run(&topology, args.node, &params).map_err(Failure::general)?;
    print!("{report}");
    match report.outcome().exit_code() {
        0 => Ok(()),
        code => Err(Failure::with_code(report.summary(), code)),
    }
}

/// A non-negative, finite number of milliseconds.
fn millis(flag: &str, ms: f64) -> Result<Duration, Failure> {
    Duration::try_from_secs_f64(ms / 1e3)
        .map_err(|_| Failure::general(format!("{flag}: expected a non-negative number, got {ms}")))
}
