//! The mixnode: keys, topology, replay cache, pipeline and transports put
//! together, with graceful shutdown. The binary's `betanet run` is a thin
//! shell over [`Mixnode::start`] and [`Mixnode::shutdown`].

mod advertised;
mod descriptor_refresh;
#[cfg(feature = "vrf")]
mod epochs;
mod error;
mod http_endpoints;
mod key_rotation;
mod key_status;
mod reload;
mod signals;
mod sockets;
mod status;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use tokio_util::sync::CancellationToken;

pub use error::NodeError;
pub use signals::stop_on_signal;
pub use sockets::Sockets;

use crate::config::Config;
use crate::http::NodeStatus;
use crate::keys::NodeKeys;
use crate::mixing::ExponentialDelay;
use crate::pipeline::{MixnodeStats, PacketPipeline, PipelineConfig, PipelineParts, RoutingPolicy};
use crate::replay::ReplayCache;
use crate::role::NodeRole;
use crate::sphinx::{NodeId, ReplayTag};
use crate::topology::EgressProtocol;
use crate::topology::{DESCRIPTOR_FILE, LiveTopology, NodeDescriptor, Topology};
use crate::transport::{
    EgressParts, RateLimits, SourceGate, TcpEgress, TcpLimits, TcpServer, TcpSink, spawn_egress,
    spawn_udp_ingress,
};
use key_rotation::{KeyManager, ReplaySettings};
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
pub struct Mixnode {
    config: Config,
    id: NodeId,
    topology: Arc<LiveTopology>,
    topology_path: PathBuf,
    pipeline: PacketPipeline,
    /// Sphinx keys, their replay caches and the published descriptor.
    keys: Arc<Mutex<KeyManager>>,
    published: key_rotation::Published,
    key_thread: Option<JoinHandle<()>>,
    /// Fetches the other nodes' descriptors (their current Sphinx keys).
    refresh_thread: Option<JoinHandle<()>>,
    stop: Arc<AtomicBool>,
    cancel: CancellationToken,
    runtime: Option<tokio::runtime::Runtime>,
    udp_addr: Option<SocketAddr>,
    tcp_addr: Option<SocketAddr>,
    http_addr: Option<SocketAddr>,
    /// UDP receive and egress threads (watched by `/health`).
    io_threads: IoThreads,
    tcp_server: Option<tokio::task::JoinHandle<()>>,
    tcp_egress: Option<Arc<TcpEgress>>,
    http: http_endpoints::HttpEndpoints,
    status: Arc<Status>,
    reload_thread: Option<JoinHandle<()>>,
    epoch_thread: Option<JoinHandle<()>>,
    /// The cover traffic thread (it holds an injector into the scheduler).
    #[cfg(feature = "cover-traffic")]
    cover: Option<crate::cover::CoverHandle>,
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
    #[doc(hidden)]
    pub fn start_with_hooks(
        config: Config,
        sockets: Sockets,
        hooks: TestHooks,
    ) -> Result<Mixnode, NodeError> {
        let keys = NodeKeys::load(&config.node.key_dir)?;
        let descriptor_path = config.node.key_dir.join(DESCRIPTOR_FILE);
        let descriptor = NodeDescriptor::load(&descriptor_path)?;
        check_descriptor(&descriptor, &keys, config.node.role, &descriptor_path)?;

        let topology_path = config.node.topology.clone();
        let topology = Topology::load(&topology_path)?;
        if !topology.contains(&descriptor.id) {
            tracing::warn!(
                id = %descriptor.id,
                "this node is not in the topology: other nodes will not route to it"
            );
        }
        // Layers form a ring for routing purposes: an exit's "next layer" is
        // the entry layer, which cover loops pass through on their way home.
        let next_layer = config.node.role.next().unwrap_or(NodeRole::Entry);
        let topology = Arc::new(
            LiveTopology::new(topology, config.transport.egress).with_next_layer(next_layer),
        );

        // The Sphinx keys of the current and next key epochs (created if
        // missing), one replay journal each, and the descriptor re-signed
        // with them.
        let network = crate::topology::NetworkParams::from_config(&config);
        // The node publishes its addresses from node.json and the network
        // parameters of the configuration it really runs with.
        let key_manager = KeyManager::start(
            keys.clone(),
            descriptor.clone(),
            network,
            descriptor_path.clone(),
            crate::keys::KeySchedule::new(
                config.sphinx.key_epoch_seconds,
                config.sphinx.key_grace_seconds,
            ),
            ReplaySettings {
                data_dir: config.node.data_dir.clone(),
                budget_bytes: hooks.replay_budget_bytes.unwrap_or_else(|| {
                    usize::try_from(config.replay.memory_budget_mb << 20).unwrap_or(usize::MAX)
                }),
                sync_interval: Duration::from_millis(config.replay.sync_interval_ms),
            },
            hooks.wall_clock(),
        )?;
        let live_keys = key_manager.live_keys();
        let published = key_manager.published();
        let key_status = key_manager.status();
        let key_manager = Arc::new(Mutex::new(key_manager));

        // Mix with exactly the published (whole-µs) delays, so a verifier
        // recomputes the same delays from the descriptor.
        let mean = Duration::from_micros(network.mean_delay_us);
        let max = Duration::from_micros(network.max_delay_us);
        #[cfg(feature = "vrf")]
        let vrf = config.vrf.enabled.then(|| {
            let params = epochs::EpochParams {
                secret: keys.vrf.clone(),
                epoch_seconds: config.vrf.epoch_seconds,
                neighbors_k: config.vrf.neighbors_k,
                next_layer,
            };
            let (delay, state) = epochs::start(&params, &topology, mean, max);
            (params, delay, state)
        });
        // Verifiable delays when the VRF is on; otherwise exponential delays
        // from the workers' CSPRNG (unverifiable, for networks without VRF).
        #[cfg(feature = "vrf")]
        let delay: Arc<dyn crate::mixing::DelayPolicy> = match &vrf {
            Some((_, delay, _)) => Arc::clone(delay) as Arc<dyn crate::mixing::DelayPolicy>,
            None => Arc::new(ExponentialDelay::new(mean, max)),
        };
        #[cfg(not(feature = "vrf"))]
        let delay: Arc<dyn crate::mixing::DelayPolicy> = Arc::new(ExponentialDelay::new(mean, max));
        let delay = hooks.apply(delay);

        let pipeline = PacketPipeline::start(
            pipeline_config(&config),
            PipelineParts {
                keys: Arc::clone(&live_keys),
                policy: RoutingPolicy {
                    role: config.node.role,
                    exit_allow: config.exit.allow.clone(),
                },
                hops: Arc::clone(&topology) as Arc<dyn crate::pipeline::NextHops>,
                delay: Arc::clone(&delay),
            },
        );

        let rate = config
            .rate_limit
            .enabled
            .then(|| RateLimits::from(&config.rate_limit));
        let gate = Arc::new(SourceGate::new(
            config.node.role,
            Arc::clone(&topology),
            rate,
        ));
        let stop = Arc::new(AtomicBool::new(false));
        let cancel = CancellationToken::new();
        let spawn_err = |what| move |source| NodeError::Spawn { what, source };
        // TCP and the TCP egress queues run on one small I/O runtime; HTTP,
        // the crypto workers and the UDP paths have threads of their own.
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .thread_name("betanet-io")
            .enable_all()
            .build()
            .map_err(spawn_err("the I/O runtime"))?;

        let udp_addr = sockets.udp_addr();
        let tcp_addr = sockets.tcp_addr();
        let http_addr = sockets.http_addr();
        let io_threads: IoThreads = Arc::new(Mutex::new(Vec::new()));
        let udp = sockets.udp.map(Arc::new);
        if let Some(socket) = &udp {
            let thread = spawn_udp_ingress(
                socket,
                Arc::clone(&gate),
                pipeline.submitter(),
                config.transport.udp_batch,
                Arc::clone(&stop),
            )
            .map_err(spawn_err("the UDP receiver"))?;
            lock(&io_threads).push(thread);
        }

        let limits = TcpLimits::from(&config.transport);
        let tcp_server = match sockets.tcp {
            Some(listener) => {
                listener
                    .set_nonblocking(true)
                    .map_err(spawn_err("the TCP listener"))?;
                let server =
                    TcpServer::new(Arc::clone(&gate), pipeline.submitter(), limits.clone());
                let token = cancel.clone();
                let handle = runtime.spawn(async move {
                    match tokio::net::TcpListener::from_std(listener) {
                        Ok(listener) => server.run(listener, token).await,
                        Err(e) => tracing::error!(error = %e, "TCP listener cannot start"),
                    }
                });
                Some(handle)
            }
            None => None,
        };
        let tcp_egress = (config.transport.egress == EgressProtocol::Tcp)
            .then(|| Arc::new(TcpEgress::new(limits, runtime.handle().clone())));

        // Egress sends from the UDP socket when there is one, so replies and
        // forwarded frames come from the node's advertised port.
        let egress_socket = match &udp {
            Some(socket) => Arc::clone(socket),
            None => Arc::new(
                std::net::UdpSocket::bind(unspecified_like(config.node.listen_socket()))
                    .map_err(spawn_err("the egress socket"))?,
            ),
        };
        // Cover loops and drop cover enter the mixing scheduler like
        // forwarded packets; returns come back out of it.
        #[cfg(feature = "cover-traffic")]
        let cover = match (
            crate::cover::CoverSettings::from_config(&config),
            pipeline.injector(),
        ) {
            (Some(settings), Some(injector)) => Some(
                crate::cover::CoverTraffic::spawn(
                    crate::cover::CoverParams {
                        origin: crate::cover::Origin {
                            id: descriptor.id,
                            role: config.node.role,
                            public_key: pipeline.public_key(),
                        },
                        keys: Arc::clone(&live_keys),
                        topology: Arc::clone(&topology),
                        egress: config.transport.egress,
                        injector,
                        delay: Arc::clone(&delay),
                        settings,
                        clock: hooks.wall_clock(),
                    },
                    Arc::clone(&stop),
                )
                .map_err(spawn_err("the cover traffic thread"))?,
            ),
            _ => None,
        };
        // Loop returns come out of the mixing core, on the scheduler thread.
        #[cfg(feature = "cover-traffic")]
        if let Some(sink) = cover.as_ref().map(crate::cover::CoverHandle::loop_sink) {
            pipeline.set_loop_sink(sink);
        }

        let egress_thread = spawn_egress(
            pipeline.outputs().clone(),
            EgressParts {
                socket: egress_socket,
                protocol: config.transport.egress,
                tcp: tcp_egress.clone().map(|t| t as Arc<dyn TcpSink>),
            },
            Arc::clone(pipeline.counters()),
        )
        .map_err(spawn_err("the egress thread"))?;
        lock(&io_threads).push(egress_thread);

        let reload_thread = reload::spawn_watcher(
            topology_path.clone(),
            Arc::clone(&topology),
            Arc::clone(&stop),
        )
        .map_err(spawn_err("the topology watcher"))?;

        #[cfg(feature = "vrf")]
        let (epoch_thread, epoch_state) = match vrf {
            Some((params, delay, state)) => {
                let thread = epochs::spawn_driver(
                    params,
                    Arc::clone(&topology),
                    delay,
                    Arc::clone(&state),
                    Arc::clone(&stop),
                )
                .map_err(spawn_err("the VRF epoch driver"))?;
                (Some(thread), Some(state))
            }
            None => (None, None),
        };
        #[cfg(not(feature = "vrf"))]
        let epoch_thread: Option<JoinHandle<()>> = None;

        let status = Arc::new(Status {
            #[cfg(feature = "cover-traffic")]
            cover: cover.as_ref().map(crate::cover::CoverHandle::monitor),
            #[cfg(feature = "vrf")]
            epochs: epoch_state,
            role: config.node.role,
            descriptor: Arc::clone(&published),
            pipeline: pipeline.monitor(),
            keys: key_status,
            tcp_egress: tcp_egress.clone().filter(|_| config.node.metrics_next_hops),
            io_threads: Arc::clone(&io_threads),
        });
        let http = http_endpoints::HttpEndpoints::start(
            sockets.http,
            config.node.metrics_addr,
            Arc::clone(&status) as Arc<dyn NodeStatus>,
        )?;

        tracing::info!(
            id = %descriptor.id,
            role = %config.node.role,
            udp = ?udp_addr,
            tcp = ?tcp_addr,
            http = ?http_addr,
            workers = pipeline.workers(),
            "betanet node started"
        );

        let key_thread = key_rotation::spawn_driver(Arc::clone(&key_manager), Arc::clone(&stop))
            .map_err(spawn_err("the Sphinx key rotation"))?;
        // Peers publish their next key a whole epoch ahead, so a few
        // refreshes per epoch keep cover loops on current keys.
        let refresh_thread = descriptor_refresh::spawn_refresher(
            Arc::clone(&topology),
            Duration::from_secs((config.sphinx.key_epoch_seconds / 8).clamp(10, 600)),
            Arc::clone(&stop),
        )
        .map_err(spawn_err("the descriptor refresher"))?;

        Ok(Mixnode {
            config,
            id: descriptor.id,
            topology,
            topology_path,
            pipeline,
            keys: key_manager,
            published,
            key_thread: Some(key_thread),
            refresh_thread: Some(refresh_thread),
            stop,
            cancel,
            runtime: Some(runtime),
            udp_addr,
            tcp_addr,
            http_addr,
            io_threads,
            tcp_server,
            tcp_egress,
            http,
            status,
            reload_thread: Some(reload_thread),
            epoch_thread,
            #[cfg(feature = "cover-traffic")]
            cover,
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
        self.http.private_addr()
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
        reload::reload(&self.topology_path, &self.topology)
    }

    /// Counters and latencies.
    pub fn stats(&self) -> MixnodeStats {
        self.pipeline.stats()
    }

    /// The pipeline (for counters and queue depths).
    pub fn pipeline(&self) -> &PacketPipeline {
        &self.pipeline
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
    /// journal. Returns the final stats.
    pub fn shutdown(mut self) -> MixnodeStats {
        self.stop_all();
        self.pipeline.stats()
    }

    fn stop_all(&mut self) {
        let Some(runtime) = self.runtime.take() else {
            return; // Already stopped.
        };
        // 1. Stop accepting: UDP receiver, TCP listener and connections.
        self.stop.store(true, Ordering::SeqCst);
        self.cancel.cancel();
        if let Some(server) = self.tcp_server.take() {
            let _ = runtime.block_on(server);
        }
        // Cover holds an injector: the scheduler drains only once it is gone.
        #[cfg(feature = "cover-traffic")]
        if let Some(cover) = self.cover.take() {
            cover.stop();
        }
        let mut io = std::mem::take(&mut *lock(&self.io_threads));
        // The UDP receiver is first; the egress thread (last) ends only
        // once the pipeline has drained.
        let egress = io.pop();
        for t in io {
            let _ = t.join();
        }
        // 2. Ingress is closed: the workers drain, the scheduler honours the
        //    grace period, then the outputs close and egress finishes.
        self.pipeline.shutdown();
        if let Some(t) = egress {
            let _ = t.join();
        }
        if let Some(tcp) = self.tcp_egress.take() {
            let grace = Duration::from_millis(self.config.node.shutdown_grace_ms);
            let _ = tcp.flush_blocking(grace);
            tcp.shutdown();
        }
        // 3. Flush the replay journal; stop the watchers and HTTP last, so
        //    /health answers while the node drains.
        for t in [
            self.reload_thread.take(),
            self.epoch_thread.take(),
            self.key_thread.take(),
            self.refresh_thread.take(),
        ]
        .into_iter()
        .flatten()
        {
            let _ = t.join();
        }
        lock(&self.keys).stop();
        self.http.stop();
        runtime.shutdown_timeout(Duration::from_secs(1));
    }
}

impl Drop for Mixnode {
    fn drop(&mut self) {
        self.stop_all();
    }
}

/// Locks a mutex whose data stays valid even if a holder panicked.
fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

fn pipeline_config(config: &Config) -> PipelineConfig {
    PipelineConfig {
        workers: config.effective_workers(),
        batch_size: config.pipeline.batch_size,
        pool_size: config.pipeline.pool_size,
        max_queue_depth: config.pipeline.max_queue_depth,
        shutdown_grace: Duration::from_millis(config.node.shutdown_grace_ms),
        max_dwell: Duration::from_millis(config.pipeline.max_dwell_ms),
    }
}

fn check_descriptor(
    descriptor: &NodeDescriptor,
    keys: &NodeKeys,
    role: NodeRole,
    path: &std::path::Path,
) -> Result<(), NodeError> {
    let mismatch = |reason: String| NodeError::DescriptorMismatch {
        path: path.to_owned(),
        reason,
    };
    if !descriptor.matches_keys(keys) {
        return Err(mismatch(
            "this descriptor was made for other keys; regenerate it with `betanet keygen`".into(),
        ));
    }
    if descriptor.role != role {
        return Err(mismatch(format!(
            "the descriptor says role {} but the config says {role} (node.role / NODE_TYPE)",
            descriptor.role
        )));
    }
    Ok(())
}

fn unspecified_like(addr: SocketAddr) -> SocketAddr {
    match addr {
        SocketAddr::V4(_) => SocketAddr::from(([0, 0, 0, 0], 0)),
        SocketAddr::V6(_) => SocketAddr::from(([0u16; 8], 0)),
    }
}
