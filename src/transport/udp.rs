//! UDP ingress: a dedicated thread receiving up to `udp_batch` datagrams per
//! `recvmmsg` (with GRO where the kernel offers it) through quinn-udp, so
//! the per-packet syscall cost disappears without any unsafe code of ours.

use std::io::{self, IoSliceMut};
use std::net::UdpSocket;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use quinn_udp::{RecvMeta, UdpSocketState};
use tokio::io::Interest;

use super::gate::SourceGate;
use crate::pipeline::Submitter;

/// How often a blocked receive wakes to check for shutdown.
const POLL_INTERVAL: Duration = Duration::from_millis(100);
/// Receive buffer per slot when GRO may coalesce datagrams.
const GRO_BUFFER: usize = 64 * 1024;
/// Kernel receive buffer we ask for: bursts must not overflow it.
const SOCKET_RECV_BUFFER: usize = 8 * 1024 * 1024;

/// Starts the receive thread on `socket` (already bound). The thread
/// drives a non-blocking clone of the socket with its own single-threaded
/// reactor: quinn-udp's `recvmmsg` returns as soon as anything is queued,
/// where a blocking socket would wait to fill every slot.
pub fn spawn_ingress(
    socket: &UdpSocket,
    gate: Arc<SourceGate>,
    submitter: Submitter,
    batch: usize,
    stop: Arc<AtomicBool>,
) -> io::Result<JoinHandle<()>> {
    let socket = socket.try_clone()?;
    socket.set_nonblocking(true)?;
    let state = UdpSocketState::new((&socket).into())?;
    // Best effort: the default buffer drops bursts at high rates.
    let _ = state.set_recv_buffer_size((&socket).into(), SOCKET_RECV_BUFFER);
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_io()
        .enable_time()
        .build()?;
    std::thread::Builder::new()
        .name("betanet-udp-rx".into())
        .spawn(move || {
            runtime.block_on(async move {
                match tokio::net::UdpSocket::from_std(socket) {
                    Ok(socket) => {
                        receive_loop(&socket, &state, &gate, submitter, batch, &stop).await
                    }
                    Err(e) => tracing::error!(error = %e, "UDP receiver cannot start"),
                }
            })
        })
}

async fn receive_loop(
    socket: &tokio::net::UdpSocket,
    state: &UdpSocketState,
    gate: &SourceGate,
    submitter: Submitter,
    batch: usize,
    stop: &AtomicBool,
) {
    let slots = batch.clamp(1, quinn_udp::BATCH_SIZE);
    let slot_len = if state.gro_segments() > 1 {
        GRO_BUFFER
    } else {
        // One byte more than a frame, so oversized datagrams are detectable.
        crate::sphinx::FRAME_LEN + 1
    };
    let mut storage = vec![vec![0u8; slot_len]; slots];
    let mut meta = vec![RecvMeta::default(); slots];
    let counters = submitter.ingress_counters();

    while !stop.load(Ordering::Relaxed) {
        match tokio::time::timeout(POLL_INTERVAL, socket.readable()).await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => {
                tracing::error!(error = %e, "UDP socket failed; receiver stopping");
                return;
            }
            Err(_) => continue, // Time to check `stop`.
        }
        let mut bufs: Vec<IoSliceMut<'_>> =
            storage.iter_mut().map(|b| IoSliceMut::new(b)).collect();
        let received = match socket.try_io(Interest::READABLE, || {
            state.recv(socket.into(), &mut bufs, &mut meta)
        }) {
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => continue,
            Err(e) => {
                tracing::debug!(error = %e, "UDP receive failed");
                continue;
            }
        };
        let now = Instant::now();
        for (m, buf) in meta.iter().zip(storage.iter()).take(received) {
            let data = &buf[..m.len.min(buf.len())];
            let stride = m.stride.max(1);
            let datagrams = data.len().div_ceil(stride);
            counters
                .received_udp
                .fetch_add(datagrams as u64, Ordering::Relaxed);
            if gate.plaintext_refused() {
                // Links are on here: a datagram proves nothing of its
                // sender (its address is forgeable), so it is not taken.
                // Outsiders are still told apart (the cheap pre-filter).
                let cause = match gate.classify(m.addr.ip()) {
                    Some(_) => crate::pipeline::DropCause::Unauthenticated,
                    None => crate::pipeline::DropCause::UnauthorizedSource,
                };
                for _ in 0..datagrams {
                    counters.drop(cause);
                }
                continue;
            }
            // GRO hands over a whole burst from one source: admit it with
            // one look-up, and only when that fails decide datagram by
            // datagram (so a source near its limit gets what it is owed).
            let whole = u32::try_from(datagrams)
                .ok()
                .is_some_and(|n| gate.admit(m.addr, n, now).is_ok());
            for datagram in data.chunks(stride) {
                if !whole && let Err(cause) = gate.admit(m.addr, 1, now) {
                    counters.drop(cause);
                    continue;
                }
                // Counts `overload` itself when the queue is at its limit,
                // before taking a pool buffer or copying.
                let _ = submitter.submit_frame(datagram, m.addr, now);
            }
        }
    }
}
