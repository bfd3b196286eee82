//! Load test of one real betanet node on loopback: throughput, processing
//! latency, drops, buffer-pool hit rate and peak memory, checked against
//! the integration guide's performance targets and against the crypto
//! bound measured in the same run.
//!
//! ```bash
//! cargo run --release --example pipeline_benchmark                      # 10 s, flat out
//! cargo run --release --example pipeline_benchmark -- --duration 60
//! PIPELINE_WORKERS=8 cargo run --release --example pipeline_benchmark
//! cargo run --release --example pipeline_benchmark -- --no-delay --load 0.8
//! cargo run --release --example pipeline_benchmark -- --load 0.5        # delays on
//! cargo run --release --example pipeline_benchmark -- --transport tcp --json
//! cargo run --release --example pipeline_benchmark -- --overload 4 --no-delay --json
//! cargo run --release --example pipeline_benchmark -- --links --no-delay --json
//! ```
//!
//! How it works (BENCHMARKS.md has the reasoning):
//!
//! * The node runs alone in a child process (this example re-executes
//!   itself with a hidden flag), so its RSS and CPU are its own. It is a
//!   real `Mixnode`: keys, topology, persistent replay cache, UDP and TCP
//!   listeners on 127.0.0.1, its own pipeline and egress.
//! * Every packet is a distinct, real Sphinx packet whose path is the node
//!   itself `--hops` times (default 5). Each hop has its own α and replay
//!   tag, so one packet is `hops` first-time unwraps; the node forwards to
//!   itself over loopback between hops and finally DELIVERs the packet's
//!   sequence number back to this process. No packet is ever replayed.
//! * All packets are built before timing starts, on one thread per core.
//! * The generator shares the node's cores, so it is kept cheap: frames go
//!   out in GSO batches (still one datagram per frame on the wire) and
//!   deliveries come back through GRO.
//! * The engine's single-core `unwrap_batch` rate (64-frame batches, the
//!   same hop mix) is measured first; times `min(workers, cores)` it is the
//!   crypto bound the pipeline is compared with.
//! * Load is offered flat out (a closed loop keeping `--window` packets in
//!   flight, the default) or at a fixed rate (`--rate` packets/s arriving at
//!   the node, or `--load` as a fraction of the crypto bound).
//! * `--overload F` runs two phases on the same node: flat out, then a
//!   fixed rate offering F × the crypto bound of work (every hop counted),
//!   and reports `overload_goodput_ratio` (unwraps/s under overload over
//!   unwraps/s flat out) and `dwell_p99_ms` (arrival to unwrap, for the
//!   packets unwrapped under overload) at the top level of its JSON.
//! * Without `--links` the node runs with `transport.links = false`
//!   (plaintext frames, as before links). `--links` runs the same load
//!   twice on fresh node processes, links off then on, and reports both and
//!   `links_throughput_ratio` at the top level. With links on, the node (an
//!   exit) takes frames only from members' sessions, so the generator plays
//!   the topology's placeholder Middle node: it derives that node's link
//!   key from its Sphinx key, opens a `hybridIK` session over TCP, and
//!   seals every frame into its record before timing.
//!
//! The pipeline sizes come from the node's configuration rules
//! (`config/mixnode.toml`, `PIPELINE_WORKERS`, `BATCH_SIZE`, `POOL_SIZE`,
//! `MAX_QUEUE_DEPTH`, `TARGET_THROUGHPUT`, `BETANET_*`, `--set`). The
//! benchmark sets the node's identity, addresses (127.0.0.1 only) and
//! files itself, turns cover traffic off and lifts the per-source rate
//! limit (all loopback traffic is one source). It always ends by itself.

use std::collections::BTreeMap;
use std::fs;
use std::io::{BufRead, BufReader, Write};
use std::net::{SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow, bail};
use betanet::config::{Config, ConfigArgs};
use betanet::keys::{KeySchedule, SphinxKeyStore};
use betanet::link::session::Sealer;
use betanet::link::{LinkKeyPair, LinkPattern, RECORD_LEN, Session};
use betanet::node::Sockets;
use betanet::pipeline::HistogramSnapshot;
use betanet::sphinx::{
    FRAME_LEN, FinalCommand, MAX_HOPS, MessageId, NodeId, PathHop, ReplayTag, SphinxProcessor,
    SphinxPublicKey, SphinxSecretKey, create_packet,
};
use betanet::topology::{DESCRIPTOR_FILE, EgressProtocol, NodeDescriptor, Topology};
use betanet::{Mixnode, NodeRole};
use clap::{Parser, ValueEnum};
use serde::{Deserialize, Serialize};

/// Frames per `unwrap_batch` in the engine measurement.
const ENGINE_BATCH: usize = 64;
/// Distinct packets the engine measurement cycles through.
const ENGINE_PACKETS: usize = ENGINE_BATCH * 8;
/// Extra packets built for a flat-out run beyond bound × duration.
const FLAT_OUT_MARGIN: f64 = 1.15;
/// A packet not back after this (plus its mixing delays) counts as lost.
const LOSS_TIMEOUT: Duration = Duration::from_secs(2);
/// Pool hit rate the guide's PerformanceTargets require.
const MIN_POOL_HIT_RATE: f64 = 0.85;
/// Drop rate the guide's PerformanceTargets allow.
const MAX_DROP_RATE: f64 = 0.001;
/// Issue 11: flat out, at least this fraction of the crypto bound...
const MIN_FLAT_OUT_RATIO: f64 = 0.85;
/// ...under `--overload 4`, at least this fraction of the flat-out rate...
const MIN_OVERLOAD_RATIO: f64 = 0.90;
/// ...and admitted packets wait at most this long before unwrap (p99).
const MAX_OVERLOAD_DWELL_P99_MS: f64 = 50.0;
/// Issue 14: with links on, at least this fraction of the throughput
/// without them (`--links`).
const MIN_LINKS_RATIO: f64 = 0.90;

#[derive(Parser, Debug)]
#[command(about = "Load test of one betanet node on loopback")]
struct Args {
    /// Seconds of load
    #[arg(long, default_value_t = 10.0)]
    duration: f64,
    /// Offered load: packets per second arriving at the node, every hop
    /// counted [default: flat out]
    #[arg(long, value_name = "PPS", conflicts_with = "load")]
    rate: Option<f64>,
    /// Offered load as a fraction of the crypto bound measured in this run
    /// (e.g. 0.8)
    #[arg(long, value_name = "FRACTION")]
    load: Option<f64>,
    /// One run, two phases on the same node: flat out, then this multiple
    /// of the crypto bound (e.g. 4); reports `overload_goodput_ratio`
    #[arg(long, value_name = "FACTOR", conflicts_with_all = ["rate", "load"])]
    overload: Option<f64>,
    /// Mixing delays off (mixing.mean_delay_ms = 0), for throughput
    #[arg(long)]
    no_delay: bool,
    /// How frames reach the node and how it forwards them
    #[arg(long, value_enum, default_value_t = Transport::Udp)]
    transport: Transport,
    /// Hops per packet; every hop is the benchmark node itself
    #[arg(long, default_value_t = MAX_HOPS)]
    hops: usize,
    /// Flat out: packets kept in flight [default: pool_size / 2, at least
    /// 2 × batch_size × workers, at most max_queue_depth / 2]
    #[arg(long, value_name = "N")]
    window: Option<usize>,
    /// Throughput target, packets/s [default: performance.target_throughput_pps
    /// (TARGET_THROUGHPUT), 25000]
    #[arg(long, value_name = "PPS")]
    target: Option<f64>,
    /// Seconds spent measuring the engine's single-core batched unwrap rate
    #[arg(long, default_value_t = 3.0)]
    engine_secs: f64,
    /// Run the load twice, each on a fresh node: plaintext frames over
    /// `--transport` (transport.links = false), then member link sessions
    /// (transport.links = true); reports both and `links_throughput_ratio`.
    /// Without it the node runs with links off
    #[arg(long)]
    links: bool,
    /// Print the report as JSON
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    config: ConfigArgs,
    /// Internal: run the node in this process, with files under DIR
    #[arg(long, hide = true, value_name = "DIR")]
    node_child: Option<PathBuf>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum, Serialize)]
#[serde(rename_all = "lowercase")]
enum Transport {
    Udp,
    Tcp,
}

fn main() -> Result<()> {
    let args = Args::parse();
    match &args.node_child {
        Some(dir) => node_child::run(dir),
        None => driver(&args),
    }
}

// ---------------------------------------------------------------------------
// The node process.

/// What the node process reports when it is up.
#[derive(Serialize, Deserialize, Debug)]
struct Ready {
    pid: u32,
    udp: SocketAddr,
    tcp: SocketAddr,
    id: String,
    public_key: String,
    workers: usize,
}

/// The node's counters and resource use at one moment.
#[derive(Serialize, Deserialize, Debug, Clone, Default)]
struct NodeSnapshot {
    processed: u64,
    forwarded: u64,
    delivered: u64,
    dropped: BTreeMap<String, u64>,
    p50_ns: u64,
    p99_ns: u64,
    p999_ns: u64,
    mean_ns: u64,
    dwell_p50_ns: u64,
    dwell_p99_ns: u64,
    dwell_p999_ns: u64,
    pool_hit_rate: f64,
    queue_depths: BTreeMap<String, usize>,
    replay_entries: usize,
    rss_bytes: u64,
    peak_rss_bytes: u64,
    /// CPU clock ticks (USER_HZ) by thread name.
    thread_ticks: BTreeMap<String, u64>,
}

mod node_child {
    use super::*;

    /// Starts the node from `dir/node.toml`, reports [`Ready`], then answers
    /// `stats` and `stop` on stdin with a [`NodeSnapshot`] line each. Stops
    /// on `stop` or when stdin closes (the driver has gone).
    pub fn run(dir: &Path) -> Result<()> {
        let filter = tracing_subscriber::EnvFilter::try_from_default_env()
            .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn"));
        tracing_subscriber::fmt()
            .with_writer(std::io::stderr)
            .with_env_filter(filter)
            .init();

        let text = fs::read_to_string(dir.join("node.toml")).context("reading node.toml")?;
        let mut config = Config::from_toml_str(&text)?;
        let loopback = SocketAddr::from(([127, 0, 0, 1], 0));
        let mut sockets = Sockets::bind(loopback, true, true)?;
        sockets.bind_http(loopback)?;
        let addr = |a: Option<SocketAddr>| a.ok_or_else(|| anyhow!("socket without address"));
        let (udp, tcp, http) = (
            addr(sockets.udp_addr())?,
            addr(sockets.tcp_addr())?,
            addr(sockets.http_addr())?,
        );

        let key_dir = dir.join("exit").join("keys");
        let params = |role, udp_addr, tcp_addr, http_addr| betanet::keys::KeygenParams {
            role,
            udp_addr,
            tcp_addr,
            http_addr,
            key_epoch_seconds: config.sphinx.key_epoch_seconds,
            now_unix: betanet::clock::unix_now(),
            network: betanet::topology::NetworkParams::from_config(&config),
        };
        let me = betanet::keys::keygen(&key_dir, params(NodeRole::Exit, udp, tcp, http))?;
        // A topology needs every layer; the entry and middle descriptors are
        // placeholders no packet is ever routed to. Their sockets are held
        // until the topology is built so their addresses are distinct.
        let mut descriptors = vec![me.clone()];
        let mut held = Vec::new();
        for role in [NodeRole::Entry, NodeRole::Middle] {
            let s = Sockets::bind(loopback, true, true)?;
            let h = TcpListener::bind(loopback)?;
            let keys = dir.join(role.as_str()).join("keys");
            descriptors.push(betanet::keys::keygen(
                &keys,
                params(
                    role,
                    addr(s.udp_addr())?,
                    addr(s.tcp_addr())?,
                    h.local_addr()?,
                ),
            )?);
            held.push((s, h));
        }
        let topology_path = dir.join("topology.json");
        Topology::build(descriptors)?.save(&topology_path)?;
        drop(held);

        config.node.key_dir = key_dir;
        config.node.data_dir = dir.join("exit").join("data");
        config.node.topology = topology_path;
        let public_key = me
            .sphinx_key_now()
            .ok_or_else(|| anyhow!("descriptor without a Sphinx key"))?
            .public_key;
        let node = Mixnode::start_with_sockets(config, sockets)?;
        let ready = Ready {
            pid: std::process::id(),
            udp,
            tcp,
            id: me.id.to_string(),
            public_key: public_key.to_string(),
            workers: node.pipeline().workers(),
        };
        println!("{}", serde_json::to_string(&ready)?);

        // Latency and dwell quantiles cover the window since the last
        // "mark" (the start of the current load phase).
        let mut mark = Window::default();
        let stdin = std::io::stdin();
        for line in stdin.lock().lines() {
            let line = line?;
            match line.trim() {
                "mark" => {
                    mark = Window::now(&node);
                    println!("{}", serde_json::to_string(&snapshot(&node, &mark))?);
                }
                "stats" => println!("{}", serde_json::to_string(&snapshot(&node, &mark))?),
                "stop" => {
                    println!("{}", serde_json::to_string(&snapshot(&node, &mark))?);
                    break;
                }
                other => eprintln!("node: unknown command {other:?}"),
            }
        }
        node.shutdown();
        Ok(())
    }

    /// The node's latency histograms at the start of a window.
    #[derive(Default)]
    struct Window {
        processing_time: HistogramSnapshot,
        dwell: HistogramSnapshot,
    }

    impl Window {
        fn now(node: &Mixnode) -> Window {
            let totals = node.pipeline().counters().totals();
            Window {
                processing_time: totals.processing_time,
                dwell: totals.dwell,
            }
        }
    }

    fn snapshot(node: &Mixnode, mark: &Window) -> NodeSnapshot {
        let s = node.stats();
        let now = Window::now(node);
        let latency = now.processing_time.since(&mark.processing_time);
        let dwell = now.dwell.since(&mark.dwell);
        let status = fs::read_to_string("/proc/self/status").unwrap_or_default();
        NodeSnapshot {
            processed: s.processed,
            forwarded: s.forwarded,
            delivered: s.delivered,
            dropped: s
                .dropped
                .iter()
                .map(|(k, v)| ((*k).to_owned(), *v))
                .collect(),
            p50_ns: nanos(latency.quantile(0.5)),
            p99_ns: nanos(latency.quantile(0.99)),
            p999_ns: nanos(latency.quantile(0.999)),
            mean_ns: nanos(latency.mean()),
            dwell_p50_ns: nanos(dwell.quantile(0.5)),
            dwell_p99_ns: nanos(dwell.quantile(0.99)),
            dwell_p999_ns: nanos(dwell.quantile(0.999)),
            pool_hit_rate: s.pool_hit_rate,
            queue_depths: s
                .queue_depths
                .iter()
                .map(|(k, v)| ((*k).to_owned(), *v))
                .collect(),
            replay_entries: node.replay_cache_entries(),
            rss_bytes: status_kib(&status, "VmRSS:") * 1024,
            peak_rss_bytes: status_kib(&status, "VmHWM:") * 1024,
            thread_ticks: thread_ticks(),
        }
    }

    /// CPU ticks of every thread of this process, summed by thread name.
    fn thread_ticks() -> BTreeMap<String, u64> {
        let mut out = BTreeMap::new();
        let Ok(tasks) = fs::read_dir("/proc/self/task") else {
            return out;
        };
        for task in tasks.flatten() {
            let Ok(stat) = fs::read_to_string(task.path().join("stat")) else {
                continue;
            };
            if let Some((name, ticks)) = parse_task_stat(&stat) {
                *out.entry(name).or_insert(0) += ticks;
            }
        }
        out
    }
}

fn nanos(d: Duration) -> u64 {
    u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)
}

/// `(comm, utime + stime)` from a `/proc/*/stat` line.
fn parse_task_stat(stat: &str) -> Option<(String, u64)> {
    let open = stat.find('(')?;
    let (head, rest) = stat.rsplit_once(')')?;
    let name = head.get(open + 1..)?.to_owned();
    // `rest` starts at field 3; utime and stime are fields 14 and 15.
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let utime: u64 = fields.get(11)?.parse().ok()?;
    let stime: u64 = fields.get(12)?.parse().ok()?;
    Some((name, utime + stime))
}

/// A `Name:   1234 kB` value of `/proc/*/status`, in KiB (0 if absent).
fn status_kib(status: &str, key: &str) -> u64 {
    status
        .lines()
        .find_map(|l| l.strip_prefix(key))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

// ---------------------------------------------------------------------------
// The engine measurement.

#[derive(Serialize, Debug, Clone)]
struct EngineReport {
    /// Frames per `unwrap_batch`.
    batch: usize,
    /// Hops per packet (the mix of relay and final unwraps).
    hops: usize,
    /// Unwraps per second on one thread, the node's hop mix (median round).
    single_core_pps: f64,
    /// Relay hops only (first hop of the path).
    relay_pps: f64,
    /// Final hops only.
    final_pps: f64,
    rounds: usize,
    /// `min(workers, cores)`.
    parallelism: usize,
    /// `single_core_pps × parallelism`.
    bound_pps: f64,
    /// CPU cores the rest of the machine used during the measurement.
    noise_cores: f64,
}

/// Times `unwrap_batch` on 64-frame batches of distinct packets, on this
/// thread, through every hop of `hops`-hop paths (so relay and final hops
/// come in the node's proportions). Frames are restored from pristine
/// copies between rounds; only the `unwrap_batch` calls are timed.
fn measure_engine(hops: usize, secs: f64) -> Result<(f64, f64, f64, usize)> {
    let secret = SphinxSecretKey::generate(&mut rand::rng());
    let processor = SphinxProcessor::new(secret);
    let hop = PathHop {
        id: NodeId::from_bytes([0x42; 16]),
        public_key: processor.public_key(),
    };
    let path = vec![hop; hops];
    let mut rng = rand::rng();
    let pristine: Vec<Vec<u8>> = (0..ENGINE_PACKETS)
        .map(|_| {
            create_packet(&path, FinalCommand::Drop, b"engine", &mut rng).map(|p| p.frame.to_vec())
        })
        .collect::<Result<_, _>>()?;
    let mut work = pristine.clone();
    let mut per_level = vec![Duration::ZERO; hops];
    let mut round_rates = Vec::new();
    let budget = Duration::from_secs_f64(secs.max(0.1));
    let started = Instant::now();
    while started.elapsed() < budget || round_rates.len() < 3 {
        for (w, p) in work.iter_mut().zip(&pristine) {
            w.copy_from_slice(p);
        }
        let mut round = Duration::ZERO;
        for level in per_level.iter_mut() {
            for chunk in work.chunks_mut(ENGINE_BATCH) {
                let t = Instant::now();
                let results = processor.unwrap_batch(chunk, &mut |_: &ReplayTag| false);
                let ok = results.iter().all(Result::is_ok);
                let dt = t.elapsed();
                std::hint::black_box(&results);
                drop(results);
                if !ok {
                    bail!("the engine refused a benchmark packet");
                }
                *level += dt;
                round += dt;
            }
        }
        round_rates.push((ENGINE_PACKETS * hops) as f64 / round.as_secs_f64());
    }
    round_rates.sort_by(f64::total_cmp);
    let median = round_rates[round_rates.len() / 2];
    let rounds = round_rates.len();
    let rate = |d: Duration| (ENGINE_PACKETS * rounds) as f64 / d.as_secs_f64();
    Ok((
        median,
        rate(per_level[0]),
        rate(per_level[hops - 1]),
        rounds,
    ))
}

// ---------------------------------------------------------------------------
// The driver: generator, load, report.

/// How load is offered.
#[derive(Clone, Copy, Debug)]
enum Mode {
    /// Closed loop: a new packet whenever one comes back, `window` in flight.
    FlatOut { window: usize },
    /// Open loop: packets injected at this rate (packets/s), sending what
    /// is due every `tick`.
    Fixed { inject_pps: f64, tick: Duration },
}

/// How often a fixed-rate generator sends what is due: often, so the node
/// sees a smooth arrival process (latency at partial load depends on it).
const FIXED_TICK: Duration = Duration::from_micros(250);
/// The overload phase ticks like the flat-out one: every wake-up costs the
/// generator ~15 µs of the node's cores, and the ratio should compare the
/// node in both phases, not the generator's wake-up rate.
const OVERLOAD_TICK: Duration = Duration::from_millis(1);

impl Mode {
    fn describe(&self) -> String {
        match self {
            Mode::FlatOut { .. } => "flat out (closed loop)".into(),
            Mode::Fixed { .. } => "fixed rate (open loop)".into(),
        }
    }
}

/// Per-packet state: 0 unsent, `t + 1` sent at `t` ns after the start,
/// [`DONE`] delivered back, [`LOST`] given up on.
const DONE: u64 = u64::MAX;
const LOST: u64 = u64::MAX - 1;

struct Tracker {
    state: Vec<AtomicU64>,
    /// Round trip + 1 in ns of each delivered packet; 0 if none (yet).
    rtt_ns: Vec<AtomicU64>,
    delivered: AtomicU64,
    late: AtomicU64,
    lost: AtomicU64,
    t0: Instant,
}

impl Tracker {
    fn now_ns(&self) -> u64 {
        nanos(self.t0.elapsed())
    }
}

/// The driver's link to the node's listener.
enum Link {
    /// Frames go out in GSO batches: separate datagrams on the wire, but
    /// one syscall per batch, so the generator (which shares the node's
    /// cores) costs the node as little CPU as possible.
    Udp {
        socket: UdpSocket,
        state: quinn_udp::UdpSocketState,
        to: SocketAddr,
    },
    Tcp(TcpStream),
}

impl Link {
    /// Sends `packets` packets' bytes (back-to-back frames, or their link
    /// records over TCP); returns how many packets the network refused.
    fn send(&mut self, frames: &[u8], packets: u64) -> u64 {
        match self {
            Link::Udp { socket, state, to } => {
                let per_send = state.max_gso_segments().clamp(1, 65_507 / FRAME_LEN) * FRAME_LEN;
                let mut failed = 0;
                for chunk in frames.chunks(per_send) {
                    let transmit = quinn_udp::Transmit {
                        destination: *to,
                        ecn: None,
                        contents: chunk,
                        segment_size: Some(FRAME_LEN),
                        src_ip: None,
                    };
                    if state.try_send((&*socket).into(), &transmit).is_err() {
                        failed += (chunk.len() / FRAME_LEN) as u64;
                    }
                }
                failed
            }
            Link::Tcp(stream) => match stream.write_all(frames) {
                Ok(()) => 0,
                Err(_) => packets,
            },
        }
    }
}

/// The node process and its pipes.
struct NodeProcess {
    child: Child,
    stdin: ChildStdin,
    stdout: BufReader<ChildStdout>,
}

impl NodeProcess {
    fn spawn(dir: &Path) -> Result<(NodeProcess, Ready)> {
        let exe = std::env::current_exe().context("locating this executable")?;
        let mut child = Command::new(exe)
            .arg("--node-child")
            .arg(dir)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .context("starting the node process")?;
        let stdin = child.stdin.take().ok_or_else(|| anyhow!("no stdin"))?;
        let stdout = BufReader::new(child.stdout.take().ok_or_else(|| anyhow!("no stdout"))?);
        let mut node = NodeProcess {
            child,
            stdin,
            stdout,
        };
        let ready: Ready = node.read_line().context("the node process did not start")?;
        Ok((node, ready))
    }

    fn read_line<T: for<'de> Deserialize<'de>>(&mut self) -> Result<T> {
        let mut line = String::new();
        if self.stdout.read_line(&mut line)? == 0 {
            bail!("the node process exited");
        }
        Ok(serde_json::from_str(&line)?)
    }

    fn request(&mut self, command: &str) -> Result<NodeSnapshot> {
        writeln!(self.stdin, "{command}")?;
        self.stdin.flush()?;
        self.read_line()
    }

    /// Asks the node to stop; returns its last snapshot. Waits up to 30 s
    /// for a graceful exit, then kills it.
    fn stop(mut self) -> Result<NodeSnapshot> {
        let last = self.request("stop");
        drop(self.stdin);
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if self.child.try_wait()?.is_some() {
                break;
            }
            if Instant::now() > deadline {
                eprintln!("node process did not exit; killing it");
                let _ = self.child.kill();
                let _ = self.child.wait();
                break;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        last
    }
}

#[derive(Serialize, Debug)]
struct Report {
    build: String,
    cpu: String,
    cores: usize,
    workers: usize,
    batch_size: usize,
    pool_size: usize,
    max_queue_depth: usize,
    max_dwell_ms: u64,
    transport: Transport,
    /// Frames travelled in member link sessions (`transport.links`), the
    /// generator's and the node's own hops alike.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    links: bool,
    mean_delay_ms: f64,
    hops: usize,
    /// `--overload`: unwraps/s under overload over unwraps/s flat out.
    #[serde(skip_serializing_if = "Option::is_none")]
    overload_goodput_ratio: Option<f64>,
    /// `--overload`: the same ratio of `throughput.work_cores`, i.e. with
    /// the hop mix factored out (shedding leaves fewer packets reaching
    /// their cheaper final hop, so an unwrap costs more under overload).
    #[serde(skip_serializing_if = "Option::is_none")]
    overload_work_ratio: Option<f64>,
    /// `--overload`: offered work as a multiple of the crypto bound.
    #[serde(skip_serializing_if = "Option::is_none")]
    overload_factor: Option<f64>,
    /// 99th percentile of arrival-to-unwrap in the (last) load phase, ms.
    dwell_p99_ms: f64,
    /// The load phase (with `--overload`, the overload phase).
    #[serde(flatten)]
    run: PhaseReport,
    /// `--overload`: the flat-out phase run first, on the same node.
    #[serde(skip_serializing_if = "Option::is_none")]
    flat_out: Option<PhaseReport>,
    engine: EngineReport,
    generation: GenerationReport,
    /// Over the node's whole life (every phase).
    pool_hit_rate: f64,
    memory: MemoryReport,
    targets: Vec<TargetRow>,
}

/// One load phase: what was offered and what the node did with it.
#[derive(Serialize, Debug)]
struct PhaseReport {
    mode: String,
    /// Offered arrivals per second at the node (fixed rate only), every
    /// hop counted: the work offered, as a rate of unwraps.
    offered_pps: Option<f64>,
    window: Option<usize>,
    load: LoadReport,
    throughput: ThroughputReport,
    latency: LatencyReport,
    /// 99th percentile of arrival-to-unwrap, ms.
    dwell_p99_ms: f64,
    drops: DropReport,
    /// CPU cores used during the load phase, by whom.
    cpu_cores_used: BTreeMap<String, f64>,
    /// 1-minute load average at the start and end of the load phase.
    loadavg: [f64; 2],
}

#[derive(Serialize, Debug)]
struct GenerationReport {
    packets: usize,
    unwraps: usize,
    bytes: usize,
    threads: usize,
    secs: f64,
}

#[derive(Serialize, Debug)]
struct LoadReport {
    secs: f64,
    injected: u64,
    ended_early: bool,
}

#[derive(Serialize, Debug)]
struct ThroughputReport {
    /// Unwraps accepted per second during the load phase.
    processed_pps: f64,
    forwarded_pps: f64,
    delivered_pps: f64,
    /// `processed_pps / engine.bound_pps`.
    ratio_to_bound: f64,
    /// Unwraps per second per core the node process used, over the
    /// engine's single-core rate: how much of its CPU the node spends on
    /// the crypto itself.
    node_cpu_efficiency: f64,
    /// Unwrap work done per second, in engine cores: forwarded hops at the
    /// engine's relay rate plus delivered ones at its final rate.
    work_cores: f64,
}

#[derive(Serialize, Debug)]
struct LatencyReport {
    /// Arrival to ready-to-send at the node, mixing delay excluded.
    p50_us: f64,
    p99_us: f64,
    p999_us: f64,
    mean_us: f64,
    /// Arrival to the start of unwrap (time queued), unwrapped packets.
    dwell_p50_us: f64,
    dwell_p99_us: f64,
    dwell_p999_us: f64,
    /// Generator → node × hops → generator (includes mixing delays).
    round_trip_p50_us: f64,
    round_trip_p99_us: f64,
}

#[derive(Serialize, Debug)]
struct DropReport {
    /// Lost packets over hop arrivals (every loss, wherever it happened).
    drop_rate: f64,
    hop_arrivals: u64,
    lost_packets: u64,
    late_packets: u64,
    node_drops: BTreeMap<String, u64>,
    /// System-wide `Udp: RcvbufErrors` delta over the phase.
    kernel_udp_rcvbuf_errors: u64,
}

#[derive(Serialize, Debug)]
struct MemoryReport {
    node_peak_rss_bytes: u64,
    node_rss_end_bytes: u64,
    replay_entries: usize,
    generator_peak_rss_bytes: u64,
}

#[derive(Serialize, Debug)]
struct TargetRow {
    name: String,
    required: String,
    measured: String,
    pass: bool,
}

fn driver(args: &Args) -> Result<()> {
    if !(args.duration > 0.0 && args.duration <= 3600.0) {
        bail!("--duration must be in (0, 3600] seconds");
    }
    if !(1..=MAX_HOPS).contains(&args.hops) {
        bail!("--hops must be 1 to {MAX_HOPS}");
    }
    if args.rate.is_some_and(|r| !(r > 0.0 && r.is_finite())) {
        bail!("--rate must be a positive number");
    }
    if args.load.is_some_and(|l| !(l > 0.0 && l.is_finite())) {
        bail!("--load must be a positive fraction");
    }
    if args.overload.is_some_and(|f| !(f > 0.0 && f.is_finite())) {
        bail!("--overload must be a positive factor");
    }

    // The node's configuration, by the node's rules, then what the
    // benchmark itself must set.
    let mut config = args.config.load()?;
    config.node.role = NodeRole::Exit;
    config.node.listen_addr = [127, 0, 0, 1].into();
    config.node.port = 0;
    config.node.advertise_addr = None;
    config.node.http_addr = SocketAddr::from(([127, 0, 0, 1], 0));
    config.transport.udp = true;
    config.transport.tcp = true;
    config.transport.egress = match args.transport {
        Transport::Udp => EgressProtocol::Udp,
        Transport::Tcp => EgressProtocol::Tcp,
    };
    config.cover_traffic.enabled = false;
    // One generator blasts from one address: lift both per-source budgets
    // (it is a member on loopback, a stranger elsewhere).
    config.rate_limit.per_source_pps = config.rate_limit.per_source_pps.max(1e9);
    config.rate_limit.burst = config.rate_limit.burst.max(1_000_000);
    config.rate_limit.member_pps = config.rate_limit.member_pps.max(1e9);
    config.rate_limit.member_burst = config.rate_limit.member_burst.max(1_000_000);
    if args.no_delay {
        config.mixing.mean_delay_ms = 0.0;
        config.vrf.delay_variance_ms = None;
    }
    if let Some(target) = args.target {
        config.performance.target_throughput_pps = target;
    }
    config.validate()?;

    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let workers = config.effective_workers();
    let say = |msg: String| eprintln!("[pipeline_benchmark] {msg}");

    // 1. The engine, alone, on this thread.
    say(format!(
        "measuring the engine: unwrap_batch x{ENGINE_BATCH}, one thread, {:.1} s",
        args.engine_secs
    ));
    let (busy_before, own_before, engine_start) =
        (system_busy_ticks(), self_ticks(), Instant::now());
    let (single, relay, fin, rounds) = measure_engine(args.hops, args.engine_secs)?;
    // CPU the rest of the machine used meanwhile (cores): the noise.
    let engine_noise = system_busy_ticks()
        .saturating_sub(busy_before)
        .saturating_sub(self_ticks().saturating_sub(own_before)) as f64
        / 100.0
        / engine_start.elapsed().as_secs_f64();
    let parallelism = workers.min(cores);
    let engine = EngineReport {
        batch: ENGINE_BATCH,
        hops: args.hops,
        single_core_pps: single,
        relay_pps: relay,
        final_pps: fin,
        rounds,
        parallelism,
        bound_pps: single * parallelism as f64,
        noise_cores: engine_noise,
    };
    say(format!(
        "engine: {single:.0} unwraps/s on one core; crypto bound {:.0}/s (x{parallelism})",
        engine.bound_pps
    ));

    if !args.links {
        // Without --links the node runs as before links: plaintext frames
        // over `--transport`, in and between hops.
        config.transport.links = false;
        let (report, _) = run_node(args, &config, &engine, &say)?;
        if args.json {
            println!("{}", serde_json::to_string_pretty(&report)?);
        } else {
            print_report(&report);
        }
        return Ok(());
    }

    // --links: the same load on two fresh nodes, links off then on.
    say("run 1 of 2: transport.links = false (plaintext frames)".into());
    config.transport.links = false;
    let (baseline, _) = run_node(args, &config, &engine, &say)?;
    say("run 2 of 2: transport.links = true (member link sessions)".into());
    config.transport.links = true;
    let (links, generator) = run_node(args, &config, &engine, &say)?;
    let generator = generator.ok_or_else(|| anyhow!("the links run opened no session"))?;
    let report = LinksReport::new(baseline, links, generator);
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        print_links_report(&report);
    }
    Ok(())
}

/// One load run on a fresh node process: start it, build the packets (and,
/// with links on, open the generator's member session and seal them), offer
/// the load, and report. Returns the generator's link costs with links on.
fn run_node(
    args: &Args,
    config: &Config,
    engine: &EngineReport,
    say: &dyn Fn(String),
) -> Result<(Report, Option<LinkGeneratorReport>)> {
    config.validate()?;
    let links = config.transport.links;
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let workers = config.effective_workers();

    // 2. The node, in its own process.
    let dir = tempfile::Builder::new()
        .prefix("betanet-pipeline-benchmark-")
        .tempdir()?;
    fs::write(dir.path().join("node.toml"), config.to_toml_string())?;
    let (mut node, ready) = NodeProcess::spawn(dir.path())?;
    say(format!(
        "node pid {} on udp {} tcp {}, {} workers",
        ready.pid, ready.udp, ready.tcp, ready.workers
    ));
    let hop = PathHop {
        id: ready.id.parse().map_err(|e| anyhow!("node id: {e:?}"))?,
        public_key: ready
            .public_key
            .parse::<SphinxPublicKey>()
            .map_err(|e| anyhow!("node key: {e:?}"))?,
    };
    // With links on, the generator is the placeholder Middle node: a
    // member, so the exit node takes its session's frames.
    let member = if links {
        let member = MemberLink::open(dir.path(), config, ready.tcp)?;
        say(format!(
            "member session open: {} to the node's link key of epoch {} in {:.2} ms",
            LinkPattern::Member.protocol_name(),
            member.key_epoch,
            member.handshake.as_secs_f64() * 1e3
        ));
        Some(member)
    } else {
        None
    };

    // 3. The phases (one, or flat out then overload), how much load each
    //    offers, and how many packets that takes.
    let flat_out = || {
        // Enough in flight to keep every worker's batch full, plus what
        // the mixing delay holds at the bound (Little's law).
        let window = args
            .window
            .unwrap_or_else(|| {
                let lo = 2 * config.pipeline.batch_size * workers;
                let held = engine.bound_pps * config.mixing.mean_delay_ms / 1e3 * 1.25;
                let hi = (config.pipeline.max_queue_depth / 2).max(1);
                ((config.pipeline.pool_size / 2).max(lo) + held as usize).min(hi)
            })
            .max(1);
        let n = (engine.bound_pps * args.duration * FLAT_OUT_MARGIN / args.hops as f64).ceil()
            as usize
            + window;
        (Mode::FlatOut { window }, n)
    };
    let fixed = |arrivals: f64, tick: Duration| {
        let inject_pps = arrivals / args.hops as f64;
        let n = (inject_pps * args.duration).ceil() as usize + 16;
        (Mode::Fixed { inject_pps, tick }, n)
    };
    let plan: Vec<(Mode, usize)> = match (args.overload, args.rate) {
        (Some(factor), _) => vec![flat_out(), fixed(factor * engine.bound_pps, OVERLOAD_TICK)],
        (None, Some(arrivals)) => vec![fixed(arrivals, FIXED_TICK)],
        (None, None) => match args.load {
            Some(load) => vec![fixed(load * engine.bound_pps, FIXED_TICK)],
            None => vec![flat_out()],
        },
    };
    let packets: usize = plan.iter().map(|(_, n)| n).sum();
    let bytes = packets * FRAME_LEN;
    // With links the frames and their records are both held for a moment.
    let held = if links { 2 * bytes } else { bytes };
    let available = fs::read_to_string("/proc/meminfo")
        .map(|m| status_kib(&m, "MemAvailable:") * 1024)
        .unwrap_or(u64::MAX);
    if held as u64 > available / 2 {
        bail!(
            "{packets} packets need {} MiB, more than half the available memory; \
             shorten --duration or lower --rate",
            held >> 20
        );
    }

    // 4. Deliveries come back to this socket; build every packet now.
    let socket = UdpSocket::bind("127.0.0.1:0")?;
    // quinn-udp turns on GRO (the node sends deliveries for this socket in
    // GSO batches, which then arrive as one buffer) and sets a bigger
    // receive buffer so bursts are not lost here. It may also make the
    // socket non-blocking, which the receiver thread does not want.
    let rx_state = quinn_udp::UdpSocketState::new((&socket).into())?;
    let _ = rx_state.set_recv_buffer_size((&socket).into(), 8 << 20);
    socket.set_nonblocking(false)?;
    let back = socket.local_addr()?;
    say(format!(
        "building {packets} distinct {}-hop packets ({} MiB) on {cores} threads",
        args.hops,
        bytes >> 20
    ));
    let gen_start = Instant::now();
    let store = generate(packets, hop, args.hops, back, cores)?;
    let generation = GenerationReport {
        packets,
        unwraps: packets * args.hops,
        bytes,
        threads: cores,
        secs: gen_start.elapsed().as_secs_f64(),
    };
    say(format!("built in {:.1} s", generation.secs));

    // 4b. With links, seal every frame into its record now, in send order,
    //     so sealing costs the load phase nothing (and is measured alone).
    let (wire, link, link_report) = match member {
        Some(member) => {
            let MemberLink {
                stream,
                mut session,
                key_epoch,
                handshake,
            } = member;
            let (wire, sealing) = Wire::sealed(store, &mut session.sealer)?;
            say(format!(
                "sealed {} records in {:.2} s: {:.0} ns per record (thread CPU), {:.0} MB/s",
                sealing.records, sealing.wall_secs, sealing.cpu_ns_per_record, sealing.cpu_mb_per_s
            ));
            let report = LinkGeneratorReport {
                protocol: LinkPattern::Member.protocol_name(),
                key_epoch,
                handshake_ms: handshake.as_secs_f64() * 1e3,
                record_len: RECORD_LEN,
                sealing,
            };
            (wire, Link::Tcp(stream), Some(report))
        }
        None => (
            Wire::plain(store),
            plain_link(args.transport, &socket, &ready)?,
            None,
        ),
    };

    // 5. Load, phase by phase.
    let max_delay = if config.mixing.mean_delay_ms > 0.0 {
        Duration::from_secs_f64(config.mixing.max_delay_ms / 1e3)
    } else {
        Duration::ZERO
    };
    let tracker = Arc::new(Tracker {
        state: (0..packets).map(|_| AtomicU64::new(0)).collect(),
        rtt_ns: (0..packets).map(|_| AtomicU64::new(0)).collect(),
        delivered: AtomicU64::new(0),
        late: AtomicU64::new(0),
        lost: AtomicU64::new(0),
        t0: Instant::now(),
    });
    let stop_rx = Arc::new(AtomicBool::new(false));
    let receiver = {
        let tracker = Arc::clone(&tracker);
        let stop = Arc::clone(&stop_rx);
        let socket = socket.try_clone()?;
        socket.set_read_timeout(Some(Duration::from_millis(20)))?;
        std::thread::Builder::new()
            .name("bench-rx".into())
            .spawn(move || receive(&socket, &rx_state, &tracker, &stop))?
    };
    let mut load = LoadRun {
        node: &mut node,
        link,
        wire: &wire,
        tracker: &tracker,
        duration: Duration::from_secs_f64(args.duration),
        loss_timeout: LOSS_TIMEOUT + max_delay * args.hops as u32,
    };
    let mut phases = Vec::new();
    let mut first = 0;
    for (i, (mode, n)) in plan.iter().enumerate() {
        if plan.len() > 1 {
            say(format!(
                "phase {} of {}: {}",
                i + 1,
                plan.len(),
                mode.describe()
            ));
        }
        phases.push(load.phase(*mode, first..first + n, &say)?);
        first += n;
    }
    stop_rx.store(true, Ordering::Relaxed);
    receiver.join().map_err(|_| anyhow!("receiver panicked"))?;
    drop(load);
    let last = node.stop()?;
    let generator_status = fs::read_to_string("/proc/self/status").unwrap_or_default();
    drop(wire);

    // 6. Report: the last phase at the top level; with --overload, the
    //    flat-out phase beside it and the ratio of the two.
    let mut reports: Vec<PhaseReport> = phases
        .iter()
        .map(|p| p.report(engine, &tracker, args.hops))
        .collect();
    let run = reports.pop().ok_or_else(|| anyhow!("no load phase ran"))?;
    let flat_out = reports.pop();
    let overload_goodput_ratio = flat_out
        .as_ref()
        .map(|f| run.throughput.processed_pps / f.throughput.processed_pps.max(1e-9));
    let overload_work_ratio = flat_out
        .as_ref()
        .map(|f| run.throughput.work_cores / f.throughput.work_cores.max(1e-9));
    let report = Report {
        build: if cfg!(target_feature = "avx512ifma") {
            "native (AVX-512 IFMA)".into()
        } else {
            "portable".into()
        },
        cpu: cpu_model(),
        cores,
        workers,
        batch_size: config.pipeline.batch_size,
        pool_size: config.pipeline.pool_size,
        max_queue_depth: config.pipeline.max_queue_depth,
        max_dwell_ms: config.pipeline.max_dwell_ms,
        transport: if links {
            Transport::Tcp
        } else {
            args.transport
        },
        links,
        mean_delay_ms: config.mixing.mean_delay_ms,
        hops: args.hops,
        overload_goodput_ratio,
        overload_work_ratio,
        overload_factor: args.overload,
        dwell_p99_ms: run.dwell_p99_ms,
        run,
        flat_out,
        engine: engine.clone(),
        generation,
        pool_hit_rate: last.pool_hit_rate,
        memory: MemoryReport {
            node_peak_rss_bytes: last.peak_rss_bytes,
            node_rss_end_bytes: last.rss_bytes,
            replay_entries: last.replay_entries,
            generator_peak_rss_bytes: status_kib(&generator_status, "VmHWM:") * 1024,
        },
        targets: Vec::new(),
    };
    let report = Report {
        targets: targets(&report, config),
        ..report
    };
    Ok((report, link_report))
}

/// The plaintext link of `transport` to the node: GSO batches from the
/// delivery socket's twin (UDP), or a TCP connection.
fn plain_link(transport: Transport, socket: &UdpSocket, ready: &Ready) -> Result<Link> {
    Ok(match transport {
        Transport::Udp => {
            let socket = socket.try_clone()?;
            let state = quinn_udp::UdpSocketState::new((&socket).into())?;
            socket.set_nonblocking(false)?;
            Link::Udp {
                socket,
                state,
                to: ready.udp,
            }
        }
        Transport::Tcp => {
            let stream = TcpStream::connect(ready.tcp)?;
            stream.set_nodelay(true)?;
            Link::Tcp(stream)
        }
    })
}

/// How long the generator waits on the node during its handshake.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(30);

/// The generator's session to the node, opened as the placeholder Middle
/// node (a topology member): `hybridIK` with the Middle's link key, derived
/// from its Sphinx secret key like any node's.
struct MemberLink {
    stream: TcpStream,
    session: Session,
    /// The node's link key epoch the session was opened to.
    key_epoch: u64,
    /// Connect to session (the node's answer included).
    handshake: Duration,
}

impl MemberLink {
    /// Reads the node's and the Middle's descriptors and the Middle's
    /// Sphinx key under `dir`, connects to `to` and runs the handshake.
    fn open(dir: &Path, config: &Config, to: SocketAddr) -> Result<MemberLink> {
        let epoch = KeySchedule::new(config.sphinx.key_epoch_seconds, 0)
            .epoch_at(betanet::clock::unix_now());
        let exit_path = dir.join("exit").join("keys").join(DESCRIPTOR_FILE);
        let exit = NodeDescriptor::load(&exit_path)
            .with_context(|| format!("reading the node's descriptor {}", exit_path.display()))?;
        let exit_key = exit
            .link_key_for_epoch(epoch)
            .ok_or_else(|| anyhow!("the node's descriptor publishes no link key"))?;
        let middle_dir = dir.join(NodeRole::Middle.as_str()).join("keys");
        let middle = NodeDescriptor::load(&middle_dir.join(DESCRIPTOR_FILE))
            .context("reading the Middle node's descriptor")?;
        let published = middle
            .link_key_for_epoch(epoch)
            .ok_or_else(|| anyhow!("the Middle node's descriptor publishes no link key"))?;
        let secrets = SphinxKeyStore::open(&middle_dir)?.load_all()?;
        let secret = secrets.get(&published.epoch).ok_or_else(|| {
            anyhow!(
                "the Middle node's Sphinx key of epoch {} is not in {}",
                published.epoch,
                middle_dir.display()
            )
        })?;
        let own = LinkKeyPair::derive(&zeroize::Zeroizing::new(secret.to_bytes()));
        if own.public() != &published.public_key {
            bail!(
                "the link key derived from the Middle node's Sphinx key is not the one it publishes"
            );
        }
        let started = Instant::now();
        let mut stream = TcpStream::connect(to)?;
        stream.set_nodelay(true)?;
        stream.set_read_timeout(Some(HANDSHAKE_TIMEOUT))?;
        stream.set_write_timeout(Some(HANDSHAKE_TIMEOUT))?;
        let session = betanet::link::blocking::open_session(
            &mut stream,
            Some(&own),
            &exit_key.public_key,
            exit_key.epoch,
        )
        .context("the member handshake with the node failed")?;
        let handshake = started.elapsed();
        stream.set_read_timeout(None)?;
        stream.set_write_timeout(None)?;
        Ok(MemberLink {
            stream,
            session,
            key_epoch: exit_key.epoch,
            handshake,
        })
    }
}

/// What the generator sends, packet by packet: frames back to back, or
/// each frame's link record (after a rekey record when one was due).
struct Wire {
    bytes: Vec<u8>,
    /// Where packet `i`'s bytes start; one entry more than packets.
    offsets: Vec<usize>,
}

impl Wire {
    /// Plaintext frames.
    fn plain(store: Vec<u8>) -> Wire {
        let offsets = (0..=store.len() / FRAME_LEN)
            .map(|i| i * FRAME_LEN)
            .collect();
        Wire {
            bytes: store,
            offsets,
        }
    }

    /// Every frame of `store` sealed by `sealer`, in order (records must
    /// travel in the order they were sealed, and packets are sent in
    /// sequence order). The frames are freed.
    fn sealed(store: Vec<u8>, sealer: &mut Sealer) -> Result<(Wire, SealingReport)> {
        let frames = store.len() / FRAME_LEN;
        let mut bytes = Vec::with_capacity((frames + 4) * RECORD_LEN);
        let mut offsets = Vec::with_capacity(frames + 1);
        // One instant for all: they are sealed within a second or two, far
        // inside the session's rekey interval.
        let now = Instant::now();
        let (cpu_start, wall_start) = (thread_cpu_time(), Instant::now());
        for frame in store.chunks_exact(FRAME_LEN) {
            offsets.push(bytes.len());
            sealer
                .seal(now, frame, &mut bytes)
                .map_err(|_| anyhow!("the link session refused to seal a frame"))?;
        }
        let cpu = thread_cpu_time().saturating_sub(cpu_start);
        let wall = wall_start.elapsed();
        offsets.push(bytes.len());
        let per_record = |d: Duration| d.as_secs_f64() * 1e9 / frames.max(1) as f64;
        let report = SealingReport {
            records: frames,
            wall_secs: wall.as_secs_f64(),
            cpu_ns_per_record: per_record(cpu),
            wall_ns_per_record: per_record(wall),
            cpu_mb_per_s: (frames * FRAME_LEN) as f64 / cpu.as_secs_f64().max(1e-9) / 1e6,
        };
        Ok((Wire { bytes, offsets }, report))
    }

    /// The bytes of the packets of `range`.
    fn packets(&self, range: std::ops::Range<usize>) -> &[u8] {
        &self.bytes[self.offsets[range.start]..self.offsets[range.end]]
    }
}

/// This thread's CPU time.
fn thread_cpu_time() -> Duration {
    let now = rustix::time::clock_gettime(rustix::time::ClockId::ThreadCPUTime);
    Duration::new(now.tv_sec as u64, now.tv_nsec as u32)
}

/// The generator's side of its link session.
#[derive(Serialize, Debug)]
struct LinkGeneratorReport {
    /// The Noise protocol of the session.
    protocol: &'static str,
    /// The node's link key epoch it was opened to.
    key_epoch: u64,
    /// TCP connect to session established, both sides' crypto included.
    handshake_ms: f64,
    /// Bytes of one record on the wire (a frame is `FRAME_LEN`).
    record_len: usize,
    sealing: SealingReport,
}

/// Sealing every frame into its record, on one thread, before timing.
#[derive(Serialize, Debug)]
struct SealingReport {
    records: usize,
    wall_secs: f64,
    /// Thread CPU time per record (ChaCha20-Poly1305 of one frame, plus
    /// the copy into the record).
    cpu_ns_per_record: f64,
    wall_ns_per_record: f64,
    /// Frame bytes sealed per CPU-second.
    cpu_mb_per_s: f64,
}

/// `--links`: the same load without and with links, each on its own node.
#[derive(Serialize, Debug)]
struct LinksReport {
    /// Unwraps/s with links over unwraps/s without (the load phase; with
    /// `--overload`, its last phase).
    links_throughput_ratio: f64,
    /// Unwraps per node CPU-second with links over without: what links
    /// cost the node per frame, whether or not the cores were full.
    links_node_efficiency_ratio: f64,
    /// Node CPU (cores) with links minus without, during the load phase.
    links_node_extra_cores: f64,
    /// Node CPU per unwrap without links, split: where link cost goes.
    baseline_cpu_per_unwrap: CpuPerUnwrap,
    /// Node CPU per unwrap with links (the records are opened and sealed
    /// on the I/O thread, so the difference shows in `rest_of_node_us`).
    links_cpu_per_unwrap: CpuPerUnwrap,
    /// Links off: plaintext frames over `transport`.
    baseline: Report,
    /// Links on: the generator's and the node's own frames in sessions.
    links: Report,
    /// The generator's session: handshake and sealing cost.
    link_generator: LinkGeneratorReport,
    targets: Vec<TargetRow>,
}

/// Node CPU time per unwrap in the load phase, µs.
#[derive(Serialize, Debug)]
struct CpuPerUnwrap {
    /// The crypto workers (unwrapping, mixing, handing to egress).
    crypto_workers_us: f64,
    /// Every other thread: receiving, the I/O thread (TCP, link records),
    /// egress.
    rest_of_node_us: f64,
}

impl CpuPerUnwrap {
    fn of(r: &Report) -> Self {
        let cores = |name: &str| r.run.cpu_cores_used.get(name).copied().unwrap_or(0.0);
        let per = 1e6 / r.run.throughput.processed_pps.max(1e-9);
        let crypto = cores("node:betanet-crypto-");
        CpuPerUnwrap {
            crypto_workers_us: crypto * per,
            rest_of_node_us: (cores("node (all threads)") - crypto) * per,
        }
    }
}

impl LinksReport {
    fn new(baseline: Report, links: Report, link_generator: LinkGeneratorReport) -> Self {
        let (b, l) = (&baseline.run.throughput, &links.run.throughput);
        let ratio = l.processed_pps / b.processed_pps.max(1e-9);
        let node_cores = |r: &Report| {
            r.run
                .cpu_cores_used
                .get("node (all threads)")
                .copied()
                .unwrap_or(0.0)
        };
        LinksReport {
            links_throughput_ratio: ratio,
            links_node_efficiency_ratio: l.node_cpu_efficiency / b.node_cpu_efficiency.max(1e-9),
            links_node_extra_cores: node_cores(&links) - node_cores(&baseline),
            baseline_cpu_per_unwrap: CpuPerUnwrap::of(&baseline),
            links_cpu_per_unwrap: CpuPerUnwrap::of(&links),
            targets: vec![TargetRow {
                name: "links throughput".into(),
                required: format!(">= {:.0}% of links off", MIN_LINKS_RATIO * 100.0),
                measured: format!("{:.1}%", ratio * 100.0),
                pass: ratio >= MIN_LINKS_RATIO,
            }],
            baseline,
            links,
            link_generator,
        }
    }
}

fn print_links_report(r: &LinksReport) {
    println!("=== run 1 of 2: links off (transport.links = false) ===");
    print_report(&r.baseline);
    println!();
    println!("=== run 2 of 2: links on (transport.links = true) ===");
    print_report(&r.links);
    let g = &r.link_generator;
    println!();
    println!("=== links on vs off ===");
    println!(
        "generator     {} to key epoch {}: handshake {:.2} ms; sealed {} records of {} bytes at {:.0} ns each (thread CPU; {:.0} ns wall), {:.0} MB/s",
        g.protocol,
        g.key_epoch,
        g.handshake_ms,
        g.sealing.records,
        g.record_len,
        g.sealing.cpu_ns_per_record,
        g.sealing.wall_ns_per_record,
        g.sealing.cpu_mb_per_s
    );
    println!(
        "throughput    {:.0} unwrapped/s with links, {:.0} without: ratio {:.3}",
        r.links.run.throughput.processed_pps,
        r.baseline.run.throughput.processed_pps,
        r.links_throughput_ratio
    );
    println!(
        "node CPU      {:.1}% efficient with links, {:.1}% without (ratio {:.3}); {:+.2} cores with links",
        r.links.run.throughput.node_cpu_efficiency * 100.0,
        r.baseline.run.throughput.node_cpu_efficiency * 100.0,
        r.links_node_efficiency_ratio,
        r.links_node_extra_cores
    );
    let (b, l) = (&r.baseline_cpu_per_unwrap, &r.links_cpu_per_unwrap);
    println!(
        "per unwrap    crypto workers {:.1} us with links, {:.1} without; rest of the node (I/O, records, egress) {:.1} us with links, {:.1} without",
        l.crypto_workers_us, b.crypto_workers_us, l.rest_of_node_us, b.rest_of_node_us
    );
    for t in &r.targets {
        println!(
            "  {:<18} {:>20} {:>16}  {}",
            t.name,
            t.required,
            t.measured,
            if t.pass { "PASS" } else { "FAIL" }
        );
    }
}

/// What the load phases share: the node, the link to it, the pre-built
/// packets and their tracker.
struct LoadRun<'a> {
    node: &'a mut NodeProcess,
    link: Link,
    wire: &'a Wire,
    tracker: &'a Tracker,
    duration: Duration,
    loss_timeout: Duration,
}

/// One load phase as measured: the node's counters at its start, at the
/// end of the load and after the drain, and the machine's CPU meanwhile.
struct Phase {
    mode: Mode,
    /// The packets (sequence numbers) this phase owns.
    range: std::ops::Range<usize>,
    sent: usize,
    load_secs: f64,
    ended_early: bool,
    send_errors: u64,
    udp_errors: u64,
    at_start: NodeSnapshot,
    at_end: NodeSnapshot,
    drained: NodeSnapshot,
    self_ticks: u64,
    system_ticks: u64,
    loadavg: [f64; 2],
}

impl LoadRun<'_> {
    /// Offers `mode` load with the packets of `range` for the run's
    /// duration, then waits for every packet to come back or time out.
    fn phase(
        &mut self,
        mode: Mode,
        range: std::ops::Range<usize>,
        say: &dyn Fn(String),
    ) -> Result<Phase> {
        let tracker = self.tracker;
        let udp_errors_before = kernel_udp_rcvbuf_errors();
        // "mark" starts the node's latency and dwell window.
        let at_start = self.node.request("mark")?;
        let self_ticks_start = self_ticks();
        let system_start = system_busy_ticks();
        let loadavg_start = loadavg();
        say("load phase: started".into());
        let back_before = || {
            tracker.delivered.load(Ordering::Relaxed)
                + tracker.late.load(Ordering::Relaxed)
                + tracker.lost.load(Ordering::Relaxed)
        };
        // Packets of earlier phases that came back (all of them: each
        // phase drains before the next).
        let base = back_before() as usize;
        let t_start = Instant::now();
        let mut sent = range.start;
        let mut oldest = range.start;
        let mut send_errors = 0u64;
        let timeout_ns = nanos(self.loss_timeout);
        loop {
            let elapsed = t_start.elapsed();
            if elapsed >= self.duration || sent == range.end {
                break;
            }
            expire(tracker, &mut oldest, sent, timeout_ns);
            let allowed = match mode {
                Mode::FlatOut { window } => {
                    let back = back_before() as usize - base;
                    (range.start + back + window).min(range.end)
                }
                Mode::Fixed { inject_pps, .. } => {
                    (range.start + (elapsed.as_secs_f64() * inject_pps) as usize + 1).min(range.end)
                }
            };
            if sent < allowed {
                let now = tracker.now_ns() + 1;
                for slot in &tracker.state[sent..allowed] {
                    slot.store(now, Ordering::Relaxed);
                }
                send_errors += self
                    .link
                    .send(self.wire.packets(sent..allowed), (allowed - sent) as u64);
                sent = allowed;
            }
            // Flat out, the window has slack for a millisecond of returns; a
            // fixed rate is kept to its tick. Either way the generator takes
            // little CPU from the node.
            std::thread::sleep(match mode {
                Mode::FlatOut { .. } => Duration::from_millis(1),
                Mode::Fixed { tick, .. } => tick,
            });
        }
        let load_secs = t_start.elapsed().as_secs_f64();
        let at_end = self.node.request("stats")?;
        let self_ticks_end = self_ticks();
        let system_end = system_busy_ticks();
        let loadavg_end = loadavg();
        let injected = sent - range.start;
        let ended_early = sent == range.end && load_secs < self.duration.as_secs_f64() * 0.999;
        say(format!(
            "load phase: ended after {load_secs:.1} s, {injected} packets injected; draining"
        ));

        // Drain: wait for every packet to come back or time out.
        let drain_deadline = Instant::now() + self.loss_timeout + Duration::from_secs(1);
        loop {
            expire(tracker, &mut oldest, sent, timeout_ns);
            let back = back_before() as usize - base;
            if back >= injected || Instant::now() > drain_deadline {
                break;
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        // Anything still out is lost.
        expire(tracker, &mut oldest, sent, 0);
        let drained = self.node.request("stats")?;
        Ok(Phase {
            mode,
            sent: injected,
            range: range.start..sent,
            load_secs,
            ended_early,
            send_errors,
            udp_errors: kernel_udp_rcvbuf_errors().saturating_sub(udp_errors_before),
            at_start,
            at_end,
            drained,
            self_ticks: self_ticks_end.saturating_sub(self_ticks_start),
            system_ticks: system_end.saturating_sub(system_start),
            loadavg: [loadavg_start, loadavg_end],
        })
    }
}

impl Phase {
    fn report(&self, engine: &EngineReport, tracker: &Tracker, hops: usize) -> PhaseReport {
        let secs = self.load_secs.max(1e-9);
        let (start, end, drained) = (&self.at_start, &self.at_end, &self.drained);
        let delta = |f: fn(&NodeSnapshot) -> u64| f(end).saturating_sub(f(start)) as f64;
        let processed_pps = delta(|s| s.processed) / secs;
        // Per packet of this phase: delivered, came back late, or lost.
        let (mut delivered, mut late) = (0u64, 0u64);
        let mut round_trips = Vec::new();
        for seq in self.range.clone() {
            if tracker.state[seq].load(Ordering::Relaxed) != DONE {
                continue;
            }
            match tracker.rtt_ns[seq].load(Ordering::Relaxed) {
                0 => late += 1,
                rtt => {
                    delivered += 1;
                    round_trips.push(rtt - 1);
                }
            }
        }
        round_trips.sort_unstable();
        let lost_packets = (self.sent as u64).saturating_sub(delivered + late);
        let forwarded = drained.forwarded.saturating_sub(start.forwarded);
        let hop_arrivals = self.sent as u64 + forwarded;
        let mut node_drops: BTreeMap<String, u64> = drained
            .dropped
            .iter()
            .map(|(k, v)| {
                let before = start.dropped.get(k).copied().unwrap_or(0);
                (k.clone(), v.saturating_sub(before))
            })
            .filter(|(_, v)| *v > 0)
            .collect();
        if self.send_errors > 0 {
            node_drops.insert("generator_send_errors".into(), self.send_errors);
        }
        let mut cpu_cores_used = BTreeMap::new();
        let mut node_ticks = 0;
        for (name, ticks) in &end.thread_ticks {
            let before = start.thread_ticks.get(name).copied().unwrap_or(0);
            let used = ticks.saturating_sub(before);
            node_ticks += used;
            if used as f64 / 100.0 / secs >= 0.005 {
                cpu_cores_used.insert(format!("node:{name}"), used as f64 / 100.0 / secs);
            }
        }
        cpu_cores_used.insert(
            "node (all threads)".into(),
            node_ticks as f64 / 100.0 / secs,
        );
        cpu_cores_used.insert("generator".into(), self.self_ticks as f64 / 100.0 / secs);
        // Everything else the machine did meanwhile: other processes (the
        // noise) and softirq work not charged to a thread.
        cpu_cores_used.insert(
            "rest of the system".into(),
            self.system_ticks
                .saturating_sub(node_ticks + self.self_ticks) as f64
                / 100.0
                / secs,
        );
        let quantile = |q: f64| -> f64 {
            if round_trips.is_empty() {
                return 0.0;
            }
            let i = ((q * round_trips.len() as f64).ceil() as usize).clamp(1, round_trips.len());
            round_trips[i - 1] as f64 / 1e3
        };
        let us = |ns: u64| ns as f64 / 1e3;
        PhaseReport {
            mode: self.mode.describe(),
            offered_pps: match self.mode {
                Mode::Fixed { inject_pps, .. } => Some(inject_pps * hops as f64),
                Mode::FlatOut { .. } => None,
            },
            window: match self.mode {
                Mode::FlatOut { window } => Some(window),
                Mode::Fixed { .. } => None,
            },
            load: LoadReport {
                secs: self.load_secs,
                injected: self.sent as u64,
                ended_early: self.ended_early,
            },
            throughput: ThroughputReport {
                processed_pps,
                forwarded_pps: delta(|s| s.forwarded) / secs,
                delivered_pps: delta(|s| s.delivered) / secs,
                ratio_to_bound: processed_pps / engine.bound_pps,
                node_cpu_efficiency: processed_pps
                    / (node_ticks as f64 / 100.0 / secs).max(1e-9)
                    / engine.single_core_pps,
                work_cores: (delta(|s| s.forwarded) / engine.relay_pps
                    + delta(|s| s.delivered) / engine.final_pps)
                    / secs,
            },
            latency: LatencyReport {
                p50_us: us(drained.p50_ns),
                p99_us: us(drained.p99_ns),
                p999_us: us(drained.p999_ns),
                mean_us: us(drained.mean_ns),
                dwell_p50_us: us(drained.dwell_p50_ns),
                dwell_p99_us: us(drained.dwell_p99_ns),
                dwell_p999_us: us(drained.dwell_p999_ns),
                round_trip_p50_us: quantile(0.5),
                round_trip_p99_us: quantile(0.99),
            },
            dwell_p99_ms: drained.dwell_p99_ns as f64 / 1e6,
            drops: DropReport {
                drop_rate: if hop_arrivals > 0 {
                    lost_packets as f64 / hop_arrivals as f64
                } else {
                    0.0
                },
                hop_arrivals,
                lost_packets,
                late_packets: late,
                node_drops,
                kernel_udp_rcvbuf_errors: self.udp_errors,
            },
            cpu_cores_used,
            loadavg: self.loadavg,
        }
    }
}

/// Builds `n` distinct packets, `hops` times through `hop`, each DELIVERing
/// its sequence number to `back`; one thread per core.
fn generate(
    n: usize,
    hop: PathHop,
    hops: usize,
    back: SocketAddr,
    threads: usize,
) -> Result<Vec<u8>> {
    let mut store = vec![0u8; n * FRAME_LEN];
    let per_thread = n.div_ceil(threads.max(1)).max(1);
    let path = vec![hop; hops];
    std::thread::scope(|scope| {
        let handles: Vec<_> = store
            .chunks_mut(per_thread * FRAME_LEN)
            .enumerate()
            .map(|(t, chunk)| {
                let path = &path;
                scope.spawn(move || -> Result<()> {
                    let mut rng = rand::rng();
                    for (i, slot) in chunk.chunks_mut(FRAME_LEN).enumerate() {
                        let seq = (t * per_thread + i) as u64;
                        let mut id = [0u8; 16];
                        id[..8].copy_from_slice(&seq.to_le_bytes());
                        let command = FinalCommand::Deliver {
                            destination: back,
                            message_id: MessageId(id),
                        };
                        let packet = create_packet(path, command, &seq.to_le_bytes(), &mut rng)?;
                        slot.copy_from_slice(&packet.frame[..]);
                    }
                    Ok(())
                })
            })
            .collect();
        for h in handles {
            h.join()
                .map_err(|_| anyhow!("generator thread panicked"))??;
        }
        Ok::<(), anyhow::Error>(())
    })?;
    Ok(store)
}

/// Receives deliveries (8-byte sequence numbers) until `stop`, noting each
/// packet's round-trip time in the tracker. One receive call takes a whole GRO burst
/// (datagrams `stride` bytes apart), so the generator's CPU stays small.
fn receive(
    socket: &UdpSocket,
    state: &quinn_udp::UdpSocketState,
    tracker: &Tracker,
    stop: &AtomicBool,
) {
    let mut buf = vec![0u8; 64 * 1024];
    let mut meta = [quinn_udp::RecvMeta::default()];
    while !stop.load(Ordering::Relaxed) {
        // A single slot: recvmmsg on a blocking socket returns as soon as
        // that slot is filled (or the read timeout passes).
        let mut bufs = [std::io::IoSliceMut::new(&mut buf)];
        let Ok(1) = state.recv(socket.into(), &mut bufs, &mut meta) else {
            continue;
        };
        let now = tracker.now_ns();
        let len = meta[0].len.min(buf.len());
        for datagram in buf[..len].chunks(meta[0].stride.max(1)) {
            let Some(seq) = datagram
                .try_into()
                .ok()
                .map(|b: [u8; 8]| u64::from_le_bytes(b) as usize)
            else {
                continue;
            };
            let Some(slot) = tracker.state.get(seq) else {
                continue;
            };
            match slot.swap(DONE, Ordering::Relaxed) {
                0 | DONE => {} // Never sent, or a duplicate: cannot happen.
                LOST => {
                    tracker.late.fetch_add(1, Ordering::Relaxed);
                }
                sent => {
                    let rtt = now.saturating_sub(sent - 1);
                    tracker.rtt_ns[seq].store(rtt + 1, Ordering::Relaxed);
                    tracker.delivered.fetch_add(1, Ordering::Relaxed);
                }
            }
        }
    }
}

/// Marks packets older than `timeout_ns` (from the oldest outstanding on)
/// as lost.
fn expire(tracker: &Tracker, oldest: &mut usize, sent: usize, timeout_ns: u64) {
    let now = tracker.now_ns();
    while *oldest < sent {
        let slot = &tracker.state[*oldest];
        let v = slot.load(Ordering::Relaxed);
        if v == DONE || v == LOST {
            *oldest += 1;
            continue;
        }
        if now.saturating_sub(v - 1) < timeout_ns {
            break;
        }
        if slot
            .compare_exchange(v, LOST, Ordering::Relaxed, Ordering::Relaxed)
            .is_ok()
        {
            tracker.lost.fetch_add(1, Ordering::Relaxed);
        }
        *oldest += 1;
    }
}

/// This process's CPU ticks (utime + stime).
fn self_ticks() -> u64 {
    fs::read_to_string("/proc/self/stat")
        .ok()
        .and_then(|s| parse_task_stat(&s))
        .map_or(0, |(_, t)| t)
}

/// System-wide UDP receive-buffer overflows (`/proc/net/snmp`).
fn kernel_udp_rcvbuf_errors() -> u64 {
    let Ok(snmp) = fs::read_to_string("/proc/net/snmp") else {
        return 0;
    };
    let lines: Vec<&str> = snmp.lines().filter(|l| l.starts_with("Udp:")).collect();
    let [names, values, ..] = lines.as_slice() else {
        return 0;
    };
    names
        .split_whitespace()
        .zip(values.split_whitespace())
        .find(|(n, _)| *n == "RcvbufErrors")
        .and_then(|(_, v)| v.parse().ok())
        .unwrap_or(0)
}

/// Non-idle CPU ticks of the whole machine (`/proc/stat`).
fn system_busy_ticks() -> u64 {
    let Ok(stat) = fs::read_to_string("/proc/stat") else {
        return 0;
    };
    let Some(line) = stat.lines().find(|l| l.starts_with("cpu ")) else {
        return 0;
    };
    let v: Vec<u64> = line
        .split_whitespace()
        .skip(1)
        .filter_map(|x| x.parse().ok())
        .collect();
    // user nice system idle iowait irq softirq steal (guest is in user).
    [0, 1, 2, 5, 6, 7].iter().filter_map(|&i| v.get(i)).sum()
}

fn loadavg() -> f64 {
    fs::read_to_string("/proc/loadavg")
        .ok()
        .and_then(|l| l.split_whitespace().next()?.parse().ok())
        .unwrap_or(0.0)
}

fn cpu_model() -> String {
    fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|c| {
            c.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split_once(':'))
                .map(|(_, v)| v.trim().to_owned())
        })
        .unwrap_or_else(|| "unknown".into())
}

/// The integration guide's PerformanceTargets (on the flat-out phase of an
/// `--overload` run: they describe normal operation), and with
/// `--overload` the issue's overload bars.
fn targets(r: &Report, config: &Config) -> Vec<TargetRow> {
    let target = config.performance.target_throughput_pps;
    let max_latency_ms = config.performance.max_avg_latency_ms;
    let normal = r.flat_out.as_ref().unwrap_or(&r.run);
    let mut rows = vec![
        TargetRow {
            name: "throughput".into(),
            required: format!(">= {target:.0} pkt/s"),
            measured: format!("{:.0} pkt/s", normal.throughput.processed_pps),
            pass: normal.throughput.processed_pps >= target,
        },
        TargetRow {
            name: "avg latency".into(),
            required: format!("<= {max_latency_ms} ms"),
            measured: format!("{:.3} ms", normal.latency.mean_us / 1e3),
            pass: normal.latency.mean_us / 1e3 <= max_latency_ms,
        },
        TargetRow {
            name: "pool hit rate".into(),
            required: format!(">= {:.0}%", MIN_POOL_HIT_RATE * 100.0),
            measured: format!("{:.1}%", r.pool_hit_rate * 100.0),
            pass: r.pool_hit_rate >= MIN_POOL_HIT_RATE,
        },
        TargetRow {
            name: "drop rate".into(),
            required: format!("<= {:.1}%", MAX_DROP_RATE * 100.0),
            measured: format!("{:.3}%", normal.drops.drop_rate * 100.0),
            pass: normal.drops.drop_rate <= MAX_DROP_RATE,
        },
    ];
    if let (Some(ratio), Some(flat)) = (r.overload_goodput_ratio, &r.flat_out) {
        rows.extend([
            TargetRow {
                name: "flat out".into(),
                required: format!(">= {:.0}% of bound", MIN_FLAT_OUT_RATIO * 100.0),
                measured: format!("{:.1}%", flat.throughput.ratio_to_bound * 100.0),
                pass: flat.throughput.ratio_to_bound >= MIN_FLAT_OUT_RATIO,
            },
            TargetRow {
                name: "overload goodput".into(),
                required: format!(">= {:.0}% of flat out", MIN_OVERLOAD_RATIO * 100.0),
                measured: format!("{:.1}%", ratio * 100.0),
                pass: ratio >= MIN_OVERLOAD_RATIO,
            },
            TargetRow {
                name: "overload dwell p99".into(),
                required: format!("<= {MAX_OVERLOAD_DWELL_P99_MS} ms"),
                measured: format!("{:.1} ms", r.dwell_p99_ms),
                pass: r.dwell_p99_ms <= MAX_OVERLOAD_DWELL_P99_MS,
            },
        ]);
    }
    rows
}

fn print_report(r: &Report) {
    let mib = |b: u64| b as f64 / (1u64 << 20) as f64;
    println!("betanet pipeline benchmark");
    println!(
        "  build {}, {} cores ({}), {} workers, batch {}, pool {}, queue {}, max dwell {} ms",
        r.build,
        r.cores,
        r.cpu,
        r.workers,
        r.batch_size,
        r.pool_size,
        r.max_queue_depth,
        r.max_dwell_ms
    );
    println!(
        "  transport {:?}{}, mean mixing delay {} ms, {} hops per packet (all through this node)",
        r.transport,
        if r.links {
            " in member link sessions (transport.links = true)"
        } else {
            ""
        },
        r.mean_delay_ms,
        r.hops
    );
    println!();
    println!(
        "engine        {:>9.0} unwraps/s on one core (unwrap_batch x{}, {}-hop mix; relay {:.0}/s, final {:.0}/s; {} rounds)",
        r.engine.single_core_pps,
        r.engine.batch,
        r.engine.hops,
        r.engine.relay_pps,
        r.engine.final_pps,
        r.engine.rounds
    );
    println!(
        "crypto bound  {:>9.0} unwraps/s (x{} = min(workers, cores)); rest of the system used {:.2} cores meanwhile",
        r.engine.bound_pps, r.engine.parallelism, r.engine.noise_cores
    );
    println!(
        "packets       {} distinct packets ({} unwraps, {:.0} MiB) built in {:.1} s on {} threads, before timing",
        r.generation.packets,
        r.generation.unwraps,
        mib(r.generation.bytes as u64),
        r.generation.secs,
        r.generation.threads
    );
    if let Some(flat) = &r.flat_out {
        print_phase("phase 1: flat out", flat, r.hops);
    }
    let title = match r.overload_factor {
        Some(f) => format!("phase 2: overload, {f}x the crypto bound offered"),
        None => "load phase".into(),
    };
    print_phase(&title, &r.run, r.hops);
    println!();
    if let (Some(ratio), Some(work)) = (r.overload_goodput_ratio, r.overload_work_ratio) {
        println!(
            "overload      goodput {:.1}% of flat out ({:.1}% with the hop mix factored out); dwell p99 {:.1} ms",
            ratio * 100.0,
            work * 100.0,
            r.dwell_p99_ms
        );
    }
    println!("pool hit rate {:.2}%", r.pool_hit_rate * 100.0);
    println!(
        "node memory   peak RSS {:.1} MiB (at end {:.1} MiB, {} replay tags); generator peak RSS {:.0} MiB",
        mib(r.memory.node_peak_rss_bytes),
        mib(r.memory.node_rss_end_bytes),
        r.memory.replay_entries,
        mib(r.memory.generator_peak_rss_bytes)
    );
    println!();
    println!("PerformanceTargets");
    println!(
        "  {:<18} {:>20} {:>16}  result",
        "target", "required", "measured"
    );
    for t in &r.targets {
        println!(
            "  {:<18} {:>20} {:>16}  {}",
            t.name,
            t.required,
            t.measured,
            if t.pass { "PASS" } else { "FAIL" }
        );
    }
}

fn print_phase(title: &str, p: &PhaseReport, hops: usize) {
    let offered = match (p.offered_pps, p.window) {
        (Some(pps), _) => format!("{pps:.0} arrivals/s offered"),
        (None, Some(w)) => format!("{w} packets in flight"),
        _ => String::new(),
    };
    println!();
    println!("{title}: {}, {offered}", p.mode);
    println!(
        "load          {:.1} s, {} packets injected{}",
        p.load.secs,
        p.load.injected,
        if p.load.ended_early {
            " (ended early: every pre-built packet was used)"
        } else {
            ""
        }
    );
    println!(
        "throughput    {:>9.0} unwrapped/s, {:.0} forwarded/s, {:.0} delivered/s = {:.1}% of the crypto bound",
        p.throughput.processed_pps,
        p.throughput.forwarded_pps,
        p.throughput.delivered_pps,
        p.throughput.ratio_to_bound * 100.0
    );
    println!(
        "node CPU      {:.1}% efficient: unwraps per node CPU-second over the engine's single-core rate; {:.2} engine cores of unwrap work",
        p.throughput.node_cpu_efficiency * 100.0,
        p.throughput.work_cores
    );
    println!(
        "latency       p50 {:.0} us, p99 {:.0} us, p99.9 {:.0} us, mean {:.0} us (arrival to ready-to-send, mixing delay excluded)",
        p.latency.p50_us, p.latency.p99_us, p.latency.p999_us, p.latency.mean_us
    );
    println!(
        "dwell         p50 {:.0} us, p99 {:.0} us, p99.9 {:.0} us (arrival to unwrap)",
        p.latency.dwell_p50_us, p.latency.dwell_p99_us, p.latency.dwell_p999_us
    );
    println!(
        "round trip    p50 {:.0} us, p99 {:.0} us (generator -> node x{hops} -> generator)",
        p.latency.round_trip_p50_us, p.latency.round_trip_p99_us
    );
    println!(
        "drops         {:.4}% of {} hop arrivals: {} packets lost ({} came back late); node counters {:?}; kernel UDP rcvbuf errors {}",
        p.drops.drop_rate * 100.0,
        p.drops.hop_arrivals,
        p.drops.lost_packets,
        p.drops.late_packets,
        p.drops.node_drops,
        p.drops.kernel_udp_rcvbuf_errors
    );
    let cpu: Vec<String> = p
        .cpu_cores_used
        .iter()
        .map(|(k, v)| format!("{k} {v:.2}"))
        .collect();
    println!("cpu (cores)   {}", cpu.join(", "));
    println!(
        "load average  {:.2} at start, {:.2} at end of the load phase",
        p.loadavg[0], p.loadavg[1]
    );
}
