//! The consensus rule, threshold verification and the authority state
//! machine, without sockets: honest authorities agree byte for byte, and a
//! minority authority that votes garbage, signs another document,
//! equivocates or goes silent can neither stop nor steer the consensus.
//! Pure and in virtual time, so nothing here can hang.

use std::net::SocketAddr;

use betanet::NodeRole;
use betanet::authority::{
    Action, AuthorityError, AuthorityInfo, AuthoritySet, AuthorityState, ConsensusParams, Reveal,
    RuleError, SignedConsensus, SignedReveal, SignedVote, Timing, VOTE_VERSION, Vote, VotedNode,
    commitment, compute_consensus,
};
use betanet::keys::NodeKeys;
use betanet::sphinx::SphinxSecretKey;
use betanet::topology::{NodeDescriptor, SphinxKeyEntry};
use ed25519_dalek::SigningKey;
use rand::SeedableRng;
use rand_chacha::ChaCha20Rng;

const EPOCH_SECONDS: u64 = 60;
const EPOCH: u64 = 29_000_000; // a 2025 epoch of 60 s

struct Authority {
    key: SigningKey,
    secret: [u8; 32],
}

fn authorities(n: u8) -> (Vec<Authority>, AuthoritySet) {
    let list: Vec<Authority> = (0..n)
        .map(|i| Authority {
            key: SigningKey::from_bytes(&[i + 1; 32]),
            secret: [i + 100; 32],
        })
        .collect();
    let set = AuthoritySet::new(
        list.iter()
            .enumerate()
            .map(|(i, a)| AuthorityInfo {
                identity_key: a.key.verifying_key().to_bytes(),
                addr: SocketAddr::from(([127, 0, 0, 1], 7000 + i as u16)),
            })
            .collect(),
    )
    .unwrap();
    (list, set)
}

/// `per_layer` nodes in each layer, on distinct loopback ports.
fn nodes(per_layer: u16, seed: u64) -> Vec<NodeDescriptor> {
    let mut rng = ChaCha20Rng::seed_from_u64(seed);
    let mut out = Vec::new();
    for (l, role) in NodeRole::ALL.into_iter().enumerate() {
        for i in 0..per_layer {
            let n = l as u16 * per_layer + i;
            let keys = NodeKeys::generate(&mut rng);
            let addr = SocketAddr::from(([127, 0, 0, 1], 20_000 + n));
            let http = SocketAddr::from(([127, 0, 0, 1], 40_000 + n));
            let key = SphinxKeyEntry {
                epoch: 0,
                public_key: SphinxSecretKey::from_bytes([(n % 250) as u8 + 1; 32]).public_key(),
            };
            out.push(
                NodeDescriptor::new_signed(&keys, role, addr, addr, http, vec![key], 86_400)
                    .unwrap(),
            );
        }
    }
    out
}

fn vote(
    a: &Authority,
    epoch: u64,
    params: ConsensusParams,
    nodes: &[NodeDescriptor],
) -> SignedVote {
    let mut listed: Vec<VotedNode> = nodes
        .iter()
        .map(|d| VotedNode {
            descriptor: d.clone(),
            reliability_permille: 1000,
        })
        .collect();
    listed.sort_by_key(|n| n.descriptor.id);
    let me = a.key.verifying_key().to_bytes();
    Vote {
        version: VOTE_VERSION,
        epoch,
        authority: me,
        params,
        commit: commitment(epoch, &me, &a.secret),
        nodes: listed,
    }
    .sign(&a.key)
    .unwrap()
}

fn reveal(a: &Authority, epoch: u64) -> SignedReveal {
    Reveal {
        epoch,
        authority: a.key.verifying_key().to_bytes(),
        value: a.secret,
    }
    .sign(&a.key)
    .unwrap()
}

fn ids(c: &betanet::authority::Consensus) -> Vec<betanet::sphinx::NodeId> {
    let mut ids: Vec<_> = c.nodes.iter().map(|n| n.descriptor.id).collect();
    ids.sort();
    ids
}

#[test]
fn honest_authorities_agree_and_a_majority_of_signatures_is_valid() {
    let (auth, set) = authorities(3);
    let net = nodes(2, 1);
    let votes: Vec<SignedVote> = auth
        .iter()
        .map(|a| vote(a, EPOCH, ConsensusParams::default(), &net))
        .collect();
    let reveals: Vec<SignedReveal> = auth.iter().map(|a| reveal(a, EPOCH)).collect();
    // Each authority sees the votes in another order: the same bytes.
    let mut docs = Vec::new();
    for shift in 0..3 {
        let mut v = votes.clone();
        v.rotate_left(shift);
        let (c, report) = compute_consensus(&set, EPOCH, EPOCH_SECONDS, &v, &reveals).unwrap();
        assert_eq!(report.votes_counted, 3);
        assert_eq!(report.reveals_counted, 3);
        docs.push(c);
    }
    assert!(
        docs.windows(2)
            .all(|w| w[0].signed_message().unwrap() == w[1].signed_message().unwrap())
    );
    let c = docs.pop().unwrap();
    assert_eq!(c.nodes.len(), 6);
    assert_eq!(c.layer(NodeRole::Middle).count(), 2);
    assert!(c.topology().is_ok(), "the consensus is a usable topology");
    let now = c.valid_after + 1;

    let one = SignedConsensus {
        consensus: c.clone(),
        signatures: vec![c.sign(&auth[0].key).unwrap()],
    };
    assert!(matches!(
        one.verify(&set, now),
        Err(AuthorityError::BelowThreshold {
            valid: 1,
            threshold: 2
        })
    ));
    // The same signature twice still counts once.
    let mut twice = one.clone();
    twice.signatures.push(twice.signatures[0]);
    assert!(matches!(
        twice.verify(&set, now),
        Err(AuthorityError::BelowThreshold { valid: 1, .. })
    ));
    let mut two = one.clone();
    two.signatures.push(c.sign(&auth[1].key).unwrap());
    assert_eq!(two.verify(&set, now).unwrap().valid, 2);
    // Round trip through JSON, then a tampered byte.
    let parsed = SignedConsensus::from_json(&two.to_json().unwrap()).unwrap();
    assert_eq!(parsed.verify(&set, now).unwrap().valid, 2);
    let mut tampered = parsed.clone();
    tampered.consensus.params.network.mean_delay_us += 1;
    assert!(tampered.verify(&set, now).is_err());
    // Out of its validity window.
    assert!(matches!(
        two.verify(&set, c.valid_until),
        Err(AuthorityError::NotValidNow { .. })
    ));
    assert!(matches!(
        two.verify(&set, c.valid_after - 1),
        Err(AuthorityError::NotValidNow { .. })
    ));
    // An authority signing another document: its signature is ignored,
    // the two honest ones carry the consensus.
    let mut other = c.clone();
    other.nodes.pop();
    let mut with_rogue = two.clone();
    with_rogue
        .signatures
        .push(betanet::authority::ConsensusSignature {
            authority: auth[2].key.verifying_key().to_bytes(),
            signature: other.sign(&auth[2].key).unwrap().signature,
        });
    let v = with_rogue.verify(&set, now).unwrap();
    assert_eq!((v.valid, v.ignored), (2, 1));
    // And that other document has one signature: not valid.
    let rogue_doc = SignedConsensus {
        consensus: other.clone(),
        signatures: vec![other.sign(&auth[2].key).unwrap()],
    };
    assert!(rogue_doc.verify(&set, now).is_err());
    // Keys that are not pinned count for nothing.
    let stranger = SigningKey::from_bytes(&[77; 32]);
    let mut forged = one.clone();
    forged.signatures.push(c.sign(&stranger).unwrap());
    assert!(forged.verify(&set, now).is_err());
}

#[test]
fn a_garbage_vote_cannot_add_drop_or_steer() {
    let (auth, set) = authorities(3);
    let net = nodes(2, 2);
    let honest = |a: &Authority| vote(a, EPOCH, ConsensusParams::default(), &net);
    let (reference, _) = compute_consensus(
        &set,
        EPOCH,
        EPOCH_SECONDS,
        &[honest(&auth[0]), honest(&auth[1])],
        &[reveal(&auth[0], EPOCH), reveal(&auth[1], EPOCH)],
    )
    .unwrap();

    // The evil authority drops two nodes, adds one of its own, proposes
    // zero delays and no cover.
    let extra = nodes(1, 99).remove(0);
    let mut evil_nodes = net[2..].to_vec();
    evil_nodes.push(extra.clone());
    let mut evil_params = ConsensusParams::default();
    evil_params.network.mean_delay_us = 0;
    evil_params.network.loop_cover_millihertz = 0;
    let evil = vote(&auth[2], EPOCH, evil_params, &evil_nodes);
    let votes = [honest(&auth[0]), honest(&auth[1]), evil];
    let (c, report) = compute_consensus(&set, EPOCH, EPOCH_SECONDS, &votes, &[]).unwrap();
    assert_eq!(ids(&c), ids(&reference), "no node added or dropped");
    assert!(!c.nodes.iter().any(|n| n.descriptor.id == extra.id));
    assert_eq!(report.nodes_without_majority, 1);
    assert_eq!(
        c.params,
        ConsensusParams::default(),
        "parameters not steered"
    );

    // A vote with a broken signature, one for another epoch, one with a
    // forged descriptor inside: none counted or listed.
    let mut bad_sig = honest(&auth[2]);
    bad_sig.signature[0] ^= 1;
    let wrong_epoch = vote(&auth[2], EPOCH + 1, ConsensusParams::default(), &net);
    let mut forged = net.clone();
    forged[0].udp_addr = SocketAddr::from(([10, 0, 0, 1], 1));
    let forged_vote = vote(&auth[2], EPOCH, ConsensusParams::default(), &forged);
    for garbage in [bad_sig, wrong_epoch] {
        let (c, report) = compute_consensus(
            &set,
            EPOCH,
            EPOCH_SECONDS,
            &[honest(&auth[0]), honest(&auth[1]), garbage],
            &[],
        )
        .unwrap();
        assert_eq!(report.votes_invalid, 1);
        assert_eq!(report.votes_counted, 2);
        assert_eq!(ids(&c), ids(&reference));
    }
    let (c, report) = compute_consensus(
        &set,
        EPOCH,
        EPOCH_SECONDS,
        &[honest(&auth[0]), honest(&auth[1]), forged_vote],
        &[],
    )
    .unwrap();
    assert_eq!(report.entries_invalid, 1);
    assert_eq!(
        c.nodes
            .iter()
            .find(|n| n.descriptor.id == net[0].id)
            .unwrap()
            .descriptor,
        net[0]
    );

    // Bytes that are not a vote at all are refused by the parser.
    assert!(SignedVote::from_json(b"{\"vote\":7}").is_err());
    assert!(SignedVote::from_json(&vec![b'['; 9 << 20]).is_err());
}

#[test]
fn an_equivocating_authority_is_not_counted() {
    let (auth, set) = authorities(3);
    let net = nodes(1, 3);
    let a = vote(&auth[2], EPOCH, ConsensusParams::default(), &net);
    let b = vote(&auth[2], EPOCH, ConsensusParams::default(), &net[..2]);
    let votes = [
        vote(&auth[0], EPOCH, ConsensusParams::default(), &net),
        vote(&auth[1], EPOCH, ConsensusParams::default(), &net),
        a,
        b,
    ];
    let (c, report) = compute_consensus(&set, EPOCH, EPOCH_SECONDS, &votes, &[]).unwrap();
    assert_eq!(report.equivocating_authorities, 1);
    assert_eq!(c.voters.len(), 2);
    assert_eq!(c.nodes.len(), 3);
}

#[test]
fn a_silent_minority_cannot_stop_it_and_a_silent_majority_does() {
    let (auth, set) = authorities(3);
    let net = nodes(1, 4);
    let v: Vec<SignedVote> = auth
        .iter()
        .map(|a| vote(a, EPOCH, ConsensusParams::default(), &net))
        .collect();
    let (c, _) = compute_consensus(&set, EPOCH, EPOCH_SECONDS, &v[..2], &[]).unwrap();
    assert_eq!(c.nodes.len(), 3);
    assert_eq!(
        compute_consensus(&set, EPOCH, EPOCH_SECONDS, &v[..1], &[]).unwrap_err(),
        RuleError::NotEnoughVotes {
            epoch: EPOCH,
            counted: 1,
            threshold: 2
        }
    );
    // A node only one of two voters still sees is dropped (needs 2 of 3).
    let partial = vote(&auth[1], EPOCH, ConsensusParams::default(), &net[1..]);
    let (c, _) =
        compute_consensus(&set, EPOCH, EPOCH_SECONDS, &[v[0].clone(), partial], &[]).unwrap();
    assert_eq!(c.nodes.len(), 2);
}

#[test]
fn shared_random_needs_matching_reveals_and_seeds_order_and_active_set() {
    let (auth, set) = authorities(3);
    let net = nodes(6, 5);
    let params = ConsensusParams {
        max_nodes_per_layer: 4,
        ..Default::default()
    };
    let votes: Vec<SignedVote> = auth.iter().map(|a| vote(a, EPOCH, params, &net)).collect();
    let reveals: Vec<SignedReveal> = auth.iter().map(|a| reveal(a, EPOCH)).collect();
    let (all, _) = compute_consensus(&set, EPOCH, EPOCH_SECONDS, &votes, &reveals).unwrap();
    assert_eq!(all.nodes.len(), 12, "4 active of 6 per layer");
    // A reveal that does not open the commitment is ignored: the value is
    // the same as if that authority had withheld its reveal.
    let mut lying = auth[2].secret;
    lying[0] ^= 1;
    let lie = Reveal {
        epoch: EPOCH,
        authority: auth[2].key.verifying_key().to_bytes(),
        value: lying,
    }
    .sign(&auth[2].key)
    .unwrap();
    let (with_lie, report) = compute_consensus(
        &set,
        EPOCH,
        EPOCH_SECONDS,
        &votes,
        &[reveals[0], reveals[1], lie],
    )
    .unwrap();
    let (withheld, _) =
        compute_consensus(&set, EPOCH, EPOCH_SECONDS, &votes, &reveals[..2]).unwrap();
    assert_eq!(report.reveals_invalid, 1);
    assert_eq!(with_lie.shared_random, withheld.shared_random);
    assert_ne!(with_lie.shared_random, all.shared_random);
    // Different values give different orders (and active sets) for the
    // same nodes.
    let order = |c: &betanet::authority::Consensus| {
        c.nodes.iter().map(|n| n.descriptor.id).collect::<Vec<_>>()
    };
    assert_ne!(order(&all), order(&withheld));
}

/// Three state machines wired together in virtual time: uploads, probes
/// answered by a table, fetches served from the peers' states.
struct Sim {
    states: Vec<AuthorityState>,
    up: Vec<bool>,
    reachable: std::collections::HashSet<betanet::sphinx::NodeId>,
}

impl Sim {
    fn new(n: u8) -> Sim {
        let (auth, set) = authorities(n);
        let states = auth
            .into_iter()
            .enumerate()
            .map(|(i, a)| {
                AuthorityState::new(
                    a.key,
                    set.clone(),
                    Timing::for_epoch(EPOCH_SECONDS),
                    ConsensusParams::default(),
                    [i as u8; 32],
                )
            })
            .collect();
        Sim {
            states,
            up: vec![true; n as usize],
            reachable: Default::default(),
        }
    }

    fn index_of(&self, key: &[u8; 32]) -> usize {
        self.states
            .iter()
            .position(|s| &s.identity_key() == key)
            .unwrap()
    }

    /// Runs every live authority from `from` to `to` (inclusive), second by second.
    fn run(&mut self, from: u64, to: u64) {
        for now in from..=to {
            for i in 0..self.states.len() {
                if !self.up[i] {
                    continue;
                }
                self.states[i].handle_timeout(now);
                while let Some(action) = self.states[i].poll_action() {
                    self.perform(i, action);
                }
            }
        }
    }

    fn perform(&mut self, i: usize, action: Action) {
        match action {
            Action::Probe(nodes) => {
                for (id, _) in nodes {
                    let ok = self.reachable.contains(&id);
                    self.states[i].handle_probe(id, ok);
                }
            }
            Action::FetchVotes(e, peers) => {
                for p in peers {
                    let j = self.index_of(&p.identity_key);
                    if let Some(v) = self.up[j]
                        .then(|| self.states[j].own_vote(e).cloned())
                        .flatten()
                    {
                        self.states[i].handle_vote(e, v);
                    }
                }
            }
            Action::FetchReveals(e, peers) => {
                for p in peers {
                    let j = self.index_of(&p.identity_key);
                    if self.up[j] {
                        for r in self.states[j].reveals(e) {
                            self.states[i].handle_reveal(e, r);
                        }
                    }
                }
            }
            Action::FetchSignatures(e, peers) => {
                for p in peers {
                    let j = self.index_of(&p.identity_key);
                    if let Some(s) = self.up[j]
                        .then(|| self.states[j].own_signature(e).copied())
                        .flatten()
                    {
                        self.states[i].handle_signature(e, s);
                    }
                }
            }
        }
    }

    fn upload(&mut self, now: u64, nodes: &[NodeDescriptor]) {
        for (i, s) in self.states.iter_mut().enumerate() {
            if self.up[i] {
                for d in nodes {
                    s.handle_upload(now, d.clone()).unwrap();
                }
            }
        }
    }
}

#[test]
fn state_machines_reach_consensus_in_virtual_time_with_one_silent_and_churn() {
    let mut sim = Sim::new(3);
    let net = nodes(2, 6);
    sim.reachable = net.iter().map(|d| d.id).collect();
    let t0 = EPOCH * EPOCH_SECONDS;
    sim.upload(t0, &net);
    sim.run(t0, t0 + EPOCH_SECONDS); // through the first round
    let set = sim.states[0].authorities().clone();
    let docs: Vec<SignedConsensus> = sim
        .states
        .iter()
        .map(|s| s.current().cloned().unwrap())
        .collect();
    assert!(docs.windows(2).all(|w| w[0].consensus == w[1].consensus));
    let first = &docs[0];
    assert_eq!(first.consensus.epoch, EPOCH + 1);
    assert_eq!(first.consensus.nodes.len(), 6);
    assert_eq!(first.verify(&set, t0 + EPOCH_SECONDS).unwrap().valid, 3);
    assert!(
        first
            .consensus
            .nodes
            .iter()
            .all(|n| n.reliability_permille == 1000)
    );

    // One authority goes silent; one middle node stops answering probes.
    sim.up[2] = false;
    let gone = net.iter().find(|d| d.role == NodeRole::Middle).unwrap().id;
    sim.reachable.remove(&gone);
    let t1 = t0 + EPOCH_SECONDS;
    sim.upload(t1, &net);
    sim.run(t1 + 1, t1 + EPOCH_SECONDS);
    let second = sim.states[0].current().cloned().unwrap();
    assert_eq!(second.consensus.epoch, EPOCH + 2);
    assert_eq!(second.verify(&set, t1 + EPOCH_SECONDS).unwrap().valid, 2);
    assert_eq!(second.consensus.voters.len(), 2);
    assert_eq!(second.consensus.nodes.len(), 5, "the unreachable node left");
    assert!(
        second
            .consensus
            .nodes
            .iter()
            .all(|n| n.descriptor.id != gone)
    );

    // It comes back and rejoins.
    sim.reachable.insert(gone);
    let t2 = t1 + EPOCH_SECONDS;
    sim.upload(t2, &net);
    sim.run(t2 + 1, t2 + EPOCH_SECONDS);
    let third = sim.states[1].current().cloned().unwrap();
    assert_eq!(third.consensus.epoch, EPOCH + 3);
    assert_eq!(third.consensus.nodes.len(), 6, "the node rejoined");
    let rejoined = third
        .consensus
        .nodes
        .iter()
        .find(|n| n.descriptor.id == gone)
        .unwrap();
    assert!(
        rejoined.reliability_permille < 1000,
        "its missed probes show"
    );

    // Two of three silent: no new consensus, the last one stays served.
    sim.up[1] = false;
    let t3 = t2 + EPOCH_SECONDS;
    sim.run(t3 + 1, t3 + EPOCH_SECONDS);
    assert_eq!(sim.states[0].current().unwrap().consensus.epoch, EPOCH + 3);
    assert!(sim.states[0].counters().rounds_failed >= 1);
}
