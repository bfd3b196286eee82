//! Auditing a node's mixing (`betanet audit`): does it hold each packet as
//! long as its published VRF proof dictates (`sphinx-v1.md`, "VRF-derived
//! mixing delays")?
//!
//! The auditor is an ordinary client. It sends packets along entry → middle
//! → exit paths through the audited node, the other hops drawn at random
//! ([`route`]), and has them delivered back to itself. Having built each
//! packet it knows the replay tag every hop sees, so with each hop's
//! verified proofs ([`proofs`]) it recomputes the delay every hop had to
//! hold the packet, and compares their sum with the transit it measured.
//! [`analysis`] turns the samples into a per-node verdict; [`run`] does the
//! I/O.
//!
//! ```no_run
//! use betanet::audit::{AuditParams, run};
//! use betanet::topology::Topology;
//!
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let topology = Topology::load("topology.json".as_ref())?;
//! let target = topology.nodes()[0].id;
//! let report = run(&topology, target, &AuditParams::default())?;
//! print!("{report}");
//! assert!(report.passed());
//! # Ok(()) }
//! ```
//!
//! The exits on the audit paths deliver to the auditor's address, so their
//! `exit.allow` must include it (the default allows loopback only).

pub mod analysis;
mod epochs;
mod fit;
mod probe;
pub mod proofs;
pub mod report;
pub mod route;
mod run;

use std::net::SocketAddr;
use std::time::Duration;

pub use analysis::{Analysis, AnalysisParams, HopDelay, NodeFinding, Sample, Verdict, analyse};
pub use proofs::{ProofFailure, ProofProblem};
pub use report::{AuditReport, SampleCounts};
pub use run::run;

use crate::config::MixingConfig;
use crate::sphinx::{BuildError, NodeId};

/// How to audit.
#[derive(Clone, Debug, PartialEq)]
pub struct AuditParams {
    /// Packets to send.
    pub samples: usize,
    /// Where the auditor receives its packets back (UDP). Must be an address
    /// the exits can deliver to (not `0.0.0.0`).
    pub listen: SocketAddr,
    /// The network's mean mixing delay (`mixing.mean_delay_ms`).
    pub mean_delay: Duration,
    /// The network's delay cap (`mixing.max_delay_ms`).
    pub max_delay: Duration,
    /// How much sooner than required a node may release packets on average.
    pub tolerance: Duration,
    /// Pause between two packets sent.
    pub interval: Duration,
    /// The network's neighbour-set size (`vrf.neighbors_k`; 0 = whole layer).
    pub neighbors_k: usize,
    /// Limit on each HTTP request for proofs.
    pub http_timeout: Duration,
}

impl Default for AuditParams {
    /// 200 samples 5 ms apart, received on 127.0.0.1, the default network
    /// parameters, a 2 ms tolerance.
    fn default() -> Self {
        let mixing = MixingConfig::default();
        AuditParams {
            samples: 200,
            listen: SocketAddr::from(([127, 0, 0, 1], 0)),
            mean_delay: Duration::from_secs_f64(mixing.mean_delay_ms / 1e3),
            max_delay: Duration::from_secs_f64(mixing.max_delay_ms / 1e3),
            tolerance: Duration::from_millis(2),
            interval: Duration::from_millis(5),
            neighbors_k: 0,
            http_timeout: Duration::from_secs(5),
        }
    }
}

/// Why an audit could not be carried out (as opposed to a node failing it,
/// which [`AuditReport::passed`] tells).
#[derive(Debug, thiserror::Error)]
pub enum AuditError {
    /// The parameters make no sense.
    #[error("invalid audit parameters: {0}")]
    Params(&'static str),
    /// The audited node is not in the topology.
    #[error("node {0} is not in the topology")]
    UnknownNode(NodeId),
    /// The receiving socket could not be opened.
    #[error("cannot listen on {addr}: {source}")]
    Listen {
        /// The address asked for.
        addr: SocketAddr,
        /// The OS error.
        source: std::io::Error,
    },
    /// Exits cannot deliver to an unspecified address.
    #[error("cannot receive on {0}: give --listen an address the exit nodes can deliver to")]
    UnroutableListen(SocketAddr),
    /// No path through the node is usable: nodes without a Sphinx key or
    /// verified proofs are left out, and with neighbour sets no node of the
    /// previous layer may relay to it this epoch.
    #[error(
        "no usable entry → middle → exit path through node {0} (nodes without verified \
         proofs are left out; with --neighbors-k, maybe no node relays to it this epoch)"
    )]
    NoPath(NodeId),
    /// A packet could not be built.
    #[error("cannot build a packet: {0}")]
    Build(#[from] BuildError),
    /// Sending or a thread failed.
    #[error("{0}")]
    Io(#[from] std::io::Error),
}

impl AuditParams {
    fn check(&self) -> Result<(), AuditError> {
        if self.samples == 0 {
            return Err(AuditError::Params("at least one sample is needed"));
        }
        if self.samples > u32::MAX as usize {
            return Err(AuditError::Params("too many samples"));
        }
        if self.max_delay < self.mean_delay {
            return Err(AuditError::Params(
                "the maximum delay is below the mean delay",
            ));
        }
        Ok(())
    }
}
