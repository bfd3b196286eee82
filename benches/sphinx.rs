//! Sphinx engine benchmarks: `cargo bench --bench sphinx`.
//!
//! Every group runs in one process so the ratio of our hop to the baselines
//! is measured under the same conditions: a hop "as usually built" (two
//! X25519 Montgomery-ladder calls), and Nym's `sphinx-packet` 0.8 `process`
//! of a first hop. After the run a per-hop summary with the ratios is
//! printed, and written as JSON to `<target>/criterion/per_hop_vs_nym.json`.
//!
//! `BETANET_BENCH_CLOCK=cpu` times with the thread's CPU clock instead of
//! the wall clock: on a machine shared with other jobs, the time the bench
//! thread spends descheduled then counts for nothing, so groups measured
//! minutes apart under different load stay comparable.

use std::hint::black_box;
use std::path::Path;
use std::time::{Duration, SystemTime};

use betanet::crypto::lioness;
use betanet::crypto::stream::xor_keystream;
use betanet::crypto::x25519::CurvePoint;
use betanet::sphinx::{
    FinalCommand, HopKeys, NodeId, PathHop, SphinxProcessor, SphinxSecretKey, create_packet,
    create_packet_with_seed,
};
use criterion::measurement::Measurement;
use criterion::{BatchSize, Criterion, Throughput};
use rand::SeedableRng;
use sphinx_packet::SphinxPacket;
use sphinx_packet::constants::{
    DESTINATION_ADDRESS_LENGTH, IDENTIFIER_LENGTH, NODE_ADDRESS_LENGTH,
};
use sphinx_packet::header::delays::Delay;
use sphinx_packet::route::{Destination, DestinationAddressBytes, Node, NodeAddressBytes};
use x25519_dalek::{PublicKey, StaticSecret};

#[path = "support/estimates.rs"]
mod estimates;
use estimates::{criterion_dir, median_ns};
#[path = "support/thread_cpu.rs"]
#[allow(dead_code)] // `thread_cpu_now` is for benches with their own timing loops.
mod thread_cpu;
use thread_cpu::ThreadCpuTime;

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

/// A 3-hop Nym packet (their default 1024-byte payload, built with their
/// API) and the first hop's secret.
fn nym_fixture() -> (Vec<u8>, StaticSecret) {
    let secrets: Vec<StaticSecret> = (1..=3u8)
        .map(|i| StaticSecret::from([i * 17; 32]))
        .collect();
    let route: Vec<Node> = secrets
        .iter()
        .enumerate()
        .map(|(i, s)| {
            Node::new(
                NodeAddressBytes::from_bytes([i as u8; NODE_ADDRESS_LENGTH]),
                PublicKey::from(s),
            )
        })
        .collect();
    let delays: Vec<Delay> = route.iter().map(|_| Delay::new_from_nanos(10)).collect();
    let destination = Destination::new(
        DestinationAddressBytes::from_bytes([3u8; DESTINATION_ADDRESS_LENGTH]),
        [4u8; IDENTIFIER_LENGTH],
    );
    let packet = SphinxPacket::new(b"benchmark".to_vec(), &route, &destination, &delays)
        .expect("valid Nym route");
    let first = secrets.into_iter().next().expect("three secrets");
    (packet.to_bytes(), first)
}

fn benches<M: Measurement>(c: &mut Criterion<M>) {
    let f = fixture();
    let frame = frames(&f, 1).remove(0);
    let batch = frames(&f, BATCH);
    let (nym_bytes, nym_secret) = nym_fixture();

    let mut group = c.benchmark_group("sphinx_hop");
    group.throughput(Throughput::Elements(1));
    // Parsing the bytes is set-up (untimed): `process` consumes the packet.
    group.bench_function("nym_process", |b| {
        b.iter_batched(
            || SphinxPacket::from_bytes(&nym_bytes).expect("Nym packet parses"),
            |packet| {
                let out = black_box(packet).process(&nym_secret);
                assert!(out.is_ok());
                out
            },
            BatchSize::SmallInput,
        )
    });
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

    // Decoding α alone: one inversion and one square root per point, or
    // one square root per point and one inversion per batch.
    let alphas: Vec<[u8; 32]> = batch
        .iter()
        .map(|frame| frame[2..34].try_into().expect("frame length"))
        .collect();
    let mut group = c.benchmark_group("alpha_decode");
    group.throughput(Throughput::Elements(BATCH as u64));
    group.bench_function("one_by_one_64", |b| {
        b.iter(|| {
            black_box(&alphas)
                .iter()
                .map(CurvePoint::from_u_bytes)
                .collect::<Vec<_>>()
        })
    });
    group.bench_function("batch_64", |b| {
        b.iter(|| {
            let slots: Vec<Option<&[u8; 32]>> = black_box(&alphas).iter().map(Some).collect();
            CurvePoint::from_u_bytes_batch(&slots)
        })
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

/// Prints Nym's per-hop cost against ours, measured in this run.
fn per_hop_summary(dir: &Path, since: SystemTime, clock: &str) {
    let (Some(nym), Some(ladder), Some(single), Some(batch)) = (
        median_ns(dir, "sphinx_hop/nym_process", since),
        median_ns(dir, "sphinx_hop/ladder_baseline", since),
        median_ns(dir, "sphinx_hop/unwrap", since),
        median_ns(dir, "sphinx_batch/unwrap_batch_64", since),
    ) else {
        return; // filtered run or test mode: nothing to compare
    };
    let batched = batch / BATCH as f64;
    let us = |ns: f64| (ns / 10.0).round() / 100.0;
    let ratio = |x: f64| (nym / x * 100.0).round() / 100.0;
    println!(
        "per hop ({clock} clock): nym_process {} µs, betanet unwrap_batch_64 {} µs ({}× faster), \
         unwrap {} µs ({}× faster); ladder baseline {} µs",
        us(nym),
        us(batched),
        ratio(batched),
        us(single),
        ratio(single),
        us(ladder),
    );
    let summary = serde_json::json!({
        "nym_process_us": us(nym),
        "betanet_unwrap_batch_us": us(batched),
        "betanet_unwrap_us": us(single),
        "ladder_baseline_us": us(ladder),
        "ratio_batched": ratio(batched),
        "ratio_single": ratio(single),
        "batched_over_ladder": (batched / ladder * 1000.0).round() / 1000.0,
        "avx512ifma": cfg!(target_feature = "avx512ifma"),
        "clock": clock,
    });
    println!("{summary}");
    let _ = std::fs::write(dir.join("per_hop_vs_nym.json"), format!("{summary}\n"));
}

fn run<M: Measurement>(c: Criterion<M>, clock: &str) {
    let started = SystemTime::now();
    // Each clock keeps its own history, so criterion's "change since the
    // last run" compares like with like.
    let dir = match clock {
        "wall" => criterion_dir(),
        _ => criterion_dir().join(clock),
    };
    let mut c = c
        .sample_size(30)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(4))
        .output_directory(&dir)
        .configure_from_args();
    benches(&mut c);
    c.final_summary();
    per_hop_summary(&dir, started, clock);
}

fn main() {
    match std::env::var("BETANET_BENCH_CLOCK").as_deref() {
        Ok("cpu") => run(
            Criterion::default().with_measurement(ThreadCpuTime),
            "thread_cpu",
        ),
        Ok("wall") | Err(_) => run(Criterion::default(), "wall"),
        Ok(other) => panic!("BETANET_BENCH_CLOCK must be `wall` or `cpu`, not {other:?}"),
    }
}
