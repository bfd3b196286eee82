//! The backward estimator against the forward algebra computed densely:
//! every packet carries its full distribution over senders, every pool the
//! sum of its inputs' (each scaled by the chance it is still held).

use rand::{Rng, SeedableRng};

use super::*;

const CLIENTS: usize = 40;
/// The dense vectors' last slot is node-made cover.
const COVER: usize = CLIENTS;

struct DensePacket {
    dist: Vec<f64>,
    arrival: u64,
}

struct DenseNode {
    aggregate: Vec<f64>,
    pool: Vec<DensePacket>,
}

fn entropy_over_clients(dist: &[f64]) -> f64 {
    let total: f64 = dist[..CLIENTS].iter().sum();
    -dist[..CLIENTS]
        .iter()
        .filter(|&&m| m > 0.0)
        .map(|&m| (m / total) * (m / total).log2())
        .sum::<f64>()
}

/// Random traffic through `layers` layers of `width` nodes, some of them
/// compromised; every delivered packet's entropy is computed both ways.
fn cross_check(seed: u64, layers: usize, width: usize, compromised_every: usize) -> usize {
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
    let nodes = layers * width;
    let compromised: Vec<bool> = (0..nodes)
        .map(|n| compromised_every > 0 && n % compromised_every == 1)
        .collect();
    let mut logs: Vec<NodeLog> = (0..nodes).map(|_| NodeLog::default()).collect();
    let mut dense: Vec<DenseNode> = (0..nodes)
        .map(|_| DenseNode {
            aggregate: vec![0.0; CLIENTS + 1],
            pool: Vec::new(),
        })
        .collect();
    let mut estimator = Estimator::new(CLIENTS, layers);
    let mut checked = 0;
    let below = |rng: &mut rand_chacha::ChaCha8Rng, n: usize| (rng.next_u64() % n as u64) as usize;
    for step in 0..6_000u32 {
        let t = step / 10;
        let choice = below(&mut rng, 10);
        if choice < 4 {
            // A client sends to an entry node.
            let client = below(&mut rng, CLIENTS);
            let node = below(&mut rng, width);
            let mut dist = vec![0.0; CLIENTS + 1];
            dist[client] = 1.0;
            let arrival = logs[node].arrive(t, Origin::Client(client as u32));
            let d = &mut dense[node];
            d.aggregate[client] += 1.0;
            d.pool.push(DensePacket { dist, arrival });
        } else if choice == 4 {
            // A node's own cover enters its pool.
            let node = below(&mut rng, nodes);
            let mut dist = vec![0.0; CLIENTS + 1];
            dist[COVER] = 1.0;
            let arrival = logs[node].arrive(t, Origin::Own);
            let d = &mut dense[node];
            d.aggregate[COVER] += 1.0;
            d.pool.push(DensePacket { dist, arrival });
        } else {
            // Some packet leaves some node (which one does not matter to
            // the honest algebra; the compromised mapping uses it).
            let node = below(&mut rng, nodes);
            if dense[node].pool.is_empty() {
                continue;
            }
            let pick = below(&mut rng, dense[node].pool.len());
            let d = &mut dense[node];
            let packet = d.pool.swap_remove(pick);
            let held = (d.pool.len() + 1) as f64;
            let out: Vec<f64> = if compromised[node] {
                packet.dist.clone()
            } else {
                d.aggregate.iter().map(|m| m / held).collect()
            };
            let shrink = 1.0 - 1.0 / held;
            d.aggregate.iter_mut().for_each(|m| *m *= shrink);
            let departure = logs[node].depart(t, packet.arrival);
            let layer = node / width;
            if layer + 1 == layers {
                let fast = estimator.estimate(&logs, &compromised, node as u32, departure, None);
                let slow = entropy_over_clients(&out);
                assert!(
                    (fast.bits - slow).abs() < 1e-6,
                    "step {step}: backward {} vs dense {slow}",
                    fast.bits
                );
                assert!((fast.cover_mass - out[COVER]).abs() < 1e-6);
                assert!(fast.lost_mass < 1e-5, "lost {}", fast.lost_mass);
                checked += 1;
            } else {
                let next = (layer + 1) * width + below(&mut rng, width);
                let arrival = logs[next].arrive(
                    t,
                    Origin::Node {
                        node: node as u32,
                        departure,
                    },
                );
                let d = &mut dense[next];
                d.aggregate.iter_mut().zip(&out).for_each(|(a, o)| *a += o);
                d.pool.push(DensePacket { dist: out, arrival });
            }
        }
    }
    checked
}

#[test]
fn backward_sweep_matches_the_dense_forward_algebra() {
    for seed in 0..4 {
        assert!(cross_check(seed, 3, 3, 0) > 200);
    }
}

#[test]
fn compromised_nodes_reveal_their_mapping() {
    for seed in 10..14 {
        assert!(cross_check(seed, 3, 3, 3) > 200);
    }
}

#[test]
fn origins_round_trip_and_pruned_logs_lose_mass_instead_of_panicking() {
    for o in [
        Origin::Client(0),
        Origin::Client(u32::MAX),
        Origin::Own,
        Origin::Node {
            node: (1 << 20) - 1,
            departure: (1 << 40) - 1,
        },
    ] {
        assert_eq!(Origin::unpack(o.pack()), o);
    }
    let mut log = NodeLog::default();
    let a = log.arrive(0, Origin::Client(3));
    let d = log.depart(5, a);
    log.prune_before(10);
    assert!(log.is_empty());
    let mut e = Estimator::new(4, 3);
    let est = e.estimate(&[log], &[false], 0, d, Some(3));
    assert_eq!(est.bits, 0.0);
    assert_eq!(est.truth, Some(0.0));
    assert!((est.lost_mass - 1.0).abs() < 1e-12);
    // Unknown nodes and clients are ignored, not indexed.
    let mut log = NodeLog::default();
    let a = log.arrive(0, Origin::Client(99));
    let d = log.depart(0, a);
    assert_eq!(e.estimate(&[log], &[], 7, d, None).lost_mass, 1.0);
}
