//! The deterministic consensus rule: every honest authority holding the
//! same votes and reveals computes byte-for-byte the same [`Consensus`].
//!
//! - **Votes counted**: envelopes that verify (pinned author, right epoch,
//!   signature), one per authority; an authority that signed two different
//!   votes for the epoch (equivocation) has neither counted. At least the
//!   set's threshold of votes is needed, or there is no consensus.
//! - **Inclusion by majority**: a node is listed when at least `threshold`
//!   counted votes list it with a descriptor that verifies. One minority
//!   authority can neither add a node (it lacks the votes) nor drop one
//!   (the others are enough).
//! - **Which descriptor**: the version listed by most voters; ties go to
//!   the newest Sphinx key epoch, then the smaller signature bytes.
//! - **Parameters**: each field the median of the counted votes'
//!   proposals ([`median_params`]).
//! - **Shared random value**: from the reveals that open the commitments
//!   of counted votes ([`shared_random`](super::shared_random::shared_random)).
//! - **Layers**: each node serves the layer its signed descriptor declares;
//!   within a layer nodes are ordered by `rank(shared_random, id)`, and when
//!   `max_nodes_per_layer` is set the first ones in that order are the
//!   active set. Nodes whose addresses clash with a node earlier in that
//!   order are left out (a topology cannot hold both).
//! - **Reliability**: the median of the listing voters' figures.

use std::collections::{BTreeMap, HashSet};
use std::net::SocketAddr;

use super::document::{CONSENSUS_VERSION, Consensus, ConsensusNode};
use super::params::median_params;
use super::set::AuthoritySet;
use super::shared_random::{rank, shared_random};
use super::vote::{SignedReveal, SignedVote, VotedNode};
use crate::role::NodeRole;
use crate::sphinx::NodeId;
use crate::topology::NodeDescriptor;

/// How long, in epochs, a consensus stays usable after its own epoch ends
/// (so a network whose authorities miss an epoch or two keeps running).
pub const VALID_EPOCHS_AFTER: u64 = 2;

/// Why no consensus could be computed.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum RuleError {
    /// Fewer counted votes than the threshold.
    #[error(
        "only {counted} valid votes for epoch {epoch}, {threshold} needed: are a majority of the authorities up and reachable?"
    )]
    NotEnoughVotes {
        /// The epoch.
        epoch: u64,
        /// Votes counted.
        counted: usize,
        /// Votes needed.
        threshold: usize,
    },
}

/// What the rule counted and dropped, by reason (for logs and metrics).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RuleReport {
    /// Votes counted.
    pub votes_counted: usize,
    /// Votes whose envelope did not verify.
    pub votes_invalid: usize,
    /// Authorities with two different votes (none of theirs counted).
    pub equivocating_authorities: usize,
    /// Vote entries with a descriptor that does not verify.
    pub entries_invalid: usize,
    /// Vote entries listing a node the vote already listed.
    pub entries_duplicate: usize,
    /// Nodes listed by some vote but fewer than the threshold.
    pub nodes_without_majority: usize,
    /// Nodes left out for an address clash.
    pub nodes_address_clash: usize,
    /// Nodes beyond `max_nodes_per_layer`.
    pub nodes_inactive: usize,
    /// Reveals that opened a counted vote's commitment.
    pub reveals_counted: usize,
    /// Reveals ignored (bad signature, no counted vote, wrong value).
    pub reveals_invalid: usize,
}

/// Computes the consensus of `epoch` (each epoch `epoch_seconds` long)
/// from the votes and reveals an authority holds. Pure and deterministic.
pub fn compute_consensus(
    authorities: &AuthoritySet,
    epoch: u64,
    epoch_seconds: u64,
    votes: &[SignedVote],
    reveals: &[SignedReveal],
) -> Result<(Consensus, RuleReport), RuleError> {
    let mut report = RuleReport::default();
    let counted = count_votes(authorities, epoch, votes, &mut report);
    if counted.len() < authorities.threshold() {
        return Err(RuleError::NotEnoughVotes {
            epoch,
            counted: counted.len(),
            threshold: authorities.threshold(),
        });
    }
    report.votes_counted = counted.len();

    let params = median_params(&counted.values().map(|v| v.vote.params).collect::<Vec<_>>())
        .unwrap_or_default();
    let srv = shared_random_of(authorities, epoch, &counted, reveals, &mut report);
    let candidates = tally_nodes(&counted, authorities.threshold(), &mut report);

    let mut nodes = Vec::new();
    let mut claimed: HashSet<(u8, SocketAddr)> = HashSet::new();
    for role in NodeRole::ALL {
        let mut layer: Vec<&ConsensusNode> = candidates
            .iter()
            .filter(|n| n.descriptor.role == role)
            .collect();
        layer.sort_by_key(|n| rank(&srv, n.descriptor.id.as_bytes()));
        let mut active = 0usize;
        for node in layer {
            let limit = params.max_nodes_per_layer as usize;
            if limit != 0 && active >= limit {
                report.nodes_inactive += 1;
                continue;
            }
            let d = &node.descriptor;
            let claims = [(0u8, d.udp_addr), (1, d.tcp_addr), (1, d.http_addr)]
                .map(|(proto, a)| (proto, SocketAddr::new(a.ip().to_canonical(), a.port())));
            if claims.iter().any(|c| claimed.contains(c)) {
                report.nodes_address_clash += 1;
                continue;
            }
            claimed.extend(claims);
            active += 1;
            nodes.push(node.clone());
        }
    }

    let start = epoch.saturating_mul(epoch_seconds);
    let consensus = Consensus {
        version: CONSENSUS_VERSION,
        epoch,
        valid_after: start,
        fresh_until: start.saturating_add(epoch_seconds),
        valid_until: start.saturating_add(epoch_seconds.saturating_mul(1 + VALID_EPOCHS_AFTER)),
        params,
        shared_random: srv,
        voters: counted.keys().copied().collect(),
        nodes,
    };
    Ok((consensus, report))
}

/// The votes to count, one per authority, keyed (and so sorted) by author.
fn count_votes<'a>(
    authorities: &AuthoritySet,
    epoch: u64,
    votes: &'a [SignedVote],
    report: &mut RuleReport,
) -> BTreeMap<[u8; 32], &'a SignedVote> {
    let mut by_author: BTreeMap<[u8; 32], &SignedVote> = BTreeMap::new();
    let mut equivocators: HashSet<[u8; 32]> = HashSet::new();
    for vote in votes {
        if vote.verify(authorities, epoch).is_err() {
            report.votes_invalid += 1;
            continue;
        }
        let author = vote.vote.authority;
        match by_author.get(&author) {
            Some(known) if known.vote != vote.vote => {
                equivocators.insert(author);
            }
            Some(_) => {}
            None => {
                by_author.insert(author, vote);
            }
        }
    }
    report.equivocating_authorities = equivocators.len();
    by_author.retain(|author, _| !equivocators.contains(author));
    by_author
}

/// The listed nodes: those with `threshold` votes, each with its chosen
/// descriptor and median reliability, sorted by id.
fn tally_nodes(
    counted: &BTreeMap<[u8; 32], &SignedVote>,
    threshold: usize,
    report: &mut RuleReport,
) -> Vec<ConsensusNode> {
    // Descriptors already verified, by a digest of the whole descriptor
    // (signature included): one listed by every authority is verified
    // once. Never by the signature alone, or a copy with altered fields
    // would pass as the verified original.
    let mut verified: HashSet<[u8; 32]> = HashSet::new();
    let mut listed: BTreeMap<NodeId, Vec<&VotedNode>> = BTreeMap::new();
    for vote in counted.values() {
        let mut seen: HashSet<NodeId> = HashSet::new();
        for entry in &vote.vote.nodes {
            let d = &entry.descriptor;
            let digest = descriptor_digest(d);
            if !verified.contains(&digest) {
                if d.verify().is_err() {
                    report.entries_invalid += 1;
                    continue;
                }
                verified.insert(digest);
            }
            if !seen.insert(d.id) {
                report.entries_duplicate += 1;
                continue;
            }
            listed.entry(d.id).or_default().push(entry);
        }
    }
    let mut out = Vec::new();
    for entries in listed.values() {
        if entries.len() < threshold {
            report.nodes_without_majority += 1;
            continue;
        }
        let mut reliability: Vec<u16> = entries
            .iter()
            .map(|e| e.reliability_permille.min(1000))
            .collect();
        reliability.sort_unstable();
        out.push(ConsensusNode {
            descriptor: choose_descriptor(entries).clone(),
            reliability_permille: reliability[(reliability.len() - 1) / 2],
        });
    }
    out
}

/// BLAKE3 of the descriptor's signed bytes and signature (an unencodable
/// descriptor hashes its signature alone, and fails verification anyway).
fn descriptor_digest(d: &NodeDescriptor) -> [u8; 32] {
    let mut h = blake3::Hasher::new();
    if let Ok(message) = d.signed_message() {
        h.update(&message);
    }
    h.update(&d.signature);
    *h.finalize().as_bytes()
}

/// The version listed most; ties to the newest key epoch, then the smaller
/// signature.
fn choose_descriptor<'a>(entries: &[&'a VotedNode]) -> &'a NodeDescriptor {
    let mut versions: Vec<(&NodeDescriptor, usize)> = Vec::new();
    for e in entries {
        match versions.iter_mut().find(|(d, _)| **d == e.descriptor) {
            Some((_, n)) => *n += 1,
            None => versions.push((&e.descriptor, 1)),
        }
    }
    versions
        .into_iter()
        .max_by(|(a, na), (b, nb)| {
            na.cmp(nb)
                .then(a.newest_key_epoch().cmp(&b.newest_key_epoch()))
                .then(b.signature.cmp(&a.signature))
        })
        .map(|(d, _)| d)
        .unwrap_or(&entries[0].descriptor)
}

/// The shared random value from the reveals opening counted votes'
/// commitments.
fn shared_random_of(
    authorities: &AuthoritySet,
    epoch: u64,
    counted: &BTreeMap<[u8; 32], &SignedVote>,
    reveals: &[SignedReveal],
    report: &mut RuleReport,
) -> [u8; 32] {
    let mut opened: BTreeMap<[u8; 32], [u8; 32]> = BTreeMap::new();
    for r in reveals {
        let ok = r.verify(authorities, epoch).is_ok()
            && counted
                .get(&r.reveal.authority)
                .is_some_and(|v| r.reveal.opens(&v.vote.commit));
        if !ok {
            report.reveals_invalid += 1;
            continue;
        }
        opened.insert(r.reveal.authority, r.reveal.value);
    }
    report.reveals_counted = opened.len();
    let pairs: Vec<([u8; 32], [u8; 32])> = opened.into_iter().collect();
    shared_random(epoch, &pairs)
}
