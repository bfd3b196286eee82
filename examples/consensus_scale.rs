//! Issue 15, deliverable 7: the size of a consensus and the cost of
//! producing, verifying and fetching it for 10, 100 and 1,000 nodes (a
//! local generator: real keys, real signed descriptors, three authorities),
//! against per-node descriptor polling.
//!
//! ```text
//! cargo run --release --example consensus_scale                  # 10, 100, 1000 nodes
//! cargo run --release --example consensus_scale -- --clients 100000
//! ```
//!
//! Prints one JSON object per network size.

use std::net::SocketAddr;
use std::time::Instant;

use betanet::NodeRole;
use betanet::authority::{
    AuthorityInfo, AuthoritySet, ConsensusParams, Reveal, SignedConsensus, VOTE_VERSION, Vote,
    VotedNode, commitment, compute_consensus,
};
use betanet::keys::NodeKeys;
use betanet::sphinx::SphinxSecretKey;
use betanet::topology::{NodeDescriptor, SphinxKeyEntry};
use ed25519_dalek::SigningKey;
use rand::SeedableRng;
use rand_chacha::ChaCha20Rng;

const AUTHORITIES: u8 = 3;
const EPOCH_SECONDS: u64 = 1200;

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let clients: u64 = args
        .iter()
        .position(|a| a == "--clients")
        .and_then(|i| args.get(i + 1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(10_000);
    for n in [10usize, 100, 1000] {
        measure(n, clients);
    }
}

fn measure(n: usize, clients: u64) {
    let mut rng = ChaCha20Rng::seed_from_u64(n as u64);
    let descriptors: Vec<NodeDescriptor> = (0..n)
        .map(|i| {
            let keys = NodeKeys::generate(&mut rng);
            let role = NodeRole::ALL[i % 3];
            let ip = [10, (i >> 16) as u8, (i >> 8) as u8, i as u8];
            let addr = SocketAddr::from((ip, 9000));
            let http = SocketAddr::from((ip, 9100));
            let keys_published = (0..2)
                .map(|e| SphinxKeyEntry {
                    epoch: 1000 + e,
                    public_key: SphinxSecretKey::from_bytes([(i % 200) as u8 + e as u8 + 1; 32])
                        .public_key(),
                })
                .collect();
            NodeDescriptor::new_signed(&keys, role, addr, addr, http, keys_published, 86_400)
                .and_then(|d| d.with_network(Default::default(), &keys))
                .expect("generated descriptor")
        })
        .collect();
    let descriptor_bytes: usize = descriptors
        .iter()
        .map(|d| serde_json::to_vec(d).unwrap().len())
        .sum::<usize>()
        / n;

    let keys: Vec<SigningKey> = (0..AUTHORITIES)
        .map(|i| SigningKey::from_bytes(&[i + 1; 32]))
        .collect();
    let set = AuthoritySet::new(
        keys.iter()
            .map(|k| AuthorityInfo {
                identity_key: k.verifying_key().to_bytes(),
                addr: "127.0.0.1:7000".parse().unwrap(),
            })
            .collect(),
    )
    .unwrap();
    let epoch = 1_500_000;

    let t = Instant::now();
    let votes: Vec<_> = keys
        .iter()
        .map(|k| {
            let me = k.verifying_key().to_bytes();
            let mut nodes: Vec<VotedNode> = descriptors
                .iter()
                .map(|d| VotedNode {
                    descriptor: d.clone(),
                    reliability_permille: 1000,
                })
                .collect();
            nodes.sort_by_key(|v| v.descriptor.id);
            Vote {
                version: VOTE_VERSION,
                epoch,
                authority: me,
                params: ConsensusParams::default(),
                commit: commitment(epoch, &me, &[7; 32]),
                nodes,
            }
            .sign(k)
            .unwrap()
        })
        .collect();
    let vote_ms = t.elapsed().as_secs_f64() * 1e3 / f64::from(AUTHORITIES);
    let vote_bytes = serde_json::to_vec(&votes[0]).unwrap().len();
    let reveals: Vec<_> = keys
        .iter()
        .map(|k| {
            Reveal {
                epoch,
                authority: k.verifying_key().to_bytes(),
                value: [7; 32],
            }
            .sign(k)
            .unwrap()
        })
        .collect();

    // One authority's work: parse the peers' votes, run the rule, sign.
    let vote_json: Vec<Vec<u8>> = votes
        .iter()
        .map(|v| serde_json::to_vec(v).unwrap())
        .collect();
    let t = Instant::now();
    let parsed: Vec<_> = vote_json
        .iter()
        .map(|j| betanet::authority::SignedVote::from_json(j).unwrap())
        .collect();
    let (consensus, report) =
        compute_consensus(&set, epoch, EPOCH_SECONDS, &parsed, &reveals).unwrap();
    let signature = consensus.sign(&keys[0]).unwrap();
    let produce_ms = t.elapsed().as_secs_f64() * 1e3;
    assert_eq!(report.votes_counted, AUTHORITIES as usize);
    assert_eq!(consensus.nodes.len(), n);

    let mut signatures = vec![signature];
    signatures.extend(keys[1..].iter().map(|k| consensus.sign(k).unwrap()));
    let doc = SignedConsensus {
        consensus,
        signatures,
    };
    let json = doc.to_json().unwrap();
    let now = doc.consensus.valid_after + 1;

    // A reader's work: parse, check the signatures, build the topology
    // (which verifies every node's own signature).
    let t = Instant::now();
    let read = SignedConsensus::from_json(&json).unwrap();
    read.verify(&set, now).unwrap();
    let verify_signatures_ms = t.elapsed().as_secs_f64() * 1e3;
    let t = Instant::now();
    let topology = read.consensus.topology().unwrap();
    let build_topology_ms = t.elapsed().as_secs_f64() * 1e3;
    assert_eq!(topology.len(), n);

    let consensus_bytes = json.len() as u64;
    let per_epoch_fetch = consensus_bytes * (clients + n as u64);
    // Polling: every client and every node fetches every descriptor.
    let polling_requests = (clients + n as u64) * n as u64;
    let polling_bytes = polling_requests * descriptor_bytes as u64;
    println!(
        "{}",
        serde_json::json!({
            "nodes": n,
            "authorities": AUTHORITIES,
            "clients": clients,
            "descriptor_bytes": descriptor_bytes,
            "vote_bytes": vote_bytes,
            "consensus_bytes": consensus_bytes,
            "make_and_sign_vote_ms": round(vote_ms),
            "produce_consensus_ms": round(produce_ms),
            "verify_consensus_ms": round(verify_signatures_ms),
            "build_topology_ms": round(build_topology_ms),
            "fetch_per_epoch": {
                "consensus_requests": clients + n as u64,
                "consensus_bytes": per_epoch_fetch,
                "polling_requests": polling_requests,
                "polling_bytes": polling_bytes,
            },
        })
    );
}

fn round(x: f64) -> f64 {
    (x * 100.0).round() / 100.0
}
