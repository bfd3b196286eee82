//! Deliverable 5 of issue 13: 1,000 nodes and 100,000 clients for 10
//! virtual minutes, with the wall time, the cost per simulated packet and
//! the peak memory.
//!
//! ```text
//! cargo run --release --example sim_scale            # the full run
//! cargo run --release --example sim_scale -- --smoke # 10 virtual seconds
//! ```
//!
//! Traffic per client: 0.1 real message/s and 0.1 cover loop/s (Poisson);
//! one cover loop/s per node; mean delay 50 ms; links 20 ms + up to 10 ms
//! of jitter; two crypto workers per node at the measured 51 µs a packet.
//! The entropy of 5,000 delivered messages is computed (exactly).

use betanet::sim::{SimConfig, run};

fn main() {
    let smoke = std::env::args().any(|a| a == "--smoke");
    let config = SimConfig {
        layers: 3,
        nodes_per_layer: 334,
        clients: 100_000,
        virtual_seconds: if smoke { 10.0 } else { 600.0 },
        client_rate: 0.1,
        client_cover_rate: 0.1,
        node_loop_rate: 1.0,
        mean_delay_ms: 50.0,
        ..SimConfig::default()
    };
    let report = match run(&config) {
        Ok(report) => report,
        Err(e) => {
            eprintln!("sim_scale: {e}");
            std::process::exit(2);
        }
    };
    println!(
        "{}",
        serde_json::json!({
            "nodes": config.nodes(),
            "clients": config.clients,
            "virtual_seconds": report.virtual_seconds,
            "wall_seconds": report.wall_seconds,
            "simulated_packets": report.simulated_packets,
            "ns_per_packet": report.ns_per_packet,
            "peak_rss_bytes": report.peak_rss_bytes,
            "delivered": report.delivered,
            "little_law_ratio": report.little_law_ratio,
            "mean_entropy_bits": report.mean_entropy_bits,
            "entropy_samples": report.entropy_samples,
            "mean_lost_mass": report.mean_lost_mass,
            "latency_ms": report.latency_ms,
            "loop_loss_ratio": report.loop_loss_ratio,
        })
    );
}
