//! What the HTTP endpoint needs from the node.

use crate::node::Health;

/// Which VRF output `/vrf/…` asks for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum VrfQuery {
    /// `/vrf/current`.
    Current,
    /// `/vrf/{epoch}`.
    Epoch(u64),
}

/// The node as the HTTP endpoint sees it.
///
/// Methods are called on the async runtime for every request, so they must
/// be quick and must not block (reading atomics and cached values is fine).
pub trait NodeStatus: Send + Sync + 'static {
    /// Liveness and readiness. `ready` must be false until keys and
    /// topology are loaded and every listener is bound, and while the node
    /// sheds load; `reason` says why.
    fn health(&self) -> Health;

    /// The signed node descriptor as JSON. Empty means "not available yet"
    /// and is answered with 503.
    fn descriptor_json(&self) -> Vec<u8>;

    /// `/metrics` in OpenMetrics text (see [`crate::metrics::render`]).
    fn metrics(&self) -> String;

    /// The VRF proof document for `query` as JSON, or `None` (404) when the
    /// node has none for it. Not implemented yet: always `None`.
    fn vrf(&self, _query: VrfQuery) -> Option<Vec<u8>> {
        None
    }

    /// The cover-loop table (`GET /loops`) as JSON, or `None` when the
    /// node sends no cover loops, answered `{"enabled": false}`. The
    /// default is `None`.
    fn loops(&self) -> Option<Vec<u8>> {
        None
    }
}
