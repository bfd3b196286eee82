//! The configuration schema: one struct per TOML section, with its defaults.
//!
//! Every struct denies unknown fields, so a misspelt key is an error rather
//! than a setting that silently does nothing. The defaults here are the
//! lowest layer of the stack and are mirrored, key for key, by the shipped
//! `config/mixnode.toml`.
//!
//! Range and cross-field rules live in `validate.rs`; this file only says
//! what each key means and what it is when nobody sets it.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::path::PathBuf;

use ipnet::{IpNet, Ipv4Net, Ipv6Net};
use serde::{Deserialize, Serialize};

use crate::NodeRole;

/// The whole node configuration: one field per `[section]` of
/// `config/mixnode.toml`.
///
/// It holds no secrets: key material lives in files under
/// [`NodeConfig::key_dir`], so a `Config` may be printed or logged freely.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// `[node]`: identity, addresses and on-disk locations.
    pub node: NodeConfig,
    /// `[pipeline]`: the packet-processing worker pool.
    pub pipeline: PipelineConfig,
    /// `[performance]`: targets the benchmark checks the node against.
    pub performance: PerformanceConfig,
    /// `[sphinx]`: the Sphinx packet format and its key rotation.
    pub sphinx: SphinxConfig,
    /// `[mixing]`: how long packets are held before being forwarded.
    pub mixing: MixingConfig,
    /// `[vrf]`: verifiable delays and neighbour selection.
    pub vrf: VrfConfig,
    /// `[cover_traffic]`: loop and drop cover traffic.
    pub cover_traffic: CoverTrafficConfig,
    /// `[transport]`: UDP and TCP listeners and outgoing connections.
    pub transport: TransportConfig,
    /// `[rate_limit]`: per-source admission control.
    pub rate_limit: RateLimitConfig,
    /// `[replay]`: the replay-tag store.
    pub replay: ReplayConfig,
    /// `[exit]`: where an exit node may deliver.
    pub exit: ExitConfig,
    /// `[authorities]`: the network's directory authorities, if it has
    /// them (otherwise the static `topology.json`).
    pub authorities: AuthoritiesConfig,
}

/// `[node]`: who this node is, where it listens and where it keeps files.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct NodeConfig {
    /// The mixnet layer this node serves: `entry`, `middle` or `exit`.
    pub role: NodeRole,
    /// IP address the mix listeners (UDP and TCP) bind to.
    pub listen_addr: IpAddr,
    /// Port the mix listeners bind to; 0 lets the OS pick a free one.
    pub port: u16,
    /// Address published in this node's descriptor, for nodes behind NAT or a
    /// proxy. When absent, see [`NodeConfig::advertised_addr`].
    pub advertise_addr: Option<SocketAddr>,
    /// Address of the HTTP endpoint serving `/metrics`, `/health`, `/ready`
    /// and `/descriptor`.
    pub http_addr: SocketAddr,
    /// A separate, private listener for `/metrics`, `/health`, `/ready` and
    /// `/loops`. When set, `http_addr` serves only the public `/descriptor`
    /// and `/vrf/…`; unset, `http_addr` serves everything.
    pub metrics_addr: Option<SocketAddr>,
    /// Export `betanet_egress_queue_depth{next_hop}`. Off by default: queue
    /// depth per next hop tells an observer where traffic goes.
    pub metrics_next_hops: bool,
    /// Directory holding the node's key files.
    pub key_dir: PathBuf,
    /// Path of the topology file listing the mixnet's nodes.
    pub topology: PathBuf,
    /// Directory for state that must survive restarts (replay journal).
    pub data_dir: PathBuf,
    /// How long a shutdown waits for in-flight packets, in milliseconds.
    pub shutdown_grace_ms: u64,
}

impl Default for NodeConfig {
    fn default() -> Self {
        Self {
            role: NodeRole::Entry,
            listen_addr: IpAddr::V4(Ipv4Addr::UNSPECIFIED),
            port: 9001,
            advertise_addr: None,
            http_addr: SocketAddr::from((Ipv4Addr::UNSPECIFIED, 9100)),
            metrics_addr: None,
            metrics_next_hops: false,
            key_dir: PathBuf::from("keys"),
            topology: PathBuf::from("topology.json"),
            data_dir: PathBuf::from("data"),
            shutdown_grace_ms: 2000,
        }
    }
}

impl NodeConfig {
    /// The socket address the mix listeners bind to.
    pub fn listen_socket(&self) -> SocketAddr {
        SocketAddr::new(self.listen_addr, self.port)
    }

    /// The address to publish in the descriptor, before binding.
    ///
    /// Same as [`NodeConfig::advertised_addr_for`] applied to
    /// [`NodeConfig::listen_socket`]; with `port = 0` prefer the `_for`
    /// variant with the port actually bound.
    pub fn advertised_addr(&self) -> SocketAddr {
        self.advertised_addr_for(self.listen_socket())
    }

    /// The address to publish in the descriptor once the listener is bound
    /// to `bound`.
    ///
    /// `advertise_addr` wins when set. Otherwise the bound address is used,
    /// except that a wildcard IP (`0.0.0.0` or `::`) cannot be dialled, so it
    /// becomes `127.0.0.1`: right for local test nets, and a production node
    /// on a wildcard address is expected to set `advertise_addr`.
    pub fn advertised_addr_for(&self, bound: SocketAddr) -> SocketAddr {
        if let Some(addr) = self.advertise_addr {
            return addr;
        }
        if bound.ip().is_unspecified() {
            SocketAddr::from((Ipv4Addr::LOCALHOST, bound.port()))
        } else {
            bound
        }
    }
}

/// `[pipeline]`: the worker pool that unwraps and forwards packets.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PipelineConfig {
    /// Worker threads; 0 means one per CPU core (see
    /// [`Config::effective_workers`]). At most 1024.
    pub workers: usize,
    /// Packets processed together in one batch (1..=4096).
    pub batch_size: usize,
    /// Packet buffers kept in the reuse pool (at least 1).
    pub pool_size: usize,
    /// Packets allowed to wait for a worker before new ones are refused
    /// (backpressure; at least 1).
    pub max_queue_depth: usize,
    /// Longest a packet may wait between arrival and unwrap, in
    /// milliseconds (1..=60000); older packets are dropped as `dwell`, and
    /// the queue admits only what the workers drain in half of it.
    pub max_dwell_ms: u64,
}

impl Default for PipelineConfig {
    fn default() -> Self {
        Self {
            workers: 0,
            batch_size: 128,
            pool_size: 1024,
            max_queue_depth: 10_000,
            max_dwell_ms: crate::pipeline::DEFAULT_MAX_DWELL_MS,
        }
    }
}

/// `[performance]`: targets the benchmark checks; they do not throttle the
/// node.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PerformanceConfig {
    /// Throughput the benchmark expects, in packets per second (> 0).
    pub target_throughput_pps: f64,
    /// Highest acceptable average processing latency, in milliseconds (> 0).
    pub max_avg_latency_ms: f64,
}

impl Default for PerformanceConfig {
    fn default() -> Self {
        Self {
            target_throughput_pps: 25_000.0,
            max_avg_latency_ms: 1.0,
        }
    }
}

/// `[sphinx]`: the packet format and the rotation of the node's Sphinx key.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SphinxConfig {
    /// Must be `true`. The key exists because the integration guide lists it;
    /// a mixnode without Sphinx would forward linkable plaintext, so `false`
    /// is rejected rather than honoured.
    pub enabled: bool,
    /// Hops in the paths of packets this node builds itself (cover loops),
    /// 1 to 5.
    pub num_hops: usize,
    /// Lifetime of one Sphinx key, in seconds (at least 60): keys rotate
    /// at every multiple of it (unix time), see [`crate::keys::KeySchedule`].
    pub key_epoch_seconds: u64,
    /// How long the previous key is still accepted after a rotation (and
    /// the next one before it), in seconds; shorter than
    /// `key_epoch_seconds`.
    pub key_grace_seconds: u64,
}

impl Default for SphinxConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            num_hops: 3,
            key_epoch_seconds: 1_200,
            key_grace_seconds: 120,
        }
    }
}

/// `[mixing]`: the random delay each packet waits at this node.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MixingConfig {
    /// Mean of the exponential per-packet delay, in milliseconds (>= 0).
    pub mean_delay_ms: f64,
    /// Cap on a single packet's delay, in milliseconds (>= `mean_delay_ms`).
    pub max_delay_ms: f64,
}

impl Default for MixingConfig {
    fn default() -> Self {
        Self {
            mean_delay_ms: 50.0,
            max_delay_ms: 2_000.0,
        }
    }
}

/// `[vrf]`: verifiable randomness for delays and neighbour choice.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct VrfConfig {
    /// Derive delays and neighbours from the VRF (verifiable) rather than a
    /// plain RNG.
    pub enabled: bool,
    /// Length of one VRF epoch, in seconds (at least 1).
    pub epoch_seconds: u64,
    /// Next-layer nodes this node forwards to; 0 means the whole next layer.
    pub neighbors_k: usize,
    /// The integration guide's name for the delay spread. Delays are
    /// exponential, whose spread is fixed by the mean, so this is another
    /// way to set `mixing.mean_delay_ms`; giving both with different values
    /// is an error.
    pub delay_variance_ms: Option<f64>,
}

impl Default for VrfConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            epoch_seconds: 3_600,
            neighbors_k: 0,
            delay_variance_ms: None,
        }
    }
}

/// `[cover_traffic]`: dummy packets that hide when real traffic flows.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct CoverTrafficConfig {
    /// Send cover traffic at all.
    pub enabled: bool,
    /// Loop cover packets (which come back to this node) sent per second.
    pub generation_rate_pps: f64,
    /// Drop cover packets (discarded by the exit) sent per second.
    pub drop_rate_pps: f64,
    /// A loop packet not back after this many milliseconds counts as lost.
    pub loop_timeout_ms: u64,
    /// How many nodes, those with the highest loss attributed to them by
    /// this node's loops, `/metrics` reports by id
    /// (`betanet_loop_loss_ratio{peer}` and companions); 0 reports none.
    /// Bounded (0..=64) so the number of series stays small; `GET /loops`
    /// always lists every node.
    pub loss_metric_nodes: usize,
}

impl Default for CoverTrafficConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            generation_rate_pps: 100.0,
            drop_rate_pps: 0.0,
            loop_timeout_ms: 10_000,
            loss_metric_nodes: 5,
        }
    }
}

/// `[transport]`: the UDP and TCP carriers of Sphinx frames.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TransportConfig {
    /// Listen and send over UDP.
    pub udp: bool,
    /// Listen and send over TCP.
    pub tcp: bool,
    /// How this node forwards to the next hop when `links` is off: `udp`
    /// (one frame per datagram) or `tcp` (a kept-open connection per next
    /// hop). With links on, node-to-node frames always go over TCP link
    /// sessions.
    pub egress: crate::topology::EgressProtocol,
    /// Encrypted, authenticated, post-quantum links between nodes (Noise
    /// hybridIK, X25519 + ML-KEM-768, over TCP). Middle and exit nodes then
    /// take frames only from sessions whose key belongs to a topology
    /// member; a plaintext frame, whatever its source address, is dropped
    /// as `unauthenticated`.
    pub links: bool,
    /// Entry nodes: also take plaintext client frames over UDP and TCP (as
    /// before links), besides anonymous encrypted client sessions. `false`
    /// hides clients' frames from observers of their link and makes every
    /// client use a session, at the cost of clients that cannot.
    pub client_plaintext: bool,
    /// Datagrams moved per `recvmmsg`/`sendmmsg` call (1..=1024).
    pub udp_batch: usize,
    /// A TCP peer that sends nothing for this long mid-frame is dropped, in
    /// milliseconds.
    pub tcp_read_timeout_ms: u64,
    /// An idle TCP connection is closed after this many milliseconds.
    pub tcp_idle_timeout_ms: u64,
    /// Simultaneous inbound TCP connections allowed from one source (an
    /// IPv4 address, or an IPv6 /64).
    pub max_connections_per_source: usize,
    /// Share of the inbound TCP connection slots, in percent (0..=100),
    /// that only topology members may use: strangers (clients of an entry
    /// node) never take the last ones.
    pub member_reserved_percent: u8,
    /// Frames queued per outgoing peer before further ones are dropped.
    pub egress_queue_depth: usize,
    /// Ceiling of the exponential backoff between reconnect attempts, in
    /// milliseconds.
    pub reconnect_backoff_max_ms: u64,
}

impl TransportConfig {
    /// How frames to the next hop travel: TCP whenever links are on (the
    /// sessions run over TCP), else `egress`.
    pub fn effective_egress(&self) -> crate::topology::EgressProtocol {
        if self.links {
            crate::topology::EgressProtocol::Tcp
        } else {
            self.egress
        }
    }
}

impl Default for TransportConfig {
    fn default() -> Self {
        Self {
            udp: true,
            tcp: true,
            egress: crate::topology::EgressProtocol::Udp,
            links: true,
            client_plaintext: true,
            udp_batch: 32,
            tcp_read_timeout_ms: 30_000,
            tcp_idle_timeout_ms: 120_000,
            max_connections_per_source: 32,
            member_reserved_percent: 25,
            egress_queue_depth: 4_096,
            reconnect_backoff_max_ms: 5_000,
        }
    }
}

/// `[rate_limit]`: a token bucket per source, with separate budgets for
/// topology members and strangers.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RateLimitConfig {
    /// Apply the per-source limits.
    pub enabled: bool,
    /// Sustained packets per second allowed from one stranger (a source
    /// that is not a topology member: an IPv4 address or an IPv6 /64; > 0).
    /// A small fraction of what a node can process, so no single client
    /// can take the node.
    pub per_source_pps: f64,
    /// Packets a stranger may send in a burst above its rate (at least 1).
    pub burst: u32,
    /// Sustained packets per second allowed from one topology member (> 0).
    /// One upstream node may carry all of this node's traffic.
    pub member_pps: f64,
    /// Packets a member may send in a burst above its rate (at least 1).
    pub member_burst: u32,
}

impl Default for RateLimitConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            per_source_pps: 1_000.0,
            burst: 1_000,
            member_pps: 50_000.0,
            member_burst: 5_000,
        }
    }
}

/// `[replay]`: the filter of replay tags that stops a packet being
/// processed twice (one per Sphinx key; see [`crate::replay`]).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ReplayConfig {
    /// Most memory one key's replay filter may take, in MiB (1 to 65,536).
    /// Memory grows with use; at ~4.4 bytes per tag, size it for
    /// `packets/s × (sphinx.key_epoch_seconds + 2 × key_grace_seconds)`
    /// tags. When it is spent, new packets under that key are dropped
    /// (`replay_capacity`) and `/ready` fails from 90%.
    pub memory_budget_mb: u64,
    /// How often the replay journal is flushed to disk (fsync), in
    /// milliseconds (at least 1).
    pub sync_interval_ms: u64,
    /// Removed: replaced by `memory_budget_mb`. Still parsed only so that a
    /// config setting it gets an error saying so.
    #[serde(default, skip_serializing)]
    pub max_entries: Option<u64>,
}

impl Default for ReplayConfig {
    fn default() -> Self {
        Self {
            memory_budget_mb: 512,
            sync_interval_ms: 100,
            max_entries: None,
        }
    }
}

/// `[exit]`: delivery policy of exit nodes.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ExitConfig {
    /// Networks an exit node may deliver messages to. The default allows
    /// loopback only, so a fresh exit node cannot be used to reach arbitrary
    /// hosts.
    pub allow: Vec<IpNet>,
}

impl Default for ExitConfig {
    fn default() -> Self {
        Self {
            allow: vec![
                IpNet::V4(Ipv4Net::new_assert(Ipv4Addr::new(127, 0, 0, 0), 8)),
                IpNet::V6(Ipv6Net::new_assert(Ipv6Addr::LOCALHOST, 128)),
            ],
        }
    }
}

/// `[authorities]`: the directory authorities a node uploads its descriptor
/// to (see `docs/authorities.md`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AuthoritiesConfig {
    /// The network's `authorities.json` (identity keys and addresses);
    /// unset: no authorities, the node uses `node.topology` only.
    pub file: Option<PathBuf>,
    /// Seconds between uploads of an unchanged descriptor (a changed one
    /// is uploaded at once); at least 1.
    pub upload_interval_seconds: u64,
}

impl Default for AuthoritiesConfig {
    fn default() -> Self {
        Self {
            file: None,
            upload_interval_seconds: 300,
        }
    }
}
