//! The nodes' published VRF proofs (`GET /vrf/current`, `/vrf/{epoch}`):
//! fetched, checked against the VRF key the topology lists for the node,
//! and kept per (node, epoch) for recomputing delays and neighbour sets.
//!
//! Polling every node's `/vrf/current` also tells the auditor which epoch
//! each node is in, so a sample can be checked against the epoch it was
//! really mixed in (see [`Poll`]).

use std::collections::{HashMap, HashSet};
use std::fmt;
use std::time::{Duration, Instant};

use crate::http::client as http;
use crate::keys::VrfPublicKey;
use crate::role::NodeRole;
use crate::sphinx::NodeId;
use crate::topology::{NodeDescriptor, Topology};
use crate::vrf::{Epoch, EpochDelayKey, EpochProofs, VrfError};

/// Why a node's proofs could not be used.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ProofProblem {
    /// The proofs could not be fetched or parsed.
    Unavailable(String),
    /// The proofs do not verify under the node's VRF key from the topology.
    Invalid(VrfError),
    /// `/vrf/{epoch}` answered with another epoch's proofs.
    WrongEpoch {
        /// The epoch asked for.
        asked: Epoch,
        /// The epoch of the proofs served.
        got: Epoch,
    },
}

impl ProofProblem {
    /// Whether the node served wrong proofs (rather than none): the audit
    /// fails. Unavailable proofs only keep the node off the audit paths.
    pub fn is_invalid(&self) -> bool {
        !matches!(self, ProofProblem::Unavailable(_))
    }
}

impl fmt::Display for ProofProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ProofProblem::Unavailable(why) => write!(f, "proofs unavailable: {why}"),
            ProofProblem::Invalid(e) => write!(f, "proof does not verify: {e}"),
            ProofProblem::WrongEpoch { asked, got } => {
                write!(f, "asked for epoch {asked}, got the proofs of epoch {got}")
            }
        }
    }
}

/// A node whose proofs failed, and for which epoch (if known).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ProofFailure {
    /// The node.
    pub node: NodeId,
    /// The epoch concerned, when the node said which.
    pub epoch: Option<Epoch>,
    /// What went wrong.
    pub problem: ProofProblem,
}

impl fmt::Display for ProofFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "node {}", self.node)?;
        if let Some(epoch) = self.epoch {
            write!(f, " (epoch {epoch})")?;
        }
        write!(f, ": {}", self.problem)
    }
}

/// One round of `/vrf/current` requests: the epoch each node reported.
/// Epochs only move forward, so a node that reports epoch `E` in two polls
/// was in `E` all the time between them.
#[derive(Clone, Debug)]
pub struct Poll {
    /// When the first request was sent.
    pub started: Instant,
    /// When the last answer arrived.
    pub finished: Instant,
    /// Each answering node's current epoch (absent: unknown).
    pub epochs: HashMap<NodeId, Epoch>,
}

/// What a verified epoch gives the auditor.
struct Verified {
    key: EpochDelayKey,
    /// Next-layer nodes this node relays to (`None`: all of them).
    neighbours: Option<HashSet<NodeId>>,
}

/// Verified proofs by (node, epoch), and the failures met.
pub struct ProofBook<'a> {
    topology: &'a Topology,
    neighbors_k: usize,
    timeout: Duration,
    verified: HashMap<(NodeId, Epoch), Verified>,
    failures: Vec<ProofFailure>,
}

impl<'a> ProofBook<'a> {
    /// An empty book for `topology`'s nodes; `neighbors_k` is the network's
    /// neighbour-set size (0: whole layer); HTTP requests get `timeout`.
    pub fn new(topology: &'a Topology, neighbors_k: usize, timeout: Duration) -> Self {
        ProofBook {
            topology,
            neighbors_k,
            timeout,
            verified: HashMap::new(),
            failures: Vec::new(),
        }
    }

    /// Asks every node in `nodes` for its current proofs, verifying the ones
    /// not seen before.
    pub fn poll(&mut self, nodes: &[&NodeDescriptor]) -> Poll {
        let started = Instant::now();
        let epochs = nodes
            .iter()
            .filter_map(|d| Some((d.id, self.fetch(d, None)?)))
            .collect();
        Poll {
            started,
            finished: Instant::now(),
            epochs,
        }
    }

    /// Fetches `/vrf/current` (`epoch` = `None`) or `/vrf/{epoch}` from
    /// `node`, verifies what is new, and returns the epoch it is for.
    /// Failures are recorded (see [`ProofBook::failures`]).
    pub fn fetch(&mut self, node: &NodeDescriptor, epoch: Option<Epoch>) -> Option<Epoch> {
        let path = match epoch {
            Some(e) => format!("/vrf/{e}"),
            None => "/vrf/current".to_owned(),
        };
        let proofs = match get_proofs(node, &path, self.timeout) {
            Ok(proofs) => proofs,
            Err(why) => {
                self.fail(node.id, epoch, ProofProblem::Unavailable(why));
                return None;
            }
        };
        let known = self.verified.contains_key(&(node.id, proofs.epoch));
        // Proofs already verified for this epoch need no second check.
        if known && epoch.is_none_or(|asked| asked == proofs.epoch) {
            return Some(proofs.epoch);
        }
        match check(&proofs, &node.vrf_key, epoch) {
            Ok(()) => {
                let verified = Verified {
                    key: proofs.delay_key(),
                    neighbours: self.neighbours(node.role, &proofs),
                };
                self.verified.insert((node.id, proofs.epoch), verified);
                Some(proofs.epoch)
            }
            Err(problem @ ProofProblem::WrongEpoch { asked, .. }) => {
                self.fail(node.id, Some(asked), problem);
                None
            }
            Err(problem) => {
                // The epoch is known, but nothing in it can be checked.
                self.fail(node.id, Some(proofs.epoch), problem);
                Some(proofs.epoch)
            }
        }
    }

    /// The verified delay key of `node` in `epoch`.
    pub fn key(&self, node: &NodeId, epoch: Epoch) -> Option<&EpochDelayKey> {
        self.verified.get(&(*node, epoch)).map(|v| &v.key)
    }

    /// Whether `node`'s proofs for `epoch` verified.
    pub fn is_verified(&self, node: &NodeId, epoch: Epoch) -> bool {
        self.verified.contains_key(&(*node, epoch))
    }

    /// Whether `from`, in `epoch`, relays to `to` (in its next layer).
    pub fn relays_to(&self, from: &NodeId, epoch: Epoch, to: &NodeId) -> bool {
        self.verified
            .get(&(*from, epoch))
            .is_some_and(|v| v.neighbours.as_ref().is_none_or(|n| n.contains(to)))
    }

    /// The failures met so far, each once.
    pub fn failures(&self) -> &[ProofFailure] {
        &self.failures
    }

    fn fail(&mut self, node: NodeId, epoch: Option<Epoch>, problem: ProofProblem) {
        let failure = ProofFailure {
            node,
            epoch,
            problem,
        };
        if !self.failures.contains(&failure) {
            self.failures.push(failure);
        }
    }

    /// The neighbour set the node's proofs select, as the node computes it
    /// (`crate::node`'s epoch driver): `k` of the next layer, or all of it.
    fn neighbours(&self, role: NodeRole, proofs: &EpochProofs) -> Option<HashSet<NodeId>> {
        let next = role.next()?;
        let candidates: Vec<NodeId> = self.topology.layer(next).iter().map(|d| d.id).collect();
        let k = self.neighbors_k;
        if k == 0 || k >= candidates.len() {
            return None;
        }
        Some(
            proofs
                .select_neighbors(&candidates, k)
                .into_iter()
                .collect(),
        )
    }
}

/// Checks proofs a node served when asked for `asked` (`None`: its current
/// epoch): they are for that epoch, made with `key` (the node's VRF key in
/// the topology), and verify.
pub fn check(
    proofs: &EpochProofs,
    key: &VrfPublicKey,
    asked: Option<Epoch>,
) -> Result<(), ProofProblem> {
    if let Some(asked) = asked.filter(|asked| *asked != proofs.epoch) {
        return Err(ProofProblem::WrongEpoch {
            asked,
            got: proofs.epoch,
        });
    }
    proofs.verify_for(key).map_err(ProofProblem::Invalid)
}

/// GET and parse one `EpochProofs` document.
fn get_proofs(node: &NodeDescriptor, path: &str, timeout: Duration) -> Result<EpochProofs, String> {
    let response = http::get(node.http_addr, path, timeout)
        .map_err(|e| format!("GET http://{}{path}: {e}", node.http_addr))?;
    if response.status != 200 {
        return Err(format!(
            "GET http://{}{path}: HTTP {}",
            node.http_addr, response.status
        ));
    }
    serde_json::from_slice(&response.body).map_err(|e| {
        format!(
            "GET http://{}{path}: not EpochProofs JSON: {e}",
            node.http_addr
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::keys::VrfSecretKey;

    #[test]
    fn proofs_must_be_the_nodes_and_for_the_epoch_asked() {
        let secret = VrfSecretKey::from_bytes([1; 32]);
        let key = secret.public_key();
        let proofs = EpochProofs::evaluate(&secret, Epoch(10));
        assert_eq!(check(&proofs, &key, None), Ok(()));
        assert_eq!(check(&proofs, &key, Some(Epoch(10))), Ok(()));
        let wrong_epoch = check(&proofs, &key, Some(Epoch(11))).unwrap_err();
        assert_eq!(
            wrong_epoch,
            ProofProblem::WrongEpoch {
                asked: Epoch(11),
                got: Epoch(10)
            }
        );
        assert!(wrong_epoch.is_invalid());

        // Proofs made with another key than the topology lists.
        let other = EpochProofs::evaluate(&VrfSecretKey::from_bytes([2; 32]), Epoch(10));
        let problem = check(&other, &key, None).unwrap_err();
        assert_eq!(problem, ProofProblem::Invalid(VrfError::UnexpectedKey));

        // The right key, but the proof is for another epoch's input.
        let mut forged = proofs;
        forged.delay = EpochProofs::evaluate(&secret, Epoch(9)).delay;
        assert_eq!(
            check(&forged, &key, None),
            Err(ProofProblem::Invalid(VrfError::InvalidProof))
        );
        // A proof that verifies, with an output it does not prove.
        let mut lying = proofs;
        lying.delay.output = other.delay.output;
        assert_eq!(
            check(&lying, &key, None),
            Err(ProofProblem::Invalid(VrfError::OutputMismatch))
        );
        assert!(!ProofProblem::Unavailable("refused".into()).is_invalid());
    }
}
