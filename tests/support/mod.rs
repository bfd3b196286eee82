//! A three-node mixnet (entry, middle, exit) on 127.0.0.1 ephemeral ports,
//! in the test process, with a client that builds real Sphinx packets.

#![allow(dead_code)]

use std::net::{SocketAddr, UdpSocket};
use std::path::PathBuf;
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

use betanet::NodeRole;
use betanet::config::Config;
use betanet::node::Mixnode;
use betanet::sphinx::{FinalCommand, MessageId, PathHop, create_packet};
use betanet::testnet::LocalNet;
use betanet::topology::{EgressProtocol, NodeDescriptor};

/// Timing-sensitive tests must not share the two cores with each other.
pub fn serial() -> MutexGuard<'static, ()> {
    static LOCK: Mutex<()> = Mutex::new(());
    LOCK.lock().unwrap_or_else(|e| e.into_inner())
}

pub struct Net {
    pub dir: tempfile::TempDir,
    pub local: LocalNet,
    pub descriptors: Vec<NodeDescriptor>,
}

pub struct Options {
    pub mean_delay_ms: f64,
    pub egress: EgressProtocol,
    pub max_queue_depth: usize,
    /// `pipeline.max_dwell_ms`. Generous by default: the tests check
    /// function on a shared, busy machine; the bound has tests of its own.
    pub max_dwell_ms: u64,
    pub rate_limit: bool,
    /// Per-source packets/s and burst (members and strangers alike), when
    /// `rate_limit` is on.
    pub rate: (f64, u32),
    /// `transport.links`. Tests that play a member by sending plaintext
    /// frames straight to a middle or exit node turn links off; links have
    /// tests of their own (tests/links.rs).
    pub links: bool,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            mean_delay_ms: 1.0,
            egress: EgressProtocol::Udp,
            max_queue_depth: 10_000,
            max_dwell_ms: 30_000,
            rate_limit: true,
            rate: (50_000.0, 5_000),
            links: true,
        }
    }
}

impl Net {
    pub fn start(options: Options) -> Net {
        let dir = tempfile::tempdir().unwrap();
        let local = LocalNet::start(dir.path(), 1, &template(&options)).unwrap();
        let descriptors = local.descriptors().to_vec();
        Net {
            dir,
            local,
            descriptors,
        }
    }

    pub fn node(&self, role: NodeRole) -> &Mixnode {
        self.local.first(role).unwrap()
    }

    /// Stops a node and starts it again with the same keys, data and ports.
    pub fn restart(&mut self, role: NodeRole) {
        self.local.restart(role.layer() as usize - 1).unwrap();
    }

    pub fn path(&self) -> Vec<PathHop> {
        self.local.first_path()
    }

    pub fn topology_path(&self) -> PathBuf {
        self.local.topology_path()
    }

    pub fn entry_udp(&self) -> SocketAddr {
        self.descriptors[0].udp_addr
    }

    pub fn entry_tcp(&self) -> SocketAddr {
        self.descriptors[0].tcp_addr
    }

    /// A packet through all three nodes delivering `message` to `to`.
    pub fn packet(&self, to: SocketAddr, message: &[u8]) -> Vec<u8> {
        let command = FinalCommand::Deliver {
            destination: to,
            message_id: MessageId([0; 16]),
        };
        create_packet(&self.path(), command, message, &mut rand::rng())
            .unwrap()
            .frame
            .to_vec()
    }
}

fn template(options: &Options) -> Config {
    let mut c = Config::default();
    c.node.shutdown_grace_ms = 200;
    c.pipeline.workers = 1;
    c.pipeline.batch_size = 32;
    c.pipeline.max_queue_depth = options.max_queue_depth;
    c.pipeline.max_dwell_ms = options.max_dwell_ms;
    c.mixing.mean_delay_ms = options.mean_delay_ms;
    c.mixing.max_delay_ms = 2000.0;
    c.cover_traffic.enabled = false;
    c.transport.egress = options.egress;
    c.transport.links = options.links;
    c.rate_limit.enabled = options.rate_limit;
    // On loopback every sender shares the nodes' address, so it counts as
    // a member: both budgets get the test's rate.
    c.rate_limit.per_source_pps = options.rate.0;
    c.rate_limit.burst = options.rate.1;
    c.rate_limit.member_pps = options.rate.0;
    c.rate_limit.member_burst = options.rate.1;
    c.replay.sync_interval_ms = 20;
    c.validate().unwrap();
    c
}

/// Collects datagrams until `n` arrived or `timeout` passed.
pub fn receive(socket: &UdpSocket, n: usize, timeout: Duration) -> Vec<(Vec<u8>, Instant)> {
    let deadline = Instant::now() + timeout;
    let mut out = Vec::new();
    let mut buf = [0u8; 2048];
    while out.len() < n {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            break;
        }
        socket.set_read_timeout(Some(left)).unwrap();
        match socket.recv_from(&mut buf) {
            Ok((len, _)) => out.push((buf[..len].to_vec(), Instant::now())),
            Err(_) => break,
        }
    }
    out
}

/// Waits until `cond` holds (polling), or panics after `timeout`.
pub fn wait_until(timeout: Duration, what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    while !cond() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// Resident memory of this process in bytes.
pub fn rss_bytes() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        .map(|kb| kb * 1024)
        .unwrap_or(0)
}

/// `GET path` on a node's HTTP endpoint with `timeout` on the connect,
/// the write and every read; returns (status code, body).
pub fn http_get_within(addr: SocketAddr, path: &str, timeout: Duration) -> (u16, String) {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect_timeout(&addr, timeout).unwrap();
    s.set_read_timeout(Some(timeout)).unwrap();
    s.set_write_timeout(Some(timeout)).unwrap();
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: node\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut response = String::new();
    s.read_to_string(&mut response).unwrap();
    let code = response[9..12].parse().unwrap();
    let body = response.split("\r\n\r\n").nth(1).unwrap_or("").to_owned();
    (code, body)
}

/// [`http_get_within`] with 10 s deadlines.
pub fn http_get(addr: SocketAddr, path: &str) -> (u16, String) {
    http_get_within(addr, path, Duration::from_secs(10))
}
