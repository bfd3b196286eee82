//! `betanet audit` against real local mixnets: an honest node passes, a node
//! that skips or shortens its mixing delays fails and is named, and the
//! honest nodes on its paths are not blamed. The networks run on non-default
//! delays and the audits are given none: the nodes publish theirs in their
//! signed descriptors. A node on other settings than its network is
//! MISCONFIGURED, not NOT MIXING.

#![cfg(feature = "vrf")]

use std::path::Path;
use std::process::Command;
use std::sync::{Mutex, MutexGuard};
use std::time::Duration;

use betanet::audit::{self, AuditParams, AuditReport, Verdict};
use betanet::config::Config;
use betanet::node::TestHooks;
use betanet::sphinx::NodeId;
use betanet::testnet::LocalNet;
use betanet::topology::Topology;

const MEAN_MS: u64 = 20;
const MAX_MS: u64 = 500;
const SAMPLES: usize = 150;

/// The audits measure time: they must not share the cores with each other.
fn serial() -> MutexGuard<'static, ()> {
    static LOCK: Mutex<()> = Mutex::new(());
    LOCK.lock().unwrap_or_else(|e| e.into_inner())
}

fn template() -> Config {
    let mut c = Config::default();
    c.node.shutdown_grace_ms = 200;
    c.pipeline.workers = 1;
    c.mixing.mean_delay_ms = MEAN_MS as f64;
    c.mixing.max_delay_ms = MAX_MS as f64;
    c.cover_traffic.enabled = false;
    c.replay.sync_interval_ms = 20;
    c.validate().unwrap();
    c
}

/// A mixnet of `per_layer` nodes per layer where node `i` (descriptor order:
/// entries, middles, exits) scales its delays by `factor(i)`.
fn start(dir: &Path, per_layer: usize, factor: impl Fn(usize) -> f64) -> LocalNet {
    LocalNet::start_with_hooks(dir, per_layer, &template(), |i| TestHooks {
        delay_factor: factor(i),
        ..TestHooks::default()
    })
    .unwrap()
}

/// The defaults but for the sample count and pace: no network parameter
/// is given, the audit reads them from the descriptors.
fn params() -> AuditParams {
    AuditParams {
        samples: SAMPLES,
        interval: Duration::from_millis(4),
        ..AuditParams::default()
    }
}

/// The topology with every node's current descriptor, as `betanet audit`
/// refreshes it.
fn topology(net: &LocalNet) -> Topology {
    let mut topology = Topology::load(&net.topology_path()).unwrap();
    betanet::directory_client::refresh_topology(&mut topology, Duration::from_secs(5));
    topology
}

/// Audits `target`. A busy machine (other tests, compilers) adds jitter
/// that can leave a verdict inconclusive; as the report advises, the audit
/// is then repeated with more samples (twice at most).
fn audit(net: &LocalNet, target: NodeId) -> AuditReport {
    let topology = topology(net);
    let mut params = params();
    for attempt in 1.. {
        let report = audit::run(&topology, target, &params).unwrap();
        eprintln!("{report}");
        assert!(report.proof_failures.is_empty(), "{report}");
        assert!(
            report.counts.analysed >= params.samples * 9 / 10,
            "too few samples analysed: {report}"
        );
        if report.target_verdict() != Verdict::Inconclusive || attempt == 3 {
            return report;
        }
        params.samples *= 2;
    }
    unreachable!()
}

fn verdict(report: &AuditReport, node: NodeId) -> Verdict {
    report.analysis.finding(&node).unwrap().verdict
}

/// An honest node may come out inconclusive on a busy machine, never as
/// NOT MIXING.
fn assert_not_blamed(report: &AuditReport, node: NodeId) {
    assert_ne!(verdict(report, node), Verdict::NotMixing, "{report}");
}

/// Runs the real binary's `audit`; returns the exit code and stdout.
fn audit_cli(net: &LocalNet, target: NodeId, samples: usize) -> (i32, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_betanet"))
        .arg("audit")
        .arg("--topology")
        .arg(net.topology_path())
        .args(["--node", &target.to_string()])
        .args(["--samples", &samples.to_string()])
        .args(["--interval-ms", "4"])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    eprintln!("{stdout}{}", String::from_utf8_lossy(&out.stderr));
    (out.status.code().unwrap_or(-1), stdout)
}

#[test]
fn an_honest_node_passes() {
    let _serial = serial();
    let dir = tempfile::tempdir().unwrap();
    let net = start(dir.path(), 2, |_| 1.0);
    let middle = net.descriptors()[2].id;
    let report = audit(&net, middle);
    assert!(report.passed(), "{report}");
    for finding in &report.analysis.nodes {
        assert_not_blamed(&report, finding.node);
    }
    // Every other node of the entry and exit layers was on some path.
    assert_eq!(report.analysis.nodes.len(), 5, "{report}");
    assert_eq!(
        report.target_finding().unwrap().samples,
        report.counts.analysed
    );

    // What cannot be audited is an error, not a verdict.
    let topology = Topology::load(&net.topology_path()).unwrap();
    let unknown = NodeId::from_bytes([0xee; 16]);
    assert!(matches!(
        audit::run(&topology, unknown, &params()),
        Err(audit::AuditError::UnknownNode(id)) if id == unknown
    ));
    let anywhere = AuditParams {
        listen: "0.0.0.0:0".parse().unwrap(),
        ..params()
    };
    assert!(matches!(
        audit::run(&topology, middle, &anywhere),
        Err(audit::AuditError::UnroutableListen(_))
    ));
    net.shutdown();
}

#[test]
fn a_node_that_skips_mixing_is_named_and_its_neighbours_are_not_blamed() {
    let _serial = serial();
    let dir = tempfile::tempdir().unwrap();
    // Middle-1 (index 2) forwards every packet at once.
    let net = start(dir.path(), 2, |i| if i == 2 { 0.0 } else { 1.0 });
    let ids: Vec<NodeId> = net.descriptors().iter().map(|d| d.id).collect();
    let cheater = ids[2];

    let report = audit(&net, cheater);
    assert!(!report.passed(), "{report}");
    assert_eq!(report.target_verdict(), Verdict::NotMixing, "{report}");
    assert!(report.target_finding().unwrap().held < 0.2, "{report}");
    assert!(report.summary().contains(&cheater.to_string()));
    for &honest in ids.iter().filter(|id| **id != cheater && **id != ids[3]) {
        assert_not_blamed(&report, honest);
    }

    // Auditing an honest exit sends half its packets through the cheater:
    // the exit passes, and the table still names the cheater.
    let report = audit(&net, ids[4]);
    assert!(report.passed(), "{report}");
    assert_eq!(verdict(&report, cheater), Verdict::NotMixing, "{report}");
    assert_not_blamed(&report, ids[3]);

    // The real binary, with default flags: exit 1 for the cheater, 0 for an
    // honest node (given more samples if a busy machine leaves it
    // inconclusive).
    let (code, stdout) = audit_cli(&net, cheater, SAMPLES);
    assert_eq!(code, 1, "{stdout}");
    assert!(
        stdout.contains(&format!("FAIL: node {cheater} is NOT MIXING")),
        "{stdout}"
    );
    let honest = ids[0];
    for samples in [SAMPLES, 2 * SAMPLES, 4 * SAMPLES] {
        let (code, stdout) = audit_cli(&net, honest, samples);
        assert!(
            !stdout.contains(&format!("node {honest} is NOT MIXING")),
            "{stdout}"
        );
        if code == 0 {
            assert!(stdout.contains(&format!("PASS: node {honest}")), "{stdout}");
            break;
        }
        assert_eq!(code, 3, "inconclusive has its own exit code: {stdout}");
        assert!(samples < 4 * SAMPLES, "still inconclusive: {stdout}");
    }
    net.shutdown();
}

#[test]
fn a_node_that_shortens_its_delays_is_caught() {
    let _serial = serial();
    let dir = tempfile::tempdir().unwrap();
    // One node per layer; the exit (index 2) holds packets 30 % of the time
    // it must.
    let net = start(dir.path(), 1, |i| if i == 2 { 0.3 } else { 1.0 });
    let ids: Vec<NodeId> = net.descriptors().iter().map(|d| d.id).collect();
    let report = audit(&net, ids[2]);
    assert!(!report.passed(), "{report}");
    assert_eq!(report.target_verdict(), Verdict::NotMixing, "{report}");
    let held = report.target_finding().unwrap().held;
    assert!((0.15..0.45).contains(&held), "held {held}: {report}");
    assert_not_blamed(&report, ids[0]);
    assert_not_blamed(&report, ids[1]);
    net.shutdown();
}

#[test]
fn audit_paths_follow_the_vrf_neighbour_sets() {
    let _serial = serial();
    let dir = tempfile::tempdir().unwrap();
    // Each node relays to one of the two nodes of the next layer, so from
    // an entry the path is fixed by two neighbour sets; a path drawn without
    // them would lose three packets in four. (An entry always has a path; a
    // middle or exit that no node picked this epoch has none.)
    let mut config = template();
    config.vrf.neighbors_k = 1;
    let net = LocalNet::start(dir.path(), 2, &config).unwrap();
    let topology = topology(&net);
    let entry = net.descriptors()[0].id;
    // neighbors_k = 1 is published by the nodes, not told to the audit.
    let params = AuditParams {
        samples: 60,
        ..params()
    };
    let report = audit::run(&topology, entry, &params).unwrap();
    eprintln!("{report}");
    assert_eq!(report.counts.received, report.counts.sent, "{report}");
    assert_not_blamed(&report, entry);
    net.shutdown();
}

#[test]
fn a_node_on_other_settings_is_misconfigured_not_accused() {
    let _serial = serial();
    let dir = tempfile::tempdir().unwrap();
    let mut net = start(dir.path(), 1, |_| 1.0);
    let ids: Vec<NodeId> = net.descriptors().iter().map(|d| d.id).collect();
    // The middle's operator runs a mean delay of its own: honest about it
    // (it publishes it), but not what the network promises its users.
    net.restart_with(1, |c| c.mixing.mean_delay_ms = 2.0 * MEAN_MS as f64)
        .unwrap();

    let report = audit(&net, ids[1]);
    assert_eq!(report.target_verdict(), Verdict::Misconfigured, "{report}");
    assert_eq!(report.outcome().exit_code(), 4);
    let differences = &report.network.misconfigured[&ids[1]];
    assert_eq!(
        differences,
        &vec![format!(
            "mean_delay_us {} ≠ {}",
            2_000 * MEAN_MS,
            1_000 * MEAN_MS
        )]
    );
    assert_eq!(report.network.network.mean_delay_us, 1_000 * MEAN_MS);

    // Its neighbours are judged as usual, with each hop's own delays.
    let report = audit(&net, ids[0]);
    assert!(report.passed(), "{report}");
    assert_eq!(verdict(&report, ids[1]), Verdict::Misconfigured, "{report}");

    let (code, stdout) = audit_cli(&net, ids[1], 60);
    assert_eq!(code, 4, "{stdout}");
    assert!(stdout.contains("is MISCONFIGURED"), "{stdout}");
    assert!(!stdout.contains("NOT MIXING"), "{stdout}");
    net.shutdown();
}

#[test]
fn an_audit_that_gets_nothing_back_says_what_to_check() {
    let _serial = serial();
    let dir = tempfile::tempdir().unwrap();
    // The exit may deliver nowhere the auditor listens.
    let mut config = template();
    config.exit.allow = vec!["192.0.2.0/24".parse().unwrap()];
    let net = LocalNet::start(dir.path(), 1, &config).unwrap();
    let middle = net.descriptors()[1].id;
    let (code, stdout) = audit_cli(&net, middle, 20);
    assert_eq!(code, 3, "{stdout}");
    assert!(
        stdout.contains("none of the 20 audit packet(s) came back"),
        "{stdout}"
    );
    assert!(stdout.contains("exit.allow"), "{stdout}");
    net.shutdown();
}
