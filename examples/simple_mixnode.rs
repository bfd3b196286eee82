//! Runs one mixnode from a configuration, like `betanet run`, and prints its
//! counters every few seconds.
//!
//! ```bash
//! cargo run --release --example simple_mixnode -- config/mixnode.toml
//! ```
//!
//! The config's `node.key_dir` must hold keys made by `betanet keygen` and
//! `node.topology` a topology made by `betanet topology build` (the README
//! shows both). Stop it with Ctrl-C.

use std::time::Duration;

use betanet::Mixnode;
use betanet::config::ConfigArgs;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    tracing_subscriber::fmt().with_env_filter("info").init();
    let args = ConfigArgs {
        config: std::env::args().nth(1).map(Into::into),
        ..ConfigArgs::default()
    };
    let config = args.load()?;
    let node = Mixnode::start(config)?;
    println!(
        "node {} ({}) listening on {:?}",
        node.id(),
        node.config().node.role,
        node.udp_addr()
    );

    let stop = betanet::node::stop_on_signal();
    while !stop.load(std::sync::atomic::Ordering::SeqCst) {
        std::thread::sleep(Duration::from_secs(5));
        let s = node.stats();
        println!(
            "processed {} forwarded {} delivered {} dropped {} p99 {:?}",
            s.processed,
            s.forwarded,
            s.delivered,
            s.dropped_total(),
            s.latency_p99
        );
    }
    let s = node.shutdown();
    println!("stopped after {} packets", s.processed);
    Ok(())
}
