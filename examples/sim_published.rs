//! Reproduces a published curve: Piotrowska's simulator's entropy of a
//! 3-layer stratified mixnet against the number of users (see
//! `betanet::sim::published`), next to this simulator's and the closed
//! form's; writes `docs/simulation-published.svg` and prints the table of
//! `docs/simulation.md`.
//!
//! ```text
//! cargo run --release --example sim_published
//! ```

use betanet::sim::plot::{Axes, Series, chart};
use betanet::sim::published::{
    LAYERS, MEAN_DELAY_S, PROCESSING_S, STRATIFIED, USER_RATE, gamma_path_bits,
};
use betanet::sim::{SimConfig, run};

fn main() {
    let mut ours = Vec::new();
    let mut packets = Vec::new();
    let mut theirs = Vec::new();
    println!(
        "| users | nodes per layer | published (bits) | betanet sim (bits) | same traffic from 10× the users (bits) | closed form (bits) | published latency (s) | our latency (s) | wall (s) |"
    );
    println!("|---|---|---|---|---|---|---|---|---|");
    for p in STRATIFIED {
        let users = p.users as usize;
        // Nodes that each carry about 1,000 packets/s, as in the paper's
        // setup, and at least 3 per layer.
        let width = (users / 1000).max(3);
        let config = SimConfig {
            layers: LAYERS,
            nodes_per_layer: width,
            clients: users,
            virtual_seconds: 13.0,
            warmup_seconds: Some(3.0),
            mean_delay_ms: MEAN_DELAY_S * 1e3,
            client_rate: USER_RATE,
            client_cover_rate: 0.0,
            node_loop_rate: 0.0,
            link_latency_ms: 0.0,
            link_jitter_ms: 0.0,
            // The paper adds 0.386 ms per hop; enough workers that it is a
            // delay, not a queue.
            crypto_us: PROCESSING_S * 1e6,
            workers: 8,
            // A few hundred messages suffice for the mean (per-message
            // entropies vary by a few tenths of a bit).
            entropy_sample: Some((600.0 / (users as f64 * 10.0)).min(1.0)),
            ..SimConfig::default()
        };
        let report = run(&config).expect("valid configuration");
        // The same packets from ten times as many users, each sending a
        // tenth as often: a user then rarely has two packets in reach, so
        // the sender entropy is the entropy over packets, which is what
        // Piotrowska's simulator measures.
        let spread = run(&SimConfig {
            clients: users * 10,
            client_rate: USER_RATE / 10.0,
            ..config.clone()
        })
        .expect("valid configuration");
        let closed = gamma_path_bits(users as f64 * USER_RATE, LAYERS, MEAN_DELAY_S);
        println!(
            "| {} | {} | {:.2} | {:.2} | {:.2} | {:.2} | {:.3} | {:.3} | {:.1} |",
            users,
            width,
            p.entropy_bits,
            report.mean_entropy_bits,
            spread.mean_entropy_bits,
            closed,
            p.latency_s,
            report.latency_ms.mean / 1e3,
            report.wall_seconds
        );
        let x = users as f64;
        theirs.push((x, p.entropy_bits));
        ours.push((x, report.mean_entropy_bits));
        packets.push((x, spread.mean_entropy_bits));
    }
    let curve: Vec<(f64, f64)> = (0..=60)
        .map(|i| 10f64.powf(2.0 + 3.0 * f64::from(i) / 60.0))
        .map(|u| (u, gamma_path_bits(u * USER_RATE, LAYERS, MEAN_DELAY_S)))
        .collect();
    let svg = chart(
        &Axes {
            title: "Entropy vs users: 3 layers, 0.1 s per mix, 1 msg/s per user",
            x: "users",
            y: "entropy (bits)",
            log_x: true,
        },
        &[
            Series {
                name: "Piotrowska's simulator (arXiv 2107.12172)",
                points: theirs,
                markers: true,
            },
            Series {
                name: "betanet sim (sender entropy)",
                points: ours,
                markers: true,
            },
            Series {
                name: "betanet sim, same packets from 10x the users",
                points: packets,
                markers: true,
            },
            Series {
                name: "closed form: log2(users) + h(Gamma(3, 0.1 s))",
                points: curve,
                markers: false,
            },
        ],
    )
    .expect("plot");
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/docs/simulation-published.svg");
    std::fs::write(path, svg).expect("write the SVG");
    eprintln!("wrote {path}");
}
