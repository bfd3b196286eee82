//! `betanet run`: start a node and wait for signals.

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
    runtime
        .block_on(wait_for_shutdown(&node))
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
