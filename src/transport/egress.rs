//! Egress: a dedicated thread that takes packets whose mixing delay has
//! ended and sends them — frames for the same next hop in one GSO send over
//! UDP, or into that hop's TCP queue; DELIVER messages of the same length
//! for the same destination in one GSO send too (they still leave as
//! separate datagrams).

use std::collections::HashMap;
use std::io;
use std::net::{SocketAddr, UdpSocket};
use std::sync::Arc;
use std::sync::atomic::Ordering;
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

/// Addresses whose send buffers are kept between wake-ups before they are
/// forgotten (bounds memory when packets go to many destinations).
const MAX_REMEMBERED_ADDRESSES: usize = 1024;

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
    outputs: &Receiver<Output>,
    parts: &EgressParts,
    sender: &UdpSender,
    counters: &StageCounters,
) {
    // Frames for the same next hop, and messages of the same length for the
    // same destination, leave in one GSO send each: one syscall (and one
    // trip through the kernel's UDP stack) per group instead of per packet.
    // The vectors are kept between wake-ups so the steady state allocates
    // nothing; the maps are cleared if they collect too many addresses.
    let mut by_hop: HashMap<SocketAddr, Vec<Outbound>> = HashMap::new();
    let mut by_destination: HashMap<(SocketAddr, usize), Vec<Outbound>> = HashMap::new();
    let mut scratch: Vec<u8> = Vec::with_capacity(MAX_UDP_PAYLOAD);

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
                    Target::Deliver {
                        destination, len, ..
                    } => by_destination
                        .entry((destination, len))
                        .or_default()
                        .push(outbound),
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
        for (addr, frames) in by_hop.iter_mut().filter(|(_, f)| !f.is_empty()) {
            let sent = send_group(sender, *addr, FRAME_LEN, frames, &mut scratch, counters);
            counters.forwarded.fetch_add(sent, Ordering::Relaxed);
            frames.clear();
        }
        for ((addr, len), messages) in by_destination.iter_mut().filter(|(_, m)| !m.is_empty()) {
            let sent = send_group(sender, *addr, *len, messages, &mut scratch, counters);
            counters.delivered.fetch_add(sent, Ordering::Relaxed);
            messages.clear();
        }
        if by_hop.len() > MAX_REMEMBERED_ADDRESSES {
            by_hop.clear();
        }
        if by_destination.len() > MAX_REMEMBERED_ADDRESSES {
            by_destination.clear();
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
