//! Moving frames between the network and the pipeline: UDP (a frame per
//! datagram, batched receive and GSO send) and TCP (back-to-back frames).

mod bucket_table;
mod egress;
mod gate;
mod links;
mod rate_limit;
pub(crate) mod slots;
mod source;
pub mod tcp;
mod udp;

pub use egress::{EgressParts, LoopSink, TcpRefused, TcpSink, spawn_egress};
pub use gate::{Budget, RateLimits, SourceGate};
pub use links::{LinkContext, LinkStats};
pub use rate_limit::{RateLimiter, TokenBucket};
pub use source::{SourceClass, source_key};
pub use tcp::{EgressStats, FrameCodec, TcpEgress, TcpLimits, TcpServer, TcpStats};
pub use udp::spawn_ingress as spawn_udp_ingress;
