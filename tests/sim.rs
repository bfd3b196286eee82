//! `betanet sim` against theory: Little's law per node, the Poisson-mix
//! model at one node, entropy growing with delay and with cover, and
//! determinism by seed. Everything runs in virtual time: nothing sleeps.

use std::sync::mpsc;
use std::thread;
use std::time::Duration;

use betanet::mixing::poisson_mix_bits;
use betanet::sim::{SimConfig, SimReport, run};

/// Runs `config` on a thread and fails the test if it takes longer than
/// `limit` (a hang must fail, not stall the suite).
fn run_within(limit: Duration, config: SimConfig) -> SimReport {
    let (tx, rx) = mpsc::channel();
    thread::spawn(move || {
        let _ = tx.send(run(&config));
    });
    let report = rx
        .recv_timeout(limit)
        .expect("the simulation did not finish in time")
        .expect("valid configuration");
    // Whatever the run, the estimator must follow every possible path.
    assert_eq!(
        report.true_sender_excluded, 0,
        "true sender given probability 0"
    );
    assert!(
        report.mean_lost_mass < 1e-3,
        "lost mass {}",
        report.mean_lost_mass
    );
    report
}

const LIMIT: Duration = Duration::from_secs(180);

fn small() -> SimConfig {
    SimConfig {
        layers: 3,
        nodes_per_layer: 3,
        clients: 300,
        virtual_seconds: 30.0,
        mean_delay_ms: 20.0,
        client_rate: 1.0,
        client_cover_rate: 0.0,
        node_loop_rate: 0.5,
        entropy_sample: Some(0.2),
        ..SimConfig::default()
    }
}

#[test]
fn littles_law_holds_at_every_node() {
    let report = run_within(
        LIMIT,
        SimConfig {
            nodes_per_layer: 2,
            clients: 400,
            client_rate: 2.0,
            client_cover_rate: 0.5,
            virtual_seconds: 40.0,
            entropy_sample: Some(0.0),
            ..small()
        },
    );
    assert!(
        (0.95..=1.05).contains(&report.little_law_ratio),
        "network: {}",
        report.little_law_ratio
    );
    for n in &report.nodes {
        // ~20,000 arrivals per node: the ratio's noise is ~1%.
        assert!(
            n.load_pps * report.virtual_seconds > 15_000.0,
            "node {} too idle",
            n.node
        );
        let ratio = n.packet_seconds / n.model_packet_seconds;
        assert!((0.95..=1.05).contains(&ratio), "node {}: {ratio}", n.node);
        // The driver's own gauge agrees with the core's occupancy.
        let held = n.packet_seconds / report.virtual_seconds;
        assert!(
            (n.mean_held - held).abs() < 0.05 * held + 0.01,
            "node {}",
            n.node
        );
    }
}

#[test]
fn one_node_follows_the_poisson_mix_model() {
    // One mix fed 1,000 packets/s by 20,000 clients (so a client rarely
    // has two packets in the pool at once: sender entropy ≈ packet
    // entropy), mean delay 20 ms: log2(e · 1000 · 0.02) = 5.77 bits.
    let report = run_within(
        LIMIT,
        SimConfig {
            layers: 1,
            nodes_per_layer: 1,
            clients: 20_000,
            client_rate: 0.05,
            client_cover_rate: 0.0,
            node_loop_rate: 0.0,
            mean_delay_ms: 20.0,
            virtual_seconds: 30.0,
            entropy_sample: Some(0.3),
            ..SimConfig::default()
        },
    );
    let model = poisson_mix_bits(1000.0, 0.02);
    assert!(
        (report.mean_entropy_bits - model).abs() < 0.25,
        "measured {}, model {model}",
        report.mean_entropy_bits
    );
    assert!(report.entropy_samples > 5_000);
}

#[test]
fn entropy_grows_with_mean_delay_and_with_cover() {
    let base = run_within(LIMIT, small());
    let slower = run_within(
        LIMIT,
        SimConfig {
            mean_delay_ms: 100.0,
            ..small()
        },
    );
    let covered = run_within(
        LIMIT,
        SimConfig {
            client_cover_rate: 3.0,
            ..small()
        },
    );
    let (b, s, c) = (
        base.mean_entropy_bits,
        slower.mean_entropy_bits,
        covered.mean_entropy_bits,
    );
    assert!(b > 3.0, "base {b}");
    assert!(s > b + 0.5, "delay 20 → 100 ms: {b} → {s} bits");
    assert!(c > b + 0.5, "cover 0 → 3 per second: {b} → {c} bits");
    // More delay, more latency: about 3 × 80 ms more.
    let extra = slower.latency_ms.mean - base.latency_ms.mean;
    assert!((200.0..280.0).contains(&extra), "latency grew {extra} ms");
}

#[test]
fn compromised_nodes_and_failures_cost_what_they_should() {
    let honest = run_within(LIMIT, small());
    let watched = run_within(
        LIMIT,
        SimConfig {
            compromised_fraction: 0.34,
            ..small()
        },
    );
    assert!(
        watched.mean_entropy_bits < honest.mean_entropy_bits - 0.3,
        "{} vs {}",
        watched.mean_entropy_bits,
        honest.mean_entropy_bits
    );
    assert_eq!(honest.lost, 0);
    assert_eq!(honest.loop_loss_ratio, 0.0);
    let failing = run_within(
        LIMIT,
        SimConfig {
            fail_fraction: 0.34,
            fail_at_seconds: 10.0,
            ..small()
        },
    );
    assert_eq!(failing.failed_nodes, 3);
    assert!(failing.lost > 0);
    // A third of the nodes gone after a third of the run: most of the
    // later loops cross one of them.
    assert!(
        (0.15..0.85).contains(&failing.loop_loss_ratio),
        "loop loss {}",
        failing.loop_loss_ratio
    );
}

#[test]
fn the_same_seed_gives_the_same_report() {
    let strip = |mut r: SimReport| {
        r.wall_seconds = 0.0;
        r.ns_per_packet = 0.0;
        r.peak_rss_bytes = 0;
        r.to_json()
    };
    let config = SimConfig {
        virtual_seconds: 10.0,
        compromised_fraction: 0.2,
        ..small()
    };
    let a = strip(run_within(LIMIT, config.clone()));
    let b = strip(run_within(LIMIT, config.clone()));
    assert_eq!(a, b);
    let c = strip(run_within(LIMIT, SimConfig { seed: 2, ..config }));
    assert_ne!(a, c);
}

#[test]
fn bad_configurations_are_refused_not_run() {
    for config in [
        SimConfig {
            layers: 0,
            ..small()
        },
        SimConfig {
            clients: 0,
            ..small()
        },
        SimConfig {
            mean_delay_ms: -1.0,
            ..small()
        },
        SimConfig {
            entropy_sample: Some(2.0),
            ..small()
        },
        SimConfig {
            client_rate: 1e12,
            ..small()
        },
    ] {
        assert!(run(&config).is_err(), "{config:?}");
    }
}

#[test]
fn real_sphinx_packets_route_as_simulated_and_change_nothing() {
    let config = SimConfig {
        virtual_seconds: 8.0,
        client_cover_rate: 0.5,
        compromised_fraction: 0.2,
        ..small()
    };
    let strip = |mut r: SimReport| {
        r.wall_seconds = 0.0;
        r.ns_per_packet = 0.0;
        r.peak_rss_bytes = 0;
        let crypto = r.real_crypto.take();
        r.config.real_crypto = false;
        (r.to_json(), crypto, r.simulated_packets)
    };
    let (modelled, none, _) = strip(run_within(LIMIT, config.clone()));
    assert!(none.is_none());
    let (real, crypto, hops) = strip(run_within(
        LIMIT,
        SimConfig {
            real_crypto: true,
            ..config
        },
    ));
    let crypto = crypto.expect("real crypto stats");
    assert_eq!(crypto.route_mismatches, 0);
    assert_eq!(crypto.refused, 0);
    assert!(crypto.built > 2_000, "{crypto:?}");
    assert_eq!(crypto.unwrapped, hops, "every hop unwrapped for real");
    assert_eq!(modelled, real, "real crypto must not change the run");
}
