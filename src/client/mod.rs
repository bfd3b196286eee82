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
//!
//! Nodes rotate their Sphinx keys every key epoch, so a client refreshes
//! the descriptors of the topology's nodes from their `GET /descriptor`
//! when it is created and before sending once its last refresh is a minute
//! old ([`DESCRIPTOR_MAX_AGE`]). A refreshed descriptor is trusted only if
//! it is signed by the identity key `topology.json` lists (see
//! [`refresh_topology`](crate::directory_client::refresh_topology));
//! refreshing is best effort, a node that cannot be reached keeps its
//! known descriptor.

mod entry_link;
pub mod fragment;
mod route;

use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpStream, UdpSocket};
use std::time::{Duration, Instant};

use rand::Rng;

pub use entry_link::EntryLinks;
pub use fragment::ReassemblyLimits;
pub use route::{Route, choose_route, choose_route_at};

use crate::sphinx::{BuildError, FinalCommand, MessageId, create_packet};
use crate::topology::{RefreshReport, Topology};

/// How old the client's last descriptor refresh may be before
/// [`Client::send`] refreshes again.
pub const DESCRIPTOR_MAX_AGE: Duration = Duration::from_secs(60);

/// Limit on each node's `GET /descriptor` in a client's refresh.
pub const DESCRIPTOR_FETCH_TIMEOUT: Duration = Duration::from_secs(2);

/// How the client reaches the entry node.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Transport {
    /// An encrypted, post-quantum link session over TCP (anonymous Noise
    /// hybridNK to the entry's published link key): an observer of the
    /// client's connection sees equal-size records, not Sphinx frames.
    Link,
    /// Plaintext frames, one per datagram.
    Udp,
    /// Plaintext frames back to back over a connection.
    Tcp,
}

/// Why a message could not be sent.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// The topology lacks a node in some layer.
    #[error("the topology has no {0} node")]
    EmptyLayer(crate::role::NodeRole),
    /// No node of a layer has a Sphinx key for the current key epoch.
    #[error(
        "refresh descriptors: no {role} node has a Sphinx key for key epoch \
         {key_epoch} (the topology's descriptors are out of date and their \
         nodes' GET /descriptor could not be reached, or this machine's clock \
         is wrong)"
    )]
    NoUsableKey {
        /// The layer.
        role: crate::role::NodeRole,
        /// The key epoch the keys were needed for.
        key_epoch: u64,
    },
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
    /// Sessions to entry nodes, with `Transport::Link`.
    links: EntryLinks,
    /// Packets per second the client sends at most (0 = no pacing).
    rate_pps: u32,
    /// Refresh descriptors before sending when the last refresh is older
    /// than this (`None`: never again).
    refresh_after: Option<Duration>,
    /// When descriptors were last refreshed (tried, successful or not: a
    /// network that does not answer should not slow every send down).
    refreshed_at: Instant,
    /// What the last refresh did.
    last_refresh: RefreshReport,
}

impl Client {
    /// A client for `topology` reaching entry nodes over encrypted link
    /// sessions ([`Transport::Link`]), pacing at 1,000 packets/s (an entry
    /// node's default budget per client, `rate_limit.per_source_pps`). First
    /// refreshes the topology's descriptors from the nodes (best effort,
    /// each node within [`DESCRIPTOR_FETCH_TIMEOUT`]; see
    /// [`last_refresh`](Self::last_refresh) for how it went).
    pub fn new(topology: Topology) -> io::Result<Self> {
        let udp = UdpSocket::bind("0.0.0.0:0")?;
        let mut client = Client {
            topology,
            transport: Transport::Link,
            udp,
            tcp: None,
            links: EntryLinks::default(),
            rate_pps: 1_000,
            refresh_after: Some(DESCRIPTOR_MAX_AGE),
            refreshed_at: Instant::now(),
            last_refresh: RefreshReport::default(),
        };
        client.refresh_descriptors();
        Ok(client)
    }

    /// Refreshes descriptors before a send once the last refresh is older
    /// than `max_age`; `None` turns automatic refreshes off
    /// ([`refresh_descriptors`](Self::refresh_descriptors) still works).
    pub fn with_descriptor_refresh(mut self, max_age: Option<Duration>) -> Self {
        self.refresh_after = max_age;
        self
    }

    /// Fetches every node's current descriptor now and keeps those signed
    /// by the identity key the topology lists (best effort).
    pub fn refresh_descriptors(&mut self) -> &RefreshReport {
        self.last_refresh =
            crate::directory_client::refresh_topology(&mut self.topology, DESCRIPTOR_FETCH_TIMEOUT);
        self.refreshed_at = Instant::now();
        let failed = self.last_refresh.failures().count();
        if failed > 0 {
            tracing::debug!(failed, "{}", self.last_refresh);
        }
        &self.last_refresh
    }

    /// What the last descriptor refresh did, node by node.
    pub fn last_refresh(&self) -> &RefreshReport {
        &self.last_refresh
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

    /// The topology routes are drawn from (with refreshed descriptors).
    pub fn topology(&self) -> &Topology {
        &self.topology
    }

    /// Sends `message` to `destination` (delivered by an exit node as UDP
    /// datagrams; [`Receiver`] puts fragments back together). Refreshes
    /// descriptors first if the last refresh is too old.
    pub fn send(
        &mut self,
        destination: SocketAddr,
        message: &[u8],
    ) -> Result<SendReport, ClientError> {
        if self
            .refresh_after
            .is_some_and(|max_age| self.refreshed_at.elapsed() >= max_age)
        {
            self.refresh_descriptors();
        }
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
            Transport::Tcp | Transport::Link => entry.tcp_addr,
        };
        let io_err = |source| ClientError::Io { addr, source };
        if self.transport == Transport::Udp {
            self.udp.send_to(frame, addr).map_err(io_err)?;
            return Ok(());
        }
        if self.transport == Transport::Link {
            return self.links.send(entry, frame).map_err(io_err);
        }
        if self.tcp.as_ref().is_none_or(|(a, _)| *a != addr) {
            let stream =
                TcpStream::connect_timeout(&addr, Duration::from_secs(5)).map_err(io_err)?;
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
///
/// Anyone can send datagrams to a receiver, so reassembly is bounded
/// ([`ReassemblyLimits`], by default: messages up to the largest a sender
/// can split, about 64 MB; 1,024 incomplete messages and 160 MiB in all;
/// 256 messages and 72 MiB per sending address, IPv6 by /64; 60 s to
/// complete). A fragment's memory is taken only when it arrives, and no
/// sender loses a message to one holding more than it does (see
/// [`fragment::Reassembler`]).
pub struct Receiver {
    socket: UdpSocket,
    reassembler: fragment::Reassembler,
}

impl Receiver {
    /// Listens on `addr` for messages delivered by exit nodes, with the
    /// default [`ReassemblyLimits`].
    pub fn bind(addr: SocketAddr) -> io::Result<Self> {
        Self::bind_with_limits(addr, ReassemblyLimits::default())
    }

    /// [`bind`](Self::bind) with other reassembly limits.
    pub fn bind_with_limits(addr: SocketAddr, limits: ReassemblyLimits) -> io::Result<Self> {
        Ok(Receiver {
            socket: UdpSocket::bind(addr)?,
            reassembler: fragment::Reassembler::with_limits(limits),
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
            let (len, from) = match self.socket.recv_from(&mut buf) {
                Ok(received) => received,
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
            let sender = fragment::Sender::of(from.ip());
            if let Some(message) = self
                .reassembler
                .push_from(sender, &buf[..len], Instant::now())
            {
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
