//! Refreshing descriptors from the nodes themselves (`GET /descriptor`), so
//! routes use the Sphinx keys of the current key epoch.
//!
//! # Trust
//!
//! `topology.json` is the root of trust: it says which nodes exist and
//! which identity key each has. A fetched descriptor is untrusted input (it
//! comes over plain HTTP, possibly from an impostor); it replaces the known
//! one only if it
//!
//! - verifies (format, key encodings, and the signature by its own
//!   identity key),
//! - is for the same node id, with the **same identity key** and the same
//!   role as the known descriptor, so only the holder of that node's
//!   identity key can change what others believe about it,
//! - keeps the **addresses** (UDP, TCP, HTTP) the known descriptor has:
//!   they come from the operator's `topology.json`, so a member cannot
//!   redirect traffic and fetches to other hosts, and
//! - does not roll back: its newest key epoch is at least the known one's
//!   (an old, validly signed descriptor replayed by an attacker or a stale
//!   cache cannot bring back retired keys).
//!
//! Anything else is refused with a [`RefreshError`] that says why and what
//! to do, and the known descriptor stays.
//!
//! These rules are pure: they take what was fetched (`Fetched`) and never
//! do I/O. The fetching (bounded in size, [`MAX_DESCRIPTOR_BYTES`], and in
//! time) is [`directory_client`](crate::directory_client)'s.

use std::fmt;
use std::net::SocketAddr;

use super::descriptor::NodeDescriptor;
use super::descriptor_error::DescriptorError;
use super::directory::Topology;
use super::error::TopologyError;
use crate::http::client::HttpError;
use crate::role::NodeRole;
use crate::sphinx::NodeId;

/// Where a node serves its signed descriptor on its HTTP port.
pub const DESCRIPTOR_PATH: &str = "/descriptor";

/// Largest descriptor body accepted (the headers are capped apart, at
/// [`MAX_HEAD_BYTES`](crate::http::client::MAX_HEAD_BYTES)). A descriptor
/// is about 1 KiB; the bound keeps a hostile server from feeding us
/// megabytes.
pub const MAX_DESCRIPTOR_BYTES: usize = 64 << 10;

/// Why a node's descriptor was not refreshed. The known descriptor stays in
/// use in every case.
#[derive(Debug, thiserror::Error)]
pub enum RefreshError {
    /// The HTTP request failed (connection refused, timeout, bad response).
    #[error(
        "cannot fetch http://{addr}{DESCRIPTOR_PATH}: {error}{}",
        fetch_hint(error)
    )]
    Fetch {
        /// The node's HTTP address.
        addr: SocketAddr,
        /// What went wrong.
        error: HttpError,
    },
    /// The node answered with an error status.
    #[error(
        "http://{addr}{DESCRIPTOR_PATH} answered HTTP {status} (503: the node \
         has no descriptor yet, try again later; 404: it is too old to serve \
         one, upgrade it)"
    )]
    Status {
        /// The node's HTTP address.
        addr: SocketAddr,
        /// The status code.
        status: u16,
    },
    /// The response is not a descriptor.
    #[error("http://{addr}{DESCRIPTOR_PATH} did not return a descriptor: {error}")]
    Parse {
        /// The node's HTTP address.
        addr: SocketAddr,
        /// Why it does not parse.
        error: DescriptorError,
    },
    /// The descriptor does not verify (bad signature, bad key, ...).
    #[error("the descriptor served for node {id} is invalid and was ignored: {error}")]
    Invalid {
        /// The id the descriptor claims.
        id: NodeId,
        /// What is wrong with it.
        error: DescriptorError,
    },
    /// The node is not in the topology: refresh only updates known nodes.
    #[error(
        "node {0} is not in the topology; refreshing only updates known nodes \
         (add its node.json to topology.json to use it)"
    )]
    UnknownNode(NodeId),
    /// The address of one node served another node's descriptor.
    #[error(
        "the HTTP address of node {expected} served the descriptor of node \
         {got}; ignored (check the http_addr in topology.json)"
    )]
    WrongNode {
        /// The node asked.
        expected: NodeId,
        /// The node the descriptor is for.
        got: NodeId,
    },
    /// Signed by an identity key other than the one in the topology.
    #[error(
        "the descriptor served for node {0} is signed by another identity key \
         than topology.json lists; not trusted (if the node really has new \
         keys, rebuild topology.json with its new node.json)"
    )]
    IdentityKeyChanged(NodeId),
    /// The descriptor has another VRF key than the topology lists.
    #[error(
        "node {0} serves a descriptor with another VRF key than topology.json \
         lists; refused: a node free to change its VRF key could try keys until \
         its delays and neighbours suit it (if the node really has new keys, \
         rebuild topology.json with its new node.json)"
    )]
    VrfKeyChanged(NodeId),
    /// The descriptor claims another layer.
    #[error(
        "node {id} now claims role {served} but topology.json lists it as \
         {known}; ignored (a role change needs a rebuilt topology.json)"
    )]
    RoleChanged {
        /// The node.
        id: NodeId,
        /// Its role in the topology.
        known: NodeRole,
        /// The role the served descriptor claims.
        served: NodeRole,
    },
    /// The descriptor moves the node: an address differs from the one
    /// `topology.json` lists. Addresses come from the operator, never from
    /// the node (a member could otherwise point everyone's traffic and
    /// fetches at any host, and that host would count as a member).
    #[error(
        "node {id} now advertises {field} {served} but topology.json lists \
         {known}; ignored (a node's addresses change only with a rebuilt \
         topology.json)"
    )]
    AddressChanged {
        /// The node.
        id: NodeId,
        /// Which address: `udp_addr`, `tcp_addr` or `http_addr`.
        field: &'static str,
        /// The address in the topology.
        known: SocketAddr,
        /// The address the served descriptor claims.
        served: SocketAddr,
    },
    /// The descriptor is older than the one already known.
    #[error(
        "node {id} served a descriptor whose newest key epoch is {served}, \
         older than the known {known}; ignored as a rollback (a stale cache or \
         a replayed descriptor; if the node lost its keys, rebuild \
         topology.json)"
    )]
    Rollback {
        /// The node.
        id: NodeId,
        /// Newest key epoch of the known descriptor.
        known: u64,
        /// Newest key epoch of the served one.
        served: u64,
    },
    /// The new descriptor clashes with another node (e.g. takes its address).
    #[error("the descriptor served for node {id} conflicts with the topology: {error}")]
    Conflict {
        /// The node.
        id: NodeId,
        /// The conflict.
        error: TopologyError,
    },
    /// The refresh ran out of time before this node was tried.
    #[error(
        "not tried: the refresh ran out of time (too many slow nodes); the \
         next refresh tries again"
    )]
    NotTried,
    /// Fetching or checking this node's descriptor panicked (a bug); the
    /// other nodes were refreshed as usual.
    #[error("the refresh of this node failed unexpectedly ({0}); the next refresh tries again")]
    Panicked(String),
}

/// What to check when a fetch failed with `error`.
fn fetch_hint(error: &HttpError) -> &'static str {
    match error {
        HttpError::Io(_) | HttpError::Timeout(_) => {
            " (is the node up and its HTTP port reachable from here?)"
        }
        HttpError::Malformed(_) | HttpError::TooLarge(_) => {
            " (what answers at that address is not a betanet node, or \
             misbehaves; the node keeps its known descriptor)"
        }
        HttpError::BadRequest(_) => "",
    }
}

/// What happened to one node's descriptor in a refresh.
#[derive(Debug)]
pub enum RefreshOutcome {
    /// A newer descriptor was accepted.
    Updated {
        /// The newest key epoch it publishes.
        newest_key_epoch: u64,
    },
    /// The node serves the descriptor already known.
    Unchanged,
    /// Nothing changed, for this reason.
    Failed(RefreshError),
}

/// One node's line in a [`RefreshReport`].
#[derive(Debug)]
pub struct NodeRefresh {
    /// The node.
    pub id: NodeId,
    /// Where its descriptor was fetched from.
    pub http_addr: SocketAddr,
    /// What happened.
    pub outcome: RefreshOutcome,
}

/// What a refresh did, node by node (in topology order).
#[derive(Debug, Default)]
pub struct RefreshReport {
    /// One entry per node tried.
    pub nodes: Vec<NodeRefresh>,
}

impl RefreshReport {
    /// Nodes whose descriptor was replaced.
    pub fn updated(&self) -> usize {
        self.count(|o| matches!(o, RefreshOutcome::Updated { .. }))
    }

    /// Nodes that served the descriptor already known.
    pub fn unchanged(&self) -> usize {
        self.count(|o| matches!(o, RefreshOutcome::Unchanged))
    }

    /// The nodes that could not be refreshed, and why.
    pub fn failures(&self) -> impl Iterator<Item = (&NodeRefresh, &RefreshError)> {
        self.nodes.iter().filter_map(|n| match &n.outcome {
            RefreshOutcome::Failed(error) => Some((n, error)),
            _ => None,
        })
    }

    /// The outcome for node `id`, if it was tried.
    pub fn outcome(&self, id: &NodeId) -> Option<&RefreshOutcome> {
        self.nodes.iter().find(|n| n.id == *id).map(|n| &n.outcome)
    }

    fn count(&self, f: impl Fn(&RefreshOutcome) -> bool) -> usize {
        self.nodes.iter().filter(|n| f(&n.outcome)).count()
    }
}

/// One line: `refreshed N node descriptors: U updated, S unchanged, F failed`.
impl fmt::Display for RefreshReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (updated, unchanged) = (self.updated(), self.unchanged());
        write!(
            f,
            "refreshed {} node descriptors: {updated} updated, {unchanged} unchanged, {} failed",
            self.nodes.len(),
            self.nodes.len() - updated - unchanged
        )
    }
}

/// Checks that `fetched` may replace `known` (see the module docs): same
/// id, identity key, role and addresses, verifies, and no rollback of key
/// epochs. Anything else may change: Sphinx keys, network parameters.
pub fn check_update(known: &NodeDescriptor, fetched: &NodeDescriptor) -> Result<(), RefreshError> {
    if fetched.id != known.id {
        return Err(RefreshError::WrongNode {
            expected: known.id,
            got: fetched.id,
        });
    }
    if fetched.identity_key != known.identity_key {
        return Err(RefreshError::IdentityKeyChanged(known.id));
    }
    if fetched.vrf_key != known.vrf_key {
        return Err(RefreshError::VrfKeyChanged(known.id));
    }
    if fetched.role != known.role {
        return Err(RefreshError::RoleChanged {
            id: known.id,
            known: known.role,
            served: fetched.role,
        });
    }
    // Verified here as well as on fetch: this is the gate, whatever the
    // descriptor's origin.
    fetched.verify().map_err(|error| RefreshError::Invalid {
        id: fetched.id,
        error,
    })?;
    let addresses = [
        ("udp_addr", known.udp_addr, fetched.udp_addr),
        ("tcp_addr", known.tcp_addr, fetched.tcp_addr),
        ("http_addr", known.http_addr, fetched.http_addr),
    ];
    if let Some((field, known_addr, served)) = addresses.into_iter().find(|(_, k, s)| k != s) {
        return Err(RefreshError::AddressChanged {
            id: known.id,
            field,
            known: known_addr,
            served,
        });
    }
    let known_newest = known.newest_key_epoch().unwrap_or(0);
    let served = fetched.newest_key_epoch().unwrap_or(0);
    if served < known_newest {
        return Err(RefreshError::Rollback {
            id: known.id,
            known: known_newest,
            served,
        });
    }
    Ok(())
}

/// One node's fetch result, before it is compared with the topology: the
/// input of these rules.
#[derive(Debug)]
pub(crate) struct Fetched {
    /// The node asked.
    pub(crate) id: NodeId,
    /// Where it was asked.
    pub(crate) http_addr: SocketAddr,
    /// What it served, verified on its own terms.
    pub(crate) result: Result<NodeDescriptor, RefreshError>,
}

/// The result of applying fetched descriptors to a topology.
pub(crate) struct Applied {
    /// The new topology, if anything changed.
    pub(crate) topology: Option<Topology>,
    /// The descriptors that were accepted.
    pub(crate) accepted: Vec<NodeDescriptor>,
    /// Per node.
    pub(crate) report: RefreshReport,
}

/// Compares each fetched descriptor with `base` and builds the topology
/// with those that pass [`check_update`].
pub(crate) fn apply_fetched(base: &Topology, fetched: Vec<Fetched>) -> Applied {
    let mut report = RefreshReport::default();
    let mut candidates = Vec::new();
    for Fetched {
        id,
        http_addr,
        result,
    } in fetched
    {
        let outcome = match result.and_then(|d| classify(base, id, d)) {
            Ok(Some(descriptor)) => {
                candidates.push((report.nodes.len(), descriptor));
                // Settled below, once the topology is rebuilt.
                RefreshOutcome::Unchanged
            }
            Ok(None) => RefreshOutcome::Unchanged,
            Err(error) => RefreshOutcome::Failed(error),
        };
        report.nodes.push(NodeRefresh {
            id,
            http_addr,
            outcome,
        });
    }
    if candidates.is_empty() {
        return Applied {
            topology: None,
            accepted: Vec::new(),
            report,
        };
    }
    let all = base.with_updates(candidates.iter().map(|(_, d)| d.clone()));
    let mut accepted = Vec::new();
    let topology = match all {
        Ok(topology) => {
            for (i, descriptor) in candidates {
                report.nodes[i].outcome = updated(&descriptor);
                accepted.push(descriptor);
            }
            topology
        }
        // Some update clashes with another node (say, takes its address):
        // apply them one by one so the others still go in.
        Err(_) => {
            let mut topology = base.clone();
            for (i, descriptor) in candidates {
                match topology.with_updates([descriptor.clone()]) {
                    Ok(next) => {
                        topology = next;
                        report.nodes[i].outcome = updated(&descriptor);
                        accepted.push(descriptor);
                    }
                    Err(error) => {
                        report.nodes[i].outcome = RefreshOutcome::Failed(RefreshError::Conflict {
                            id: descriptor.id,
                            error,
                        });
                    }
                }
            }
            topology
        }
    };
    Applied {
        topology: (!accepted.is_empty()).then_some(topology),
        accepted,
        report,
    }
}

fn updated(descriptor: &NodeDescriptor) -> RefreshOutcome {
    RefreshOutcome::Updated {
        newest_key_epoch: descriptor.newest_key_epoch().unwrap_or(0),
    }
}

/// `Some(descriptor)` if it should replace node `asked`'s, `None` if it is
/// the one already known.
fn classify(
    base: &Topology,
    asked: NodeId,
    fetched: NodeDescriptor,
) -> Result<Option<NodeDescriptor>, RefreshError> {
    let known = base.get(&asked).ok_or(RefreshError::UnknownNode(asked))?;
    if *known == fetched {
        return Ok(None);
    }
    check_update(known, &fetched)?;
    Ok(Some(fetched))
}

impl Topology {
    /// Replaces the known descriptor of `fetched.id` with `fetched` if
    /// [`check_update`] allows it. `Ok(true)`: replaced; `Ok(false)`: it is
    /// the descriptor already known. On error nothing changes.
    pub fn apply_refreshed(&mut self, fetched: NodeDescriptor) -> Result<bool, RefreshError> {
        let Some(descriptor) = classify(self, fetched.id, fetched)? else {
            return Ok(false);
        };
        let id = descriptor.id;
        *self = self
            .with_updates([descriptor])
            .map_err(|error| RefreshError::Conflict { id, error })?;
        Ok(true)
    }
}
