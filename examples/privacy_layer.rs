//! An application routing its traffic through betanet: the integration
//! guide's "route fog traffic through the privacy network", for real.
//!
//! A "fog node" submits job results to a coordinator. Sent directly, the
//! coordinator (and anyone watching the network) learns which node sent
//! which result and when. Sent through the mixnet, each result crosses three
//! mixes with verifiable random delays, so the coordinator receives the
//! results but cannot link them to their senders by address or timing.
//!
//! ```bash
//! cargo run --release --example privacy_layer
//! ```
//!
//! With `--topology topology.json --to IP:PORT` it uses an existing network
//! and coordinator address; without, it starts a local three-node mixnet.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use betanet::client::{Client, Receiver};
use betanet::config::Config;
use betanet::testnet::LocalNet;
use betanet::topology::Topology;

/// The application's side: a fog node that submits results.
struct FogNode {
    name: String,
    privacy_layer: Client,
}

impl FogNode {
    fn submit(
        &mut self,
        coordinator: SocketAddr,
        job: u32,
        result: &str,
    ) -> Result<(), Box<dyn std::error::Error>> {
        let record = format!("job {job} result {result} (reported by a fog node)");
        let report = self.privacy_layer.send(coordinator, record.as_bytes())?;
        println!(
            "{}: job {job} sent as {} packet(s) via entry {}",
            self.name,
            report.packets,
            report.routes[0].entry().id
        );
        Ok(())
    }
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

    // The coordinator receives results without learning who sent them.
    let mut coordinator = Receiver::bind(match arg("--to") {
        Some(addr) => addr.parse()?,
        None => "127.0.0.1:0".parse()?,
    })?;
    let coordinator_addr = coordinator.local_addr()?;

    let mut fog_nodes: Vec<FogNode> = (1..=3)
        .map(|i| {
            Ok(FogNode {
                name: format!("fog-{i}"),
                privacy_layer: Client::new(topology.clone())?,
            })
        })
        .collect::<std::io::Result<_>>()?;
    for job in 0..6 {
        let node = &mut fog_nodes[job as usize % 3];
        node.submit(coordinator_addr, job, &format!("{:x}", job * 7919))?;
    }

    let started = Instant::now();
    for _ in 0..6 {
        let record = coordinator.recv(Duration::from_secs(15))?;
        println!(
            "coordinator after {:>4} ms: {}",
            started.elapsed().as_millis(),
            String::from_utf8_lossy(&record)
        );
    }
    println!("every result arrived; the coordinator saw only exit-node addresses and mixed timing");

    if let Some(net) = local {
        net.shutdown();
        let _ = std::fs::remove_dir_all(&dir);
    }
    Ok(())
}
