//! The packet pipeline: ingress → bounded queue → crypto workers (batched
//! Sphinx unwrap on dedicated threads) → the [`MixCore`](crate::mixing::MixCore),
//! fed by the workers and timed by the scheduler thread → output, in
//! [`Transmit`] groups.
//!
//! Every queue is bounded by `max_queue_depth` packets; a full queue drops
//! the packet and counts it as `overload`, so memory never grows without
//! bound. The
//! ingress queue is also bounded in time (see [`DwellBudget`]): it admits only
//! what the workers drain in half of `max_dwell`, and a packet that waited
//! longer than `max_dwell` is dropped as `dwell` before any cryptography.
//! The pipeline does no I/O: the transport feeds [`PacketPipeline::submit`] and
//! drains [`PacketPipeline::outputs`].

mod drop_cause;
mod dwell;
mod handoff;
mod histogram;
mod keys;
mod packet;
mod pool;
mod route;
mod scheduler;
mod stats;
mod worker;

use std::collections::{BTreeMap, HashMap, HashSet};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, Sender, TrySendError, bounded};

pub use crate::mixing::DelayQueue;
pub use drop_cause::DropCause;
pub use dwell::{DwellBudget, SharedDwell};
pub use handoff::{Batch, HandoffReceiver, HandoffSender, Refused};
pub use histogram::{Histogram, HistogramSnapshot};
pub use keys::{KeyRing, LiveKeys, UnwrapKey};
pub use packet::{Outbound, Packet, Target};
pub use pool::{BufferPool, PacketBuf};
pub use route::{Decision, NextHops, RoutingPolicy};
pub use scheduler::{Feeder, LoopSink, MixingGauges};
pub use stats::{
    EGRESS_SHARD, INGRESS_SHARD, MixnodeStats, PipelineCounters, SCHEDULER_SHARD, StageCounters,
    Totals,
};
pub use worker::SharedReplay;

use crate::mixing::{CoreConfig, DelayPolicy, ExponentialDelay, Input, MixCore, Transmit};
use crate::role::NodeRole;
use crate::sphinx::{NodeId, ReplayTag, SphinxProcessor, SphinxSecretKey};

/// Default of [`PipelineConfig::max_dwell`] (`pipeline.max_dwell_ms`).
pub const DEFAULT_MAX_DWELL_MS: u64 = 50;

/// Most packets in one [`Transmit`] group: one GSO send carries at most
/// 64 KiB (46 frames), so larger groups only save channel messages.
const MAX_GROUP: usize = 256;

/// What the pipeline hands to egress: packets whose mixing delay has
/// ended, grouped by next hop (or by destination and length).
pub type Outputs = HandoffReceiver<Transmit<PacketBuf>>;

/// Sizes and limits of a pipeline.
#[derive(Clone, Debug, PartialEq)]
pub struct PipelineConfig {
    /// Crypto worker threads.
    pub workers: usize,
    /// Frames per `unwrap_batch`.
    pub batch_size: usize,
    /// Idle frame buffers kept for reuse.
    pub pool_size: usize,
    /// Bound of every queue (ingress, scheduler, output).
    pub max_queue_depth: usize,
    /// On shutdown, packets whose delay ends within this are still sent.
    pub shutdown_grace: Duration,
    /// Longest a packet may wait between arrival and unwrap; the ingress
    /// queue is sized to half of it (see [`DwellBudget`]).
    pub max_dwell: Duration,
}

impl PipelineConfig {
    /// The integration guide's defaults with `workers` threads.
    pub fn with_workers(workers: usize) -> Self {
        PipelineConfig {
            workers: workers.max(1),
            batch_size: 128,
            pool_size: 1024,
            max_queue_depth: 10_000,
            shutdown_grace: Duration::from_millis(2000),
            max_dwell: Duration::from_millis(DEFAULT_MAX_DWELL_MS),
        }
    }
}

/// The parts a pipeline routes with, beyond its sizes.
pub struct PipelineParts {
    /// The accepted Sphinx keys, each with its replay cache (the node's
    /// key rotation replaces the ring while the pipeline runs).
    pub keys: Arc<LiveKeys>,
    /// Role and exit rules.
    pub policy: RoutingPolicy,
    /// Next hops.
    pub hops: Arc<dyn NextHops>,
    /// Mixing delays.
    pub delay: Arc<dyn DelayPolicy>,
}

/// A replay cache in memory only, for pipelines without a data directory
/// (tests, benchmarks, [`PacketPipeline::new`]). Nodes use the persistent
/// [`crate::replay`] cache.
#[derive(Default)]
pub struct MemoryReplay(Mutex<HashSet<ReplayTag>>);

impl SharedReplay for MemoryReplay {
    fn check(&self, tag: &ReplayTag) -> crate::replay::Check {
        // A poisoned lock only means another worker panicked mid-insert; the
        // set itself is still valid.
        let mut set = self.0.lock().unwrap_or_else(|e| e.into_inner());
        if set.insert(*tag) {
            crate::replay::Check::Fresh
        } else {
            crate::replay::Check::Seen
        }
    }
}

/// The running pipeline. Dropping it shuts it down gracefully.
pub struct PacketPipeline {
    ingress: Option<Sender<Packet>>,
    /// Kept only to hand out [`Injector`]s; dropped at shutdown.
    feeder: Option<Feeder>,
    core: Arc<scheduler::SharedCore>,
    ingress_rx: Receiver<Packet>,
    outputs: Outputs,
    counters: Arc<PipelineCounters>,
    pool: Arc<BufferPool>,
    gauges: Arc<MixingGauges>,
    alive_workers: Arc<AtomicUsize>,
    workers: Vec<JoinHandle<()>>,
    scheduler: Option<JoinHandle<()>>,
    keys: Arc<LiveKeys>,
    dwell: Arc<SharedDwell>,
    config: PipelineConfig,
}

impl PacketPipeline {
    /// A pipeline with `workers` crypto threads, the guide's default sizes,
    /// a fresh ephemeral Sphinx key (see [`public_key`](Self::public_key)),
    /// an in-memory replay cache, exit role delivering to loopback only, no
    /// next hops, and exponential mixing delays with mean 50 ms.
    pub fn new(workers: usize) -> Self {
        let parts = PipelineParts {
            keys: Arc::new(LiveKeys::new(KeyRing::single(
                SphinxProcessor::new(SphinxSecretKey::generate(&mut rand::rng())),
                Arc::new(MemoryReplay::default()),
            ))),
            policy: RoutingPolicy {
                role: NodeRole::Exit,
                exit_allow: vec![
                    "127.0.0.0/8".parse().expect("valid CIDR"),
                    "::1/128".parse().expect("valid CIDR"),
                ],
            },
            hops: Arc::new(HashMap::<NodeId, SocketAddr>::new()),
            delay: Arc::new(ExponentialDelay::new(
                Duration::from_millis(50),
                Duration::from_secs(2),
            )),
        };
        Self::start(PipelineConfig::with_workers(workers), parts)
    }

    /// Starts the worker and scheduler threads.
    pub fn start(config: PipelineConfig, parts: PipelineParts) -> Self {
        let depth = config.max_queue_depth.max(1);
        let workers = config.workers.max(1);
        let (ingress, ingress_rx) = bounded::<Packet>(depth);
        let (out_tx, outputs) = handoff::handoff(depth);
        let counters = Arc::new(PipelineCounters::new(workers));
        let pool = BufferPool::new(config.pool_size);
        let dwell = Arc::new(SharedDwell::new(DwellBudget::new(
            config.max_dwell,
            workers,
            config.batch_size,
            depth,
        )));
        let gauges = Arc::new(MixingGauges::default());
        let (core, feeder) = scheduler::SharedCore::new(
            MixCore::new(
                CoreConfig {
                    capacity: depth,
                    max_group: MAX_GROUP,
                },
                parts.delay,
            ),
            out_tx,
            Arc::clone(&gauges),
        );
        let alive_workers = Arc::new(AtomicUsize::new(0));
        let ctx = worker::WorkerContext {
            keys: Arc::clone(&parts.keys),
            policy: Arc::new(parts.policy),
            hops: parts.hops,
            batch_size: config.batch_size.max(1),
            dwell: Arc::clone(&dwell),
        };

        let worker_handles = (0..workers)
            .map(|i| {
                let ctx = ctx.clone();
                let counters = Arc::clone(&counters);
                let rx = ingress_rx.clone();
                let feeder = feeder.clone();
                let alive = Arc::clone(&alive_workers);
                alive.fetch_add(1, Ordering::SeqCst);
                std::thread::Builder::new()
                    .name(format!("betanet-crypto-{i}"))
                    .spawn(move || {
                        // Counts down even if the worker panics, so /health sees it.
                        let _alive = AliveGuard(alive);
                        worker::run(ctx, counters.worker(i), rx, feeder);
                    })
                    .expect("spawning a worker thread")
            })
            .collect();
        let scheduler = {
            let counters = Arc::clone(&counters);
            let core = Arc::clone(&core);
            let grace = config.shutdown_grace;
            std::thread::Builder::new()
                .name("betanet-scheduler".into())
                .spawn(move || scheduler::run(&core, counters.stage(SCHEDULER_SHARD), grace))
                .expect("spawning the scheduler thread")
        };

        PacketPipeline {
            ingress: Some(ingress),
            feeder: Some(feeder),
            core,
            ingress_rx,
            outputs,
            counters,
            pool,
            gauges,
            alive_workers,
            workers: worker_handles,
            scheduler: Some(scheduler),
            keys: parts.keys,
            dwell,
            config,
        }
    }

    /// The Sphinx public key packets for this pipeline must be built for
    /// now (the current key of its ring).
    pub fn public_key(&self) -> crate::sphinx::SphinxPublicKey {
        self.keys.current_public_key()
    }

    /// The accepted keys (shared with the workers).
    pub fn keys(&self) -> &Arc<LiveKeys> {
        &self.keys
    }

    /// The shared buffer pool (transports receive into its buffers).
    pub fn pool(&self) -> &Arc<BufferPool> {
        &self.pool
    }

    /// A handle for submitting from other threads or tasks.
    pub fn submitter(&self) -> Submitter {
        Submitter {
            ingress: self.ingress.clone(),
            counters: Arc::clone(&self.counters),
            pool: Arc::clone(&self.pool),
            dwell: Arc::clone(&self.dwell),
        }
    }

    /// A handle for putting this node's own packets (cover traffic) into the
    /// mixing scheduler, exactly where forwarded packets go. Drop it before
    /// [`shutdown`](Self::shutdown): the scheduler drains once every
    /// injector and worker has let go.
    pub fn injector(&self) -> Option<Injector> {
        Some(Injector {
            feeder: self.feeder.clone()?,
            counters: Arc::clone(&self.counters),
            pool: Arc::clone(&self.pool),
        })
    }

    /// Queues a received frame for unwrapping; never blocks. A queue at its
    /// limit (in packets or in time) drops it as `overload` (counted) and
    /// returns the cause.
    pub fn submit(&self, packet: Packet) -> Result<(), DropCause> {
        self.submitter().submit(packet)
    }

    /// Convenience for tests and embedders: copies `frame` into a pooled
    /// buffer and submits it.
    pub fn submit_bytes(&self, frame: &[u8], source: SocketAddr) -> Result<(), DropCause> {
        self.submitter().submit_bytes(frame, source)
    }

    /// Packets ready to send (after their mixing delay), in groups.
    pub fn outputs(&self) -> &Outputs {
        &self.outputs
    }

    /// Where this node's returned cover loops go from now on (before a
    /// sink is set, returns are counted and forgotten).
    pub fn set_loop_sink(&self, sink: LoopSink) {
        self.core.set_loop_sink(sink);
    }

    /// The counters, for metrics export.
    pub fn counters(&self) -> &Arc<PipelineCounters> {
        &self.counters
    }

    /// A cheap, shareable view of the pipeline's state (for `/health`,
    /// `/ready` and `/metrics`, served from other threads).
    pub fn monitor(&self) -> PipelineMonitor {
        PipelineMonitor {
            ingress: self.ingress_rx.clone(),
            outputs: self.outputs.clone(),
            counters: Arc::clone(&self.counters),
            pool: Arc::clone(&self.pool),
            gauges: Arc::clone(&self.gauges),
            alive_workers: Arc::clone(&self.alive_workers),
            workers: self.config.workers.max(1),
            max_queue_depth: self.config.max_queue_depth,
            dwell: Arc::clone(&self.dwell),
        }
    }

    /// Crypto workers still running (for liveness checks).
    pub fn alive_workers(&self) -> usize {
        self.alive_workers.load(Ordering::SeqCst)
    }

    /// Configured crypto workers.
    pub fn workers(&self) -> usize {
        self.config.workers.max(1)
    }

    /// Current depth of each bounded queue.
    pub fn queue_depths(&self) -> BTreeMap<&'static str, usize> {
        self.monitor().queue_depths()
    }

    /// True when any queue is over 90% full: the node is shedding load.
    pub fn is_saturated(&self) -> bool {
        self.monitor().is_saturated()
    }

    /// A snapshot of everything the pipeline has counted.
    pub fn stats(&self) -> MixnodeStats {
        self.monitor().stats()
    }

    /// Stops accepting, lets the workers finish what is queued, sends what
    /// becomes due within the shutdown grace and drops the rest (counted as
    /// `shutdown`). Returns once every thread has exited.
    pub fn shutdown(&mut self) {
        self.ingress = None;
        self.feeder = None;
        for handle in self.workers.drain(..) {
            let _ = handle.join();
        }
        if let Some(handle) = self.scheduler.take() {
            let _ = handle.join();
        }
    }
}

impl Drop for PacketPipeline {
    fn drop(&mut self) {
        self.shutdown();
    }
}

/// A shareable view of a pipeline: counters, pool, queue depths and worker
/// liveness. Holding one does not keep the pipeline's threads alive.
#[derive(Clone)]
pub struct PipelineMonitor {
    ingress: Receiver<Packet>,
    outputs: Outputs,
    counters: Arc<PipelineCounters>,
    pool: Arc<BufferPool>,
    gauges: Arc<MixingGauges>,
    alive_workers: Arc<AtomicUsize>,
    workers: usize,
    max_queue_depth: usize,
    dwell: Arc<SharedDwell>,
}

impl PipelineMonitor {
    /// Current depth of each bounded queue.
    pub fn queue_depths(&self) -> BTreeMap<&'static str, usize> {
        BTreeMap::from([
            ("ingress", self.ingress.len()),
            ("mixing", self.gauges.held()),
            ("egress", self.outputs.packets()),
        ])
    }

    /// The mixing pool's size and entropy, as the scheduler last saw them.
    pub fn mixing(&self) -> &MixingGauges {
        &self.gauges
    }

    /// True when any queue is over 90% full (the ingress queue measured
    /// against its limit in time): the node is shedding load.
    pub fn is_saturated(&self) -> bool {
        let nearly = |limit: usize| (limit * 9 / 10).max(1);
        let depths = self.queue_depths();
        depths["ingress"] >= nearly(self.ingress_limit())
            || depths.values().any(|d| *d >= nearly(self.max_queue_depth))
    }

    /// Packets the ingress queue admits now: what the workers drain in
    /// half of `max_dwell`, at most `max_queue_depth`.
    pub fn ingress_limit(&self) -> usize {
        self.dwell.queue_limit()
    }

    /// True while every crypto worker runs.
    pub fn workers_alive(&self) -> bool {
        self.alive_workers.load(Ordering::SeqCst) == self.workers
    }

    /// The counters.
    pub fn counters(&self) -> &Arc<PipelineCounters> {
        &self.counters
    }

    /// The buffer pool.
    pub fn pool(&self) -> &Arc<BufferPool> {
        &self.pool
    }

    /// A snapshot of everything the pipeline has counted.
    pub fn stats(&self) -> MixnodeStats {
        self.counters
            .totals()
            .to_stats(self.pool.hit_rate(), self.queue_depths())
    }
}

/// Puts packets this node built itself into the mixing scheduler.
#[derive(Clone)]
pub struct Injector {
    feeder: Feeder,
    counters: Arc<PipelineCounters>,
    pool: Arc<BufferPool>,
}

impl Injector {
    /// Holds `frame` for `delay`, then sends it to `next` at `addr`, like a
    /// forwarded packet. A full scheduler drops it as `overload`.
    pub fn inject(
        &self,
        next: NodeId,
        addr: SocketAddr,
        frame: &[u8],
        delay: Duration,
    ) -> Result<(), DropCause> {
        let mut buf = self.pool.get();
        buf.fill_from(frame);
        let own = Input::Own {
            target: Target::Hop { next, addr },
            delay,
            packet: buf,
        };
        // The core counts a refusal itself (a full pool: `overload`).
        let held = self.feeder.feed(
            Instant::now(),
            &mut vec![own],
            self.counters.stage(SCHEDULER_SHARD),
        );
        if held == 1 {
            Ok(())
        } else {
            Err(DropCause::Overload)
        }
    }
}

/// Submits into the pipeline from any thread; cheap to clone.
#[derive(Clone)]
pub struct Submitter {
    ingress: Option<Sender<Packet>>,
    counters: Arc<PipelineCounters>,
    pool: Arc<BufferPool>,
    dwell: Arc<SharedDwell>,
}

impl Submitter {
    /// See [`PacketPipeline::submit`].
    pub fn submit(&self, packet: Packet) -> Result<(), DropCause> {
        let cause = match &self.ingress {
            Some(tx) if tx.len() >= self.dwell.queue_limit() => DropCause::Overload,
            Some(tx) => match tx.try_send(packet) {
                Ok(()) => return Ok(()),
                Err(TrySendError::Full(_)) => DropCause::Overload,
                Err(TrySendError::Disconnected(_)) => DropCause::Shutdown,
            },
            None => DropCause::Shutdown,
        };
        self.counters.stage(INGRESS_SHARD).drop(cause);
        Err(cause)
    }

    /// Submits a copy of `frame`, received at `received_at` from `source`.
    /// The cheap way to shed: a queue at its limit refuses the frame
    /// (`overload`, counted) before it takes a pool buffer or copies a byte.
    pub fn submit_frame(
        &self,
        frame: &[u8],
        source: SocketAddr,
        received_at: Instant,
    ) -> Result<(), DropCause> {
        if let Some(tx) = &self.ingress
            && tx.len() >= self.dwell.queue_limit()
        {
            self.counters.stage(INGRESS_SHARD).drop(DropCause::Overload);
            return Err(DropCause::Overload);
        }
        let mut buf = self.pool.get();
        buf.fill_from(frame);
        self.submit(Packet {
            buf,
            source,
            received_at,
        })
    }

    /// Copies `frame` into a pooled buffer and submits it.
    pub fn submit_bytes(&self, frame: &[u8], source: SocketAddr) -> Result<(), DropCause> {
        self.submit_frame(frame, source, Instant::now())
    }

    /// The buffer pool to receive into.
    pub fn pool(&self) -> &Arc<BufferPool> {
        &self.pool
    }

    /// The ingress stage's counters (for drops before the pipeline).
    pub fn ingress_counters(&self) -> &StageCounters {
        self.counters.stage(INGRESS_SHARD)
    }

    /// Stops this handle from submitting (the pipeline shuts down once every
    /// handle has let go).
    pub fn close(&mut self) {
        self.ingress = None;
    }
}

struct AliveGuard(Arc<AtomicUsize>);

impl Drop for AliveGuard {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}
