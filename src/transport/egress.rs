//! Egress: a dedicated thread that takes packets whose mixing delay has
//! ended and sends them — frames for the same next hop in one GSO send over
//! UDP, or into that hop's TCP queue; DELIVER messages as single datagrams.

use std::collections::HashMap;
use std::io;
use std::net::{SocketAddr, UdpSocket};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Instant;

use crossbeam_channel::Receiver;
use quinn_udp::{Transmit, UdpSocketState};
use tokio::io::Interest;

use crate::pipeline::{DropCause, Outbound, Output, StageCounters, Target};
use crate::sphinx::{FRAME_LEN, LoopId};
use crate::topology::EgressProtocol;

/// Largest UDP payload; a GSO send's total must fit in it.
const MAX_UDP_PAYLOAD: usize = 65_507;

/// Most frames handled per wake-up.
const EGRESS_BATCH: usize = 256;

/// Where frames for next hops go over TCP (see the TCP transport).
pub trait TcpSink: Send + Sync {
    /// Queues a frame for `to`; an error is the reason it was dropped.
    fn send(&self, to: SocketAddr, outbound: Outbound) -> Result<(), crate::pipeline::DropCause>;
}

/// Receives the ids of this node's cover loops that came back.
pub type LoopSink = Box<dyn Fn(LoopId, Instant) + Send>;

/// What the egress thread sends with.
pub struct EgressParts {
    /// The node's UDP socket (also used for DELIVER).
    pub socket: Arc<UdpSocket>,
    /// Which protocol next hops are reached by.
    pub protocol: EgressProtocol,
    /// The TCP queues, when `protocol` is TCP.
    pub tcp: Option<Arc<dyn TcpSink>>,
    /// Where loop returns go (cover traffic), if anywhere.
    pub loops: Option<LoopSink>,
}

/// Starts the egress thread; it ends when the pipeline's outputs close.
pub fn spawn_egress(
    outputs: Receiver<Output>,
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

    /// Frames per GSO send: what the kernel allows, and never more than
    /// one UDP payload (64 KiB) in total.
    fn max_segments(&self) -> usize {
        self.state
            .max_gso_segments()
            .clamp(1, MAX_UDP_PAYLOAD / FRAME_LEN)
    }
}

fn egress_loop(
    outputs: &Receiver<Output>,
    parts: &EgressParts,
    sender: &UdpSender,
    counters: &StageCounters,
) {
    let max_segments = sender.max_segments();
    let mut by_hop: HashMap<SocketAddr, Vec<Outbound>> = HashMap::new();
    let mut scratch: Vec<u8> = Vec::with_capacity(max_segments * FRAME_LEN);

    while let Ok(first) = outputs.recv() {
        let mut handled = 0;
        let mut next = Some(first);
        while let Some(output) = next.take() {
            handled += 1;
            match output {
                Output::LoopReturned { loop_id, at } => {
                    if let Some(sink) = &parts.loops {
                        sink(loop_id, at);
                    }
                }
                Output::Send(outbound) => match outbound.target {
                    Target::Deliver { destination, .. } => {
                        if send_one(sender, destination, outbound.payload(), counters) {
                            StageCounters::inc(&counters.delivered);
                        }
                    }
                    Target::Hop { addr, .. } => match (parts.protocol, &parts.tcp) {
                        (EgressProtocol::Tcp, Some(tcp)) => match tcp.send(addr, outbound) {
                            Ok(()) => StageCounters::inc(&counters.forwarded),
                            Err(cause) => counters.drop(cause),
                        },
                        _ => by_hop.entry(addr).or_default().push(outbound),
                    },
                },
            }
            if handled < EGRESS_BATCH {
                next = outputs.try_recv().ok();
            }
        }
        for (addr, frames) in by_hop.drain() {
            send_frames(sender, addr, &frames, max_segments, &mut scratch, counters);
        }
    }
}

/// Sends frames for one next hop, `max_segments` per GSO send.
fn send_frames(
    sender: &UdpSender,
    to: SocketAddr,
    frames: &[Outbound],
    max_segments: usize,
    scratch: &mut Vec<u8>,
    counters: &StageCounters,
) {
    for chunk in frames.chunks(max_segments) {
        if chunk.len() == 1 {
            if !send_one(sender, to, chunk[0].payload(), counters) {
                continue;
            }
        } else {
            scratch.clear();
            for outbound in chunk {
                scratch.extend_from_slice(outbound.payload());
            }
            let transmit = Transmit {
                destination: to,
                ecn: None,
                contents: scratch,
                segment_size: Some(FRAME_LEN),
                src_ip: None,
            };
            if let Err(e) = sender.send(&transmit) {
                tracing::debug!(error = %e, %to, "UDP batch send failed");
                counters.drops[DropCause::SendFailed.index()]
                    .fetch_add(chunk.len() as u64, std::sync::atomic::Ordering::Relaxed);
                continue;
            }
        }
        counters
            .forwarded
            .fetch_add(chunk.len() as u64, std::sync::atomic::Ordering::Relaxed);
    }
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
