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
                never = upload_descriptors(&node, authorities, upload_interval) => match never {},
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
