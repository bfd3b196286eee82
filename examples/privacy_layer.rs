//! An application routing its traffic through betanet: the integration
//! guide's "route fog traffic through the privacy network"
//! (`fog_node.set_privacy_layer(pipeline)`), for real, in both directions.
//!
//! A fog compute service accepts jobs through the mixnet and returns each
//! result through the single-use reply blocks (SURBs) that came with the
//! job. Submitters send jobs concurrently, each through its own privacy
//! layer, and check every result. The service never learns a submitter's
//! address (each job arrives from an exit node; each reply goes to a first
//! hop named in a SURB), and no single mix links a submitter to the service.
//!
//! ```bash
//! cargo run --release --example privacy_layer
//! ```
//!
//! With `--topology topology.json` it uses an existing network; without, it
//! starts a local three-node mixnet. The service listens on `--listen
//! IP:PORT` (default: a free loopback port).

use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use betanet::client::{Client, Receiver, RequestOptions};
use betanet::config::Config;
use betanet::testnet::LocalNet;
use betanet::topology::Topology;

/// A fog job: sum and checksum a list of numbers (a stand-in for real work).
fn compute(job: &[u8]) -> Vec<u8> {
    let text = String::from_utf8_lossy(job);
    let numbers: Vec<u64> = text
        .split_whitespace()
        .filter_map(|w| w.parse().ok())
        .collect();
    let sum: u64 = numbers.iter().sum();
    let digest = blake3::hash(job);
    format!(
        "n={} sum={sum} blake3={}",
        numbers.len(),
        &digest.to_hex()[..16]
    )
    .into_bytes()
}

/// The fog node's side: jobs in, results out, both through the mixnet.
struct FogService {
    privacy_layer: Receiver,
}

impl FogService {
    /// Answers `jobs` requests (or gives up at `deadline`); returns how
    /// many were answered.
    fn serve(mut self, jobs: usize, deadline: Instant) -> usize {
        let mut answered = 0;
        while answered < jobs && Instant::now() < deadline {
            let Ok(incoming) = self.privacy_layer.recv_incoming(Duration::from_millis(200)) else {
                continue;
            };
            let Some(reply) = incoming.reply else {
                continue; // one-way messages carry no job
            };
            match reply.reply(&compute(&incoming.message)) {
                Ok(_) => answered += 1,
                Err(e) => eprintln!("fog service: cannot return a result: {e}"),
            }
        }
        let stats = self.privacy_layer.stats();
        println!(
            "fog service: {} job(s) in, {} result(s) out through {} SURB(s); \
             it saw no submitter address",
            stats.requests.load(Ordering::Relaxed),
            stats.replies_sent.load(Ordering::Relaxed),
            stats.surbs_used.load(Ordering::Relaxed),
        );
        answered
    }
}

/// A submitter: its privacy layer is a betanet client.
fn submit(
    name: String,
    topology: Topology,
    service: SocketAddr,
    jobs: Vec<String>,
) -> Result<(), String> {
    // Every submitter here shares 127.0.0.1, and an entry node budgets each
    // source address (`rate_limit.per_source_pps`, 1,000 by default): three
    // submitters at 300 packets/s stay within it together.
    let mut privacy_layer = Client::new(topology)
        .map_err(|e| e.to_string())?
        .with_rate(300);
    for job in jobs {
        let response = privacy_layer
            .request_with(
                service,
                job.as_bytes(),
                RequestOptions {
                    // A result fits one SURB, however large the job.
                    reply_surbs: Some(1),
                    ..RequestOptions::new(Duration::from_secs(20))
                },
            )
            .map_err(|e| format!("{name}: {e}"))?;
        let expected = compute(job.as_bytes());
        if response.reply != expected {
            return Err(format!("{name}: wrong result for {job:?}"));
        }
        println!(
            "{name}: {:<28} -> {} ({} ms round trip)",
            format!("{:.28}", job),
            String::from_utf8_lossy(&response.reply),
            response.round_trip.as_millis()
        );
    }
    Ok(())
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().collect();
    let arg = |name: &str| {
        args.iter()
            .position(|a| a == name)
            .and_then(|i| args.get(i + 1))
    };

    // Either an existing network, or a local one for the demonstration.
    let dir = std::env::temp_dir().join(format!("betanet-privacy-layer-{}", std::process::id()));
    let (topology_path, local) = match arg("--topology") {
        Some(path) => (path.into(), None),
        None => {
            std::fs::create_dir_all(&dir)?;
            let mut template = Config::default();
            template.pipeline.workers = 1;
            template.mixing.mean_delay_ms = 30.0;
            let net = LocalNet::start(&dir, 1, &template)?;
            (net.topology_path(), Some(net))
        }
    };
    let topology = Topology::load(&topology_path)?;

    let service = FogService {
        privacy_layer: Receiver::bind(match arg("--listen") {
            Some(addr) => addr.parse()?,
            None => "127.0.0.1:0".parse()?,
        })?,
    };
    let service_addr = service.privacy_layer.local_addr()?;

    // Three submitters, two jobs each, all at once; the larger jobs take
    // several packets (up to about 8 KB), results fit one SURB.
    let submitters = 3;
    let per_submitter = 2;
    let started = Instant::now();
    let serving = std::thread::spawn(move || {
        service.serve(
            submitters * per_submitter,
            Instant::now() + Duration::from_secs(50),
        )
    });
    let handles: Vec<_> = (0..submitters)
        .map(|s| {
            let jobs: Vec<String> = (0..per_submitter)
                .map(|j| {
                    let n = 10 + 400 * (s * per_submitter + j);
                    (0..n)
                        .map(|i| (i * 7919 % 1000).to_string())
                        .collect::<Vec<_>>()
                        .join(" ")
                })
                .collect();
            let topology = topology.clone();
            std::thread::spawn(move || {
                submit(format!("submitter-{s}"), topology, service_addr, jobs)
            })
        })
        .collect();
    let mut failures = Vec::new();
    for handle in handles {
        match handle.join() {
            Ok(Ok(())) => {}
            Ok(Err(e)) => failures.push(e),
            Err(_) => failures.push("a submitter panicked".to_owned()),
        }
    }
    let answered = serving.join().map_err(|_| "the fog service panicked")?;

    if let Some(net) = local {
        net.shutdown();
        let _ = std::fs::remove_dir_all(&dir);
    }
    if !failures.is_empty() {
        return Err(failures.join("; ").into());
    }
    println!(
        "every result checked: {answered} job(s) in {} ms, anonymous in both directions",
        started.elapsed().as_millis()
    );
    Ok(())
}
