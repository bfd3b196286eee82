//! Cover traffic and loop monitoring (Loopix-style).
//!
//! A node sends two kinds of dummy packets, each at Poisson-distributed
//! times so their timing says nothing:
//!
//! * **Loops** ([`FinalCommand::Loop`](crate::sphinx::FinalCommand)) go
//!   round the layers and come back to the node. They hide when real
//!   traffic flows, and their return (or not) measures the network: the
//!   [`LoopTracker`] records round-trip times, counts loops per node and per
//!   next hop, and the [`AttributionWindow`] estimates which node lost them
//!   ([`LoopReport`] puts it all together for `GET /loops` and `/metrics`).
//! * **Drops** ([`FinalCommand::Drop`](crate::sphinx::FinalCommand)) go
//!   along a random path and are discarded by its last hop.
//!
//! Cover packets are real Sphinx packets along random paths (see
//! [`loop_path`] and [`drop_path`]) and enter the node's mixing scheduler
//! through an [`Injector`](crate::pipeline::Injector) with a delay from the
//! node's own delay policy, so neither the scheduler nor an observer of the
//! wire can tell them from forwarded packets.
//!
//! [`CoverTraffic::spawn`] runs it all on one thread; the node feeds loop
//! returns back through [`CoverHandle::loop_sink`].

mod attribution;
mod generator;
mod loops;
mod loss;
mod path;
mod report;
mod schedule;

pub use attribution::{
    Attribution, AttributionWindow, FIT_ITERATIONS, MAX_WINDOW, MIN_WINDOW, PathGroup, WINDOW_SPAN,
    fit, window_bound,
};
pub use generator::{
    CoverHandle, CoverMonitor, CoverParams, CoverSettings, CoverStats, CoverTraffic,
};
pub use loops::{
    LoopCounts, LoopSnapshot, LoopTracker, MAX_OUTSTANDING_CAP, MIN_OUTSTANDING, ReturnOutcome,
    outstanding_bound,
};
pub use loss::{DEFAULT_LOSS_NODES, LossTable, NodeCounts};
pub use path::{
    CoverPath, FirstHop, Origin, PathError, drop_hops, drop_path, live_drop_path, live_loop_path,
    loop_hops, loop_path, ring_after, ring_next,
};
pub use report::{HopReport, LoopReport, LoopTotals, NodeReport, RttSummary, WindowReport};
pub use schedule::{MAX_GAP, MAX_LAG, PoissonSchedule, exponential_gap};
