//! The cover thread: sends loop and drop cover on Poisson schedules through
//! the node's own mixing scheduler, and declares overdue loops lost.

use std::io;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use rand::Rng;
use rand_core::CryptoRng;

use super::attribution::window_bound;
use super::loops::{LoopTracker, outstanding_bound};
use super::path::{CoverPath, Origin, PathError, live_drop_path, live_loop_path};
use super::report::LoopReport;
use super::schedule::PoissonSchedule;
use crate::config::Config;
use crate::mixing::DelayPolicy;
use crate::pipeline::{DropCause, HistogramSnapshot, Injector};
use crate::shutdown::{Shutdown, Wake};
use crate::sphinx::{BuildError, FinalCommand, LoopId, NodeId, ReplayTag, create_packet};
use crate::topology::{EgressProtocol, LiveTopology};
use crate::transport::LoopSink;

/// At most one warning per this long about cover that cannot be sent, so a
/// broken topology does not flood the log at the cover rate.
const WARN_EVERY: Duration = Duration::from_secs(60);

/// Rates and limits of cover traffic (`[cover_traffic]` and
/// `sphinx.num_hops`).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct CoverSettings {
    /// Loop cover packets per second (0: none).
    pub loop_rate_pps: f64,
    /// Drop cover packets per second (0: none).
    pub drop_rate_pps: f64,
    /// A loop not back after this long is lost.
    pub loop_timeout: Duration,
    /// Configured path length (see [`loop_path`](super::loop_path) and
    /// [`drop_path`](super::drop_path) for how loops and drops use it).
    pub num_hops: usize,
    /// Nodes with the highest attributed loss exported as metrics
    /// (`cover_traffic.loss_metric_nodes`; 0: none).
    pub loss_metric_nodes: usize,
}

impl CoverSettings {
    /// The settings of `config`, or `None` when cover traffic is disabled.
    pub fn from_config(config: &Config) -> Option<Self> {
        let cover = &config.cover_traffic;
        cover.enabled.then(|| CoverSettings {
            loop_rate_pps: cover.generation_rate_pps,
            drop_rate_pps: cover.drop_rate_pps,
            loop_timeout: Duration::from_millis(cover.loop_timeout_ms),
            num_hops: config.sphinx.num_hops,
            loss_metric_nodes: cover.loss_metric_nodes,
        })
    }

    /// Loops tracked at once: see [`outstanding_bound`].
    pub fn max_outstanding(&self) -> usize {
        outstanding_bound(self.loop_rate_pps, self.loop_timeout)
    }

    /// Resolved loops the loss attribution is fitted to: see
    /// [`window_bound`].
    pub fn attribution_window(&self) -> usize {
        window_bound(self.loop_rate_pps)
    }
}

/// Everything the cover thread needs from the node.
pub struct CoverParams {
    /// This node: id, layer and Sphinx public key (the key is refreshed
    /// from `keys` before every packet).
    pub origin: Origin,
    /// This node's accepted Sphinx keys: loops come back under the current
    /// one, which changes at every key rotation.
    pub keys: Arc<crate::pipeline::LiveKeys>,
    /// The topology and neighbour set the node routes by.
    pub topology: Arc<LiveTopology>,
    /// Which address of the first hop frames go to.
    pub egress: EgressProtocol,
    /// Where cover enters the mixing scheduler.
    pub injector: Injector,
    /// The node's delay policy for forwarded packets; cover is held the
    /// same way so the scheduler cannot tell it apart.
    pub delay: Arc<dyn DelayPolicy>,
    /// Rates and limits.
    pub settings: CoverSettings,
    /// The node's key-schedule clock: each hop's Sphinx key is the one its
    /// descriptor lists for now on this clock, as the node's own is.
    pub clock: Arc<dyn crate::clock::WallClock>,
}

/// What cover traffic has done so far.
#[derive(Clone, Debug, PartialEq)]
pub struct CoverStats {
    /// Loops queued for sending (`betanet_cover_loops_sent_total`).
    pub loops_sent: u64,
    /// Loops back within the timeout (`betanet_cover_loops_returned_total`).
    pub loops_returned: u64,
    /// Loops not back within the timeout (`betanet_cover_loops_lost_total`).
    pub loops_lost: u64,
    /// Loops in flight.
    pub loops_outstanding: usize,
    /// Drop cover packets queued for sending.
    pub drops_sent: u64,
    /// Returns matching no outstanding loop (unknown ids, duplicates, late).
    pub unknown_returns: u64,
    /// Cover packets that could not be built or queued (no path, full
    /// scheduler); they were not counted as sent.
    pub send_failures: u64,
    /// Round-trip times of returned loops (`betanet_loop_rtt_seconds`),
    /// from being queued here (so this node's own mixing delay of the
    /// packet is included) to coming back.
    pub rtt: HistogramSnapshot,
    /// Lost loops charged to each node on their paths, most first.
    pub loss_by_node: Vec<(NodeId, u64)>,
}

/// State shared by the cover thread, the loop sink and stats readers.
struct Shared {
    tracker: Mutex<LoopTracker>,
    settings: CoverSettings,
    drops_sent: AtomicU64,
    send_failures: AtomicU64,
}

impl Shared {
    fn tracker(&self) -> MutexGuard<'_, LoopTracker> {
        // A panic elsewhere cannot leave the tracker half-updated in a way
        // that matters for counters; keep going.
        self.tracker.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// The running cover thread. Dropping the handle stops it too.
pub struct CoverHandle {
    shared: Arc<Shared>,
    /// The thread's signal: the node's, or its own when run alone.
    shutdown: Shutdown,
    thread: Option<JoinHandle<()>>,
}

impl CoverHandle {
    /// A sink for the egress thread's loop returns. Cheap: it holds the
    /// tracker's lock only for a hash lookup and a histogram add.
    pub fn loop_sink(&self) -> LoopSink {
        let shared = Arc::clone(&self.shared);
        Box::new(move |id: LoopId, at: Instant| {
            shared.tracker().record_return(id, at);
        })
    }

    /// The counters now.
    pub fn stats(&self) -> CoverStats {
        self.monitor().stats()
    }

    /// A cheap, cloneable reader of the counters (for `/metrics`), which
    /// stays valid after the handle is stopped.
    pub fn monitor(&self) -> CoverMonitor {
        CoverMonitor {
            shared: Arc::clone(&self.shared),
        }
    }

    /// Stops the thread and waits for it; its [`Injector`] is dropped by
    /// then, so the pipeline can shut down afterwards. Returns the final
    /// counters (no more loops or drops are sent after them).
    pub fn stop(mut self) -> CoverStats {
        self.halt_and_join();
        self.stats()
    }

    fn halt_and_join(&mut self) {
        self.shutdown.trigger();
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

impl Drop for CoverHandle {
    fn drop(&mut self) {
        self.halt_and_join();
    }
}

/// Reads the counters of a [`CoverHandle`] from other threads.
#[derive(Clone)]
pub struct CoverMonitor {
    shared: Arc<Shared>,
}

impl CoverMonitor {
    /// The counters now.
    pub fn stats(&self) -> CoverStats {
        let tracker = self.shared.tracker();
        let counts = tracker.counts();
        CoverStats {
            loops_sent: counts.sent,
            loops_returned: counts.returned,
            loops_lost: counts.lost,
            loops_outstanding: counts.outstanding,
            drops_sent: self.shared.drops_sent.load(Ordering::Relaxed),
            unknown_returns: counts.unknown_returns,
            send_failures: self.shared.send_failures.load(Ordering::Relaxed),
            rtt: tracker.rtt(),
            loss_by_node: tracker.loss_by_node(),
        }
    }

    /// The whole loop table with each node's attributed loss (see
    /// [`LoopReport`]). The tracker is locked only to copy it; the fit runs
    /// after, so loop returns are not held up.
    pub fn report(&self) -> LoopReport {
        let snapshot = self.shared.tracker().snapshot();
        LoopReport::from_snapshot(snapshot)
    }

    /// The settings the cover thread runs with.
    pub fn settings(&self) -> CoverSettings {
        self.shared.settings
    }
}

/// Why one cover packet was not sent.
#[derive(Debug, thiserror::Error)]
enum SendError {
    #[error(transparent)]
    Path(#[from] PathError),
    #[error("cannot build the packet: {0}")]
    Build(#[from] BuildError),
    #[error("the mixing scheduler refused it ({})", .0.as_str())]
    Inject(DropCause),
}

/// The cover generator (run on its own thread by [`CoverTraffic::spawn`]).
pub struct CoverTraffic {
    params: CoverParams,
    shared: Arc<Shared>,
    loops: PoissonSchedule,
    drops: PoissonSchedule,
    last_warning: Option<Instant>,
}

impl CoverTraffic {
    /// Starts the cover thread. It runs until the handle is stopped or
    /// dropped. With both rates zero no thread is started; the handle still
    /// counts returns (all unknown).
    pub fn spawn(params: CoverParams) -> io::Result<CoverHandle> {
        Self::spawn_until(params, Shutdown::new())
    }

    /// [`spawn`](Self::spawn), also stopped by `shutdown` (a node's thread
    /// takes a child of the node's signal).
    pub(crate) fn spawn_until(params: CoverParams, shutdown: Shutdown) -> io::Result<CoverHandle> {
        let settings = params.settings;
        let shared = Arc::new(Shared {
            tracker: Mutex::new(
                LoopTracker::new(settings.loop_timeout, settings.max_outstanding())
                    .with_window(settings.attribution_window()),
            ),
            settings,
            drops_sent: AtomicU64::new(0),
            send_failures: AtomicU64::new(0),
        });
        let generator = CoverTraffic {
            params,
            shared: Arc::clone(&shared),
            loops: PoissonSchedule::new(settings.loop_rate_pps),
            drops: PoissonSchedule::new(settings.drop_rate_pps),
            last_warning: None,
        };
        let thread = if generator.loops.is_enabled() || generator.drops.is_enabled() {
            let shutdown = shutdown.clone();
            Some(
                std::thread::Builder::new()
                    .name("betanet-cover".into())
                    .spawn(move || generator.run(&shutdown))?,
            )
        } else {
            None
        };
        Ok(CoverHandle {
            shared,
            shutdown,
            thread,
        })
    }

    fn run(mut self, shutdown: &Shutdown) {
        let mut rng = rand::rng();
        let start = Instant::now();
        self.loops.start(start, &mut rng);
        self.drops.start(start, &mut rng);
        loop {
            let now = Instant::now();
            while self.loops.poll(now, &mut rng) {
                let sent = self.send_loop(&mut rng);
                self.note(sent, now);
            }
            while self.drops.poll(now, &mut rng) {
                let sent = self.send_drop(&mut rng);
                if sent.is_ok() {
                    self.shared.drops_sent.fetch_add(1, Ordering::Relaxed);
                }
                self.note(sent, now);
            }
            let expiry = {
                let mut tracker = self.shared.tracker();
                tracker.expire(now);
                tracker.next_expiry()
            };
            // Asleep until the next packet is due or loop expires; a return
            // needs no wake-up (the egress thread records it).
            let wake = [self.loops.next_due(), self.drops.next_due(), expiry]
                .into_iter()
                .flatten()
                .min();
            if shutdown.wait(wake, &[]) == Wake::Stop {
                break;
            }
        }
        // Dropping `self` drops the injector: the pipeline may now drain.
    }

    fn origin(&self) -> &Origin {
        &self.params.origin
    }

    /// The origin with the key its loops must use now.
    fn current_origin(&self) -> Origin {
        Origin {
            public_key: self.params.keys.current_public_key(),
            ..self.params.origin
        }
    }

    fn send_loop<R: Rng + CryptoRng>(&mut self, rng: &mut R) -> Result<(), SendError> {
        let origin = self.current_origin();
        let p = &self.params;
        let now = p.clock.unix_seconds();
        let path = live_loop_path(&origin, &p.topology, p.settings.num_hops, now, rng)?;
        let mut id = [0u8; 16];
        rng.fill_bytes(&mut id);
        let loop_id = LoopId(id);
        // Empty message: the payload is padded to its fixed size anyway.
        let built = create_packet(&path.hops, FinalCommand::Loop { loop_id }, &[], rng)?;
        // Tracked before it is queued: a zero-delay loop on a fast network
        // could otherwise come back before it was recorded.
        let others = path.others(self.origin().id);
        let recorded = self
            .shared
            .tracker()
            .record_sent(loop_id, &others, Instant::now());
        let queued = self.inject(&path, &built.frame[..], rng);
        if queued.is_err() && recorded {
            self.shared.tracker().cancel(loop_id);
        }
        queued
    }

    fn send_drop<R: Rng + CryptoRng>(&mut self, rng: &mut R) -> Result<(), SendError> {
        let origin = self.current_origin();
        let p = &self.params;
        let now = p.clock.unix_seconds();
        let path = live_drop_path(&origin, &p.topology, p.settings.num_hops, now, rng)?;
        let built = create_packet(&path.hops, FinalCommand::Drop, &[], rng)?;
        self.inject(&path, &built.frame[..], rng)
    }

    /// Queues `frame` for the first hop with a delay drawn exactly as for a
    /// forwarded packet: the policy gets fresh random bits and, in place of
    /// the replay tag a received packet would have, a random tag (so a
    /// tag-keyed VRF policy gives an unpredictable delay too).
    fn inject<R: Rng>(&self, path: &CoverPath, frame: &[u8], rng: &mut R) -> Result<(), SendError> {
        let mut tag = [0u8; 32];
        rng.fill_bytes(&mut tag);
        let delay = self.params.delay.delay(&ReplayTag(tag), rng.next_u64());
        let addr = path.first.addr(self.params.egress);
        self.params
            .injector
            .inject(path.first.id, addr, frame, delay)
            .map_err(SendError::Inject)
    }

    /// Counts a failure, logging it at most every [`WARN_EVERY`].
    fn note(&mut self, sent: Result<(), SendError>, now: Instant) {
        let Err(error) = sent else {
            return;
        };
        self.shared.send_failures.fetch_add(1, Ordering::Relaxed);
        let quiet = self
            .last_warning
            .is_some_and(|at| now.saturating_duration_since(at) < WARN_EVERY);
        if quiet {
            tracing::debug!(%error, "cover packet not sent");
        } else {
            self.last_warning = Some(now);
            tracing::warn!(%error, "cover packet not sent (repeats are logged at debug level)");
        }
    }
}
