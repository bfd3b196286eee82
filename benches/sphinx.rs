//! Sphinx engine benchmarks: `cargo bench --bench sphinx`.
//!
//! Every group runs in one process so the ratio of our hop to the baseline
//! (a hop "as usually built", with two X25519 Montgomery-ladder calls) is
//! measured under the same conditions.

use std::hint::black_box;

use betanet::crypto::lioness;
use betanet::crypto::stream::xor_keystream;
use betanet::sphinx::{
    FinalCommand, HopKeys, NodeId, PathHop, SphinxProcessor, SphinxSecretKey, create_packet,
    create_packet_with_seed,
};
use criterion::{BatchSize, Criterion, Throughput, criterion_group, criterion_main};
use rand::SeedableRng;

const BATCH: usize = 64;

struct Fixture {
    path: Vec<PathHop>,
    first_hop: SphinxProcessor,
    first_secret: [u8; 32],
}

fn fixture() -> Fixture {
    let secrets: Vec<[u8; 32]> = (1..=3u8).map(|i| [i * 17; 32]).collect();
    let path = secrets
        .iter()
        .enumerate()
        .map(|(i, s)| PathHop {
            id: NodeId::from_bytes([i as u8; 16]),
            public_key: SphinxSecretKey::from_bytes(*s).public_key(),
        })
        .collect();
    Fixture {
        path,
        first_hop: SphinxProcessor::new(SphinxSecretKey::from_bytes(secrets[0])),
        first_secret: secrets[0],
    }
}

/// Distinct 3-hop packets, so a batch is realistic (every α differs).
fn frames(f: &Fixture, n: usize) -> Vec<Vec<u8>> {
    (0..n)
        .map(|i| {
            let mut seed = [0u8; 32];
            seed[..8].copy_from_slice(&(i as u64).to_le_bytes());
            create_packet_with_seed(&f.path, FinalCommand::Drop, b"benchmark", &seed)
                .expect("valid path")
                .frame
                .to_vec()
        })
        .collect()
}

/// A relay hop as most Sphinx implementations build it: X25519 by
/// Montgomery ladder for the shared secret and again for the blinded α,
/// with the same symmetric work as ours.
fn ladder_hop(secret: &[u8; 32], frame: &mut [u8]) -> bool {
    let alpha: [u8; 32] = frame[2..34].try_into().expect("frame length");
    let shared = x25519_dalek::x25519(*secret, alpha);
    let keys = HopKeys::derive(&shared);
    if !keys.verify_mac(&frame[50..370], &frame[34..50]) {
        return false;
    }
    let mut b = [0u8; 384];
    b[..320].copy_from_slice(&frame[50..370]);
    xor_keystream(&keys.rho, &mut b);
    frame[34..50].copy_from_slice(&b[48..64]);
    frame[50..370].copy_from_slice(&b[64..]);
    lioness::decrypt(&keys.lioness, &mut frame[370..]);
    let next_alpha = x25519_dalek::x25519(keys.blind, alpha);
    frame[2..34].copy_from_slice(&next_alpha);
    true
}

fn benches(c: &mut Criterion) {
    let f = fixture();
    let frame = frames(&f, 1).remove(0);
    let batch = frames(&f, BATCH);

    let mut group = c.benchmark_group("sphinx_hop");
    group.throughput(Throughput::Elements(1));
    group.bench_function("ladder_baseline", |b| {
        b.iter_batched_ref(
            || frame.clone(),
            |fr| assert!(ladder_hop(&f.first_secret, black_box(fr))),
            BatchSize::SmallInput,
        )
    });
    group.bench_function("unwrap", |b| {
        b.iter_batched_ref(
            || frame.clone(),
            |fr| {
                let out = f.first_hop.unwrap(black_box(fr), &mut |_: &_| false);
                assert!(out.is_ok());
            },
            BatchSize::SmallInput,
        )
    });
    group.finish();

    let mut group = c.benchmark_group("sphinx_batch");
    group.throughput(Throughput::Elements(BATCH as u64));
    group.bench_function("unwrap_batch_64", |b| {
        b.iter_batched_ref(
            || batch.clone(),
            |frames| {
                let out = f
                    .first_hop
                    .unwrap_batch(black_box(frames), &mut |_: &_| false);
                assert!(out.iter().all(Result::is_ok));
            },
            BatchSize::SmallInput,
        )
    });
    group.finish();

    let mut group = c.benchmark_group("sphinx_create");
    group.throughput(Throughput::Elements(1));
    let mut rng = rand_chacha::ChaCha20Rng::seed_from_u64(7);
    group.bench_function("create_3_hops", |b| {
        b.iter(|| create_packet(&f.path, FinalCommand::Drop, b"benchmark", &mut rng))
    });
    group.finish();
}

criterion_group! {
    name = sphinx;
    config = Criterion::default()
        .sample_size(30)
        .warm_up_time(std::time::Duration::from_secs(1))
        .measurement_time(std::time::Duration::from_secs(4));
    targets = benches
}
criterion_main!(sphinx);
