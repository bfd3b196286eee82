//! Sphinx key epochs on a running node: a packet built for key epoch N is
//! processed in N and in the grace window after it, and rejected once the
//! key is retired; the retired key and its replay cache are gone from
//! memory and disk. The nodes' key-schedule clock is a manual one, so the
//! test crosses days of key epochs in seconds.

mod support;

use std::net::{SocketAddr, UdpSocket};
use std::path::Path;
use std::time::Duration;

use betanet::NodeRole;
use betanet::clock::ManualClock;
use betanet::config::Config;
use betanet::node::{Mixnode, TestHooks};
use betanet::sphinx::{FinalCommand, MessageId, PathHop, create_packet};
use betanet::testnet::LocalNet;
use support::{receive, serial, wait_until};

const EPOCH: u64 = 86_400;
const GRACE: u64 = 3_600;

fn template() -> Config {
    let mut c = Config::default();
    c.node.shutdown_grace_ms = 200;
    // Frames go straight to the exit as plaintext (as a member would send
    // them with links off); links have tests of their own.
    c.transport.links = false;
    c.pipeline.workers = 1;
    c.mixing.mean_delay_ms = 0.0;
    c.cover_traffic.enabled = false;
    c.replay.sync_interval_ms = 20;
    c.sphinx.key_epoch_seconds = EPOCH;
    c.sphinx.key_grace_seconds = GRACE;
    c.validate().unwrap();
    c
}

/// A one-hop packet for the exit, built with its key of `epoch` as its
/// published descriptor lists it.
fn packet_for(exit: &Mixnode, epoch: u64, to: SocketAddr, message: &[u8]) -> Vec<u8> {
    let descriptor = exit.descriptor();
    let key = descriptor
        .sphinx_keys
        .iter()
        .find(|k| k.epoch == epoch)
        .unwrap_or_else(|| panic!("epoch {epoch} not published: {:?}", descriptor.sphinx_keys));
    let hop = PathHop {
        id: exit.id(),
        public_key: key.public_key,
    };
    let command = FinalCommand::Deliver {
        destination: to,
        message_id: MessageId([0; 16]),
    };
    create_packet(&[hop], command, message, &mut rand::rng())
        .unwrap()
        .frame
        .to_vec()
}

fn published_epochs(node: &Mixnode) -> Vec<u64> {
    node.descriptor()
        .sphinx_keys
        .iter()
        .map(|k| k.epoch)
        .collect()
}

fn journals(data_dir: &Path) -> usize {
    std::fs::read_dir(data_dir)
        .unwrap()
        .filter(|e| {
            let name = e.as_ref().unwrap().file_name();
            let name = name.to_string_lossy();
            name.starts_with("replay-") && name.ends_with(".journal")
        })
        .count()
}

/// Sends `frame` to `node` and says whether `receiver` got `message`.
fn delivered(node: &Mixnode, frame: &[u8], receiver: &UdpSocket, message: &[u8]) -> bool {
    let client = UdpSocket::bind("127.0.0.1:0").unwrap();
    client.send_to(frame, node.udp_addr().unwrap()).unwrap();
    receive(receiver, 1, Duration::from_secs(3))
        .iter()
        .any(|(m, _)| m == message)
}

/// A one-node-per-layer net whose key clock starts 100 s into the current
/// key epoch `n`; returns the net, its clock and `n`.
fn start(dir: &Path) -> (LocalNet, ManualClock, u64) {
    let n = betanet::clock::unix_now() / EPOCH;
    let clock = ManualClock::new(n * EPOCH + 100);
    let hooks = |_| TestHooks {
        clock: Some(clock.clone()),
        ..TestHooks::default()
    };
    let net = LocalNet::start_with_hooks(dir, 1, &template(), hooks).unwrap();
    (net, clock, n)
}

#[test]
fn keys_rotate_with_a_grace_window_and_retired_keys_are_destroyed() {
    let _serial = serial();
    let dir = tempfile::tempdir().unwrap();
    let (net, clock, n) = start(dir.path());
    let exit = net.first(NodeRole::Exit).unwrap();
    let key_dir = exit.config().node.key_dir.join("sphinx");
    let data_dir = exit.config().node.data_dir.clone();
    let receiver = UdpSocket::bind("127.0.0.1:0").unwrap();
    let to = receiver.local_addr().unwrap();

    // Epoch N: keys N and N+1 held and published; N's packets work.
    assert_eq!(exit.sphinx_key_epochs(), vec![n, n + 1]);
    assert_eq!(published_epochs(exit), vec![n, n + 1]);
    assert!(delivered(
        exit,
        &packet_for(exit, n, to, b"in N"),
        &receiver,
        b"in N"
    ));
    let for_n = packet_for(exit, n, to, b"N in grace");
    let for_n_late = packet_for(exit, n, to, b"N after grace");
    let for_next = packet_for(exit, n + 1, to, b"in N+1");
    assert_eq!(journals(&data_dir), 2);

    // Into epoch N+1, inside the grace window: N+2 is created and
    // published, N is still held and accepted (its own replay cache).
    clock.set((n + 1) * EPOCH + 10);
    wait_until(Duration::from_secs(10), "the rotation to N+1", || {
        published_epochs(exit) == vec![n + 1, n + 2]
    });
    assert_eq!(exit.sphinx_key_epochs(), vec![n, n + 1, n + 2]);
    assert!(key_dir.join(format!("epoch-{n}.key")).exists());
    assert!(delivered(exit, &for_n, &receiver, b"N in grace"));
    assert!(delivered(exit, &for_next, &receiver, b"in N+1"));
    assert_eq!(journals(&data_dir), 3);
    // A replay under the old key is still caught by its cache.
    let client = UdpSocket::bind("127.0.0.1:0").unwrap();
    client.send_to(&for_n, exit.udp_addr().unwrap()).unwrap();
    wait_until(Duration::from_secs(5), "the replay drop", || {
        exit.stats().dropped.get("replay").copied().unwrap_or(0) == 1
    });
    assert_eq!(exit.replay_cache_entries(), 3);

    // Grace over: N is retired; its packets fail the MAC under every key
    // left, its secret file and its replay journal are deleted, and its
    // tags are gone from memory.
    clock.set((n + 1) * EPOCH + GRACE + 1);
    wait_until(Duration::from_secs(10), "the retirement of N", || {
        exit.sphinx_key_epochs() == vec![n + 1, n + 2]
    });
    assert!(!key_dir.join(format!("epoch-{n}.key")).exists());
    assert_eq!(journals(&data_dir), 2);
    assert_eq!(exit.replay_cache_entries(), 1, "only N+1's packet remains");
    let metrics = exit.metrics_snapshot();
    assert_eq!(metrics.sphinx_key_epoch, n + 1);
    assert_eq!(metrics.sphinx_keys_held, 2);
    assert_eq!(metrics.replay_cache_entries, 1);
    let macs_before = exit.stats().dropped.get("mac").copied().unwrap_or(0);
    assert!(!delivered(exit, &for_n_late, &receiver, b"N after grace"));
    assert_eq!(
        exit.stats().dropped.get("mac").copied().unwrap_or(0),
        macs_before + 1
    );

    // The descriptor a peer fetches carries the new keys, signed.
    let served = exit.descriptor();
    served.verify().unwrap();
    assert_eq!(served.key_epoch_seconds, EPOCH);
    let on_disk = betanet::topology::NodeDescriptor::load(
        &exit
            .config()
            .node
            .key_dir
            .join(betanet::topology::DESCRIPTOR_FILE),
    )
    .unwrap();
    assert_eq!(on_disk, served);
    net.shutdown();
}

#[test]
fn a_restart_inside_the_grace_window_keeps_the_previous_key() {
    let _serial = serial();
    let dir = tempfile::tempdir().unwrap();
    let (mut net, clock, n) = start(dir.path());
    let exit_index = 2;
    let receiver = UdpSocket::bind("127.0.0.1:0").unwrap();
    let to = receiver.local_addr().unwrap();
    let for_n = packet_for(net.node(exit_index).unwrap(), n, to, b"old key");
    clock.set((n + 1) * EPOCH + 60);
    net.restart(exit_index).unwrap();
    let exit = net.node(exit_index).unwrap();
    assert_eq!(exit.sphinx_key_epochs(), vec![n, n + 1, n + 2]);
    assert!(delivered(exit, &for_n, &receiver, b"old key"));
    // After a long pause (the node down: a running one would rotate as the
    // clock moves), a restart retires what is past its grace.
    net.stop(exit_index);
    clock.set((n + 3) * EPOCH + GRACE + 5);
    net.restart(exit_index).unwrap();
    let exit = net.node(exit_index).unwrap();
    assert_eq!(
        exit.sphinx_key_epochs(),
        vec![n + 2, n + 3, n + 4],
        "N+2 stays for a grace window from now: senders could not know N+3's key"
    );
    net.shutdown();
}

#[test]
fn a_key_file_that_cannot_be_deleted_is_retried_until_it_is_gone() {
    let _serial = serial();
    let dir = tempfile::tempdir().unwrap();
    let (net, clock, n) = start(dir.path());
    let exit = net.first(NodeRole::Exit).unwrap();
    let key_file = exit
        .config()
        .node
        .key_dir
        .join("sphinx")
        .join(format!("epoch-{n}.key"));
    clock.set((n + 1) * EPOCH + 10);
    wait_until(Duration::from_secs(10), "the rotation to N+1", || {
        exit.sphinx_key_epochs() == vec![n, n + 1, n + 2]
    });

    // Something (here a directory in its place) makes deleting N's key
    // fail when its grace ends.
    std::fs::remove_file(&key_file).unwrap();
    std::fs::create_dir(&key_file).unwrap();
    std::fs::write(key_file.join("x"), "x").unwrap();
    clock.set((n + 1) * EPOCH + GRACE + 1);
    wait_until(Duration::from_secs(10), "a failed deletion", || {
        exit.metrics_snapshot().key_deletion_failures >= 1
    });
    assert_eq!(
        exit.sphinx_key_epochs(),
        vec![n + 1, n + 2],
        "out of the ring"
    );
    assert_eq!(exit.metrics_snapshot().key_deletions_pending, 1);
    let rendered = betanet::metrics::render(&exit.metrics_snapshot());
    assert!(
        rendered.contains("betanet_key_deletion_failures_total"),
        "{rendered}"
    );

    // The obstacle goes, a key file is there again: the retry deletes it.
    std::fs::remove_dir_all(&key_file).unwrap();
    std::fs::write(&key_file, "a leftover key").unwrap();
    clock.set((n + 1) * EPOCH + GRACE + 1 + 2 * betanet::keys::MAX_RETRY_SECONDS);
    // The status is published after the deletion's directory fsync: wait
    // for both, not just for the name to go.
    wait_until(Duration::from_secs(10), "the retried deletion", || {
        !key_file.exists() && exit.metrics_snapshot().key_deletions_pending == 0
    });
    let metrics = exit.metrics_snapshot();
    assert_eq!(metrics.key_deletions_pending, 0);
    assert!(metrics.key_deletion_failures >= 1);
    net.shutdown();
}
