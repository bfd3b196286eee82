//! Fetching descriptors from the nodes (`GET /descriptor`): one node's
//! ([`fetch_descriptor`]), or every node's at once as tasks on one small
//! runtime ([`fetch_all`]). What is then accepted is the business of the
//! pure rules in [`topology::refresh`](crate::topology::refresh).

use std::collections::HashMap;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::Semaphore;
use tokio::task::JoinSet;

use crate::http::client::{self, HttpError};
use crate::sphinx::NodeId;
use crate::topology::refresh::Fetched;
use crate::topology::{DESCRIPTOR_PATH, MAX_DESCRIPTOR_BYTES, NodeDescriptor, RefreshError};

/// Fetches running at once in [`fetch_all`]: enough that a few slow nodes
/// do not hold up the others (they are tasks, not threads), few enough to
/// stay polite and bound the sockets open.
const MAX_PARALLEL_FETCHES: usize = 64;

/// Fetches the descriptor a node serves at `http_addr` (`GET /descriptor`,
/// a body of at most [`MAX_DESCRIPTOR_BYTES`], all within `timeout`) and
/// verifies it on its own terms (format and signature by the identity key
/// it names).
///
/// That it is the descriptor of the node you meant is not checked here:
/// [`Topology::apply_refreshed`](crate::topology::Topology::apply_refreshed)
/// compares it with the topology.
pub fn fetch_descriptor(
    http_addr: SocketAddr,
    timeout: Duration,
) -> Result<NodeDescriptor, RefreshError> {
    client::block_on(fetch_descriptor_async(http_addr, timeout)).unwrap_or_else(|error| {
        Err(RefreshError::Fetch {
            addr: http_addr,
            error: HttpError::Io(error),
        })
    })
}

/// [`fetch_descriptor`] as a future (on a runtime with I/O and timers).
async fn fetch_descriptor_async(
    http_addr: SocketAddr,
    timeout: Duration,
) -> Result<NodeDescriptor, RefreshError> {
    let response = client::get_async(http_addr, DESCRIPTOR_PATH, timeout, MAX_DESCRIPTOR_BYTES)
        .await
        .map_err(|error| RefreshError::Fetch {
            addr: http_addr,
            error,
        })?;
    if response.status != 200 {
        return Err(RefreshError::Status {
            addr: http_addr,
            status: response.status,
        });
    }
    let descriptor =
        NodeDescriptor::from_json(&response.body).map_err(|error| RefreshError::Parse {
            addr: http_addr,
            error,
        })?;
    descriptor.verify().map_err(|error| RefreshError::Invalid {
        id: descriptor.id,
        error,
    })?;
    Ok(descriptor)
}

/// Fetches every node's descriptor (see [`fetch_all_async`]) on a runtime
/// of its own. If no runtime can be had, every node fails with that error.
pub(crate) fn fetch_all(nodes: &[NodeDescriptor], timeout: Duration) -> Vec<Fetched> {
    let targets: Vec<(NodeId, SocketAddr)> = nodes.iter().map(|n| (n.id, n.http_addr)).collect();
    match client::block_on(fetch_all_async(targets.clone(), timeout)) {
        Ok(fetched) => fetched,
        Err(error) => targets
            .into_iter()
            .map(|(id, http_addr)| Fetched {
                id,
                http_addr,
                result: Err(RefreshError::Fetch {
                    addr: http_addr,
                    error: HttpError::Io(std::io::Error::new(error.kind(), error.to_string())),
                }),
            })
            .collect(),
    }
}

/// Fetches the descriptors of `targets` (id, HTTP address) concurrently
/// as tasks on the current runtime, up to [`MAX_PARALLEL_FETCHES`] at a
/// time, each within `timeout`; results in the order of `targets`. Nodes
/// not started within `2 × timeout` are reported as
/// [`RefreshError::NotTried`], so the whole returns within about
/// `3 × timeout` however many nodes hang. A task that panics is reported
/// for its node ([`RefreshError::Panicked`]); the others are unaffected.
pub(crate) async fn fetch_all_async(
    targets: Vec<(NodeId, SocketAddr)>,
    timeout: Duration,
) -> Vec<Fetched> {
    fetch_each(targets, timeout, fetch_descriptor_async).await
}

/// [`fetch_all_async`] with `fetch` doing each node's fetch.
async fn fetch_each<F, Fut>(
    targets: Vec<(NodeId, SocketAddr)>,
    timeout: Duration,
    fetch: F,
) -> Vec<Fetched>
where
    F: Fn(SocketAddr, Duration) -> Fut,
    Fut: Future<Output = Result<NodeDescriptor, RefreshError>> + Send + 'static,
{
    // `None` (no deadline) only for an absurdly long timeout.
    let deadline = Instant::now().checked_add(timeout.saturating_mul(2));
    let permits = Arc::new(Semaphore::new(MAX_PARALLEL_FETCHES));
    let mut tasks = JoinSet::new();
    let mut index = HashMap::new();
    for (i, &(_, addr)) in targets.iter().enumerate() {
        let permits = Arc::clone(&permits);
        let fetch = fetch(addr, timeout);
        let task = tasks.spawn(async move {
            // The semaphore is never closed; without a permit, go anyway.
            let _permit = permits.acquire_owned().await;
            if deadline.is_some_and(|d| Instant::now() >= d) {
                return Err(RefreshError::NotTried);
            }
            fetch.await
        });
        index.insert(task.id(), i);
    }
    let mut results: Vec<Option<Result<NodeDescriptor, RefreshError>>> =
        targets.iter().map(|_| None).collect();
    while let Some(joined) = tasks.join_next_with_id().await {
        let (task, result) = match joined {
            Ok((task, result)) => (task, result),
            Err(error) => (error.id(), Err(RefreshError::Panicked(panic_text(error)))),
        };
        if let Some(slot) = index.get(&task).and_then(|&i| results.get_mut(i)) {
            *slot = Some(result);
        }
    }
    targets
        .into_iter()
        .zip(results)
        .map(|((id, http_addr), result)| Fetched {
            id,
            http_addr,
            // Every task was joined; `None` cannot happen.
            result: result.unwrap_or(Err(RefreshError::NotTried)),
        })
        .collect()
}

/// What a failed task said, for the report.
fn panic_text(error: tokio::task::JoinError) -> String {
    if !error.is_panic() {
        return error.to_string();
    }
    let panic = error.into_panic();
    panic
        .downcast_ref::<&str>()
        .map(|s| (*s).to_owned())
        .or_else(|| panic.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "panicked".to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_panicking_fetch_fails_only_its_own_node() {
        let targets: Vec<(NodeId, SocketAddr)> = (1..=3u8)
            .map(|n| {
                (
                    NodeId::from_bytes([n; 16]),
                    SocketAddr::from(([127, 0, 0, 1], u16::from(n))),
                )
            })
            .collect();
        let fetched = client::block_on(fetch_each(
            targets.clone(),
            Duration::from_secs(5),
            |addr, _| async move {
                assert_ne!(addr.port(), 2, "boom");
                Err(RefreshError::Status { addr, status: 503 })
            },
        ))
        .unwrap();
        assert_eq!(fetched.len(), 3);
        for (f, (id, addr)) in fetched.iter().zip(&targets) {
            assert_eq!((f.id, f.http_addr), (*id, *addr));
            match (&f.result, addr.port()) {
                (Err(RefreshError::Panicked(why)), 2) => assert!(why.contains("boom"), "{why}"),
                (Err(RefreshError::Status { addr: a, .. }), 1 | 3) => assert_eq!(a, addr),
                (other, port) => panic!("node on port {port}: {other:?}"),
            }
        }
    }
}
