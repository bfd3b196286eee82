//! Egress: the thread that only sends. The scheduler's
//! [`MixCore`](crate::mixing::MixCore) has already grouped released
//! packets by next hop (or by destination and message length); each
//! [`Transmit`](crate::mixing::Transmit) group leaves in as few GSO sends
//! as the kernel allows (still one datagram per packet on the wire), or
//! goes into that hop's TCP queue in one hand-over.

use std::io;
use std::net::{SocketAddr, UdpSocket};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::thread::JoinHandle;

use quinn_udp::{Transmit, UdpSocketState};
use tokio::io::Interest;

use crate::mixing::EgressKey;
use crate::pipeline::{DropCause, Outbound, Outputs, PacketBuf, StageCounters};
use crate::topology::EgressProtocol;

pub use crate::pipeline::LoopSink;

/// Largest UDP payload; a GSO send's total must fit in it.
const MAX_UDP_PAYLOAD: usize = 65_507;

/// Frames a [`TcpSink`] refused, and why.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TcpRefused {
    /// How many (the last ones of the group).
    pub frames: usize,
    /// Why.
    pub cause: DropCause,
}

/// Where frames for next hops go over TCP (see the TCP transport).
pub trait TcpSink: Send + Sync {
    /// Queues `frames` for `to`, in order. Frames it cannot take (the tail
    /// of the group) are dropped and reported.
    fn send_frames(&self, to: SocketAddr, frames: Vec<PacketBuf>) -> Result<(), TcpRefused>;
}

/// What the egress thread sends with.
pub struct EgressParts {
    /// The node's UDP socket (also used for DELIVER).
    pub socket: Arc<UdpSocket>,
    /// Which protocol next hops are reached by.
    pub protocol: EgressProtocol,
    /// The TCP queues, when `protocol` is TCP.
    pub tcp: Option<Arc<dyn TcpSink>>,
}

/// Starts the egress thread; it ends when the pipeline's outputs close.
pub fn spawn_egress(
    outputs: Outputs,
    parts: EgressParts,
    counters: Arc<crate::pipeline::PipelineCounters>,
) -> io::Result<JoinHandle<()>> {
    // A non-blocking clone driven by this thread's own reactor: a full send
    // buffer waits for writability instead of failing or blocking blindly.
    let socket = parts.socket.try_clone()?;
    socket.set_nonblocking(true)?;
    let state = UdpSocketState::new((&socket).into())?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_io()
        .build()?;
    std::thread::Builder::new()
        .name("betanet-egress".into())
        .spawn(move || {
            let stage = counters.stage(crate::pipeline::EGRESS_SHARD);
            let socket = match runtime.block_on(async { tokio::net::UdpSocket::from_std(socket) }) {
                Ok(socket) => socket,
                Err(e) => {
                    tracing::error!(error = %e, "egress cannot start");
                    return;
                }
            };
            let sender = UdpSender {
                runtime,
                socket,
                state,
            };
            egress_loop(&outputs, &parts, &sender, stage)
        })
}

/// Sends datagrams, waiting for writability when the kernel buffer is full.
struct UdpSender {
    runtime: tokio::runtime::Runtime,
    socket: tokio::net::UdpSocket,
    state: UdpSocketState,
}

impl UdpSender {
    fn send(&self, transmit: &Transmit<'_>) -> io::Result<()> {
        loop {
            let sent = self.socket.try_io(Interest::WRITABLE, || {
                self.state.try_send((&self.socket).into(), transmit)
            });
            match sent {
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    self.runtime.block_on(self.socket.writable())?;
                }
                other => return other,
            }
        }
    }

    /// Datagrams of `len` bytes per GSO send: what the kernel allows now
    /// (quinn-udp lowers it if a send shows GSO is unsupported), and never
    /// more than one UDP payload (64 KiB) in total.
    fn max_segments(&self, len: usize) -> usize {
        self.state
            .max_gso_segments()
            .min(MAX_UDP_PAYLOAD / len.max(1))
            .max(1)
    }
}

fn egress_loop(
    outputs: &Outputs,
    parts: &EgressParts,
    sender: &UdpSender,
    counters: &StageCounters,
) {
    let mut scratch: Vec<u8> = Vec::with_capacity(MAX_UDP_PAYLOAD);
    while let Ok(transmit) = outputs.recv() {
        let packets = transmit.packets;
        match transmit.key {
            EgressKey::Deliver { destination, len } => {
                let sent = send_group(sender, destination, len, &packets, &mut scratch, counters);
                counters.delivered.fetch_add(sent, Ordering::Relaxed);
            }
            EgressKey::Hop { addr, .. } => match (parts.protocol, &parts.tcp) {
                (EgressProtocol::Tcp, Some(tcp)) => {
                    let n = packets.len();
                    let frames = packets.into_iter().map(|held| held.packet).collect();
                    let refused = match tcp.send_frames(addr, frames) {
                        Ok(()) => 0,
                        Err(refused) => {
                            counters.drops_add(refused.cause, refused.frames as u64);
                            refused.frames
                        }
                    };
                    counters
                        .forwarded
                        .fetch_add(n.saturating_sub(refused) as u64, Ordering::Relaxed);
                }
                _ => {
                    let sent = send_group(
                        sender,
                        addr,
                        crate::sphinx::FRAME_LEN,
                        &packets,
                        &mut scratch,
                        counters,
                    );
                    counters.forwarded.fetch_add(sent, Ordering::Relaxed);
                }
            },
        }
    }
}

/// Sends `packets` (each with a payload of exactly `len` bytes) to `to`,
/// as many per GSO send as the kernel and one UDP payload allow. A GSO send
/// the network refuses is retried datagram by datagram, so one odd path
/// (say, an MTU below `len`) costs speed, not packets. Returns how many
/// were sent; failures are counted as `send_failed`.
fn send_group(
    sender: &UdpSender,
    to: SocketAddr,
    len: usize,
    packets: &[Outbound],
    scratch: &mut Vec<u8>,
    counters: &StageCounters,
) -> u64 {
    let mut sent = 0;
    for chunk in packets.chunks(sender.max_segments(len)) {
        scratch.clear();
        if chunk.len() > 1 && len > 0 {
            for outbound in chunk {
                scratch.extend_from_slice(outbound.payload());
            }
        }
        // GSO cuts the payload every `len` bytes: only equal-length
        // payloads may share a send.
        if chunk.len() > 1 && len > 0 && scratch.len() == chunk.len() * len {
            let transmit = Transmit {
                destination: to,
                ecn: None,
                contents: scratch,
                segment_size: Some(len),
                src_ip: None,
            };
            match sender.send(&transmit) {
                Ok(()) => {
                    sent += chunk.len() as u64;
                    continue;
                }
                Err(e) => tracing::debug!(error = %e, %to, "UDP GSO send failed; sending singly"),
            }
        }
        for outbound in chunk {
            if send_one(sender, to, outbound.payload(), counters) {
                sent += 1;
            }
        }
    }
    sent
}

/// One datagram; false (and counted) if the network refused it.
fn send_one(sender: &UdpSender, to: SocketAddr, payload: &[u8], counters: &StageCounters) -> bool {
    let transmit = Transmit {
        destination: to,
        ecn: None,
        contents: payload,
        segment_size: None,
        src_ip: None,
    };
    match sender.send(&transmit) {
        Ok(()) => true,
        Err(e) => {
            tracing::debug!(error = %e, %to, "UDP send failed");
            counters.drop(DropCause::SendFailed);
            false
        }
    }
}
