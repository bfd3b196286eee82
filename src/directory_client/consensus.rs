//! The HTTP side of the directory authorities for nodes and clients:
//! fetching the consensus (from any authority, verified against the pinned
//! set) and uploading a node's descriptor to every authority.

use std::net::SocketAddr;
use std::time::Duration;

use crate::authority::daemon::UPLOAD_PATH;
use crate::authority::{
    AuthorityError, AuthorityInfo, AuthoritySet, CONSENSUS_PATH, MAX_CONSENSUS_BYTES,
    SignedConsensus,
};
use crate::http::client::{self, HttpError};
use crate::topology::NodeDescriptor;

/// Why no authority gave a usable consensus.
#[derive(Debug, thiserror::Error)]
#[error("no valid consensus from any of the {} authorities: {}", .0.len(), summary(.0))]
pub struct ConsensusFetchError(pub Vec<(SocketAddr, FetchFailure)>);

fn summary(failures: &[(SocketAddr, FetchFailure)]) -> String {
    failures
        .iter()
        .map(|(addr, f)| format!("{addr}: {f}"))
        .collect::<Vec<_>>()
        .join("; ")
}

/// Why one authority's answer was not used.
#[derive(Debug, thiserror::Error)]
pub enum FetchFailure {
    /// The request failed.
    #[error(transparent)]
    Http(#[from] HttpError),
    /// A status other than 200 (404: no consensus yet).
    #[error("HTTP status {0}")]
    Status(u16),
    /// The document was refused.
    #[error(transparent)]
    Invalid(#[from] AuthorityError),
    /// This side could not make the request (no runtime, encoding).
    #[error("{0}")]
    Local(String),
}

/// Fetches the consensus from the authorities in turn (starting at one
/// picked by `now`, to spread the load) until one serves a document that
/// [`verify`](SignedConsensus::verify)s against `authorities` at `now`.
/// Each attempt is bounded by `timeout` and [`MAX_CONSENSUS_BYTES`].
pub fn fetch_consensus(
    authorities: &AuthoritySet,
    now: u64,
    timeout: Duration,
) -> Result<SignedConsensus, ConsensusFetchError> {
    let addrs: Vec<SocketAddr> = authorities.iter().map(|a| a.addr).collect();
    fetch_consensus_from(&addrs, authorities, now, timeout)
}

/// [`fetch_consensus`] from any servers of it (authorities, or nodes that
/// cache it): the signatures, not the server, make it trusted.
pub fn fetch_consensus_from(
    servers: &[SocketAddr],
    authorities: &AuthoritySet,
    now: u64,
    timeout: Duration,
) -> Result<SignedConsensus, ConsensusFetchError> {
    client::block_on(fetch_consensus_async(servers, authorities, now, timeout)).unwrap_or_else(
        |e| {
            Err(ConsensusFetchError(
                servers
                    .iter()
                    .map(|a| (*a, FetchFailure::Local(e.to_string())))
                    .collect(),
            ))
        },
    )
}

/// [`fetch_consensus_from`] as a future (on a runtime with I/O and timers).
pub async fn fetch_consensus_async(
    servers: &[SocketAddr],
    authorities: &AuthoritySet,
    now: u64,
    timeout: Duration,
) -> Result<SignedConsensus, ConsensusFetchError> {
    let mut failures = Vec::new();
    let start = if servers.is_empty() {
        0
    } else {
        (now as usize) % servers.len()
    };
    for i in 0..servers.len() {
        let addr = servers[(start + i) % servers.len()];
        match fetch_one(addr, authorities, now, timeout).await {
            Ok(doc) => return Ok(doc),
            Err(f) => failures.push((addr, f)),
        }
    }
    Err(ConsensusFetchError(failures))
}

async fn fetch_one(
    addr: SocketAddr,
    authorities: &AuthoritySet,
    now: u64,
    timeout: Duration,
) -> Result<SignedConsensus, FetchFailure> {
    let response = client::get_async(addr, CONSENSUS_PATH, timeout, MAX_CONSENSUS_BYTES).await?;
    if response.status != 200 {
        return Err(FetchFailure::Status(response.status));
    }
    let doc = SignedConsensus::from_json(&response.body)?;
    doc.verify(authorities, now)?;
    Ok(doc)
}

/// Uploads `descriptor` to every authority at once (each within
/// `timeout`); the result per authority, in the set's order. Blocks on a
/// runtime of its own (see [`upload_descriptor_async`]).
pub fn upload_descriptor(
    authorities: &AuthoritySet,
    descriptor: &NodeDescriptor,
    timeout: Duration,
) -> Vec<(AuthorityInfo, Result<(), FetchFailure>)> {
    match client::block_on(upload_descriptor_async(authorities, descriptor, timeout)) {
        Ok(results) => results,
        Err(e) => authorities
            .iter()
            .map(|a| (*a, Err(FetchFailure::Local(e.to_string()))))
            .collect(),
    }
}

/// [`upload_descriptor`] as a future (on a runtime with I/O and timers):
/// `POST /authority/descriptor` to every authority concurrently.
pub async fn upload_descriptor_async(
    authorities: &AuthoritySet,
    descriptor: &NodeDescriptor,
    timeout: Duration,
) -> Vec<(AuthorityInfo, Result<(), FetchFailure>)> {
    let list: Vec<AuthorityInfo> = authorities.iter().copied().collect();
    let body = match serde_json::to_vec(descriptor) {
        Ok(b) => b,
        Err(e) => {
            let msg = AuthorityError::Encode(e).to_string();
            return list
                .into_iter()
                .map(|a| (a, Err(FetchFailure::Local(msg.clone()))))
                .collect();
        }
    };
    let handles: Vec<_> = list
        .iter()
        .map(|a| {
            let (addr, body) = (a.addr, body.clone());
            tokio::spawn(async move {
                match client::post_async(addr, UPLOAD_PATH, body, timeout, 4096).await {
                    Ok(r) if r.status == 200 => Ok(()),
                    Ok(r) => Err(FetchFailure::Status(r.status)),
                    Err(e) => Err(FetchFailure::Http(e)),
                }
            })
        })
        .collect();
    let mut out = Vec::with_capacity(list.len());
    for (a, h) in list.into_iter().zip(handles) {
        let result = h
            .await
            .unwrap_or_else(|_| Err(FetchFailure::Local("upload task failed".into())));
        out.push((a, result));
    }
    out
}
