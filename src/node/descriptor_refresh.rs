//! The node's descriptor refresher: a thread that fetches every topology
//! node's `GET /descriptor` at start and then every interval, so cover
//! traffic and any other path this node builds use the Sphinx keys of the
//! current key epoch. Accepted descriptors go into the [`LiveTopology`]'s
//! overlay (see [`crate::topology::refresh`] for what is accepted).
//! The fetches of a round run concurrently as tasks on one small runtime
//! on this thread; a hostile or broken peer fails only its own fetch.

use std::io;
use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crate::directory_client::fetch_all_async;
use crate::http::client;
use crate::shutdown::{Shutdown, Wake};
use crate::topology::{LiveTopology, RefreshError, RefreshOutcome, RefreshReport};

/// Limit on each node's `GET /descriptor`.
const FETCH_TIMEOUT: Duration = Duration::from_secs(5);

/// Starts the refresher: refreshes at once, then every `interval`, until
/// `shutdown` (which also ends a round whose fetches are outstanding).
/// Failures are logged (unreachable nodes at debug level, refused
/// descriptors at warn) and never stop the thread.
pub(crate) fn spawn_refresher(
    topology: Arc<LiveTopology>,
    interval: Duration,
    shutdown: Shutdown,
) -> io::Result<JoinHandle<()>> {
    std::thread::Builder::new()
        .name("descriptor-refresh".into())
        .spawn(move || run(&topology, interval, &shutdown))
}

fn run(topology: &Arc<LiveTopology>, interval: Duration, shutdown: &Shutdown) {
    while !shutdown.is_triggered() {
        let started = Instant::now();
        // Each node's fetch is already isolated; this keeps a bug in
        // applying a round from ending the refreshes for good.
        let round = std::panic::catch_unwind(AssertUnwindSafe(|| refresh_once(topology, shutdown)));
        match round {
            Ok(Some(report)) => log(&report),
            Ok(None) => return,
            Err(_) => {
                tracing::error!("a descriptor refresh failed unexpectedly; trying again later")
            }
        }
        // An interval too long to represent means "only at start".
        if shutdown.wait(started.checked_add(interval), &[]) == Wake::Stop {
            return;
        }
    }
}

/// One refresh: every node's fetch as a task on a small runtime on this
/// thread, raced against `shutdown`. `None` if it came first (the fetches
/// are then dropped mid-flight).
fn refresh_once(topology: &Arc<LiveTopology>, shutdown: &Shutdown) -> Option<RefreshReport> {
    let targets = topology
        .snapshot()
        .nodes()
        .iter()
        .map(|n| (n.id, n.http_addr))
        .collect();
    let runtime = match client::runtime() {
        Ok(runtime) => runtime,
        Err(error) => {
            tracing::warn!(%error, "cannot start the descriptor fetches; trying again later");
            return Some(RefreshReport::default());
        }
    };
    let stop = shutdown.token();
    let fetched = runtime.block_on(async {
        tokio::select! {
            fetched = fetch_all_async(targets, FETCH_TIMEOUT) => Some(fetched),
            () = stop.cancelled() => None,
        }
    })?;
    (!shutdown.is_triggered()).then(|| topology.apply_fetched(fetched))
}

/// Logs what changed and what failed. Only ids, addresses, epoch numbers
/// and reasons: never key material.
fn log(report: &RefreshReport) {
    for node in &report.nodes {
        match &node.outcome {
            RefreshOutcome::Updated { newest_key_epoch } => tracing::info!(
                node = %node.id,
                newest_key_epoch,
                "descriptor refreshed"
            ),
            RefreshOutcome::Unchanged => {}
            // Unreachable or not ready: routine while a node restarts.
            RefreshOutcome::Failed(
                error @ (RefreshError::Fetch { .. }
                | RefreshError::Status { .. }
                | RefreshError::NotTried),
            ) => tracing::debug!(node = %node.id, %error, "descriptor not refreshed"),
            RefreshOutcome::Failed(error @ RefreshError::Panicked(_)) => {
                tracing::error!(node = %node.id, %error, "descriptor refresh failed")
            }
            // A node serving something we refuse deserves attention.
            RefreshOutcome::Failed(error) => {
                tracing::warn!(node = %node.id, %error, "descriptor refused")
            }
        }
    }
    tracing::debug!("{report}");
}

#[cfg(test)]
mod tests {
    use std::io::{Read, Write};
    use std::net::{SocketAddr, TcpListener};

    use rand::SeedableRng;
    use rand_chacha::ChaCha8Rng;

    use super::*;
    use crate::keys::NodeKeys;
    use crate::role::NodeRole;
    use crate::sphinx::SphinxSecretKey;
    use crate::topology::{EgressProtocol, NodeDescriptor, SphinxKeyEntry, Topology};

    fn descriptor(
        keys: &NodeKeys,
        role: NodeRole,
        n: u8,
        http: SocketAddr,
        epochs: [u64; 2],
    ) -> NodeDescriptor {
        let mix = SocketAddr::from(([127, 0, 0, 1], 40_000 + u16::from(n)));
        let sphinx_keys = epochs
            .map(|epoch| SphinxKeyEntry {
                epoch,
                public_key: SphinxSecretKey::from_bytes([n ^ epoch as u8; 32]).public_key(),
            })
            .to_vec();
        NodeDescriptor::new_signed(keys, role, mix, mix, http, sphinx_keys, 3600).unwrap()
    }

    /// Serves `body` as the answer to every request until the test ends.
    fn serve(listener: TcpListener, body: Vec<u8>) {
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(mut stream) = stream else { continue };
                let mut head = Vec::new();
                let mut buf = [0u8; 512];
                while !head.ends_with(b"\r\n\r\n") {
                    match stream.read(&mut buf) {
                        Ok(0) | Err(_) => break,
                        Ok(n) => head.extend_from_slice(&buf[..n]),
                    }
                }
                let mut response =
                    format!("HTTP/1.1 200 OK\r\nContent-Length: {}\r\n\r\n", body.len())
                        .into_bytes();
                response.extend_from_slice(&body);
                let _ = stream.write_all(&response);
            }
        });
    }

    #[test]
    fn refreshes_at_start_and_stops_when_told() {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let http = listener.local_addr().unwrap();
        let mut rng = ChaCha8Rng::seed_from_u64(7);
        let keys: Vec<NodeKeys> = (0..3).map(|_| NodeKeys::generate(&mut rng)).collect();
        // Nodes 2 and 3 have nothing listening on their HTTP ports.
        let closed = |port| SocketAddr::from(([127, 0, 0, 1], port));
        let known = [
            descriptor(&keys[0], NodeRole::Entry, 1, http, [0, 1]),
            descriptor(&keys[1], NodeRole::Middle, 2, closed(1), [0, 1]),
            descriptor(&keys[2], NodeRole::Exit, 3, closed(2), [0, 1]),
        ];
        let newer = descriptor(&keys[0], NodeRole::Entry, 1, http, [1, 2]);
        serve(listener, newer.to_json().unwrap());
        let live = Arc::new(LiveTopology::new(
            Topology::build(known).unwrap(),
            EgressProtocol::Udp,
        ));
        let shutdown = Shutdown::new();
        let handle = spawn_refresher(
            Arc::clone(&live),
            Duration::from_secs(3600),
            shutdown.clone(),
        )
        .unwrap();
        // The first refresh happens at once: the topology tells when.
        let changes = live.changes();
        let deadline = Instant::now() + Duration::from_secs(30);
        while live.snapshot().get(&newer.id) != Some(&newer) {
            assert!(
                changes.recv_deadline(deadline).is_ok(),
                "no refresh within 30 s"
            );
        }
        assert_eq!(live.refreshed().get(&newer.id), Some(&newer));
        // The thread is asleep for an hour: the signal ends it at once.
        shutdown.trigger();
        handle.join().unwrap();
    }
}
