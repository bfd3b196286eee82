//! `betanet run`: start a node and wait for signals.

use std::time::Duration;

use clap::Args;

use super::Failure;
use crate::config::ConfigArgs;
use crate::node::Mixnode;

#[derive(Args, Debug)]
pub struct RunArgs {
    #[command(flatten)]
    config: ConfigArgs,
}

pub fn run(args: RunArgs) -> Result<(), Failure> {
    let config = args.config.load_for_node()?;
    let config_authorities = config.authorities.file.clone();
    let topology_path = config.node.topology.clone();
    let local_params = crate::topology::NetworkParams::from_config(&config);
    if let Some(path) = &config_authorities {
        // The consensus, when there is one, is the topology the node
        // starts with (a node not yet in it starts all the same, uploads
        // its descriptor and appears in a later one).
        let set = crate::authority::config::AuthoritiesFile::load(path)
            .map_err(|m| Failure::with_code(m, super::EXIT_CONFIG))?;
        let now = crate::clock::unix_now();
        match crate::directory_client::fetch_consensus(&set, now, Duration::from_secs(10)) {
            Ok(doc) => install_consensus(&doc, &topology_path, &local_params),
            Err(error) if topology_path.exists() => tracing::warn!(
                %error,
                "no consensus from the authorities; starting with {}",
                topology_path.display()
            ),
            Err(error) => {
                return Err(Failure::general(format!(
                    "{error}; and there is no {} to start with",
                    topology_path.display()
                )));
            }
        }
    }
    let upload_interval = Duration::from_secs(config.authorities.upload_interval_seconds.max(1));
    let node = Mixnode::start(config).map_err(|e| match e {
        // A listener that is not where peers send is a configuration error.
        e @ crate::node::NodeError::AddressMismatch { .. } => {
            Failure::with_code(e, super::EXIT_CONFIG)
        }
        e => Failure::general(e),
    })?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| Failure::general(format!("cannot start the signal handler: {e}")))?;
    let authorities = match &config_authorities {
        Some(path) => Some(
            crate::authority::config::AuthoritiesFile::load(path)
                .map_err(|m| Failure::with_code(m, super::EXIT_CONFIG))?,
        ),
        None => None,
    };
    runtime
        .block_on(async {
            tokio::select! {
                result = wait_for_shutdown(&node) => result,
                never = upload_descriptors(&node, authorities.clone(), upload_interval) => match never {},
                never = follow_consensus(authorities.clone(), &topology_path, &local_params) => match never {},
            }
        })
        .map_err(|e| Failure::general(format!("cannot install signal handlers: {e}")))?;
    tracing::info!("shutting down");
    let stats = node.shutdown();
    tracing::info!(
        processed = stats.processed,
        forwarded = stats.forwarded,
        delivered = stats.delivered,
        dropped = stats.dropped_total(),
        "stopped"
    );
    Ok(())
}

/// With directory authorities configured (`[authorities] file`), uploads
/// the node's descriptor to every one of them: at once, whenever it changes
/// (checked every 5 s: Sphinx key rotation re-signs it), and every
/// `interval`. A failed round is retried after 10 s. Never returns.
async fn upload_descriptors(
    node: &Mixnode,
    authorities: Option<crate::authority::AuthoritySet>,
    interval: Duration,
) -> std::convert::Infallible {
    let Some(set) = authorities else {
        return std::future::pending().await;
    };
    let mut last: Option<(crate::topology::NodeDescriptor, std::time::Instant)> = None;
    loop {
        let descriptor = node.descriptor();
        let due = match &last {
            Some((d, at)) => *d != descriptor || at.elapsed() >= interval,
            None => true,
        };
        if due {
            let results = crate::directory_client::upload_descriptor_async(
                &set,
                &descriptor,
                Duration::from_secs(10),
            )
            .await;
            let accepted = results.iter().filter(|(_, r)| r.is_ok()).count();
            for (a, r) in &results {
                if let Err(error) = r {
                    tracing::warn!(authority = %a.addr, %error, "descriptor upload failed");
                }
            }
            if accepted >= set.threshold() {
                tracing::info!(
                    accepted,
                    of = set.len(),
                    "descriptor uploaded to the authorities"
                );
                last = Some((descriptor, std::time::Instant::now()));
            } else {
                tracing::warn!(
                    accepted,
                    needed = set.threshold(),
                    "too few authorities took the descriptor; retrying in 10 s"
                );
                tokio::time::sleep(Duration::from_secs(10)).await;
                continue;
            }
        }
        tokio::time::sleep(Duration::from_secs(5)).await;
    }
}

/// With directory authorities configured, fetches each epoch's consensus
/// (once the held one is past its `fresh_until`, retrying every 10 s) and
/// writes it as the node's topology file, which the node's topology watcher
/// reloads. Never returns.
async fn follow_consensus(
    authorities: Option<crate::authority::AuthoritySet>,
    topology_path: &std::path::Path,
    local: &crate::topology::NetworkParams,
) -> std::convert::Infallible {
    let Some(set) = authorities else {
        return std::future::pending().await;
    };
    let servers: Vec<std::net::SocketAddr> = set.iter().map(|a| a.addr).collect();
    let mut fresh_until = 0u64;
    let mut held_epoch = None;
    loop {
        let now = crate::clock::unix_now();
        if now >= fresh_until {
            match crate::directory_client::fetch_consensus_async(
                &servers,
                &set,
                now,
                Duration::from_secs(10),
            )
            .await
            {
                Ok(doc) if Some(doc.consensus.epoch) != held_epoch => {
                    held_epoch = Some(doc.consensus.epoch);
                    fresh_until = doc.consensus.fresh_until;
                    install_consensus(&doc, topology_path, local);
                }
                Ok(doc) => fresh_until = now.max(doc.consensus.fresh_until.min(now + 10)),
                Err(error) => {
                    tracing::warn!(%error, "no new consensus; keeping the current topology")
                }
            }
        }
        let wait = fresh_until.saturating_sub(now).clamp(10, 60);
        tokio::time::sleep(Duration::from_secs(wait)).await;
    }
}

/// Writes the consensus's nodes as the topology file, and logs where the
/// node's own configuration overrides the network's parameters.
fn install_consensus(
    doc: &crate::authority::SignedConsensus,
    topology_path: &std::path::Path,
    local: &crate::topology::NetworkParams,
) {
    let c = &doc.consensus;
    let differences = local.differences(&c.params.network);
    if !differences.is_empty() {
        tracing::warn!(
            overrides = %differences.join(", "),
            "local configuration overrides the consensus's network parameters (local ≠ consensus)"
        );
    }
    match c.topology().and_then(|t| t.save(topology_path)) {
        Ok(()) => tracing::info!(
            epoch = c.epoch,
            nodes = c.nodes.len(),
            path = %topology_path.display(),
            "consensus installed as the topology"
        ),
        Err(error) => {
            tracing::warn!(epoch = c.epoch, %error, "consensus not usable as a topology; keeping the current one")
        }
    }
}

/// Returns on SIGTERM or SIGINT; reloads the topology on SIGHUP.
async fn wait_for_shutdown(node: &Mixnode) -> std::io::Result<()> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = signal(SignalKind::terminate())?;
    let mut int = signal(SignalKind::interrupt())?;
    let mut hup = signal(SignalKind::hangup())?;
    loop {
        tokio::select! {
            _ = term.recv() => return Ok(()),
            _ = int.recv() => return Ok(()),
            _ = hup.recv() => {
                if let Err(e) = node.reload_topology() {
                    tracing::error!(error = %e, "SIGHUP: topology not reloaded");
                }
            }
        }
    }
}
