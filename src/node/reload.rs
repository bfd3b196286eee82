//! Topology reloads: when the file changes (checked four times a second) or on
//! request (SIGHUP). Traffic keeps flowing: routing reads a snapshot.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, SystemTime};

use crate::topology::{LiveTopology, Topology, TopologyError};

const POLL: Duration = Duration::from_millis(250);

/// Loads, verifies and installs the topology at `path`.
pub fn reload(path: &Path, live: &LiveTopology) -> Result<(), TopologyError> {
    let topology = Topology::load(path)?;
    let nodes = topology.len();
    live.replace(topology);
    tracing::info!(path = %path.display(), nodes, "topology reloaded");
    Ok(())
}

fn modified(path: &Path) -> Option<SystemTime> {
    std::fs::metadata(path).and_then(|m| m.modified()).ok()
}

/// Watches `path` until `stop` is set.
pub fn spawn_watcher(
    path: PathBuf,
    live: Arc<LiveTopology>,
    stop: Arc<AtomicBool>,
) -> std::io::Result<JoinHandle<()>> {
    std::thread::Builder::new()
        .name("betanet-topology".into())
        .spawn(move || {
            let mut seen = modified(&path);
            while !stop.load(Ordering::Relaxed) {
                std::thread::sleep(POLL);
                let now = modified(&path);
                if now.is_some() && now != seen {
                    seen = now;
                    if let Err(e) = reload(&path, &live) {
                        tracing::error!(error = %e, "topology change ignored: the new file is invalid");
                    }
                }
            }
        })
}
