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
//! The delays a node must apply depend on the network's parameters (mean and
//! maximum delay, neighbour sets). Nodes publish them in their signed
//! descriptors, and the audit takes them from there ([`network`]): a node
//! running other settings than the rest of the network is `MISCONFIGURED`,
//! never `NOT MIXING`.
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
pub mod network;
mod probe;
pub mod proofs;
pub mod report;
pub mod route;
mod run;

use std::net::SocketAddr;
use std::time::Duration;

pub use analysis::{Analysis, AnalysisParams, HopDelay, NodeFinding, Sample, Verdict, analyse};
pub use network::{NetworkView, Overrides};
pub use proofs::{ProofFailure, ProofProblem};
pub use report::{AuditOutcome, AuditReport, SampleCounts};
pub use run::run;

use crate::sphinx::{BuildError, NodeId};

/// How to audit.
#[derive(Clone, Debug, PartialEq)]
pub struct AuditParams {
    /// Packets to send.
    pub samples: usize,
    /// Where the auditor receives its packets back (UDP). Must be an address
    /// the exits can deliver to (not `0.0.0.0`).
    pub listen: SocketAddr,
    /// Network parameters to use instead of the published ones (normally
    /// none: the nodes' signed descriptors say what they are).
    pub overrides: Overrides,
    /// How much sooner than required a node may release packets on average.
    pub tolerance: Duration,
    /// Pause between two packets sent.
    pub interval: Duration,
    /// Limit on each HTTP request for proofs.
    pub http_timeout: Duration,
    /// Send probes as plaintext UDP frames instead of over an encrypted
    /// link session to the entry node (for entries without link keys).
    pub plaintext: bool,
}

impl Default for AuditParams {
    /// 200 samples 5 ms apart, received on 127.0.0.1, the published network
    /// parameters, a 2 ms tolerance.
    fn default() -> Self {
        AuditParams {
            samples: 200,
            listen: SocketAddr::from(([127, 0, 0, 1], 0)),
            overrides: Overrides::default(),
            tolerance: Duration::from_millis(2),
            interval: Duration::from_millis(5),
            http_timeout: Duration::from_secs(5),
            plaintext: false,
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
        if let Overrides {
            mean_delay: Some(mean),
            max_delay: Some(max),
            ..
        } = self.overrides
            && max < mean
        {
            return Err(AuditError::Params(
                "the maximum delay is below the mean delay",
            ));
        }
        Ok(())
    }
}
