//! Cover traffic: the Poisson schedule, cover paths, the loop tracker, the
//! cover thread in process (every packet unwrapped hop by hop with the
//! nodes' keys) and loops going round a real three-node net on loopback.

#![cfg(feature = "cover-traffic")]

mod support;

use std::collections::{HashMap, HashSet};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use betanet::NodeRole;
use betanet::cover::{
    CoverParams, CoverSettings, CoverTraffic, LossTable, MAX_OUTSTANDING_CAP, MIN_OUTSTANDING,
    Origin, PathError, PoissonSchedule, ReturnOutcome, drop_path, exponential_gap, live_loop_path,
    loop_path, outstanding_bound, ring_after, ring_next,
};
use betanet::cover::{CoverPath, LoopTracker};
use betanet::keys::NodeKeys;
use betanet::mixing::ExponentialDelay;
use betanet::pipeline::{KeyRing, LiveKeys, MemoryReplay, PacketPipeline, Target};
use betanet::sphinx::{
    FinalCommand, LoopId, NodeId, ReplayTag, SphinxProcessor, SphinxSecretKey, Unwrapped,
};
use betanet::topology::{EgressProtocol, LiveTopology, NodeDescriptor, SphinxKeyEntry, Topology};
use rand::SeedableRng;
use rand_chacha::ChaCha20Rng;
use support::{Net, Options, http_get_within, serial, wait_until};

/// When test paths are chosen: the test descriptors list one key, from
/// epoch 0, which is in use at any time.
const NOW: u64 = 1_800_000_000;

/// Deadline of each step of an HTTP request to a node.
const HTTP_TIMEOUT: Duration = Duration::from_secs(2);

// ---------------------------------------------------------------------------
// A topology whose keys the test holds.

struct TestNet {
    topology: Topology,
    /// Each node's Sphinx secret.
    keys: HashMap<NodeId, SphinxSecretKey>,
}

impl TestNet {
    fn new(per_layer: usize) -> TestNet {
        let mut rng = rand::rng();
        let mut keys = HashMap::new();
        let mut descriptors = Vec::new();
        let mut port = 20_000u16;
        for role in NodeRole::ALL {
            for _ in 0..per_layer {
                let k = NodeKeys::generate(&mut rng);
                let sphinx = SphinxSecretKey::generate(&mut rng);
                let addr = |p: u16| SocketAddr::from(([127, 0, 0, 1], p));
                let d = NodeDescriptor::new_signed(
                    &k,
                    role,
                    addr(port),
                    addr(port + 1),
                    addr(port + 2),
                    vec![SphinxKeyEntry {
                        epoch: 0,
                        public_key: sphinx.public_key(),
                    }],
                    86_400,
                )
                .unwrap();
                port += 3;
                keys.insert(d.id, sphinx);
                descriptors.push(d);
            }
        }
        TestNet {
            topology: Topology::build(descriptors).unwrap(),
            keys,
        }
    }

    fn layer(&self, role: NodeRole) -> &[NodeDescriptor] {
        self.topology.layer(role)
    }

    fn origin(&self, d: &NodeDescriptor) -> Origin {
        Origin {
            id: d.id,
            role: d.role,
            public_key: self.keys[&d.id].public_key(),
        }
    }

    fn role_of(&self, id: NodeId) -> NodeRole {
        self.topology.get(&id).unwrap().role
    }

    /// Unwraps `frame` at `first` and every hop after it; returns the nodes
    /// visited and the final command.
    fn walk(&self, first: NodeId, frame: &[u8]) -> (Vec<NodeId>, FinalCommand) {
        let mut at = first;
        let mut frame = frame.to_vec();
        let mut visited = vec![at];
        loop {
            let processor = SphinxProcessor::new(self.keys[&at].clone());
            let mut replay = HashSet::<ReplayTag>::new();
            match processor.unwrap(&mut frame, &mut replay).unwrap() {
                Unwrapped::Relay { next, frame: f, .. } => {
                    let f = f.to_vec();
                    frame = f;
                    at = next;
                    visited.push(at);
                }
                Unwrapped::Final { command, .. } => return (visited, command),
            }
        }
    }
}

fn roles(net: &TestNet, path: &CoverPath) -> Vec<NodeRole> {
    path.hops.iter().map(|h| net.role_of(h.id)).collect()
}

// ---------------------------------------------------------------------------
// Schedule.

#[test]
fn gaps_are_exponential_with_mean_one_over_rate() {
    let mut rng = ChaCha20Rng::seed_from_u64(7);
    let schedule = PoissonSchedule::new(100.0);
    let n = 100_000;
    let gaps: Vec<f64> = (0..n)
        .map(|_| schedule.gap(&mut rng).unwrap().as_secs_f64())
        .collect();
    let mean = gaps.iter().sum::<f64>() / n as f64;
    let var = gaps.iter().map(|g| (g - mean).powi(2)).sum::<f64>() / n as f64;
    assert!((mean - 0.01).abs() < 0.0002, "mean gap {mean}");
    // An exponential's standard deviation equals its mean.
    assert!(
        (var.sqrt() / mean - 1.0).abs() < 0.03,
        "sd/mean {}",
        var.sqrt() / mean
    );
}

#[test]
fn gap_edge_cases() {
    for rate in [0.0, -1.0, f64::NAN, f64::INFINITY] {
        assert_eq!(exponential_gap(rate, 1), None, "rate {rate}");
        assert!(!PoissonSchedule::new(rate).is_enabled());
    }
    assert_eq!(exponential_gap(10.0, u64::MAX), Some(Duration::ZERO));
    // u = 2^-53: 53 · ln 2 ≈ 36.74 mean gaps.
    let longest = exponential_gap(10.0, 0).unwrap().as_secs_f64();
    assert!((longest - 3.674).abs() < 0.001, "{longest}");
    // Absurdly low rates are capped.
    assert_eq!(exponential_gap(1e-12, 0), Some(betanet::cover::MAX_GAP));
}

#[test]
fn polling_keeps_the_rate_and_does_not_burst_after_a_stall() {
    let mut rng = ChaCha20Rng::seed_from_u64(11);
    let mut schedule = PoissonSchedule::new(200.0);
    let t0 = Instant::now();
    schedule.start(t0, &mut rng);
    // Polled every 3 ms for 20 s of simulated time.
    let mut fired = 0;
    let mut now = t0;
    while now < t0 + Duration::from_secs(20) {
        now += Duration::from_millis(3);
        while schedule.poll(now, &mut rng) {
            fired += 1;
        }
    }
    assert!(
        (3800..=4200).contains(&fired),
        "{fired} emissions, want ~4000"
    );

    // A 10 s stall: one emission, then the schedule restarts from now.
    now += Duration::from_secs(10);
    let mut burst = 0;
    while schedule.poll(now, &mut rng) {
        burst += 1;
    }
    assert_eq!(burst, 1);
    assert!(schedule.next_due().unwrap() >= now);
    let disabled = PoissonSchedule::new(0.0);
    assert_eq!(disabled.next_due(), None);
}

// ---------------------------------------------------------------------------
// Paths.

#[test]
fn ring_order() {
    use NodeRole::*;
    assert_eq!(ring_next(Exit), Entry);
    assert_eq!(ring_after(Entry, 3), [Middle, Exit, Entry]);
    assert_eq!(ring_after(Middle, 2), [Exit, Entry]);
    assert_eq!(ring_after(Exit, 5), [Entry, Middle, Exit, Entry, Middle]);
}

#[test]
fn loops_go_round_the_ring_and_end_at_home() {
    let net = TestNet::new(2);
    let mut rng = ChaCha20Rng::seed_from_u64(1);
    for role in NodeRole::ALL {
        let me = &net.layer(role)[1];
        let origin = net.origin(me);
        let next = ring_next(role);
        // Only the second node of the next layer is a neighbour.
        let reachable = &net.layer(next)[1..];
        for num_hops in 1..=5 {
            let hops = num_hops.max(2);
            for _ in 0..20 {
                let path =
                    loop_path(&origin, reachable, &net.topology, num_hops, NOW, &mut rng).unwrap();
                assert_eq!(path.hops.len(), hops, "{role} num_hops {num_hops}");
                assert_eq!(path.hops[0].id, reachable[0].id);
                assert_eq!(path.first.id, reachable[0].id);
                assert_eq!(path.first.addr(EgressProtocol::Udp), reachable[0].udp_addr);
                assert_eq!(path.first.addr(EgressProtocol::Tcp), reachable[0].tcp_addr);
                let last = path.hops.last().unwrap();
                assert_eq!((last.id, last.public_key), (origin.id, origin.public_key));
                let mut want = ring_after(role, hops - 1);
                want.push(role);
                assert_eq!(roles(&net, &path), want);
                // Only the last hop is this node.
                assert!(!path.hops[..hops - 1].iter().any(|h| h.id == me.id));
                assert_eq!(path.others(me.id).len(), hops - 1);
            }
        }
    }
}

#[test]
fn later_hops_are_uniform_over_their_layer() {
    let net = TestNet::new(3);
    let mut rng = ChaCha20Rng::seed_from_u64(2);
    let me = &net.layer(NodeRole::Entry)[0];
    let origin = net.origin(me);
    let reachable = net.layer(NodeRole::Middle);
    let mut seen: HashMap<NodeId, u32> = HashMap::new();
    for _ in 0..3000 {
        let path = loop_path(&origin, reachable, &net.topology, 3, NOW, &mut rng).unwrap();
        *seen.entry(path.hops[1].id).or_default() += 1;
        *seen.entry(path.hops[0].id).or_default() += 1;
    }
    assert_eq!(seen.len(), 6);
    for (id, n) in seen {
        assert!((850..=1150).contains(&n), "{id} chosen {n} times of ~1000");
    }
}

#[test]
fn drops_go_round_the_ring_from_the_next_layer() {
    let net = TestNet::new(2);
    let mut rng = ChaCha20Rng::seed_from_u64(3);
    for role in NodeRole::ALL {
        let me = &net.layer(role)[0];
        let origin = net.origin(me);
        let reachable = net.layer(ring_next(role));
        for num_hops in 1..=5 {
            let path =
                drop_path(&origin, reachable, &net.topology, num_hops, NOW, &mut rng).unwrap();
            assert_eq!(roles(&net, &path), ring_after(role, num_hops));
            // With another node in our layer, we never pass through ourselves.
            assert!(path.hops.iter().all(|h| h.id != me.id));
        }
    }
    // Alone in our layer: a 3-hop drop ends at ourselves (the only choice).
    let single = TestNet::new(1);
    let me = &single.layer(NodeRole::Entry)[0];
    let path = drop_path(
        &single.origin(me),
        single.layer(NodeRole::Middle),
        &single.topology,
        3,
        NOW,
        &mut rng,
    )
    .unwrap();
    assert_eq!(path.hops[2].id, me.id);
}

#[test]
fn no_reachable_next_hop_is_an_error() {
    let net = TestNet::new(1);
    let mut rng = ChaCha20Rng::seed_from_u64(4);
    let origin = net.origin(&net.layer(NodeRole::Exit)[0]);
    assert_eq!(
        loop_path(&origin, &[], &net.topology, 3, NOW, &mut rng),
        Err(PathError::NoReachable(NodeRole::Entry))
    );
    assert_eq!(
        drop_path(&origin, &[], &net.topology, 3, NOW, &mut rng),
        Err(PathError::NoReachable(NodeRole::Entry))
    );
    // A node missing from the topology would never get its loops back.
    let stranger = Origin {
        id: node(0xaa),
        ..origin
    };
    assert_eq!(
        loop_path(
            &stranger,
            net.layer(NodeRole::Entry),
            &net.topology,
            3,
            NOW,
            &mut rng
        ),
        Err(PathError::NotInTopology)
    );
}

#[test]
fn live_paths_respect_the_neighbour_set() {
    let net = TestNet::new(3);
    let mut rng = ChaCha20Rng::seed_from_u64(5);
    let live = LiveTopology::new(net.topology.clone(), EgressProtocol::Udp)
        .with_next_layer(NodeRole::Exit);
    let neighbour = net.layer(NodeRole::Exit)[2].id;
    live.set_neighbors(Some(HashSet::from([neighbour])));
    let origin = net.origin(&net.layer(NodeRole::Middle)[0]);
    for _ in 0..50 {
        let path = live_loop_path(&origin, &live, 3, NOW, &mut rng).unwrap();
        assert_eq!(path.first.id, neighbour);
    }
}

// ---------------------------------------------------------------------------
// Tracker.

fn id(n: u8) -> LoopId {
    LoopId([n; 16])
}

fn node(n: u8) -> NodeId {
    NodeId::from_bytes([n; 16])
}

#[test]
fn returns_are_timed_and_counted_once() {
    let t0 = Instant::now();
    let mut tracker = LoopTracker::new(Duration::from_secs(1), 100);
    assert!(tracker.record_sent(id(1), &[node(1), node(2)], t0));
    assert!(tracker.record_sent(id(2), &[node(1), node(3)], t0));
    assert!(!tracker.record_sent(id(2), &[node(9)], t0), "duplicate id");
    let back = t0 + Duration::from_millis(40);
    assert_eq!(
        tracker.record_return(id(1), back),
        ReturnOutcome::Returned {
            rtt: Duration::from_millis(40)
        }
    );
    // A duplicate and a stranger are both ignored and counted.
    assert_eq!(tracker.record_return(id(1), back), ReturnOutcome::Unknown);
    assert_eq!(tracker.record_return(id(7), back), ReturnOutcome::Unknown);
    let c = tracker.counts();
    assert_eq!(
        (c.sent, c.returned, c.lost, c.unknown_returns, c.outstanding),
        (2, 1, 0, 2, 1)
    );
    let rtt = tracker.rtt();
    assert_eq!(rtt.count(), 1);
    assert_eq!(rtt.sum(), Duration::from_millis(40));
}

#[test]
fn loops_not_back_in_time_are_lost_and_charged_to_their_path() {
    let t0 = Instant::now();
    let timeout = Duration::from_millis(500);
    let mut tracker = LoopTracker::new(timeout, 100);
    tracker.record_sent(id(1), &[node(1), node(2)], t0);
    tracker.record_sent(id(2), &[node(1), node(3)], t0 + Duration::from_millis(100));
    tracker.record_sent(id(3), &[node(4), node(4)], t0 + Duration::from_millis(200));
    assert_eq!(
        tracker.expire(t0 + timeout),
        0,
        "exactly at the timeout is in time"
    );
    assert_eq!(tracker.expire(t0 + Duration::from_millis(650)), 2);
    assert_eq!(tracker.counts().lost, 2);
    assert_eq!(tracker.lost_through(&node(1)), 2);
    assert_eq!(tracker.lost_through(&node(2)), 1);
    assert_eq!(tracker.lost_through(&node(3)), 1);
    assert_eq!(
        tracker.loss_by_node(),
        vec![(node(1), 2), (node(2), 1), (node(3), 1)]
    );
    // A late return is a loss too (whether or not expiry ran first) and the
    // return is counted as unknown.
    assert_eq!(
        tracker.record_return(id(3), t0 + Duration::from_millis(701)),
        ReturnOutcome::Late
    );
    let c = tracker.counts();
    assert_eq!(
        (c.returned, c.lost, c.unknown_returns, c.outstanding),
        (0, 3, 1, 0)
    );
    // A node twice on one path is charged once.
    assert_eq!(tracker.lost_through(&node(4)), 1);
    // A return of an already-lost loop is unknown.
    assert_eq!(tracker.record_return(id(1), t0), ReturnOutcome::Unknown);
}

#[test]
fn the_oldest_loops_are_lost_at_the_bound() {
    let t0 = Instant::now();
    let mut tracker = LoopTracker::new(Duration::from_secs(60), 3);
    for n in 1..=5 {
        tracker.record_sent(id(n), &[node(n)], t0 + Duration::from_millis(n.into()));
    }
    let c = tracker.counts();
    assert_eq!((c.sent, c.lost, c.outstanding), (5, 2, 3));
    assert_eq!(tracker.lost_through(&node(1)), 1);
    assert_eq!(tracker.lost_through(&node(2)), 1);
    assert_eq!(tracker.record_return(id(1), t0), ReturnOutcome::Unknown);
    assert!(matches!(
        tracker.record_return(id(5), t0 + Duration::from_millis(9)),
        ReturnOutcome::Returned { .. }
    ));
    // A loop that never left is forgotten, not lost.
    assert!(tracker.cancel(id(4)));
    assert!(!tracker.cancel(id(4)));
    let c = tracker.counts();
    assert_eq!((c.sent, c.returned, c.lost, c.outstanding), (4, 1, 2, 1));
}

#[test]
fn bounds() {
    assert_eq!(outstanding_bound(100.0, Duration::from_secs(10)), 2000);
    assert_eq!(
        outstanding_bound(0.0, Duration::from_secs(10)),
        MIN_OUTSTANDING
    );
    assert_eq!(
        outstanding_bound(1e9, Duration::from_secs(10)),
        MAX_OUTSTANDING_CAP
    );
    assert_eq!(
        outstanding_bound(f64::NAN, Duration::from_secs(1)),
        MAX_OUTSTANDING_CAP
    );

    // The loss table keeps the heaviest losers.
    let mut table = LossTable::new(2);
    table.record(node(1));
    table.record(node(1));
    table.record(node(2));
    table.record(node(3)); // evicts node 2 (fewest losses)
    assert_eq!(table.len(), 2);
    assert_eq!(table.get(&node(2)), 0);
    assert_eq!(table.sorted(), vec![(node(1), 2), (node(3), 1)]);
}

// ---------------------------------------------------------------------------
// The cover thread, in process: its frames are unwrapped with the nodes'
// keys, and loop returns fed back through the sink.

fn in_process_params(
    net: &TestNet,
    me: &NodeDescriptor,
    pipeline: &PacketPipeline,
    settings: CoverSettings,
) -> (CoverParams, NodeId) {
    let next = ring_next(me.role);
    let neighbour = net.layer(next)[0].id;
    let live = LiveTopology::new(net.topology.clone(), EgressProtocol::Udp).with_next_layer(next);
    live.set_neighbors(Some(HashSet::from([neighbour])));
    let params = CoverParams {
        origin: net.origin(me),
        // Loops come back under `me`'s key, which the test unwraps with.
        keys: Arc::new(LiveKeys::new(KeyRing::single(
            SphinxProcessor::new(net.keys[&me.id].clone()),
            Arc::new(MemoryReplay::default()),
        ))),
        topology: Arc::new(live),
        egress: EgressProtocol::Udp,
        injector: pipeline.injector().unwrap(),
        delay: Arc::new(ExponentialDelay::new(Duration::ZERO, Duration::ZERO)),
        settings,
        clock: Arc::new(betanet::clock::ManualClock::new(NOW)),
    };
    (params, neighbour)
}

/// Frames the cover thread queued during `for_`, with when they came out
/// of the scheduler.
fn collect_sent(
    pipeline: &PacketPipeline,
    for_: Duration,
) -> Vec<(NodeId, SocketAddr, Vec<u8>, Instant)> {
    let deadline = Instant::now() + for_;
    let mut out = Vec::new();
    while let Ok(group) = pipeline
        .outputs()
        .recv_timeout(deadline.saturating_duration_since(Instant::now()))
    {
        for o in group.packets {
            if let Target::Hop { next, addr } = o.target {
                out.push((next, addr, o.payload().to_vec(), Instant::now()));
            }
        }
    }
    out
}

fn loop_settings(timeout: Duration) -> CoverSettings {
    CoverSettings {
        loop_rate_pps: 400.0,
        drop_rate_pps: 0.0,
        loop_timeout: timeout,
        num_hops: 3,
        loss_metric_nodes: 5,
    }
}

#[test]
fn cover_thread_loops_come_home() {
    let net = TestNet::new(2);
    let pipeline = PacketPipeline::new(1);
    let me = net.layer(NodeRole::Entry)[1].clone();
    // A long timeout: unwrapping every hop here is slow on a loaded machine.
    let settings = loop_settings(Duration::from_secs(30));
    let (params, neighbour) = in_process_params(&net, &me, &pipeline, settings);
    let handle = CoverTraffic::spawn(params).unwrap();
    let sink = handle.loop_sink();

    let sent = collect_sent(&pipeline, Duration::from_millis(200));
    assert!(
        sent.len() > 30,
        "only {} loops in 200 ms at 400/s",
        sent.len()
    );
    let mut returned = 0;
    let mut first_returned = None;
    for (i, (next, addr, frame, at)) in sent.iter().enumerate() {
        assert_eq!(*next, neighbour);
        assert_eq!(*addr, net.topology.get(&neighbour).unwrap().udp_addr);
        let (visited, command) = net.walk(*next, frame);
        let path_roles: Vec<NodeRole> = visited.iter().map(|id| net.role_of(*id)).collect();
        assert_eq!(
            path_roles,
            [NodeRole::Middle, NodeRole::Exit, NodeRole::Entry]
        );
        assert_eq!(*visited.last().unwrap(), me.id);
        let FinalCommand::Loop { loop_id } = command else {
            panic!("not a loop: {command:?}");
        };
        if i % 2 == 0 {
            // As if it came straight back from the network.
            sink(loop_id, *at);
            returned += 1;
            first_returned.get_or_insert(loop_id);
        }
    }
    let stats = handle.stats();
    assert_eq!(stats.loops_returned, returned);
    assert_eq!(stats.rtt.count(), returned);
    assert_eq!(stats.loops_lost, 0);
    assert_eq!(stats.unknown_returns, 0);
    assert_eq!(stats.send_failures, 0);
    sink(first_returned.unwrap(), Instant::now());
    sink(LoopId([0xee; 16]), Instant::now());
    assert_eq!(handle.stats().unknown_returns, 2);
    handle.stop();
}

#[test]
fn cover_thread_charges_lost_loops_to_their_paths() {
    let net = TestNet::new(2);
    let pipeline = PacketPipeline::new(1);
    let me = net.layer(NodeRole::Entry)[1].clone();
    let settings = loop_settings(Duration::from_millis(100));
    let (params, neighbour) = in_process_params(&net, &me, &pipeline, settings);
    let handle = CoverTraffic::spawn(params).unwrap();
    // Nothing comes back: every loop is lost once its timeout passes.
    wait_until(Duration::from_secs(3), "lost loops", || {
        handle.stats().loops_lost >= 20
    });
    let stats = handle.stop();
    assert_eq!(
        stats.loops_sent,
        stats.loops_lost + stats.loops_outstanding as u64
    );
    // Each lost loop is charged to the one neighbour and to one exit.
    let loss: HashMap<NodeId, u64> = stats.loss_by_node.iter().copied().collect();
    assert_eq!(loss[&neighbour], stats.loops_lost);
    let exits: u64 = net
        .layer(NodeRole::Exit)
        .iter()
        .map(|d| loss.get(&d.id).copied().unwrap_or(0))
        .sum();
    assert_eq!(exits, stats.loops_lost);
    assert!(!loss.contains_key(&me.id), "never charged to ourselves");
    assert_eq!(stats.loss_by_node[0], (neighbour, stats.loops_lost));
}

#[test]
fn cover_thread_drops_are_discarded_by_their_last_hop() {
    let net = TestNet::new(2);
    let pipeline = PacketPipeline::new(1);
    let me = net.layer(NodeRole::Exit)[0].clone();
    let settings = CoverSettings {
        loop_rate_pps: 0.0,
        drop_rate_pps: 400.0,
        loop_timeout: Duration::from_secs(1),
        num_hops: 3,
        loss_metric_nodes: 5,
    };
    let (params, neighbour) = in_process_params(&net, &me, &pipeline, settings);
    let handle = CoverTraffic::spawn(params).unwrap();
    let sent = collect_sent(&pipeline, Duration::from_millis(150));
    handle.stop();
    assert!(sent.len() > 20, "only {} drops", sent.len());
    for (next, _, frame, _) in &sent {
        assert_eq!(*next, neighbour);
        let (visited, command) = net.walk(*next, frame);
        assert_eq!(command, FinalCommand::Drop);
        let path_roles: Vec<NodeRole> = visited.iter().map(|id| net.role_of(*id)).collect();
        assert_eq!(
            path_roles,
            [NodeRole::Entry, NodeRole::Middle, NodeRole::Exit]
        );
        assert_ne!(*visited.last().unwrap(), me.id);
    }
}

#[test]
fn settings_from_config_and_a_stop_flag_ends_the_thread() {
    let mut config = betanet::config::Config::default();
    config.cover_traffic.generation_rate_pps = 5.0;
    config.cover_traffic.drop_rate_pps = 1.0;
    config.cover_traffic.loop_timeout_ms = 2500;
    config.sphinx.num_hops = 4;
    let settings = CoverSettings::from_config(&config).unwrap();
    assert_eq!(
        settings,
        CoverSettings {
            loop_rate_pps: 5.0,
            drop_rate_pps: 1.0,
            loop_timeout: Duration::from_millis(2500),
            num_hops: 4,
            loss_metric_nodes: 5,
        }
    );
    assert_eq!(settings.max_outstanding(), MIN_OUTSTANDING);
    config.cover_traffic.enabled = false;
    assert_eq!(CoverSettings::from_config(&config), None);

    // Stopping the handle wakes and ends the thread (its injector goes
    // with it, so the pipeline can shut down).
    let net = TestNet::new(1);
    let mut pipeline = PacketPipeline::new(1);
    let me = net.layer(NodeRole::Middle)[0].clone();
    let (params, _) = in_process_params(&net, &me, &pipeline, settings);
    let handle = CoverTraffic::spawn(params).unwrap();
    let monitor = handle.monitor();
    let t = Instant::now();
    let last = handle.stop();
    assert!(t.elapsed() < Duration::from_millis(500));
    // The monitor outlives the handle.
    assert_eq!(monitor.stats(), last);
    pipeline.shutdown();
}

// ---------------------------------------------------------------------------
// A real net on loopback.

#[test]
fn loops_from_every_layer_go_round_a_real_net() {
    let _serial = serial();
    let net = Net::start(Options::default());
    let mut handles = Vec::new();
    for role in NodeRole::ALL {
        let node = net.node(role);
        let live = LiveTopology::new((*node.topology()).clone(), EgressProtocol::Udp)
            .with_next_layer(ring_next(role));
        let params = CoverParams {
            origin: Origin {
                id: node.id(),
                role,
                public_key: node.pipeline().public_key(),
            },
            keys: Arc::clone(node.pipeline().keys()),
            topology: Arc::new(live),
            egress: EgressProtocol::Udp,
            injector: node.pipeline().injector().unwrap(),
            delay: Arc::new(ExponentialDelay::new(
                Duration::from_millis(1),
                Duration::from_millis(50),
            )),
            settings: CoverSettings {
                loop_rate_pps: 200.0,
                drop_rate_pps: 50.0,
                loop_timeout: Duration::from_secs(5),
                num_hops: 3,
                loss_metric_nodes: 5,
            },
            clock: Arc::new(betanet::clock::SystemClock),
        };
        let handle = CoverTraffic::spawn(params).unwrap();
        handles.push((role, handle));
    }
    std::thread::sleep(Duration::from_millis(400));
    // Stopped first, so the counts below are final.
    let finals: Vec<_> = handles.into_iter().map(|(r, h)| (r, h.stop())).collect();
    let mut drops_sent = 0;
    for (role, stats) in finals {
        // Nothing feeds returns into the handle here (the node's egress is
        // not wired to it); the node itself counts its returned loops.
        assert!(stats.loops_sent > 20, "{role}: {stats:?}");
        assert_eq!(stats.send_failures, 0, "{role}");
        drops_sent += stats.drops_sent;
        let node = net.node(role);
        let deadline = Instant::now() + Duration::from_secs(5);
        while node.stats().loops_returned != stats.loops_sent {
            let all: Vec<_> = NodeRole::ALL.iter().map(|r| net.node(*r).stats()).collect();
            assert!(Instant::now() < deadline, "{role}: {stats:?} {all:#?}");
            std::thread::sleep(Duration::from_millis(5));
        }
    }
    assert!(drops_sent > 0);
    wait_until(Duration::from_secs(5), "every drop discarded", || {
        let consumed: u64 = NodeRole::ALL
            .iter()
            .map(|r| net.node(*r).pipeline().counters().totals().cover_dropped)
            .sum();
        consumed == drops_sent
    });
    for role in NodeRole::ALL {
        assert_eq!(net.node(role).stats().dropped_total(), 0, "{role}");
    }
}

// ---------------------------------------------------------------------------
// Loss attribution in a real net: a middle node dies.

/// A node's `/loops` report.
fn loops_of(node: &betanet::node::Mixnode) -> serde_json::Value {
    let (code, body) = http_get_within(node.http_addr().unwrap(), "/loops", HTTP_TIMEOUT);
    assert_eq!(code, 200, "{body}");
    serde_json::from_str(&body).unwrap()
}

/// The entry for node `id` in a report's `nodes`.
fn node_entry<'a>(report: &'a serde_json::Value, id: &str) -> Option<&'a serde_json::Value> {
    report["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|n| n["id"] == id)
}

/// Why `report` does not (yet) blame `stopped` alone: `None` once its
/// worst node is `stopped`, with an attributed loss of at least `blamed`,
/// and every other node stays below `healthy` and a third of it.
fn blames_only(
    report: &serde_json::Value,
    stopped: &str,
    blamed: f64,
    healthy: f64,
) -> Option<String> {
    let nodes = report["nodes"].as_array().unwrap();
    let loss = |n: &serde_json::Value| n["attributed_loss"].as_f64();
    let top = nodes.first()?;
    if top["id"] != stopped {
        return Some(format!("worst is {}", top["id"]));
    }
    let worst = loss(top)?;
    if worst < blamed {
        return Some(format!("stopped node's loss {worst:.3} < {blamed}"));
    }
    nodes[1..]
        .iter()
        .find(|n| loss(n).is_some_and(|l| l > healthy || l > worst / 3.0))
        .map(|n| {
            format!(
                "healthy {} blamed {:?} (stopped {worst:.3})",
                n["id"],
                loss(n)
            )
        })
}

#[test]
fn a_stopped_middle_node_is_blamed_and_the_healthy_ones_are_not() {
    let _serial = serial();
    let started = Instant::now();
    let dir = tempfile::tempdir().unwrap();
    let mut template = betanet::config::Config::default();
    template.node.shutdown_grace_ms = 100;
    template.pipeline.workers = 1;
    template.pipeline.batch_size = 32;
    template.mixing.mean_delay_ms = 2.0;
    template.mixing.max_delay_ms = 50.0;
    template.replay.sync_interval_ms = 20;
    template.cover_traffic.enabled = true;
    template.cover_traffic.generation_rate_pps = 100.0;
    template.cover_traffic.loop_timeout_ms = 500;
    template.validate().unwrap();
    let mut net = betanet::testnet::LocalNet::start(dir.path(), 2, &template).unwrap();
    let ids: Vec<String> = net.descriptors().iter().map(|d| d.id.to_string()).collect();
    let roles: Vec<NodeRole> = net.descriptors().iter().map(|d| d.role).collect();
    // Descriptors are entry, entry, middle, middle, exit, exit.
    let stopped = 2;
    assert_eq!(roles[stopped], NodeRole::Middle);
    let other_middle = 3;
    // With 3-hop loops (middle → exit → home for an entry, entry → middle
    // → home for an exit, exit → entry → home for a middle) only entries
    // and exits send loops through a middle node.
    let crossing: Vec<usize> = (0..ids.len())
        .filter(|i| roles[*i] != NodeRole::Middle)
        .collect();

    // Loops come back, some of them through the node about to die.
    wait_until(
        Duration::from_secs(15),
        "loops through every middle",
        || {
            crossing.iter().all(|&i| {
                let report = loops_of(net.node(i).unwrap());
                node_entry(&report, &ids[stopped])
                    .is_some_and(|n| n["returned"].as_u64() >= Some(30))
            })
        },
    );
    for i in 0..ids.len() {
        let report = loops_of(net.node(i).unwrap());
        assert_eq!(report["enabled"], true);
        assert_eq!(
            report["totals"]["lost"], 0,
            "node {i} lost loops in a healthy net: {report}"
        );
    }

    // Timed from the moment the node starts to go (it stops accepting at
    // once; its shutdown then takes a moment).
    let stopped_at = Instant::now();
    assert!(net.stop(stopped));
    // Loops sent from now on through the dead node are declared lost one
    // timeout later; a few seconds of margin for a loaded machine.
    let deadline = stopped_at + Duration::from_millis(500) + Duration::from_secs(5);
    let mut pending: Vec<usize> = crossing.clone();
    let mut last = String::new();
    while !pending.is_empty() {
        assert!(
            Instant::now() < deadline,
            "after {:?} nodes {pending:?} do not blame the stopped node: {last}",
            stopped_at.elapsed()
        );
        std::thread::sleep(Duration::from_millis(50));
        pending.retain(|&i| {
            let report = loops_of(net.node(i).unwrap());
            match blames_only(&report, &ids[stopped], 0.25, 0.1) {
                Some(why) => {
                    last = format!("node {i}: {why}: {report}");
                    true
                }
                None => false,
            }
        });
    }
    eprintln!("blamed after {:?}", stopped_at.elapsed());

    // The other middle's loops never cross the dead node: it neither sees
    // it nor blames anyone.
    let report = loops_of(net.node(other_middle).unwrap());
    assert!(node_entry(&report, &ids[stopped]).is_none(), "{report}");
    for n in report["nodes"].as_array().unwrap() {
        assert!(n["attributed_loss"].as_f64().unwrap() <= 0.1, "{report}");
    }

    // The metric names the dead node as the worst peer, within K labels.
    let entry = net.node(0).unwrap();
    let (code, metrics) = http_get_within(entry.http_addr().unwrap(), "/metrics", HTTP_TIMEOUT);
    assert_eq!(code, 200);
    let ratios: Vec<(&str, f64)> = metrics
        .lines()
        .filter_map(|l| l.strip_prefix("betanet_loop_loss_ratio{peer=\""))
        .map(|l| {
            let (peer, value) = l.split_once("\"} ").unwrap();
            (peer, value.parse().unwrap())
        })
        .collect();
    assert!(!ratios.is_empty() && ratios.len() <= 5, "{metrics}");
    let (worst_peer, worst) = ratios
        .iter()
        .copied()
        .fold(("", -1.0), |a, b| if b.1 > a.1 { b } else { a });
    assert_eq!(worst_peer, ids[stopped], "{metrics}");
    assert!(worst >= 0.25, "{metrics}");
    assert!(metrics.contains(&format!(
        "betanet_loop_peer_lost_total{{peer=\"{}\"}}",
        ids[stopped]
    )));

    net.shutdown();
    assert!(
        started.elapsed() < Duration::from_secs(30),
        "{:?}",
        started.elapsed()
    );
}
