//! The mixnode: keys, topology, replay cache, pipeline and transports put
//! together, with graceful shutdown. The binary's `betanet run` is a thin
//! shell over [`Mixnode::start`] and [`Mixnode::shutdown`].

mod advertised;
mod compose;
mod descriptor_refresh;
#[cfg(feature = "vrf")]
mod epochs;
mod error;
mod http_endpoints;
mod key_rotation;
mod key_status;
mod lifecycle;
mod reload;
mod signals;
mod sockets;
mod status;

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

pub use error::NodeError;
pub use signals::stop_on_signal;
pub use sockets::Sockets;

use crate::config::Config;
use crate::http::NodeStatus;
use crate::pipeline::{MixnodeStats, PacketPipeline};
use crate::replay::ReplayCache;
use crate::sphinx::{NodeId, ReplayTag};
use crate::topology::{DESCRIPTOR_FILE, LiveTopology, NodeDescriptor, Topology};
use compose::NodeLifecycle;
use key_rotation::KeyManager;
use status::{IoThreads, Status};

impl crate::pipeline::SharedReplay for ReplayCache {
    fn check(&self, tag: &ReplayTag) -> crate::replay::Check {
        ReplayCache::check(self, tag)
    }
}

/// Test-only misbehaviour. Never reachable from the config, the command
/// line or the environment: only code can ask a node to cheat.
#[doc(hidden)]
#[derive(Clone, Debug)]
pub struct TestHooks {
    /// Multiplies every mixing delay (1.0: honest; 0.0: skips mixing).
    pub delay_factor: f64,
    /// The wall clock of the Sphinx key schedule (`None`: the system
    /// clock), so tests cross key epochs without waiting for them.
    pub clock: Option<crate::clock::ManualClock>,
    /// Replay filter budget in bytes instead of `replay.memory_budget_mb`
    /// (whose smallest value, 1 MiB, takes ~250,000 packets to fill), so
    /// tests reach a full filter quickly.
    pub replay_budget_bytes: Option<usize>,
}

impl Default for TestHooks {
    fn default() -> Self {
        TestHooks {
            delay_factor: 1.0,
            clock: None,
            replay_budget_bytes: None,
        }
    }
}

impl TestHooks {
    /// Now, on the node's key-schedule clock.
    pub fn now_unix(&self) -> u64 {
        self.wall_clock().unix_seconds()
    }

    fn wall_clock(&self) -> Arc<dyn crate::clock::WallClock> {
        match &self.clock {
            Some(clock) => Arc::new(clock.clone()),
            None => Arc::new(crate::clock::SystemClock),
        }
    }

    fn apply(
        &self,
        delay: Arc<dyn crate::mixing::DelayPolicy>,
    ) -> Arc<dyn crate::mixing::DelayPolicy> {
        if self.delay_factor == 1.0 {
            return delay;
        }
        tracing::warn!(
            factor = self.delay_factor,
            "TEST HOOK: this node scales its mixing delays"
        );
        Arc::new(ScaledDelay(delay, self.delay_factor.max(0.0)))
    }
}

/// A delay policy that cheats by a factor (test hooks only).
struct ScaledDelay(Arc<dyn crate::mixing::DelayPolicy>, f64);

impl crate::mixing::DelayPolicy for ScaledDelay {
    fn delay(&self, tag: &ReplayTag, random: u64) -> Duration {
        self.0.delay(tag, random).mul_f64(self.1)
    }
}

/// Liveness and readiness, as `/health` and `/ready` report them.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Health {
    /// Every crypto worker and I/O thread is running.
    pub alive: bool,
    /// Alive, and not shedding load.
    pub ready: bool,
    /// Why the node is not ready, if it is not.
    pub reason: Option<String>,
}

/// A running mixnode.
///
/// Composed from one builder per part (see `compose.rs`), each registering
/// how it stops in one ordered list; one signal stops them all (see
/// `lifecycle.rs` and `docs/architecture.md`, "Lifecycle").
pub struct Mixnode {
    config: Config,
    id: NodeId,
    topology: Arc<LiveTopology>,
    /// Sphinx keys, their replay caches and the published descriptor.
    keys: Arc<Mutex<KeyManager>>,
    published: key_rotation::Published,
    udp_addr: Option<SocketAddr>,
    tcp_addr: Option<SocketAddr>,
    http_addr: Option<SocketAddr>,
    metrics_addr: Option<SocketAddr>,
    status: Arc<Status>,
    /// The signal, the ordered tasks and the pipeline; dropping it stops
    /// the node.
    life: NodeLifecycle,
}

impl Mixnode {
    /// Binds the configured listen address and starts the node.
    ///
    /// Refuses ([`NodeError::AddressMismatch`]) to listen anywhere but
    /// where the node's `node.json` tells peers to send, unless
    /// `node.advertise_addr` says the node sits behind NAT.
    pub fn start(config: Config) -> Result<Mixnode, NodeError> {
        let descriptor_path = config.node.key_dir.join(DESCRIPTOR_FILE);
        let descriptor = NodeDescriptor::load(&descriptor_path)?;
        advertised::check(&config, &descriptor, &descriptor_path)?;
        let mut sockets = Sockets::bind(
            config.node.listen_socket(),
            config.transport.udp,
            config.transport.tcp,
        )?;
        sockets.bind_http(config.node.http_addr)?;
        Self::start_with_sockets(config, sockets)
    }

    /// Starts the node on sockets the caller has bound.
    pub fn start_with_sockets(config: Config, sockets: Sockets) -> Result<Mixnode, NodeError> {
        Self::start_with_hooks(config, sockets, TestHooks::default())
    }

    /// [`start_with_sockets`](Self::start_with_sockets) with test-only
    /// misbehaviour, so tests can prove that audits catch a cheating node.
    ///
    /// The parts start in dependency order; should one fail, those already
    /// started are stopped in the lifecycle's order.
    #[doc(hidden)]
    pub fn start_with_hooks(
        config: Config,
        sockets: Sockets,
        hooks: TestHooks,
    ) -> Result<Mixnode, NodeError> {
        let (udp_addr, tcp_addr, http_addr) =
            (sockets.udp_addr(), sockets.tcp_addr(), sockets.http_addr());
        let me = compose::identity(&config)?;
        let topology = compose::topology(&config, &me)?;
        let keys = compose::keys(&config, &me, &hooks)?;
        let mixing = compose::mixing(&config, &me, &topology, &hooks);
        let mut life = compose::pipeline(&config, &keys, &topology, &mixing);
        let io = compose::io_runtime(&mut life)?;
        let io_threads = IoThreads::default();
        let transports = compose::transports(
            &mut life,
            &config,
            (sockets.udp, sockets.tcp),
            &topology,
            &keys.links,
            &io,
            &io_threads,
        )?;
        #[cfg(feature = "cover-traffic")]
        let cover = compose::cover(
            &mut life,
            &config,
            &me,
            &keys,
            &topology,
            &mixing,
            hooks.wall_clock(),
        )?;
        #[cfg(feature = "cover-traffic")]
        let (cover, loops) = cover.unzip();
        #[cfg(not(feature = "cover-traffic"))]
        let loops = None;
        compose::egress(&mut life, &config, &transports, loops, &io_threads)?;
        #[cfg(feature = "vrf")]
        let epoch_state = mixing.epochs.as_ref().map(|driver| driver.state());
        compose::control_loops(
            &mut life,
            &config,
            &topology,
            &keys,
            #[cfg(feature = "vrf")]
            mixing.epochs,
        )?;
        let status = Arc::new(Status {
            #[cfg(feature = "cover-traffic")]
            cover,
            #[cfg(feature = "vrf")]
            epochs: epoch_state,
            role: config.node.role,
            descriptor: Arc::clone(&keys.published),
            pipeline: life.core().monitor(),
            keys: keys.status,
            links: transports.links.as_ref().map(|l| Arc::clone(l.stats())),
            tcp_egress: transports
                .tcp_egress
                .filter(|_| config.node.metrics_next_hops),
            io_threads,
        });
        let metrics_addr = compose::http(
            &mut life,
            sockets.http,
            config.node.metrics_addr,
            Arc::clone(&status) as Arc<dyn NodeStatus>,
        )?;

        tracing::info!(
            id = %me.descriptor.id,
            role = %config.node.role,
            udp = ?udp_addr,
            tcp = ?tcp_addr,
            http = ?http_addr,
            workers = life.core().workers(),
            "betanet node started"
        );
        Ok(Mixnode {
            id: me.descriptor.id,
            config,
            topology,
            keys: keys.manager,
            published: keys.published,
            udp_addr,
            tcp_addr,
            http_addr,
            metrics_addr,
            status,
            life,
        })
    }

    /// This node's id.
    pub fn id(&self) -> NodeId {
        self.id
    }

    /// This node's signed descriptor as published now (re-signed at every
    /// Sphinx key rotation).
    pub fn descriptor(&self) -> NodeDescriptor {
        NodeDescriptor::clone(&self.published.load())
    }

    /// The key epochs whose Sphinx secrets the node holds now.
    pub fn sphinx_key_epochs(&self) -> Vec<u64> {
        lock(&self.keys).held_epochs()
    }

    /// The effective configuration.
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// The bound UDP address.
    pub fn udp_addr(&self) -> Option<SocketAddr> {
        self.udp_addr
    }

    /// The bound TCP address.
    pub fn tcp_addr(&self) -> Option<SocketAddr> {
        self.tcp_addr
    }

    /// The bound HTTP address (`/metrics`, `/health`, `/ready`, `/descriptor`).
    pub fn http_addr(&self) -> Option<SocketAddr> {
        self.http_addr
    }

    /// The bound private HTTP address (`node.metrics_addr`), if set:
    /// `/metrics`, `/health`, `/ready` and `/loops` move there from `http_addr`.
    pub fn metrics_addr(&self) -> Option<SocketAddr> {
        self.metrics_addr
    }

    /// What `/metrics` would export now.
    pub fn metrics_snapshot(&self) -> crate::metrics::MetricsSnapshot {
        self.status.metrics_snapshot()
    }

    /// The topology currently routed by.
    pub fn topology(&self) -> Arc<Topology> {
        self.topology.snapshot()
    }

    /// Re-reads the topology file now (also done on SIGHUP and when the file
    /// changes). On error the current topology stays.
    pub fn reload_topology(&self) -> Result<(), crate::topology::TopologyError> {
        reload::reload(&self.config.node.topology, &self.topology)
    }

    /// Counters and latencies.
    pub fn stats(&self) -> MixnodeStats {
        self.life.core().stats()
    }

    /// The pipeline (for counters and queue depths).
    pub fn pipeline(&self) -> &PacketPipeline {
        self.life.core()
    }

    /// Tags in the replay filters (of every held Sphinx key).
    pub fn replay_cache_entries(&self) -> usize {
        lock(&self.keys).replay_entries()
    }

    /// Liveness and readiness.
    pub fn health(&self) -> Health {
        self.status.health()
    }

    /// Graceful shutdown: stop accepting, send what is due within
    /// `shutdown_grace_ms`, count the rest as `shutdown`, flush the replay
    /// journal. Returns the final stats. (Dropping the node does the same.)
    pub fn shutdown(mut self) -> MixnodeStats {
        self.life.stop();
        self.life.core().stats()
    }
}

/// Locks a mutex whose data stays valid even if a holder panicked.
fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}
