//! The packet pipeline without sockets: real Sphinx packets in, routed and
//! delayed packets out, drops counted by cause, bounded under overload.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use betanet::NodeRole;
use betanet::mixing::ExponentialDelay;
use betanet::pipeline::{
    DropCause, KeyRing, LiveKeys, MemoryReplay, Outbound, Packet, PacketPipeline, PipelineConfig,
    PipelineParts, RoutingPolicy, Target, UnwrapKey,
};
use betanet::sphinx::{
    DropReason, FinalCommand, MessageId, NodeId, PathHop, SphinxProcessor, SphinxSecretKey,
    create_packet,
};

const SOURCE: &str = "127.0.0.1:40000";

struct Net {
    hops: Vec<PathHop>,
    secrets: Vec<SphinxSecretKey>,
}

fn net() -> Net {
    let secrets: Vec<SphinxSecretKey> = (1..=3u8)
        .map(|i| SphinxSecretKey::from_bytes([i; 32]))
        .collect();
    let hops = secrets
        .iter()
        .enumerate()
        .map(|(i, s)| PathHop {
            id: NodeId::from_bytes([i as u8 + 10; 16]),
            public_key: s.public_key(),
        })
        .collect();
    Net { hops, secrets }
}

/// The guide's sizes with a dwell bound no busy test machine reaches: these
/// tests check routing and counting; the bound has tests of its own.
fn functional(workers: usize) -> PipelineConfig {
    PipelineConfig {
        max_dwell: Duration::from_secs(30),
        ..PipelineConfig::with_workers(workers)
    }
}

fn entry_pipeline(net: &Net, config: PipelineConfig, mean_delay: Duration) -> PacketPipeline {
    let ring = KeyRing::single(
        SphinxProcessor::new(net.secrets[0].clone()),
        Arc::new(MemoryReplay::default()),
    );
    entry_pipeline_with_keys(net, config, mean_delay, Arc::new(LiveKeys::new(ring)))
}

fn entry_pipeline_with_keys(
    net: &Net,
    config: PipelineConfig,
    mean_delay: Duration,
    keys: Arc<LiveKeys>,
) -> PacketPipeline {
    let next: SocketAddr = "127.0.0.1:9002".parse().unwrap();
    PacketPipeline::start(
        config,
        PipelineParts {
            keys,
            policy: RoutingPolicy {
                role: NodeRole::Entry,
                exit_allow: vec![],
            },
            hops: Arc::new(HashMap::from([(net.hops[1].id, next)])),
            delay: Arc::new(ExponentialDelay::new(mean_delay, Duration::from_secs(5))),
        },
    )
}

fn packet(net: &Net, i: u32) -> Vec<u8> {
    let command = FinalCommand::Deliver {
        destination: "127.0.0.1:7000".parse().unwrap(),
        message_id: MessageId([i as u8; 16]),
    };
    create_packet(&net.hops, command, &i.to_be_bytes(), &mut rand::rng())
        .unwrap()
        .frame
        .to_vec()
}

/// The packets of the first groups released, until there are `n` of them.
fn collect(pipeline: &PacketPipeline, n: usize, timeout: Duration) -> Vec<Outbound> {
    let deadline = Instant::now() + timeout;
    let mut out = Vec::new();
    while out.len() < n {
        match pipeline
            .outputs()
            .recv_timeout(deadline.saturating_duration_since(Instant::now()))
        {
            Ok(group) => out.extend(group.packets),
            Err(_) => break,
        }
    }
    out
}

#[test]
fn relays_are_forwarded_after_their_delay_and_drops_are_counted() {
    let net = net();
    let pipeline = entry_pipeline(&net, functional(2), Duration::from_millis(5));
    let source: SocketAddr = SOURCE.parse().unwrap();
    let frames: Vec<Vec<u8>> = (0..200).map(|i| packet(&net, i)).collect();
    for f in &frames {
        pipeline.submit_bytes(f, source).unwrap();
    }
    // A replay, garbage, and a frame for another node.
    pipeline.submit_bytes(&frames[0], source).unwrap();
    pipeline.submit_bytes(b"junk", source).unwrap();
    let mut other = frames[1].clone();
    other[100] ^= 1;
    pipeline.submit_bytes(&other, source).unwrap();

    let out = collect(&pipeline, 200, Duration::from_secs(10));
    assert_eq!(out.len(), 200);
    let next = net.hops[1].id;
    let downstream = SphinxProcessor::new(net.secrets[1].clone());
    for mut outbound in out {
        assert!(matches!(outbound.target, Target::Hop { next: n, .. } if n == next));
        // The forwarded frame is a valid frame for the next hop.
        let frame: &mut [u8] = outbound.packet.as_mut();
        assert!(downstream.unwrap(frame, &mut |_: &_| false).is_ok());
    }
    // Let the stragglers be counted.
    std::thread::sleep(Duration::from_millis(100));
    let stats = pipeline.stats();
    assert_eq!(stats.processed, 200);
    assert_eq!(stats.dropped(DropCause::Sphinx(DropReason::Replay)), 1);
    assert_eq!(stats.dropped(DropCause::Sphinx(DropReason::Malformed)), 1);
    assert_eq!(stats.dropped(DropCause::Sphinx(DropReason::Mac)), 1);
    assert!(stats.latency_p50 > Duration::ZERO);
    assert!(stats.pool_hit_rate > 0.0);
}

fn unwrap_key(epoch: u64, secret: &SphinxSecretKey) -> Arc<UnwrapKey> {
    Arc::new(UnwrapKey {
        epoch,
        processor: SphinxProcessor::new(secret.clone()),
        replay: Arc::new(MemoryReplay::default()),
    })
}

#[test]
fn frames_are_tried_under_every_accepted_key_each_with_its_replay_cache() {
    // Epoch 7's key is the one the path was built for; epoch 8's is current.
    let net = net();
    let old = unwrap_key(7, &net.secrets[0]);
    let current = unwrap_key(8, &SphinxSecretKey::from_bytes([9; 32]));
    let keys = Arc::new(LiveKeys::new(KeyRing::new(
        Arc::clone(&current),
        [Arc::clone(&old)],
    )));
    let pipeline = entry_pipeline_with_keys(&net, functional(1), Duration::ZERO, Arc::clone(&keys));
    let source: SocketAddr = SOURCE.parse().unwrap();
    let frames: Vec<Vec<u8>> = (0..20).map(|i| packet(&net, i)).collect();
    for f in &frames[..10] {
        pipeline.submit_bytes(f, source).unwrap();
    }
    // Accepted under the old key (the current one fails the MAC first, and
    // that failure left the frame intact for the second try).
    assert_eq!(collect(&pipeline, 10, Duration::from_secs(10)).len(), 10);
    // The replay is caught by the old key's own cache.
    pipeline.submit_bytes(&frames[0], source).unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    while pipeline
        .stats()
        .dropped(DropCause::Sphinx(DropReason::Replay))
        == 0
    {
        assert!(Instant::now() < deadline, "the replay was not caught");
        std::thread::sleep(Duration::from_millis(5));
    }

    // The old key is retired: its frames now fail the MAC under every key.
    keys.store(KeyRing::new(Arc::clone(&current), []));
    for f in &frames[10..] {
        pipeline.submit_bytes(f, source).unwrap();
    }
    assert!(collect(&pipeline, 1, Duration::from_millis(500)).is_empty());
    std::thread::sleep(Duration::from_millis(100));
    let stats = pipeline.stats();
    assert_eq!(stats.processed, 10);
    assert_eq!(stats.dropped(DropCause::Sphinx(DropReason::Replay)), 1);
    assert_eq!(stats.dropped(DropCause::Sphinx(DropReason::Mac)), 10);
}

#[test]
fn mixing_delays_have_the_configured_mean() {
    let net = net();
    let pipeline = entry_pipeline(&net, functional(2), Duration::from_millis(20));
    let source: SocketAddr = SOURCE.parse().unwrap();
    let n = 1000;
    let frames: Vec<Vec<u8>> = (0..n).map(|i| packet(&net, i)).collect();
    let start = Instant::now();
    for f in &frames {
        pipeline.submit_bytes(f, source).unwrap();
    }
    let out = collect(&pipeline, n as usize, Duration::from_secs(20));
    assert_eq!(out.len(), n as usize);
    let stats = pipeline.counters().totals();
    // The recorded delays (what the scheduler was told) have mean 20 ms ±15%.
    let mean = stats.mixing_delay.mean().as_secs_f64() * 1e3;
    assert!((mean - 20.0).abs() < 3.0, "mean mixing delay {mean} ms");
    // And packets really waited: the last leaves well after the first.
    assert!(start.elapsed() > Duration::from_millis(40));
}

#[test]
fn overload_is_bounded_and_counted() {
    let net = net();
    let config = PipelineConfig {
        max_queue_depth: 64,
        ..PipelineConfig::with_workers(1)
    };
    let pipeline = entry_pipeline(&net, config, Duration::from_millis(1));
    let source: SocketAddr = SOURCE.parse().unwrap();
    let frame = packet(&net, 1);
    // Far more than one worker can unwrap: most are refused at the door.
    let mut refused = 0;
    for _ in 0..5000 {
        if pipeline.submit_bytes(&frame, source) == Err(DropCause::Overload) {
            refused += 1;
        }
    }
    assert!(refused > 1000, "only {refused} refused");
    assert!(pipeline.queue_depths()["ingress"] <= 64);
    let stats = pipeline.stats();
    assert_eq!(stats.dropped(DropCause::Overload), refused);
}

#[test]
fn shutdown_sends_what_is_due_within_grace_and_counts_the_rest() {
    let net = net();
    let config = PipelineConfig {
        shutdown_grace: Duration::from_millis(0),
        ..PipelineConfig::with_workers(1)
    };
    // Mean delay of 10 s: nothing is due by the time we stop.
    let mut pipeline = entry_pipeline(&net, config, Duration::from_secs(10));
    let source: SocketAddr = SOURCE.parse().unwrap();
    for i in 0..20 {
        pipeline.submit_bytes(&packet(&net, i), source).unwrap();
    }
    let deadline = Instant::now() + Duration::from_secs(10);
    while pipeline.stats().processed < 20 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(10));
    }
    pipeline.shutdown();
    let stats = pipeline.stats();
    let sent: u64 = std::iter::from_fn(|| pipeline.outputs().try_recv().ok())
        .map(|group| group.packets.len() as u64)
        .sum();
    assert_eq!(sent + stats.dropped(DropCause::Shutdown), 20);
    // The outputs are closed, so egress finishes.
    assert!(pipeline.outputs().recv().is_err());
    assert!(stats.dropped(DropCause::Shutdown) > 0);
    assert_eq!(pipeline.alive_workers(), 0);
}

#[test]
fn guide_constructor_works() {
    let pipeline = PacketPipeline::new(2);
    assert_eq!(pipeline.workers(), 2);
    let stats = pipeline.stats();
    assert_eq!(stats.processed, 0);
    assert_eq!(stats.dropped_total(), 0);
}

/// Polls `cond` until it holds; fails after `limit` (a hang must fail).
fn wait_for(limit: Duration, what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + limit;
    while !cond() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(2));
    }
}

#[test]
fn packets_that_waited_past_the_dwell_bound_are_dropped_before_unwrap() {
    let net = net();
    // The default bound (50 ms); arrival times are given, not waited for.
    let pipeline = entry_pipeline(&net, PipelineConfig::with_workers(1), Duration::ZERO);
    let source: SocketAddr = SOURCE.parse().unwrap();
    let now = Instant::now();
    let stale = now.checked_sub(Duration::from_secs(1)).unwrap_or(now);
    assert!(now > stale, "the monotonic clock started less than 1 s ago");
    for i in 0..10 {
        let mut buf = pipeline.pool().get();
        buf.fill_from(&packet(&net, i));
        let packet = Packet {
            buf,
            source,
            received_at: stale,
        };
        pipeline.submit(packet).unwrap();
    }
    pipeline.submit_bytes(&packet(&net, 99), source).unwrap();
    wait_for(Duration::from_secs(20), "the fresh packet", || {
        pipeline.stats().processed == 1
    });
    wait_for(Duration::from_secs(20), "the dwell drops", || {
        pipeline.stats().dropped(DropCause::Dwell) == 10
    });
    let stats = pipeline.stats();
    assert_eq!(stats.processed, 1, "stale packets are never unwrapped");
    assert_eq!(stats.dropped_total(), 10, "{stats:?}");
    // Only the unwrapped packet's wait is in the dwell histogram.
    let dwell = pipeline.counters().totals().dwell;
    assert_eq!(dwell.count(), 1);
    assert!(dwell.quantile(1.0) <= Duration::from_millis(50));
}

#[test]
fn the_ingress_queue_is_sized_in_time() {
    let net = net();
    // A 1 ms bound: once the worker has timed a batch, the queue admits
    // only a batch (64 packets; 0.5 ms of work would be fewer).
    let config = PipelineConfig {
        max_dwell: Duration::from_millis(1),
        batch_size: 64,
        ..PipelineConfig::with_workers(1)
    };
    let pipeline = entry_pipeline(&net, config, Duration::ZERO);
    let monitor = pipeline.monitor();
    assert_eq!(monitor.ingress_limit(), 10_000, "untimed: the full depth");
    let source: SocketAddr = SOURCE.parse().unwrap();
    // On a busy machine a packet may wait past the 1 ms bound before the
    // worker wakes (dropped as `dwell`, so nothing is timed): offer fresh
    // ones until a batch has been timed.
    let mut next = 0;
    wait_for(Duration::from_secs(20), "the first batch timed", || {
        if next < 1000 {
            let _ = pipeline.submit_bytes(&packet(&net, next), source);
            next += 1;
        }
        monitor.ingress_limit() == 64
    });

    let frame = packet(&net, 1);
    let (mut refused, mut deepest) = (0u64, 0);
    for _ in 0..5000 {
        if pipeline.submit_bytes(&frame, source) == Err(DropCause::Overload) {
            refused += 1;
        }
        deepest = deepest.max(pipeline.queue_depths()["ingress"]);
    }
    assert!(refused > 1000, "only {refused} refused");
    assert!(deepest <= 64, "the queue held {deepest}");
    assert_eq!(pipeline.stats().dropped(DropCause::Overload), refused);
}
