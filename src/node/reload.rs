//! Topology reloads: when the file changes or on request (SIGHUP). Traffic
//! keeps flowing: routing reads a snapshot.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, SystemTime};

use crate::shutdown::Shutdown;
use crate::topology::{LiveTopology, Topology, TopologyError};

/// How often the watcher looks at the file's modification time. A file
/// change has no time to sleep until and the OS's change notifications
/// would take a new dependency, so this is the one timed check in the
/// node's control loops; it sleeps on the node's signal, which ends it at
/// once.
const FILE_CHECK: Duration = Duration::from_millis(250);

/// Loads, verifies and installs the topology at `path`.
pub(crate) fn reload(path: &Path, live: &LiveTopology) -> Result<(), TopologyError> {
    let topology = Topology::load(path)?;
    let nodes = topology.len();
    live.replace(topology);
    tracing::info!(path = %path.display(), nodes, "topology reloaded");
    Ok(())
}

fn modified(path: &Path) -> Option<SystemTime> {
    std::fs::metadata(path).and_then(|m| m.modified()).ok()
}

/// Watches `path` until `shutdown`.
pub(crate) fn spawn_watcher(
    path: PathBuf,
    live: Arc<LiveTopology>,
    shutdown: Shutdown,
) -> std::io::Result<JoinHandle<()>> {
    std::thread::Builder::new()
        .name("betanet-topology".into())
        .spawn(move || {
            let mut seen = modified(&path);
            while shutdown.sleep(FILE_CHECK) {
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
