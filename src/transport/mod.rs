//! Moving frames between the network and the pipeline: UDP (a frame per
//! datagram, batched receive and GSO send) and TCP (back-to-back frames).

mod egress;
mod gate;
mod rate_limit;
pub mod tcp;
mod udp;

pub use egress::{EgressParts, LoopSink, TcpSink, spawn_egress};
pub use gate::SourceGate;
pub use rate_limit::{RateLimiter, TokenBucket};
pub use tcp::{EgressStats, FrameCodec, TcpEgress, TcpLimits, TcpServer, TcpStats};
pub use udp::spawn_ingress as spawn_udp_ingress;
