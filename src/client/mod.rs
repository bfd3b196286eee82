//! Sending messages through the mixnet and receiving them: what an
//! application uses to route its traffic through betanet.
//!
//! ```no_run
//! use betanet::client::{Client, Receiver};
//! use betanet::topology::Topology;
//!
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let topology = Topology::load("topology.json".as_ref())?;
//! let mut receiver = Receiver::bind("127.0.0.1:7000".parse()?)?;
//! let mut client = Client::new(topology)?;
//! client.send(receiver.local_addr()?, b"hello through the mixnet")?;
//! let message = receiver.recv(std::time::Duration::from_secs(10))?;
//! # Ok(()) }
//! ```

pub mod fragment;
mod route;

use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpStream, UdpSocket};
use std::time::{Duration, Instant};

use rand::Rng;

pub use route::{Route, choose_route};

use crate::sphinx::{BuildError, FinalCommand, MessageId, create_packet};
use crate::topology::Topology;

/// How the client reaches the entry node.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Transport {
    /// One frame per datagram.
    Udp,
    /// Frames back to back over a connection.
    Tcp,
}

/// Why a message could not be sent.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// The topology lacks a node in some layer.
    #[error("the topology has no {0} node")]
    EmptyLayer(crate::role::NodeRole),
    /// The message is too large even for fragmentation.
    #[error(transparent)]
    TooLong(#[from] fragment::TooLong),
    /// A packet could not be built (a node's key is unusable).
    #[error("cannot build a packet: {0}")]
    Build(#[from] BuildError),
    /// The network refused.
    #[error("cannot send to the entry node {addr}: {source}")]
    Io {
        /// The entry node's address.
        addr: SocketAddr,
        /// The OS error.
        source: io::Error,
    },
}

/// What one [`Client::send`] did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SendReport {
    /// Packets (fragments) sent.
    pub packets: usize,
    /// The routes taken, one per packet.
    pub routes: Vec<Route>,
}

/// Builds Sphinx packets for random entry → middle → exit routes and sends
/// them to the entry node.
pub struct Client {
    topology: Topology,
    transport: Transport,
    udp: UdpSocket,
    tcp: Option<(SocketAddr, TcpStream)>,
    /// Packets per second the client sends at most (0 = no pacing).
    rate_pps: u32,
}

impl Client {
    /// A UDP client for `topology`, pacing at 5,000 packets/s.
    pub fn new(topology: Topology) -> io::Result<Self> {
        Ok(Client {
            topology,
            transport: Transport::Udp,
            udp: UdpSocket::bind("0.0.0.0:0")?,
            tcp: None,
            rate_pps: 5_000,
        })
    }

    /// Uses `transport` to reach entry nodes.
    pub fn with_transport(mut self, transport: Transport) -> Self {
        self.transport = transport;
        self
    }

    /// Sends at most `pps` packets per second (0 = as fast as possible).
    pub fn with_rate(mut self, pps: u32) -> Self {
        self.rate_pps = pps;
        self
    }

    /// The topology routes are drawn from.
    pub fn topology(&self) -> &Topology {
        &self.topology
    }

    /// Sends `message` to `destination` (delivered by an exit node as UDP
    /// datagrams; [`Receiver`] puts fragments back together).
    pub fn send(
        &mut self,
        destination: SocketAddr,
        message: &[u8],
    ) -> Result<SendReport, ClientError> {
        let mut rng = rand::rng();
        let mut message_id = [0u8; 16];
        rng.fill_bytes(&mut message_id);
        let fragments = fragment::split(message_id, message)?;
        let started = Instant::now();
        let mut routes = Vec::with_capacity(fragments.len());
        for (i, fragment) in fragments.iter().enumerate() {
            let route = choose_route(&self.topology, &mut rng)?;
            let command = FinalCommand::Deliver {
                destination,
                message_id: MessageId(message_id),
            };
            let packet = create_packet(&route.hops(), command, fragment, &mut rng)?;
            self.send_frame(&route, &packet.frame[..])?;
            routes.push(route);
            self.pace(started, i + 1);
        }
        Ok(SendReport {
            packets: fragments.len(),
            routes,
        })
    }

    fn send_frame(&mut self, route: &Route, frame: &[u8]) -> Result<(), ClientError> {
        let entry = route.entry();
        let addr = match self.transport {
            Transport::Udp => entry.udp_addr,
            Transport::Tcp => entry.tcp_addr,
        };
        let io_err = |source| ClientError::Io { addr, source };
        match self.transport {
            Transport::Udp => {
                self.udp.send_to(frame, addr).map_err(io_err)?;
            }
            Transport::Tcp => {
                if self.tcp.as_ref().is_none_or(|(a, _)| *a != addr) {
                    let stream = TcpStream::connect_timeout(&addr, Duration::from_secs(5))
                        .map_err(io_err)?;
                    stream.set_nodelay(true).map_err(io_err)?;
                    self.tcp = Some((addr, stream));
                }
                let written = match &mut self.tcp {
                    Some((_, stream)) => stream.write_all(frame),
                    None => Ok(()),
                };
                if let Err(e) = written {
                    // Reconnect on the next send.
                    self.tcp = None;
                    return Err(io_err(e));
                }
            }
        }
        Ok(())
    }

    fn pace(&self, started: Instant, sent: usize) {
        if self.rate_pps == 0 {
            return;
        }
        let due = started + Duration::from_secs_f64(sent as f64 / f64::from(self.rate_pps));
        let now = Instant::now();
        if due > now {
            std::thread::sleep(due - now);
        }
    }
}

/// Receives delivered datagrams and reassembles messages.
pub struct Receiver {
    socket: UdpSocket,
    reassembler: fragment::Reassembler,
}

impl Receiver {
    /// Listens on `addr` for messages delivered by exit nodes.
    pub fn bind(addr: SocketAddr) -> io::Result<Self> {
        Ok(Receiver {
            socket: UdpSocket::bind(addr)?,
            reassembler: fragment::Reassembler::new(1024, 64 << 20, Duration::from_secs(60)),
        })
    }

    /// The address senders should deliver to.
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.socket.local_addr()
    }

    /// The next complete message, waiting at most `timeout`.
    pub fn recv(&mut self, timeout: Duration) -> io::Result<Vec<u8>> {
        let deadline = Instant::now() + timeout;
        let mut buf = vec![0u8; 2048];
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Err(io::Error::new(
                    io::ErrorKind::TimedOut,
                    "no message arrived in time",
                ));
            }
            self.socket.set_read_timeout(Some(left))?;
            let len = match self.socket.recv(&mut buf) {
                Ok(len) => len,
                Err(e)
                    if matches!(
                        e.kind(),
                        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                    ) =>
                {
                    continue;
                }
                Err(e) => return Err(e),
            };
            if let Some(message) = self.reassembler.push(&buf[..len], Instant::now()) {
                return Ok(message);
            }
        }
    }
}

/// Reads all of standard input (for `betanet send` without --message).
pub fn read_stdin() -> io::Result<Vec<u8>> {
    let mut data = Vec::new();
    io::stdin().read_to_end(&mut data)?;
    Ok(data)
}
