//! Plugs [`TcpEgress`] into the egress thread, which hands over whole
//! groups of frames for one next hop.

use std::net::SocketAddr;

use super::TcpEgress;
use crate::pipeline::PacketBuf;
use crate::transport::{TcpRefused, TcpSink};

impl TcpSink for TcpEgress {
    fn send_frames(&self, to: SocketAddr, frames: Vec<PacketBuf>) -> Result<(), TcpRefused> {
        TcpEgress::send_frames(self, to, frames)
    }
}
