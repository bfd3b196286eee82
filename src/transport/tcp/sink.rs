//! Plugs [`TcpEgress`] into the egress thread, which hands over whole
//! [`Outbound`] packets.

use std::net::SocketAddr;

use super::TcpEgress;
use crate::pipeline::{DropCause, Outbound};
use crate::transport::TcpSink;

impl TcpSink for TcpEgress {
    fn send(&self, to: SocketAddr, outbound: Outbound) -> Result<(), DropCause> {
        // Only next-hop frames come this way; the whole frame is what goes.
        TcpEgress::send(self, to, outbound.buf)
    }
}
