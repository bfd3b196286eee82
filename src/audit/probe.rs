//! The auditor's packets on the wire: sending frames to entry nodes, and a
//! thread that timestamps the packets delivered back.
//!
//! A delivered audit packet is `run id (16) ‖ u32be(index)`: the random run
//! id keeps strays (another run's packets, anything else sent to the port)
//! out of the measurements.

use std::io;
use std::net::{SocketAddr, UdpSocket};
use std::sync::mpsc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crate::shutdown::Shutdown;

/// Length of a delivered audit message.
pub(crate) const MESSAGE_LEN: usize = 16 + 4;

/// The message of sample `index` in run `run_id`.
pub(crate) fn message(run_id: &[u8; 16], index: u32) -> [u8; MESSAGE_LEN] {
    let mut m = [0u8; MESSAGE_LEN];
    m[..16].copy_from_slice(run_id);
    m[16..].copy_from_slice(&index.to_be_bytes());
    m
}

/// The sample index of a delivered datagram, if it is one of this run's.
pub(crate) fn parse(run_id: &[u8; 16], datagram: &[u8]) -> Option<u32> {
    if datagram.len() != MESSAGE_LEN || datagram[..16] != run_id[..] {
        return None;
    }
    Some(u32::from_be_bytes(datagram[16..].try_into().ok()?))
}

/// UDP sockets to send frames from, one per address family, opened on first use.
#[derive(Default)]
pub(crate) struct Senders {
    v4: Option<UdpSocket>,
    v6: Option<UdpSocket>,
}

impl Senders {
    /// Sends `frame` to `to`.
    pub(crate) fn send(&mut self, frame: &[u8], to: SocketAddr) -> io::Result<()> {
        let (slot, any) = if to.is_ipv4() {
            (&mut self.v4, "0.0.0.0:0")
        } else {
            (&mut self.v6, "[::]:0")
        };
        let socket = match slot {
            Some(socket) => socket,
            None => slot.insert(UdpSocket::bind(any)?),
        };
        socket.send_to(frame, to).map(drop)
    }
}

/// Receives this run's delivered packets on a thread, so that each is
/// timestamped the moment it arrives, whatever the sender is doing. The
/// thread ends when this is stopped or dropped.
pub(crate) struct Arrivals {
    addr: SocketAddr,
    stop: Shutdown,
    thread: Option<JoinHandle<()>>,
    rx: mpsc::Receiver<(u32, Instant)>,
}

impl Arrivals {
    /// Starts receiving on `socket`.
    pub(crate) fn start(socket: UdpSocket, run_id: [u8; 16]) -> io::Result<Arrivals> {
        let addr = socket.local_addr()?;
        // A receive raced against the stop signal on a runtime of the
        // thread's own: the thread sleeps until a datagram or the stop.
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_io()
            .build()?;
        socket.set_nonblocking(true)?;
        let socket = {
            let _context = runtime.enter();
            tokio::net::UdpSocket::from_std(socket)?
        };
        let stop = Shutdown::new();
        let stopped = stop.token();
        let (tx, rx) = mpsc::channel();
        let thread = std::thread::Builder::new()
            .name("betanet-audit-recv".into())
            .spawn(move || {
                runtime.block_on(async {
                    let mut buf = [0u8; 2048];
                    loop {
                        let received = tokio::select! {
                            received = socket.recv(&mut buf) => received,
                            () = stopped.cancelled() => return,
                        };
                        let at = Instant::now();
                        // A failed receive (an ICMP error, say) loses nothing.
                        let Ok(len) = received else { continue };
                        if let Some(index) = parse(&run_id, &buf[..len])
                            && tx.send((index, at)).is_err()
                        {
                            return;
                        }
                    }
                });
            })?;
        Ok(Arrivals {
            addr,
            stop,
            thread: Some(thread),
            rx,
        })
    }

    /// Where packets must be delivered.
    pub(crate) fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The next arrival, waiting at most `timeout`.
    pub(crate) fn next(&self, timeout: Duration) -> Option<(u32, Instant)> {
        self.rx.recv_timeout(timeout).ok()
    }

    /// Stops receiving; returns the arrivals not yet taken.
    pub(crate) fn stop(mut self) -> Vec<(u32, Instant)> {
        self.halt();
        self.rx.try_iter().collect()
    }

    fn halt(&mut self) {
        self.stop.trigger();
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

impl Drop for Arrivals {
    /// An audit that fails half-way must not leave the thread behind.
    fn drop(&mut self) {
        self.halt();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_round_trip_and_strays_are_ignored() {
        let run = [3u8; 16];
        assert_eq!(parse(&run, &message(&run, 77)), Some(77));
        assert_eq!(parse(&[4u8; 16], &message(&run, 77)), None);
        assert_eq!(parse(&run, b"hello"), None);
    }

    #[test]
    fn arrivals_are_timestamped_and_filtered() {
        let socket = UdpSocket::bind("127.0.0.1:0").unwrap();
        let arrivals = Arrivals::start(socket, [9; 16]).unwrap();
        let mut senders = Senders::default();
        let before = Instant::now();
        senders.send(b"stray", arrivals.addr()).unwrap();
        senders
            .send(&message(&[9; 16], 5), arrivals.addr())
            .unwrap();
        let (index, at) = arrivals.next(Duration::from_secs(5)).unwrap();
        assert_eq!(index, 5);
        assert!(at >= before);
        assert!(arrivals.stop().is_empty());
    }
}
