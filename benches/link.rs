//! Link benchmarks: `cargo bench --bench link`.
//!
//! * `link_handshake`: a whole handshake, both sides in this thread —
//!   betanet's hybrid `hybridIK` (X25519 + ML-KEM-768, what nodes run:
//!   `Initiator::start` + `respond` + `Initiator::finish`) and `hybridNK`
//!   (a client's), against classical Noise `IK` (X25519, ChaChaPoly,
//!   SHA-256, clatter's `NqHandshake`: the same library without the KEMs).
//!   `*_responder` times the responder's half alone (reading the first
//!   message and writing the reply): what a node pays per inbound session.
//! * `link_record`: sealing and opening one record (one 1,394-byte Sphinx
//!   frame under ChaCha20-Poly1305), the per-frame cost of a session.
//!
//! After the run a summary (µs, and hybrid over classical) is printed and
//! written as JSON to `<target>/criterion/link_summary.json`.
//!
//! `BETANET_BENCH_CLOCK=cpu` times with the thread's CPU clock instead of
//! the wall clock (see benches/sphinx.rs): on a shared machine the time
//! the bench thread spends descheduled then counts for nothing.

use std::hint::black_box;
use std::path::Path;
use std::time::{Duration, Instant, SystemTime};

use betanet::link::handshake::PREAMBLE_LEN;
use betanet::link::{Initiator, LinkKeyPair, Preamble, RECORD_LEN, Session, respond};
use betanet::sphinx::FRAME_LEN;
use clatter::crypto::cipher::ChaChaPoly;
use clatter::crypto::dh::X25519;
use clatter::crypto::hash::Sha256;
use clatter::handshakepattern::noise_ik;
use clatter::traits::{Dh, Handshaker};
use clatter::{KeyPair, NqHandshake};
use criterion::measurement::{Measurement, WallTime};
use criterion::{BatchSize, Criterion, Throughput};

#[path = "support/estimates.rs"]
mod estimates;
use estimates::{criterion_dir, median_ns};
#[path = "support/thread_cpu.rs"]
mod thread_cpu;
use thread_cpu::{ThreadCpuTime, thread_cpu_now};

type Classical = NqHandshake<X25519, ChaChaPoly, Sha256>;
type DhKeyPair = KeyPair<<X25519 as Dh>::PubKey, <X25519 as Dh>::PrivateKey>;

/// Records sealed ahead (untimed) per timed run of opens: records must be
/// opened in the order they were sealed, each exactly once.
const OPEN_CHUNK: u64 = 4096;

/// The bytes `Initiator::start` sends, split: the preamble and the first
/// message without its length.
fn split_first_flight(flight: &[u8]) -> (Preamble, &[u8]) {
    let mut preamble = [0u8; PREAMBLE_LEN];
    preamble.copy_from_slice(&flight[..PREAMBLE_LEN]);
    let preamble = Preamble::decode(&preamble).expect("our own preamble parses");
    (preamble, &flight[PREAMBLE_LEN + 2..])
}

/// One whole betanet handshake; `own` is `None` for a client (`hybridNK`).
fn hybrid_handshake(own: Option<&LinkKeyPair>, responder: &LinkKeyPair) -> (Session, Session) {
    let (initiator, flight) =
        Initiator::start(own, responder.public(), 1).expect("handshake starts");
    let (preamble, message) = split_first_flight(&flight);
    let accepted = respond(&preamble, message, responder, |_| Ok(())).expect("responder accepts");
    let session = initiator
        .finish(&accepted.reply[2..])
        .expect("initiator finishes");
    (session, accepted.session)
}

fn classical_initiator(own: &DhKeyPair, peer: &DhKeyPair) -> (Classical, Vec<u8>) {
    let mut hs = Classical::new(
        noise_ik(),
        b"betanet bench",
        true,
        Some(own.clone()),
        None,
        Some(peer.public),
        None,
    )
    .expect("classical initiator");
    let mut out = vec![0u8; 1024];
    let n = hs.write_message(&[], &mut out).expect("message 1");
    out.truncate(n);
    (hs, out)
}

/// The responder's half of a classical IK handshake: read message 1,
/// write message 2, derive the transport keys.
fn classical_respond(own: &DhKeyPair, message: &[u8]) -> Vec<u8> {
    let mut hs = Classical::new(
        noise_ik(),
        b"betanet bench",
        false,
        Some(own.clone()),
        None,
        None,
        None,
    )
    .expect("classical responder");
    hs.read_message(message, &mut []).expect("message 1 reads");
    let mut out = vec![0u8; 1024];
    let n = hs.write_message(&[], &mut out).expect("message 2");
    out.truncate(n);
    black_box(hs.finalize().expect("responder done"));
    out
}

fn classical_handshake(a: &DhKeyPair, b: &DhKeyPair) {
    let (mut initiator, first) = classical_initiator(a, b);
    let reply = classical_respond(b, &first);
    initiator
        .read_message(&reply, &mut [])
        .expect("message 2 reads");
    black_box(initiator.finalize().expect("initiator done"));
}

/// Measures with the wall clock or the thread CPU clock, as `M` does.
trait Clock: Measurement<Value = Duration> {
    fn now(&self) -> Duration;
}

impl Clock for WallTime {
    fn now(&self) -> Duration {
        static START: std::sync::OnceLock<Instant> = std::sync::OnceLock::new();
        START.get_or_init(Instant::now).elapsed()
    }
}

impl Clock for ThreadCpuTime {
    fn now(&self) -> Duration {
        thread_cpu_now()
    }
}

fn benches<M: Clock>(c: &mut Criterion<M>, clock: &M) {
    let mut rng = rand::rng();
    let node_a = LinkKeyPair::generate(&mut rng);
    let node_b = LinkKeyPair::generate(&mut rng);
    let dh_a = X25519::genkey().expect("X25519 key");
    let dh_b = X25519::genkey().expect("X25519 key");

    let mut group = c.benchmark_group("link_handshake");
    group.throughput(Throughput::Elements(1));
    group.bench_function("hybrid_ik", |b| {
        b.iter(|| hybrid_handshake(Some(black_box(&node_a)), &node_b))
    });
    group.bench_function("hybrid_nk", |b| {
        b.iter(|| hybrid_handshake(None, black_box(&node_b)))
    });
    group.bench_function("classical_ik", |b| {
        b.iter(|| classical_handshake(black_box(&dh_a), &dh_b))
    });
    // The responder's half: the initiator's first message is set-up.
    group.bench_function("hybrid_ik_responder", |b| {
        b.iter_batched(
            || Initiator::start(Some(&node_a), node_b.public(), 1).expect("starts"),
            |(_initiator, flight)| {
                let (preamble, message) = split_first_flight(&flight);
                respond(&preamble, message, &node_b, |_| Ok(())).expect("accepts")
            },
            BatchSize::SmallInput,
        )
    });
    group.bench_function("classical_ik_responder", |b| {
        b.iter_batched(
            || classical_initiator(&dh_a, &dh_b).1,
            |first| classical_respond(&dh_b, &first),
            BatchSize::SmallInput,
        )
    });
    group.finish();

    let mut group = c.benchmark_group("link_record");
    group.throughput(Throughput::Bytes(FRAME_LEN as u64));
    let frame = vec![0x5a; FRAME_LEN];
    let (mut sender, _) = hybrid_handshake(Some(&node_a), &node_b);
    let mut out = Vec::with_capacity(2 * RECORD_LEN);
    let now = Instant::now();
    group.bench_function("seal", |b| {
        b.iter(|| {
            out.clear();
            sender
                .sealer
                .seal(now, black_box(&frame), &mut out)
                .expect("seals");
            black_box(&out);
        })
    });
    // A fresh pair: the receiver must see every record the sender sealed.
    let (mut sender, mut receiver) = hybrid_handshake(Some(&node_a), &node_b);
    let mut records = Vec::with_capacity(OPEN_CHUNK as usize * RECORD_LEN);
    group.bench_function("open", |b| {
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            let mut left = iters;
            while left > 0 {
                let n = left.min(OPEN_CHUNK);
                records.clear();
                for _ in 0..n {
                    sender
                        .sealer
                        .seal(now, &frame, &mut records)
                        .expect("seals");
                }
                let start = clock.now();
                for record in records.chunks_exact_mut(RECORD_LEN) {
                    let opened = receiver.opener.open(black_box(record)).expect("opens");
                    black_box(opened);
                }
                total += clock.now().saturating_sub(start);
                left -= n;
            }
            total
        })
    });
    group.finish();
}

/// Prints (and writes as JSON) what this run measured, in µs.
fn summary(dir: &Path, since: SystemTime, clock: &str) {
    let ids = [
        ("hybrid_ik_us", "link_handshake/hybrid_ik"),
        ("hybrid_nk_us", "link_handshake/hybrid_nk"),
        ("classical_ik_us", "link_handshake/classical_ik"),
        (
            "hybrid_ik_responder_us",
            "link_handshake/hybrid_ik_responder",
        ),
        (
            "classical_ik_responder_us",
            "link_handshake/classical_ik_responder",
        ),
        ("record_seal_us", "link_record/seal"),
        ("record_open_us", "link_record/open"),
    ];
    let mut out = serde_json::Map::new();
    for (key, id) in ids {
        if let Some(ns) = median_ns(dir, id, since) {
            out.insert(key.into(), ((ns / 10.0).round() / 100.0).into());
        }
    }
    if out.is_empty() {
        return; // test mode or a filter that matched nothing here
    }
    let get = |k: &str| out.get(k).and_then(serde_json::Value::as_f64);
    if let (Some(h), Some(c)) = (get("hybrid_ik_us"), get("classical_ik_us")) {
        out.insert(
            "hybrid_over_classical".into(),
            ((h / c * 100.0).round() / 100.0).into(),
        );
    }
    out.insert("clock".into(), clock.into());
    let json = serde_json::Value::Object(out);
    println!("link ({clock} clock): {json}");
    let _ = std::fs::write(dir.join("link_summary.json"), format!("{json}\n"));
}

fn run<M: Clock>(c: Criterion<M>, clock_name: &str, clock: &M) {
    let started = SystemTime::now();
    let dir = match clock_name {
        "wall" => criterion_dir(),
        _ => criterion_dir().join(clock_name),
    };
    let mut c = c
        .sample_size(30)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(4))
        .output_directory(&dir)
        .configure_from_args();
    benches(&mut c, clock);
    c.final_summary();
    summary(&dir, started, clock_name);
}

fn main() {
    match std::env::var("BETANET_BENCH_CLOCK").as_deref() {
        Ok("cpu") => run(
            Criterion::default().with_measurement(ThreadCpuTime),
            "thread_cpu",
            &ThreadCpuTime,
        ),
        Ok("wall") | Err(_) => run(Criterion::default(), "wall", &WallTime),
        Ok(other) => panic!("BETANET_BENCH_CLOCK must be `wall` or `cpu`, not {other:?}"),
    }
}
