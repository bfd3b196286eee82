//! Request/response through the mixnet: [`Client::request`] sends a message
//! with SURBs and waits for the reply that comes back through them.

use std::collections::{BTreeMap, HashMap};
use std::io;
use std::net::{SocketAddr, UdpSocket};
use std::time::{Duration, Instant};

use super::envelope::{self, MAX_SURBS_PER_REQUEST};
use super::fragment::Kind;
use super::surb_store::{SurbStore, SurbStoreLimits};
use super::{Client, ClientError, choose_route};
use crate::sphinx::{Surb, create_surb, parse_reply_datagram};

/// How a request is made.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RequestOptions {
    /// How long to wait for the whole reply, over every attempt.
    pub timeout: Duration,
    /// How many times the request is sent (each time with fresh SURBs
    /// along fresh routes) before giving up; the timeout is shared evenly.
    pub attempts: u32,
    /// SURBs sent with each attempt: the reply may be up to this many times
    /// [`envelope::CHUNK_DATA`] bytes. `None`: as many as a reply as long as
    /// the request needs (at least 1), at most
    /// [`MAX_SURBS_PER_REQUEST`].
    pub reply_surbs: Option<usize>,
}

impl RequestOptions {
    /// Three attempts within `timeout`, SURBs for a reply as long as the
    /// request.
    pub fn new(timeout: Duration) -> Self {
        RequestOptions {
            timeout,
            attempts: 3,
            reply_surbs: None,
        }
    }
}

/// A reply, and how it came.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Response {
    /// The reply's bytes.
    pub reply: Vec<u8>,
    /// From sending the request to the reply's last packet.
    pub round_trip: Duration,
    /// The attempt (0-based) whose SURBs carried the reply.
    pub attempt: u32,
}

/// Why a request got no reply.
#[derive(Debug, thiserror::Error)]
pub enum RequestError {
    /// Sending failed (as [`Client::send`] fails).
    #[error(transparent)]
    Send(#[from] ClientError),
    /// Nothing (or not all of the reply) came back in time.
    #[error(
        "no reply within {waited:?} after {attempts} attempt(s); is the receiver answering \
         requests (e.g. `betanet recv --echo`), and can the exit nodes reach this \
         client's reply address {reply_addr}?"
    )]
    Timeout {
        /// Attempts made.
        attempts: u32,
        /// Time waited in all.
        waited: Duration,
        /// Where replies were to be delivered.
        reply_addr: SocketAddr,
    },
    /// The reply socket could not be opened.
    #[error("cannot open the reply socket on {addr}: {source}")]
    ReplySocket {
        /// The address tried.
        addr: SocketAddr,
        /// The OS error.
        source: io::Error,
    },
}

/// A client's reply counts, cumulative.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SurbStats {
    /// SURBs made and sent with requests.
    pub surbs_created: u64,
    /// SURBs whose reply came back and was read.
    pub surbs_used: u64,
    /// SURB keys dropped unused: expired, evicted, or their request was over.
    pub surbs_expired: u64,
    /// Reply datagrams refused: unknown or already used SURB id, garbled
    /// payload, or not a reply.
    pub replies_refused: u64,
    /// Requests answered with a complete reply.
    pub replies_delivered: u64,
    /// Requests given up after every attempt.
    pub requests_timed_out: u64,
}

/// What a client keeps for replies (made on its first request).
pub(super) struct ReplyState {
    socket: UdpSocket,
    /// Fixed reply address, or `None` to use the socket's port on the local
    /// address that routes to each SURB's exit node.
    fixed: Option<SocketAddr>,
    store: SurbStore,
    next_request: u64,
    stats: SurbStats,
    discarded: u64,
}

impl ReplyState {
    pub(super) fn bind(
        listen: Option<SocketAddr>,
        ipv6: bool,
        limits: SurbStoreLimits,
    ) -> Result<Self, RequestError> {
        let any = if ipv6 {
            SocketAddr::from(([0u16; 8], 0))
        } else {
            SocketAddr::from(([0, 0, 0, 0], 0))
        };
        let addr = listen.unwrap_or(any);
        let socket =
            UdpSocket::bind(addr).map_err(|source| RequestError::ReplySocket { addr, source })?;
        Ok(ReplyState {
            socket,
            fixed: listen.filter(|a| a.port() != 0 && !a.ip().is_unspecified()),
            store: SurbStore::new(limits),
            next_request: 0,
            stats: SurbStats::default(),
            discarded: 0,
        })
    }

    /// Where `exit` should deliver replies: the fixed address, or the local
    /// address this host would use to reach `exit`, with the socket's port.
    fn reply_addr(&self, exit: SocketAddr) -> io::Result<SocketAddr> {
        if let Some(fixed) = self.fixed {
            return Ok(fixed);
        }
        let port = self.socket.local_addr()?.port();
        let probe = UdpSocket::bind(match exit {
            SocketAddr::V4(_) => SocketAddr::from(([0, 0, 0, 0], 0)),
            SocketAddr::V6(_) => SocketAddr::from(([0u16; 8], 0)),
        })?;
        // Connecting a UDP socket sends nothing; it picks the route.
        probe.connect(exit)?;
        Ok(SocketAddr::new(probe.local_addr()?.ip(), port))
    }

    pub(super) fn stats(&self) -> SurbStats {
        SurbStats {
            surbs_expired: self.store.expired + self.discarded,
            ..self.stats
        }
    }
}

/// Chunks of one attempt's reply.
struct Assembly {
    count: u16,
    parts: BTreeMap<u16, Vec<u8>>,
}

impl Client {
    /// Sends `message` to `destination` as a request with SURBs and returns
    /// the reply, waiting at most `timeout` (three attempts, each with
    /// fresh SURBs; see [`request_with`](Self::request_with)).
    pub fn request(
        &mut self,
        destination: SocketAddr,
        message: &[u8],
        timeout: Duration,
    ) -> Result<Vec<u8>, RequestError> {
        self.request_with(destination, message, RequestOptions::new(timeout))
            .map(|response| response.reply)
    }

    /// [`request`](Self::request) with every option, returning the round
    /// trip time too.
    ///
    /// The receiver learns the request and the SURBs, not this client's
    /// address: each SURB names only its first hop, and only the reply's
    /// exit node sees where the reply goes. Replies larger than one SURB
    /// come back in several packets and are reassembled; a SURB is used at
    /// most once, and its keys are dropped when the request ends.
    pub fn request_with(
        &mut self,
        destination: SocketAddr,
        message: &[u8],
        options: RequestOptions,
    ) -> Result<Response, RequestError> {
        let mut state = match self.replies.take() {
            Some(state) => state,
            None => {
                // Replies come from exit nodes: listen on their address family.
                let ipv6_exits = self
                    .topology
                    .layer(crate::role::NodeRole::Exit)
                    .first()
                    .is_some_and(|exit| exit.udp_addr.is_ipv6());
                Box::new(ReplyState::bind(
                    self.reply_listen,
                    ipv6_exits,
                    self.surb_limits,
                )?)
            }
        };
        let result = self.request_in(&mut state, destination, message, options);
        self.replies = Some(state);
        result
    }

    /// What this client's requests have done so far.
    pub fn surb_stats(&self) -> SurbStats {
        self.replies
            .as_ref()
            .map(|state| state.stats())
            .unwrap_or_default()
    }

    fn request_in(
        &mut self,
        state: &mut ReplyState,
        destination: SocketAddr,
        message: &[u8],
        options: RequestOptions,
    ) -> Result<Response, RequestError> {
        let request = state.next_request;
        state.next_request += 1;
        let surbs = options
            .reply_surbs
            .unwrap_or_else(|| envelope::chunks_for(message.len()))
            .clamp(1, MAX_SURBS_PER_REQUEST);
        let attempts = options.attempts.max(1);
        let started = Instant::now();
        let deadline = started + options.timeout;
        let mut assemblies: HashMap<u32, Assembly> = HashMap::new();
        let mut reply_addr = SocketAddr::from(([0, 0, 0, 0], 0));
        let mut buf = vec![0u8; 2048];
        for attempt in 0..attempts {
            let attempt_deadline =
                deadline.min(started + options.timeout * (attempt + 1) / attempts);
            let built = self.make_surbs(state, request, attempt, surbs);
            let built = match built {
                Ok(built) => built,
                Err(e) => {
                    state.discarded += state.store.discard_request(request) as u64;
                    return Err(e);
                }
            };
            reply_addr = built.1;
            let envelope = envelope::encode_request(&built.0, message);
            if let Err(e) = self.send_as(destination, &envelope, Kind::Request) {
                state.discarded += state.store.discard_request(request) as u64;
                return Err(e.into());
            }
            while let Some(left) = attempt_deadline.checked_duration_since(Instant::now()) {
                if left.is_zero() {
                    break;
                }
                let _ = state.socket.set_read_timeout(Some(left));
                let len = match state.socket.recv_from(&mut buf) {
                    Ok((len, _)) => len,
                    Err(e)
                        if matches!(
                            e.kind(),
                            io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                        ) =>
                    {
                        break;
                    }
                    Err(_) => continue,
                };
                if let Some((reply, attempt)) =
                    accept_reply(state, request, &buf[..len], &mut assemblies)
                {
                    state.stats.replies_delivered += 1;
                    state.discarded += state.store.discard_request(request) as u64;
                    return Ok(Response {
                        reply,
                        round_trip: started.elapsed(),
                        attempt,
                    });
                }
            }
        }
        state.stats.requests_timed_out += 1;
        state.discarded += state.store.discard_request(request) as u64;
        Err(RequestError::Timeout {
            attempts,
            waited: started.elapsed(),
            reply_addr,
        })
    }

    /// `count` SURBs along fresh random routes, their keys stored.
    fn make_surbs(
        &mut self,
        state: &mut ReplyState,
        request: u64,
        attempt: u32,
        count: usize,
    ) -> Result<(Vec<Surb>, SocketAddr), RequestError> {
        self.refresh_if_due();
        let mut rng = rand::rng();
        let unix = crate::clock::unix_now();
        let now = Instant::now();
        let mut surbs = Vec::with_capacity(count);
        let mut reply_addr = SocketAddr::from(([0, 0, 0, 0], 0));
        for _ in 0..count {
            let route = choose_route(&self.topology, &mut rng)?;
            let exit = route
                .nodes()
                .last()
                .map_or(route.entry().udp_addr, |n| n.udp_addr);
            reply_addr = state
                .reply_addr(exit)
                .map_err(|source| RequestError::ReplySocket { addr: exit, source })?;
            // Valid until the first of its nodes' key epochs ends: after
            // that, a node may retire the key the SURB was built for.
            let expires = route
                .nodes()
                .iter()
                .map(|n| {
                    let epoch = n.key_epoch_seconds.max(1);
                    (unix / epoch + 1).saturating_mul(epoch)
                })
                .min()
                .unwrap_or(unix);
            let (surb, key) = create_surb(
                &route.hops(),
                route.entry().udp_addr,
                reply_addr,
                expires,
                &mut rng,
            )
            .map_err(ClientError::from)?;
            state.store.insert(request, attempt, key, now, unix);
            state.stats.surbs_created += 1;
            surbs.push(surb);
        }
        Ok((surbs, reply_addr))
    }
}

/// Reads one datagram from the reply socket; the whole reply once its last
/// chunk is in.
fn accept_reply(
    state: &mut ReplyState,
    request: u64,
    datagram: &[u8],
    assemblies: &mut HashMap<u32, Assembly>,
) -> Option<(Vec<u8>, u32)> {
    let refused = |state: &mut ReplyState| {
        state.stats.replies_refused += 1;
        None
    };
    let Some((id, delta)) = parse_reply_datagram(datagram) else {
        return refused(state);
    };
    let Some(entry) = state
        .store
        .take(&id, Instant::now(), crate::clock::unix_now())
    else {
        return refused(state);
    };
    if entry.request != request {
        return refused(state);
    }
    let Ok(message) = entry.key.recover(delta) else {
        return refused(state);
    };
    let Some(chunk) = envelope::parse_chunk(&message) else {
        return refused(state);
    };
    state.stats.surbs_used += 1;
    let assembly = assemblies.entry(entry.attempt).or_insert_with(|| Assembly {
        count: chunk.count,
        parts: BTreeMap::new(),
    });
    // Chunk counts beyond the SURBs sent cannot complete; the map holds at
    // most one chunk per SURB, which the store bounds.
    if assembly.count != chunk.count || usize::from(chunk.count) > MAX_SURBS_PER_REQUEST {
        return refused(state);
    }
    assembly.parts.insert(chunk.index, chunk.data.to_vec());
    if assembly.parts.len() < usize::from(assembly.count) {
        return None;
    }
    let done = assemblies.remove(&entry.attempt)?;
    Some((done.parts.into_values().flatten().collect(), entry.attempt))
}
