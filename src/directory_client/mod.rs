//! The HTTP side of descriptor refreshes: fetching each node's signed
//! descriptor from its `GET /descriptor` and handing the results to the
//! pure rules of [`topology::refresh`](crate::topology::refresh), which
//! decide what is accepted.
//!
//! With directory authorities configured, [`fetch_consensus`] replaces the
//! per-node polling: one signed document for the whole network, and
//! [`upload_descriptor`] is how a node joins it.
//!
//! Fetches are bounded in size and time and run concurrently as tasks on
//! one small runtime ([`crate::http::client`]); a hostile or broken node
//! fails only its own fetch.

mod consensus;
mod fetch;

use std::time::Duration;

pub use consensus::{
    ConsensusFetchError, FetchFailure, fetch_consensus, fetch_consensus_async,
    fetch_consensus_from, upload_descriptor, upload_descriptor_async,
};
pub(crate) use fetch::fetch_all_async;
pub use fetch::fetch_descriptor;

use crate::topology::refresh::apply_fetched;
use crate::topology::{LiveTopology, RefreshReport, Topology};

/// Fetches every node's `GET /descriptor` (each within `timeout`, up to 64
/// at a time as tasks on one thread, the whole within about `3 × timeout`)
/// and applies the ones [`check_update`](crate::topology::check_update)
/// accepts. Best effort: a node that cannot be refreshed keeps its known
/// descriptor and is listed in the report.
///
/// For clients holding a plain [`Topology`]; a node uses [`refresh_live`].
pub fn refresh_topology(topology: &mut Topology, timeout: Duration) -> RefreshReport {
    let fetched = fetch::fetch_all(topology.nodes(), timeout);
    let applied = apply_fetched(topology, fetched);
    if let Some(updated) = applied.topology {
        *topology = updated;
    }
    applied.report
}

/// [`refresh_topology`] for a running node's topology: the accepted
/// descriptors are installed at once (readers see the old or the new
/// topology, never a mix) and kept over reloads of `topology.json` (see
/// [`LiveTopology::replace`]).
pub fn refresh_live(topology: &LiveTopology, timeout: Duration) -> RefreshReport {
    let fetched = fetch::fetch_all(topology.snapshot().nodes(), timeout);
    topology.apply_fetched(fetched)
}
