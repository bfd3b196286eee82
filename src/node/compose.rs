//! The node's parts, one builder each, in start order. Each builder that
//! starts a thread or task registers how it stops with the [`Lifecycle`];
//! [`Mixnode::start_with_hooks`](super::Mixnode::start_with_hooks) is the
//! sequence of these calls.

use std::net::{SocketAddr, TcpListener, UdpSocket};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use super::error::NodeError;
use super::http_endpoints::HttpEndpoints;
use super::key_rotation::{self, KeyManager, Published, ReplaySettings};
use super::key_status::SharedKeyStatus;
use super::lifecycle::{Lifecycle, Stage};
use super::status::IoThreads;
use super::{TestHooks, descriptor_refresh, lock, reload};
use crate::config::Config;
use crate::http::NodeStatus;
use crate::keys::NodeKeys;
use crate::link::LinkKeys;
use crate::mixing::{DelayPolicy, ExponentialDelay};
use crate::pipeline::{LiveKeys, PacketPipeline, PipelineConfig, PipelineParts, RoutingPolicy};
use crate::role::NodeRole;
use crate::topology::{
    DESCRIPTOR_FILE, EgressProtocol, LiveTopology, NetworkParams, NodeDescriptor, Topology,
};
use crate::transport::{
    EgressParts, LinkContext, LoopSink, RateLimits, SourceGate, TcpEgress, TcpLimits, TcpServer,
    TcpSink, spawn_egress, spawn_udp_ingress,
};

/// What the node's lifecycle keeps: the pipeline, which it drains.
pub(super) type NodeLifecycle = Lifecycle<PacketPipeline>;

fn spawn_err(what: &'static str) -> impl FnOnce(std::io::Error) -> NodeError {
    move |source| NodeError::Spawn { what, source }
}

/// Who the node is: its long-term keys and the descriptor they sign.
pub(super) struct Identity {
    pub(super) keys: NodeKeys,
    pub(super) descriptor: NodeDescriptor,
    pub(super) descriptor_path: PathBuf,
}

/// Loads the node's keys and descriptor and checks they agree with each
/// other and with the configured role.
pub(super) fn identity(config: &Config) -> Result<Identity, NodeError> {
    let keys = NodeKeys::load(&config.node.key_dir)?;
    let descriptor_path = config.node.key_dir.join(DESCRIPTOR_FILE);
    let descriptor = NodeDescriptor::load(&descriptor_path)?;
    check_descriptor(&descriptor, &keys, config.node.role, &descriptor_path)?;
    Ok(Identity {
        keys,
        descriptor,
        descriptor_path,
    })
}

/// Loads the topology the node routes by.
pub(super) fn topology(config: &Config, me: &Identity) -> Result<Arc<LiveTopology>, NodeError> {
    let topology = Topology::load(&config.node.topology)?;
    if !topology.contains(&me.descriptor.id) {
        tracing::warn!(
            id = %me.descriptor.id,
            "this node is not in the topology: other nodes will not route to it"
        );
    }
    Ok(Arc::new(
        LiveTopology::new(topology, config.transport.effective_egress())
            .with_next_layer(next_layer(config)),
    ))
}

/// The layer this node relays into. Layers form a ring for routing
/// purposes: an exit's "next layer" is the entry layer, which cover loops
/// pass through on their way home.
fn next_layer(config: &Config) -> NodeRole {
    config.node.role.next().unwrap_or(NodeRole::Entry)
}

/// The Sphinx keys and what is derived from them.
pub(super) struct Keys {
    pub(super) manager: Arc<Mutex<KeyManager>>,
    pub(super) live: Arc<LiveKeys>,
    pub(super) published: Published,
    pub(super) status: SharedKeyStatus,
    /// The link keys, rotated with the Sphinx keys.
    pub(super) links: Arc<LinkKeys>,
}

/// The Sphinx keys of the current and next key epochs (created if
/// missing), one replay journal each, and the descriptor re-signed with
/// them. The node publishes its addresses from `node.json` and the network
/// parameters of the configuration it really runs with.
pub(super) fn keys(config: &Config, me: &Identity, hooks: &TestHooks) -> Result<Keys, NodeError> {
    let manager = KeyManager::start(
        me.keys.clone(),
        me.descriptor.clone(),
        NetworkParams::from_config(config),
        me.descriptor_path.clone(),
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
    Ok(Keys {
        live: manager.live_keys(),
        links: manager.link_keys(),
        published: manager.published(),
        status: manager.status(),
        manager: Arc::new(Mutex::new(manager)),
    })
}

/// How packets are delayed, and the VRF epoch driver when the delays are
/// verifiable.
pub(super) struct Mixing {
    pub(super) delay: Arc<dyn DelayPolicy>,
    #[cfg(feature = "vrf")]
    pub(super) epochs: Option<super::epochs::EpochDriver>,
}

/// Mixes with exactly the published (whole-µs) delays, so a verifier
/// recomputes the same delays from the descriptor: verifiable ones when
/// the VRF is on, otherwise exponential delays from the workers' CSPRNG
/// (unverifiable, for networks without VRF).
pub(super) fn mixing(
    config: &Config,
    me: &Identity,
    topology: &Arc<LiveTopology>,
    hooks: &TestHooks,
) -> Mixing {
    let network = NetworkParams::from_config(config);
    let mean = Duration::from_micros(network.mean_delay_us);
    let max = Duration::from_micros(network.max_delay_us);
    #[cfg(feature = "vrf")]
    {
        let epochs = config.vrf.enabled.then(|| {
            let params = super::epochs::EpochParams {
                secret: me.keys.vrf.clone(),
                epoch_seconds: config.vrf.epoch_seconds,
                neighbors_k: config.vrf.neighbors_k,
                next_layer: next_layer(config),
                clock: hooks.wall_clock(),
            };
            super::epochs::EpochDriver::start(params, Arc::clone(topology), mean, max)
        });
        let delay: Arc<dyn DelayPolicy> = match &epochs {
            Some(driver) => driver.delay(),
            None => Arc::new(ExponentialDelay::new(mean, max)),
        };
        Mixing {
            delay: hooks.apply(delay),
            epochs,
        }
    }
    #[cfg(not(feature = "vrf"))]
    {
        let _ = (me, topology);
        Mixing {
            delay: hooks.apply(Arc::new(ExponentialDelay::new(mean, max))),
        }
    }
}

/// The pipeline's settings from the configuration.
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

/// Starts the pipeline and, around it, the node's lifecycle: the pipeline
/// drains at [`Stage::Drain`], and the replay journals (which outlive it)
/// get their final sync at [`Stage::Journal`].
pub(super) fn pipeline(
    config: &Config,
    keys: &Keys,
    topology: &Arc<LiveTopology>,
    mixing: &Mixing,
) -> NodeLifecycle {
    let pipeline = PacketPipeline::start(
        pipeline_config(config),
        PipelineParts {
            keys: Arc::clone(&keys.live),
            policy: RoutingPolicy {
                role: config.node.role,
                exit_allow: config.exit.allow.clone(),
            },
            hops: Arc::clone(topology) as Arc<dyn crate::pipeline::NextHops>,
            delay: Arc::clone(&mixing.delay),
        },
    );
    let mut life = Lifecycle::new(pipeline);
    life.on_stop(Stage::Drain, "pipeline", PacketPipeline::shutdown);
    let manager = Arc::clone(&keys.manager);
    life.on_stop(Stage::Journal, "replay journals", move |_| {
        lock(&manager).stop();
    });
    life
}

/// The I/O runtime: TCP and the TCP egress queues run on it (HTTP, the
/// crypto workers and the UDP paths have threads of their own). It stops
/// last.
pub(super) fn io_runtime(life: &mut NodeLifecycle) -> Result<tokio::runtime::Handle, NodeError> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .thread_name("betanet-io")
        .enable_all()
        .build()
        .map_err(spawn_err("the I/O runtime"))?;
    let handle = runtime.handle().clone();
    life.on_stop(Stage::Runtime, "I/O runtime", move |_| {
        runtime.shutdown_timeout(Duration::from_secs(1));
    });
    Ok(handle)
}

/// The node's transports as started.
pub(super) struct Transports {
    /// The bound UDP receiver's socket, which egress also sends from.
    pub(super) udp: Option<Arc<UdpSocket>>,
    pub(super) tcp_egress: Option<Arc<TcpEgress>>,
    /// Link sessions (when `transport.links` is on): keys, rules, counters.
    pub(super) links: Option<Arc<LinkContext>>,
}

/// Starts receiving: the UDP receiver thread and the TCP listener, both
/// ending at the node's signal and joined at [`Stage::Ingress`]; and the
/// TCP egress queues (when frames go out over TCP), flushed for the grace
/// period at [`Stage::EgressQueues`].
pub(super) fn transports(
    life: &mut NodeLifecycle,
    config: &Config,
    (udp, tcp): (Option<UdpSocket>, Option<TcpListener>),
    topology: &Arc<LiveTopology>,
    link_keys: &Arc<LinkKeys>,
    io: &tokio::runtime::Handle,
    io_threads: &IoThreads,
) -> Result<Transports, NodeError> {
    let links = config.transport.links.then(|| {
        Arc::new(LinkContext::new(
            Arc::clone(link_keys),
            Arc::clone(topology),
            config.node.role,
            config.transport.client_plaintext,
        ))
    });
    let rate = config
        .rate_limit
        .enabled
        .then(|| RateLimits::from(&config.rate_limit));
    let gate = Arc::new(
        SourceGate::new(config.node.role, Arc::clone(topology), rate)
            .refusing_plaintext(links.as_ref().is_some_and(|l| !l.plaintext_allowed())),
    );
    let shutdown = life.shutdown().clone();

    let udp = udp.map(Arc::new);
    if let Some(socket) = &udp {
        let thread = spawn_udp_ingress(
            socket,
            Arc::clone(&gate),
            life.core().submitter(),
            config.transport.udp_batch,
            // The receiver checks the signal as a flag between reads.
            shutdown.flag(),
        )
        .map_err(spawn_err("the UDP receiver"))?;
        life.join_io_at(Stage::Ingress, "UDP receiver", io_threads, thread);
    }

    let limits = TcpLimits::from(&config.transport);
    if let Some(listener) = tcp {
        listener
            .set_nonblocking(true)
            .map_err(spawn_err("the TCP listener"))?;
        let server = TcpServer::with_links(
            Arc::clone(&gate),
            life.core().submitter(),
            limits.clone(),
            links.clone(),
        );
        let token = shutdown.token();
        let task = io.spawn(async move {
            match tokio::net::TcpListener::from_std(listener) {
                Ok(listener) => server.run(listener, token).await,
                Err(e) => tracing::error!(error = %e, "TCP listener cannot start"),
            }
        });
        let io = io.clone();
        life.on_stop(Stage::Ingress, "TCP listener", move |_| {
            let _ = io.block_on(task);
        });
    }

    let tcp_egress = (config.transport.effective_egress() == EgressProtocol::Tcp)
        .then(|| Arc::new(TcpEgress::with_links(limits, io.clone(), links.clone())));
    if let Some(tcp) = &tcp_egress {
        let tcp = Arc::clone(tcp);
        let grace = Duration::from_millis(config.node.shutdown_grace_ms);
        life.on_stop(Stage::EgressQueues, "TCP egress", move |_| {
            let _ = tcp.flush_blocking(grace);
            tcp.shutdown();
        });
    }
    Ok(Transports {
        udp,
        tcp_egress,
        links,
    })
}

/// Cover traffic: loop and drop cover enter the mixing scheduler like
/// forwarded packets; returns come back out of the core. The thread holds
/// an injector, so it stops at [`Stage::Producers`], before the drain.
#[cfg(feature = "cover-traffic")]
pub(super) fn cover(
    life: &mut NodeLifecycle,
    config: &Config,
    me: &Identity,
    keys: &Keys,
    topology: &Arc<LiveTopology>,
    mixing: &Mixing,
    clock: Arc<dyn crate::clock::WallClock>,
) -> Result<Option<(crate::cover::CoverMonitor, LoopSink)>, NodeError> {
    let pipeline = life.core();
    let (Some(settings), Some(injector)) = (
        crate::cover::CoverSettings::from_config(config),
        pipeline.injector(),
    ) else {
        return Ok(None);
    };
    let params = crate::cover::CoverParams {
        origin: crate::cover::Origin {
            id: me.descriptor.id,
            role: config.node.role,
            public_key: pipeline.public_key(),
        },
        keys: Arc::clone(&keys.live),
        topology: Arc::clone(topology),
        egress: config.transport.effective_egress(),
        injector,
        delay: Arc::clone(&mixing.delay),
        settings,
        clock,
    };
    let handle = crate::cover::CoverTraffic::spawn_until(params, life.shutdown().child())
        .map_err(spawn_err("the cover traffic thread"))?;
    let parts = (handle.monitor(), handle.loop_sink());
    life.on_stop(Stage::Producers, "cover traffic", move |_| {
        handle.stop();
    });
    Ok(Some(parts))
}

/// The egress thread: sends the pipeline's outputs from the UDP socket
/// when there is one (so replies and forwarded frames come from the node's
/// advertised port) and hands TCP frames to the queues; cover returns go
/// to `loops` straight from the mixing core. It ends once the drained
/// pipeline closes its outputs.
pub(super) fn egress(
    life: &mut NodeLifecycle,
    config: &Config,
    transports: &Transports,
    loops: Option<LoopSink>,
    io_threads: &IoThreads,
) -> Result<(), NodeError> {
    let socket = match &transports.udp {
        Some(socket) => Arc::clone(socket),
        None => Arc::new(
            UdpSocket::bind(unspecified_like(config.node.listen_socket()))
                .map_err(spawn_err("the egress socket"))?,
        ),
    };
    let pipeline = life.core();
    // Loop returns come out of the mixing core, not through egress.
    if let Some(sink) = loops {
        pipeline.set_loop_sink(sink);
    }
    let thread = spawn_egress(
        pipeline.outputs().clone(),
        EgressParts {
            socket,
            protocol: config.transport.effective_egress(),
            tcp: transports.tcp_egress.clone().map(|t| t as Arc<dyn TcpSink>),
        },
        Arc::clone(pipeline.counters()),
    )
    .map_err(spawn_err("the egress thread"))?;
    life.join_io_at(Stage::Egress, "egress", io_threads, thread);
    Ok(())
}

/// The control loops, each a thread asleep until its next planned change
/// or the node's signal, joined at [`Stage::Control`]: the topology file
/// watcher, the VRF epoch driver, the Sphinx key rotation, and the
/// descriptor refresher.
pub(super) fn control_loops(
    life: &mut NodeLifecycle,
    config: &Config,
    topology: &Arc<LiveTopology>,
    keys: &Keys,
    #[cfg(feature = "vrf")] epochs: Option<super::epochs::EpochDriver>,
) -> Result<(), NodeError> {
    let shutdown = life.shutdown().clone();
    let thread = reload::spawn_watcher(
        config.node.topology.clone(),
        Arc::clone(topology),
        shutdown.clone(),
    )
    .map_err(spawn_err("the topology watcher"))?;
    life.join_at(Stage::Control, "topology watcher", thread);

    #[cfg(feature = "vrf")]
    if let Some(driver) = epochs {
        let thread = driver
            .spawn(shutdown.clone())
            .map_err(spawn_err("the VRF epoch driver"))?;
        life.join_at(Stage::Control, "VRF epochs", thread);
    }

    let thread = key_rotation::spawn_driver(Arc::clone(&keys.manager), shutdown.clone())
        .map_err(spawn_err("the Sphinx key rotation"))?;
    life.join_at(Stage::Control, "Sphinx key rotation", thread);

    // Peers publish their next key a whole epoch ahead, so a few refreshes
    // per epoch keep cover loops on current keys.
    let thread = descriptor_refresh::spawn_refresher(
        Arc::clone(topology),
        Duration::from_secs((config.sphinx.key_epoch_seconds / 8).clamp(10, 600)),
        shutdown,
    )
    .map_err(spawn_err("the descriptor refresher"))?;
    life.join_at(Stage::Control, "descriptor refresher", thread);
    Ok(())
}

/// The HTTP listeners, stopped at [`Stage::Http`]: after the drain, so
/// `/health` answers while the node drains. Returns the private listener's
/// address.
pub(super) fn http(
    life: &mut NodeLifecycle,
    public: Option<TcpListener>,
    private: Option<SocketAddr>,
    status: Arc<dyn NodeStatus>,
) -> Result<Option<SocketAddr>, NodeError> {
    let mut http = HttpEndpoints::start(public, private, status)?;
    let private_addr = http.private_addr();
    life.on_stop(Stage::Http, "HTTP", move |_| http.stop());
    Ok(private_addr)
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
