//! A node whose replay filter reaches its budget is never silently dark:
//! from 90% fill `/ready` answers 503 naming the filter, and once full the
//! packets it refuses are counted as `replay_capacity` (not `replay`), with
//! the fill and memory exported. A failing journal also turns `/ready` 503
//! and is counted.

mod support;

use std::net::UdpSocket;
use std::path::Path;
use std::time::Duration;

use betanet::NodeRole;
use betanet::config::Config;
use betanet::node::{Mixnode, TestHooks};
use betanet::pipeline::DropCause;
use betanet::sphinx::{DropReason, FinalCommand, PathHop, create_packet};
use betanet::testnet::LocalNet;
use support::{http_get, serial, wait_until};

/// 8 KiB: eight 1 KiB segments, ~1,900 tags.
const BUDGET: usize = 8 * 1024;

fn template() -> Config {
    let mut c = Config::default();
    c.node.shutdown_grace_ms = 200;
    // Frames go straight to the exit as plaintext (as a member would send
    // them with links off); links have tests of their own.
    c.transport.links = false;
    c.pipeline.workers = 1;
    c.mixing.mean_delay_ms = 0.0;
    c.cover_traffic.enabled = false;
    c.rate_limit.enabled = false;
    c.replay.sync_interval_ms = 20;
    c.validate().unwrap();
    c
}

fn start(dir: &Path) -> LocalNet {
    let hooks = |_| TestHooks {
        replay_budget_bytes: Some(BUDGET),
        ..TestHooks::default()
    };
    LocalNet::start_with_hooks(dir, 1, &template(), hooks).unwrap()
}

/// `n` distinct one-hop DROP packets for `exit`'s current key.
fn packets(exit: &Mixnode, n: usize) -> Vec<Vec<u8>> {
    let descriptor = exit.descriptor();
    let hop = PathHop {
        id: exit.id(),
        public_key: descriptor.sphinx_keys[0].public_key,
    };
    (0..n)
        .map(|_| {
            create_packet(&[hop], FinalCommand::Drop, b"x", &mut rand::rng())
                .unwrap()
                .frame
                .to_vec()
        })
        .collect()
}

fn send_all(exit: &Mixnode, frames: &[Vec<u8>]) {
    let client = UdpSocket::bind("127.0.0.1:0").unwrap();
    let to = exit.udp_addr().unwrap();
    let before = handled(exit);
    for chunk in frames.chunks(100) {
        let target = handled(exit) + chunk.len() as u64;
        for frame in chunk {
            client.send_to(frame, to).unwrap();
        }
        // Paced, so no socket buffer overflows.
        wait_until(
            Duration::from_secs(20),
            "the node handled the packets",
            || handled(exit) >= target,
        );
    }
    assert_eq!(handled(exit), before + frames.len() as u64);
}

/// Packets the node processed or dropped (for any reason).
fn handled(exit: &Mixnode) -> u64 {
    let stats = exit.stats();
    stats.processed + stats.dropped_total()
}

fn metric(text: &str, name: &str) -> f64 {
    text.lines()
        .find(|l| l.starts_with(name) && l[name.len()..].starts_with(' '))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("{name} not in /metrics"))
}

#[test]
fn a_filling_filter_turns_ready_503_and_full_drops_are_replay_capacity() {
    let _serial = serial();
    let dir = tempfile::tempdir().unwrap();
    let net = start(dir.path());
    let exit = net.first(NodeRole::Exit).unwrap();
    let http = exit.http_addr().unwrap();
    assert_eq!(http_get(http, "/ready").0, 200);
    let (_, text) = http_get(http, "/metrics");
    assert_eq!(metric(&text, "betanet_replay_fill_ratio"), 0.0);
    assert!(metric(&text, "betanet_replay_capacity_bytes") > 0.0);
    assert!(metric(&text, "betanet_replay_capacity_bytes") <= 3.0 * BUDGET as f64);

    // Up to ~85%: still ready.
    let frames = packets(exit, 2_600);
    send_all(exit, &frames[..1_600]);
    assert_eq!(exit.stats().dropped_total(), 0, "{:?}", exit.stats());
    assert!(exit.health().ready, "{:?}", exit.health());

    // Past 90%: not ready, and the reason says what to change.
    send_all(exit, &frames[1_600..1_800]);
    let health = exit.health();
    assert!(!health.ready && health.alive, "{health:?}");
    let reason = health.reason.unwrap();
    assert!(reason.contains("replay filter"), "{reason}");
    assert!(reason.contains("replay.memory_budget_mb"), "{reason}");
    let (code, body) = http_get(http, "/ready");
    assert_eq!(code, 503, "{body}");
    assert!(body.contains("replay filter"), "{body}");

    // Past full: new packets are refused as replay_capacity, not replay.
    send_all(exit, &frames[1_800..]);
    let stats = exit.stats();
    let capacity = stats.dropped(DropCause::ReplayCapacity);
    assert!(capacity >= 500, "{stats:?}");
    assert_eq!(stats.dropped(DropCause::Sphinx(DropReason::Replay)), 0);
    assert_eq!(stats.processed + capacity, 2_600, "{stats:?}");
    // A real replay is still a replay.
    send_all(exit, &frames[..10]);
    assert_eq!(
        exit.stats().dropped(DropCause::Sphinx(DropReason::Replay)),
        10
    );

    let (_, text) = http_get(http, "/metrics");
    assert!(metric(&text, "betanet_replay_fill_ratio") > 0.98, "{text}");
    let bytes = metric(&text, "betanet_replay_capacity_bytes");
    // The current key's filter is at its budget; the next key's is small.
    assert!(
        bytes >= BUDGET as f64 && bytes <= 2.0 * BUDGET as f64,
        "{bytes}"
    );
    assert!(text.contains("betanet_packets_dropped_total{reason=\"replay_capacity\"}"));
    assert_eq!(metric(&text, "betanet_replay_journal_errors_total"), 0.0);
}

/// The replay journals in `data_dir`.
fn journals(data_dir: &Path) -> Vec<std::path::PathBuf> {
    std::fs::read_dir(data_dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| {
            let name = p.file_name().unwrap().to_string_lossy();
            name.starts_with("replay-") && name.ends_with(".journal")
        })
        .collect()
}

#[test]
fn a_node_whose_journal_was_lost_or_damaged_refuses_to_start() {
    let _serial = serial();
    let dir = tempfile::tempdir().unwrap();
    let mut net = start(dir.path());
    let i = (0..3)
        .find(|&i| net.node(i).unwrap().config().node.role == NodeRole::Exit)
        .unwrap();
    let data_dir = net.node(i).unwrap().config().node.data_dir.clone();
    // Keys fresh from keygen got their journals at the first start.
    assert_eq!(journals(&data_dir).len(), 2);
    net.stop(i);

    // An emptied journal: refused, left alone.
    let victim = journals(&data_dir)[0].clone();
    std::fs::write(&victim, b"").unwrap();
    let err = net.restart(i).unwrap_err().to_string();
    assert!(err.contains("shorter than its"), "{err}");
    assert_eq!(std::fs::read(&victim).unwrap(), b"");

    // A deleted one: refused, not recreated empty.
    std::fs::remove_file(&victim).unwrap();
    let err = net.restart(i).unwrap_err().to_string();
    assert!(err.contains("is missing"), "{err}");
    assert!(err.contains("retire the key"), "{err}");
    assert!(!victim.exists());
}
