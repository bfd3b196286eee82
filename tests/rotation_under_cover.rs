//! A real three-node net with 60-second Sphinx key epochs and cover traffic
//! on, carried across two key rotations (each with its early acceptance of
//! the next key and its grace window for the old one): no packet is dropped
//! for any reason and no loop is lost. Every node's key-schedule clock is
//! one shared manual clock running four times fast, so the test takes half
//! a minute, not three; everything else (UDP, descriptor refresh over HTTP,
//! replay journals, mixing) is the real node.

mod support;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use betanet::clock::{ManualClock, WallClock};
use betanet::config::Config;
use betanet::node::TestHooks;
use betanet::testnet::LocalNet;
use support::{serial, wait_until};

const EPOCH: u64 = 60;
const GRACE: u64 = 20;

fn template() -> Config {
    let mut c = Config::default();
    c.node.shutdown_grace_ms = 500;
    c.pipeline.workers = 1;
    // The dwell bound has its own tests; here a worker preempted on a busy
    // CI machine must not count as a rotation losing packets.
    c.pipeline.max_dwell_ms = 2_000;
    c.mixing.mean_delay_ms = 5.0;
    c.mixing.max_delay_ms = 50.0;
    c.cover_traffic.enabled = true;
    c.cover_traffic.generation_rate_pps = 20.0;
    c.cover_traffic.drop_rate_pps = 5.0;
    c.cover_traffic.loop_timeout_ms = 5_000;
    c.replay.sync_interval_ms = 20;
    c.sphinx.key_epoch_seconds = EPOCH;
    c.sphinx.key_grace_seconds = GRACE;
    c.validate().unwrap();
    c
}

/// Loops returned and lost, summed over the net.
fn loops(net: &LocalNet) -> (u64, u64) {
    net.nodes().fold((0, 0), |(back, lost), node| {
        let m = node.metrics_snapshot();
        (back + m.cover_loops_returned, lost + m.cover_loops_lost)
    })
}

/// Every drop of every node, by reason (empty when none).
fn drops(net: &LocalNet) -> Vec<(String, String, u64)> {
    net.nodes()
        .flat_map(|node| {
            let role = node.config().node.role.as_str().to_owned();
            node.stats()
                .dropped
                .into_iter()
                .filter(|(_, n)| *n > 0)
                .map(move |(reason, n)| (role.clone(), reason.to_owned(), n))
        })
        .collect()
}

/// Advances `clock` by one second every `tick` of real time (a clock
/// running fast, never jumping: nodes see every second, as with a real
/// one) until the handle is dropped.
struct FastClock {
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl FastClock {
    fn start(clock: ManualClock, tick: Duration) -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let flag = Arc::clone(&stop);
        let thread = std::thread::spawn(move || {
            while !flag.load(Ordering::Relaxed) {
                std::thread::sleep(tick);
                clock.set(clock.unix_seconds() + 1);
            }
        });
        FastClock {
            stop,
            thread: Some(thread),
        }
    }
}

impl Drop for FastClock {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

#[test]
fn cover_traffic_crosses_two_key_rotations_without_a_drop() {
    let _serial = serial();
    let dir = tempfile::tempdir().unwrap();
    // Start late in epoch N, a little before the next key is accepted.
    let n = betanet::clock::unix_now() / EPOCH;
    let clock = ManualClock::new(n * EPOCH + EPOCH - GRACE - 5);
    let hooks = |_| TestHooks {
        clock: Some(clock.clone()),
        ..TestHooks::default()
    };
    let net = LocalNet::start_with_hooks(dir.path(), 1, &template(), hooks).unwrap();
    let all_hold = |epochs: &[u64]| net.nodes().all(|node| node.sphinx_key_epochs() == epochs);
    assert!(all_hold(&[n, n + 1]));
    let entry = net.nodes().next().unwrap().descriptor();
    let first_link_key = entry.link_key_for_epoch(n).unwrap().clone();

    // Four seconds of node time per second: an epoch takes 15 s, longer
    // than the descriptor refresh interval (10 s), as in a real network
    // where peers fetch a new key well before it is used.
    let _fast = FastClock::start(clock.clone(), Duration::from_millis(250));
    let mut returned_in = Vec::new();
    let mut seen = loops(&net).0;
    for epoch in [n + 1, n + 2] {
        // The rotation into `epoch`, then the retirement of `epoch - 1`.
        wait_until(Duration::from_secs(40), "every node to rotate", || {
            all_hold(&[epoch - 1, epoch, epoch + 1])
        });
        wait_until(Duration::from_secs(40), "the old key to retire", || {
            all_hold(&[epoch, epoch + 1])
        });
        let now = loops(&net).0;
        returned_in.push(now - seen);
        seen = now;
        assert_eq!(drops(&net), vec![], "drops by epoch {epoch}");
    }
    drop(_fast);

    // A loop is counted lost only when its timeout passes: wait that long,
    // so every loop sent across the rotations has come home or been
    // counted.
    std::thread::sleep(Duration::from_millis(
        template().cover_traffic.loop_timeout_ms + 1_000,
    ));
    let (returned, lost) = loops(&net);
    assert!(
        returned_in.iter().all(|&n| n >= 100),
        "loops returned per epoch: {returned_in:?}"
    );
    assert_eq!(
        lost, 0,
        "loops lost across the rotations ({returned} returned)"
    );
    assert_eq!(drops(&net), vec![], "drops across the rotations");
    for node in net.nodes() {
        let health = node.health();
        assert!(health.ready, "{health:?}");
    }

    // Every hop rode link sessions opened before the rotations, which
    // survived them: no handshake failed, none was needed again.
    let mut outbound = 0;
    for node in net.nodes() {
        let links = node.metrics_snapshot().links;
        assert_eq!(
            links.handshakes_failed.iter().sum::<u64>(),
            0,
            "{}: {links:?}",
            node.config().node.role.as_str()
        );
        outbound += links.sessions_member_outbound;
    }
    assert!(outbound >= 3, "member sessions open: {outbound}");
    // New sessions use the new keys; the retired epoch's key is gone.
    let entry = net.nodes().next().unwrap().descriptor();
    let current = entry.link_key_for_epoch(n + 2).unwrap().clone();
    assert_eq!(current.epoch, n + 2);
    let open = |key: &betanet::topology::LinkKeyEntry| {
        let mut stream = std::net::TcpStream::connect(entry.tcp_addr).unwrap();
        stream
            .set_read_timeout(Some(Duration::from_secs(10)))
            .unwrap();
        betanet::link::blocking::open_session(&mut stream, None, &key.public_key, key.epoch)
    };
    assert!(open(&current).is_ok(), "a session with the current key");
    assert!(
        open(&first_link_key).is_err(),
        "a session with a retired key"
    );
    net.shutdown();
}
