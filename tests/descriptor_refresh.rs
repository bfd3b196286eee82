//! Descriptors with key epochs and their refresh from `GET /descriptor`:
//! the signed `key_epoch_seconds`, which key a sender picks at epoch
//! boundaries, and which refreshed descriptors are accepted, against tiny
//! HTTP servers on loopback.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener};
use std::time::Duration;

use betanet::NodeRole;
use betanet::directory_client::{fetch_descriptor, refresh_live, refresh_topology};
use betanet::http::client::HttpError;
use betanet::keys::NodeKeys;
use betanet::sphinx::SphinxSecretKey;
use betanet::topology::{
    DescriptorError, EgressProtocol, LiveTopology, NetworkParams, NodeDescriptor, RefreshError,
    RefreshOutcome, SphinxKeyEntry, Topology,
};
use rand_chacha::ChaCha20Rng;
use rand_chacha::rand_core::SeedableRng;

const KEY_EPOCH: u64 = 3600;
const TIMEOUT: Duration = Duration::from_secs(5);

/// Deterministic keys for test node `n`.
fn keys(n: u8) -> NodeKeys {
    NodeKeys::generate(&mut ChaCha20Rng::seed_from_u64(u64::from(n)))
}

/// A signed descriptor of node `n` (keys `keys(n)`), mixing on
/// 127.0.0.1:(40000 + n), with HTTP at `http` and Sphinx keys starting at
/// key epochs `epochs`.
fn descriptor(n: u8, role: NodeRole, http: SocketAddr, epochs: &[u64]) -> NodeDescriptor {
    let mix = SocketAddr::from(([127, 0, 0, 1], 40_000 + u16::from(n)));
    let sphinx_keys = epochs
        .iter()
        .map(|&epoch| SphinxKeyEntry {
            epoch,
            public_key: SphinxSecretKey::from_bytes([n.wrapping_add(epoch as u8); 32]).public_key(),
        })
        .collect();
    NodeDescriptor::new_signed(&keys(n), role, mix, mix, http, sphinx_keys, KEY_EPOCH).unwrap()
}

/// An HTTP address where nothing listens (connections are refused).
fn closed(port: u16) -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], port))
}

/// Serves `response` (a whole HTTP response) to every `GET /descriptor`,
/// after reading the request head, until the test process ends.
fn serve(response: Vec<u8>) -> SocketAddr {
    let listener = reserve();
    let addr = listener.local_addr().unwrap();
    serve_on(listener, response);
    addr
}

fn ok(body: &[u8]) -> Vec<u8> {
    let mut response = format!(
        "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n",
        body.len()
    )
    .into_bytes();
    response.extend_from_slice(body);
    response
}

/// Serves `descriptor` as JSON.
fn serve_descriptor(descriptor: &NodeDescriptor) -> SocketAddr {
    serve(ok(&descriptor.to_json().unwrap()))
}

/// A known entry node 1 (HTTP at `http`, keys from epochs 10 and 11) plus a
/// middle and an exit whose HTTP ports are closed.
fn topology(http: SocketAddr) -> Topology {
    Topology::build([
        descriptor(1, NodeRole::Entry, http, &[10, 11]),
        descriptor(2, NodeRole::Middle, closed(2), &[10, 11]),
        descriptor(3, NodeRole::Exit, closed(3), &[10, 11]),
    ])
    .unwrap()
}

/// A listener bound now (so its address is known) whose descriptor is
/// served later by `serve_on`.
fn reserve() -> TcpListener {
    TcpListener::bind("127.0.0.1:0").unwrap()
}

/// Like [`serve`], on a listener bound earlier; other paths get 404.
fn serve_on(listener: TcpListener, response: Vec<u8>) {
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            let mut head = Vec::new();
            let mut buf = [0u8; 512];
            // TCP may split the request: read up to the end of the head.
            while !head.ends_with(b"\r\n\r\n") {
                match stream.read(&mut buf) {
                    Ok(0) | Err(_) => break,
                    Ok(n) => head.extend_from_slice(&buf[..n]),
                }
            }
            if head.starts_with(b"GET /descriptor HTTP/1.1\r\n") {
                let _ = stream.write_all(&response);
            } else {
                let _ = stream.write_all(b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n");
            }
        }
    });
}

#[test]
fn key_epoch_seconds_is_signed_in_canonical_order() {
    let d = descriptor(1, NodeRole::Entry, closed(1), &[10, 11]);
    assert_eq!(d.key_epoch_seconds, KEY_EPOCH);
    let message = String::from_utf8(d.signed_message().unwrap()).unwrap();
    let keys_at = message.find("\"sphinx_keys\":").unwrap();
    let epoch_at = message.find("\"key_epoch_seconds\":3600,").unwrap();
    let vrf_at = message.find("\"vrf_key\":").unwrap();
    assert!(keys_at < epoch_at && epoch_at < vrf_at, "{message}");

    // The field survives a round trip through JSON and is covered by the
    // signature.
    let parsed = NodeDescriptor::from_json(&d.to_json().unwrap()).unwrap();
    assert_eq!(parsed, d);
    parsed.verify().unwrap();
    let mut tampered = d.clone();
    tampered.key_epoch_seconds = 60;
    assert!(matches!(
        tampered.verify(),
        Err(DescriptorError::BadSignature)
    ));

    // Zero is refused, with a message naming the setting.
    let zero = NodeDescriptor::new_signed(
        &keys(1),
        NodeRole::Entry,
        d.udp_addr,
        d.tcp_addr,
        d.http_addr,
        d.sphinx_keys.clone(),
        0,
    )
    .unwrap_err();
    assert!(matches!(zero, DescriptorError::ZeroKeyEpoch));
    assert!(zero.to_string().contains("key_epoch_seconds"));

    // A descriptor without the field is not a descriptor of this version.
    let mut json: serde_json::Value = serde_json::from_slice(&d.to_json().unwrap()).unwrap();
    json.as_object_mut().unwrap().remove("key_epoch_seconds");
    let text = serde_json::to_vec(&json).unwrap();
    assert!(matches!(
        NodeDescriptor::from_json(&text),
        Err(DescriptorError::Json(_))
    ));
}

#[test]
fn senders_pick_the_latest_key_that_has_started() {
    let d = descriptor(1, NodeRole::Entry, closed(1), &[10, 11]);
    let start = |epoch: u64| epoch * KEY_EPOCH;
    let key = |t: u64| d.sphinx_key_at(t).map(|k| k.epoch);

    assert_eq!(d.key_epoch_at(start(10) - 1), 9);
    assert_eq!(d.key_epoch_at(start(10)), 10);
    // Before the first published key: nothing usable.
    assert_eq!(key(start(10) - 1), None);
    // Epoch 10, first and last second.
    assert_eq!(key(start(10)), Some(10));
    assert_eq!(key(start(11) - 1), Some(10));
    // The next key takes over exactly at its epoch.
    assert_eq!(key(start(11)), Some(11));
    // Later, the newest published key is the best there is.
    assert_eq!(key(start(50)), Some(11));
    assert_eq!(d.newest_key_epoch(), Some(11));
    assert_eq!(
        d.sphinx_key_at(start(11)).unwrap().public_key,
        d.sphinx_keys[1].public_key
    );
    // By the real clock, epoch 11 is long past.
    assert_eq!(d.sphinx_key_now().map(|k| k.epoch), Some(11));
}

#[test]
fn matches_keys_compares_identity_and_vrf_keys_only() {
    let d = descriptor(1, NodeRole::Entry, closed(1), &[10, 11]);
    assert!(d.matches_keys(&keys(1)));
    assert!(!d.matches_keys(&keys(2)));
    // Rotated Sphinx keys do not matter.
    let rotated = descriptor(1, NodeRole::Entry, closed(1), &[11, 12]);
    assert!(rotated.matches_keys(&keys(1)));
}

#[test]
fn a_newer_descriptor_signed_by_the_known_identity_is_accepted() {
    let listener = reserve();
    let http = listener.local_addr().unwrap();
    let mut topology = topology(http);
    let newer = descriptor(1, NodeRole::Entry, http, &[11, 12]);
    serve_on(listener, ok(&newer.to_json().unwrap()));

    let fetched = fetch_descriptor(http, TIMEOUT).unwrap();
    assert_eq!(fetched, newer);

    let report = refresh_topology(&mut topology, TIMEOUT);
    assert_eq!(topology.get(&newer.id), Some(&newer));
    assert!(matches!(
        report.outcome(&newer.id),
        Some(RefreshOutcome::Updated {
            newest_key_epoch: 12
        })
    ));
    // The other two are unreachable: reported, and kept as they were.
    assert_eq!((report.updated(), report.failures().count()), (1, 2));
    for (node, error) in report.failures() {
        assert!(matches!(error, RefreshError::Fetch { .. }), "{error}");
        assert!(error.to_string().contains("is the node up"), "{error}");
        assert_eq!(topology.get(&node.id).unwrap().sphinx_keys[0].epoch, 10);
    }
    assert!(report.to_string().contains("1 updated"), "{report}");

    // Served again: nothing new.
    let again = refresh_topology(&mut topology, TIMEOUT);
    assert!(matches!(
        again.outcome(&newer.id),
        Some(RefreshOutcome::Unchanged)
    ));
    assert!(!topology.apply_refreshed(newer.clone()).unwrap());
}

/// Refreshes node 1 of [`topology`] from a server returning `response` and
/// returns the error, checking the known descriptor was kept.
fn refused(response: Vec<u8>) -> RefreshError {
    let listener = reserve();
    let http = listener.local_addr().unwrap();
    let mut topology = topology(http);
    let known = topology.nodes()[0].clone();
    serve_on(listener, response);
    let mut report = refresh_topology(&mut topology, TIMEOUT);
    assert_eq!(topology.nodes()[0], known, "the known descriptor must stay");
    let node = report.nodes.remove(0);
    assert_eq!(node.id, known.id);
    match node.outcome {
        RefreshOutcome::Failed(error) => error,
        other => panic!("accepted: {other:?}"),
    }
}

#[test]
fn another_nodes_descriptor_is_refused() {
    // An impostor at node 1's address serves its own, validly signed
    // descriptor: its identity key (hence id) is not node 1's.
    let impostor = descriptor(9, NodeRole::Entry, closed(9), &[11, 12]);
    let error = refused(ok(&impostor.to_json().unwrap()));
    assert!(
        matches!(error, RefreshError::WrongNode { got, .. } if got == impostor.id),
        "{error}"
    );
}

#[test]
fn a_descriptor_with_another_vrf_key_is_refused() {
    let known = topology(closed(1));
    let node1 = known.nodes()[0].clone();
    // Signed by node 1's identity, but with another VRF key: a node could
    // otherwise grind VRF keys until its delays and neighbours suit it.
    let mut keys = keys(1);
    keys.vrf = keys_vrf(9);
    let mut regrind = node1.clone();
    regrind.vrf_key = keys.vrf_public_key();
    regrind.sign(&keys).unwrap();
    let mut topology = known.clone();
    let error = topology.apply_refreshed(regrind).unwrap_err();
    assert!(
        matches!(error, RefreshError::VrfKeyChanged(id) if id == node1.id),
        "{error}"
    );
    assert_eq!(topology, known);
}

fn keys_vrf(n: u8) -> betanet::keys::VrfSecretKey {
    keys(n).vrf
}

#[test]
fn a_descriptor_signed_by_another_identity_key_is_refused() {
    let known = topology(closed(1));
    let node1 = known.nodes()[0].clone();
    // Claims node 1's id, but carries (and is signed by) key 9.
    let mut forged = descriptor(9, NodeRole::Entry, node1.http_addr, &[11, 12]);
    forged.id = node1.id;
    let mut topology = known.clone();
    let error = topology.apply_refreshed(forged.clone()).unwrap_err();
    assert!(
        matches!(error, RefreshError::IdentityKeyChanged(id) if id == node1.id),
        "{error}"
    );
    assert!(
        error.to_string().contains("rebuild topology.json"),
        "{error}"
    );
    assert_eq!(topology, known);

    // Over HTTP it does not even verify (its id is not its key's).
    let error = refused(ok(&forged.to_json().unwrap()));
    assert!(
        matches!(
            error,
            RefreshError::Invalid {
                error: DescriptorError::IdMismatch { .. },
                ..
            }
        ),
        "{error}"
    );
}

#[test]
fn a_tampered_descriptor_is_refused() {
    let mut tampered = descriptor(1, NodeRole::Entry, closed(1), &[11, 12]);
    tampered.udp_addr = closed(7);
    let error = refused(ok(&tampered.to_json().unwrap()));
    assert!(
        matches!(
            error,
            RefreshError::Invalid {
                error: DescriptorError::BadSignature,
                ..
            }
        ),
        "{error}"
    );
}

#[test]
fn a_role_change_is_refused() {
    let listener = reserve();
    let http = listener.local_addr().unwrap();
    let mut topology = topology(http);
    let known = topology.clone();
    let middle = descriptor(1, NodeRole::Middle, http, &[11, 12]);
    serve_on(listener, ok(&middle.to_json().unwrap()));
    let report = refresh_topology(&mut topology, TIMEOUT);
    assert!(
        matches!(
            report.outcome(&middle.id),
            Some(RefreshOutcome::Failed(RefreshError::RoleChanged {
                known: NodeRole::Entry,
                served: NodeRole::Middle,
                ..
            }))
        ),
        "{report:?}"
    );
    assert_eq!(topology, known);
}

#[test]
fn a_rollback_to_older_keys_is_refused() {
    let listener = reserve();
    let http = listener.local_addr().unwrap();
    let mut topology = topology(http);
    let known = topology.clone();
    let older = descriptor(1, NodeRole::Entry, http, &[9, 10]);
    serve_on(listener, ok(&older.to_json().unwrap()));
    let report = refresh_topology(&mut topology, TIMEOUT);
    assert_eq!(topology, known);
    assert!(
        matches!(
            report.outcome(&older.id),
            Some(RefreshOutcome::Failed(RefreshError::Rollback {
                known: 11,
                served: 10,
                ..
            }))
        ),
        "{report:?}"
    );
}

#[test]
fn a_descriptor_that_moves_the_node_is_refused() {
    // Validly signed by node 1, newer keys, but another address: the
    // operator's topology.json says where node 1 is, not node 1.
    let known = topology(closed(1));
    let node1 = known.nodes()[0].clone();
    let elsewhere = SocketAddr::from(([10, 0, 0, 1], 80));
    let moved = |udp, tcp, http| {
        NodeDescriptor::new_signed(
            &keys(1),
            NodeRole::Entry,
            udp,
            tcp,
            http,
            descriptor(1, NodeRole::Entry, http, &[11, 12]).sphinx_keys,
            KEY_EPOCH,
        )
        .unwrap()
    };
    let (udp, tcp, http) = (node1.udp_addr, node1.tcp_addr, node1.http_addr);
    for (field, served) in [
        ("udp_addr", moved(elsewhere, tcp, http)),
        ("tcp_addr", moved(udp, elsewhere, http)),
        ("http_addr", moved(udp, tcp, elsewhere)),
    ] {
        let mut topology = known.clone();
        let error = topology.apply_refreshed(served).unwrap_err();
        assert!(
            matches!(
                &error,
                RefreshError::AddressChanged { id, field: f, known: was, served: now }
                    if *id == node1.id && *f == field && *now == elsewhere && *was != elsewhere
            ),
            "{error}"
        );
        assert!(error.to_string().contains("topology.json"), "{error}");
        assert_eq!(topology, known);
    }

    // Over HTTP, from the node's own address, the same.
    let listener = reserve();
    let http = listener.local_addr().unwrap();
    let mut topology = topology(http);
    let before = topology.clone();
    let served = moved(elsewhere, elsewhere, http);
    serve_on(listener, ok(&served.to_json().unwrap()));
    let report = refresh_topology(&mut topology, TIMEOUT);
    assert!(
        matches!(
            report.outcome(&served.id),
            Some(RefreshOutcome::Failed(RefreshError::AddressChanged {
                field: "udp_addr",
                ..
            }))
        ),
        "{report:?}"
    );
    assert_eq!(topology, before);
}

#[test]
fn new_keys_and_network_parameters_are_still_accepted() {
    let listener = reserve();
    let http = listener.local_addr().unwrap();
    let mut topology = topology(http);
    let newer = descriptor(1, NodeRole::Entry, http, &[11, 12])
        .with_network(NetworkParams::default(), &keys(1))
        .unwrap();
    serve_on(listener, ok(&newer.to_json().unwrap()));
    let report = refresh_topology(&mut topology, TIMEOUT);
    assert!(
        matches!(
            report.outcome(&newer.id),
            Some(RefreshOutcome::Updated {
                newest_key_epoch: 12
            })
        ),
        "{report:?}"
    );
    assert_eq!(topology.get(&newer.id), Some(&newer));
}

#[test]
fn an_unknown_node_is_refused() {
    let mut topology = topology(closed(1));
    let stranger = descriptor(9, NodeRole::Entry, closed(9), &[11, 12]);
    let error = topology.apply_refreshed(stranger).unwrap_err();
    assert!(matches!(error, RefreshError::UnknownNode(_)), "{error}");
    assert!(error.to_string().contains("topology.json"), "{error}");
}

#[test]
fn bad_responses_are_refused() {
    let error = refused(b"HTTP/1.1 503 Service Unavailable\r\nContent-Length: 0\r\n\r\n".to_vec());
    assert!(
        matches!(error, RefreshError::Status { status: 503, .. }),
        "{error}"
    );

    let error = refused(ok(b"{\"hello\": 1}"));
    assert!(matches!(error, RefreshError::Parse { .. }), "{error}");

    // Far more than any descriptor: cut off, not buffered.
    let mut huge = b"HTTP/1.1 200 OK\r\nContent-Length: 10000000\r\n\r\n".to_vec();
    huge.resize(huge.len() + 200_000, b' ');
    let error = refused(huge);
    assert!(
        matches!(
            error,
            RefreshError::Fetch {
                error: HttpError::TooLarge(_),
                ..
            }
        ),
        "{error}"
    );

    let error = refused(b"SSH-2.0-OpenSSH\r\n\r\n".to_vec());
    assert!(
        matches!(
            error,
            RefreshError::Fetch {
                error: HttpError::Malformed(_),
                ..
            }
        ),
        "{error}"
    );
}

#[test]
fn a_node_that_never_answers_does_not_hold_up_the_others() {
    // Node 1 accepts connections but never answers; node 2 answers.
    let silent = TcpListener::bind("127.0.0.1:0").unwrap();
    let silent_addr = silent.local_addr().unwrap();
    let listener = reserve();
    let http = listener.local_addr().unwrap();
    let mut topology = Topology::build([
        descriptor(1, NodeRole::Entry, silent_addr, &[10, 11]),
        descriptor(2, NodeRole::Middle, http, &[10, 11]),
        descriptor(3, NodeRole::Exit, closed(3), &[10, 11]),
    ])
    .unwrap();
    let newer = descriptor(2, NodeRole::Middle, http, &[11, 12]);
    serve_on(listener, ok(&newer.to_json().unwrap()));

    let report = refresh_topology(&mut topology, Duration::from_millis(500));
    drop(silent);
    assert_eq!(topology.get(&newer.id), Some(&newer));
    let silent_id = descriptor(1, NodeRole::Entry, silent_addr, &[10, 11]).id;
    assert!(
        matches!(
            report.outcome(&silent_id),
            Some(RefreshOutcome::Failed(RefreshError::Fetch { .. }))
        ),
        "{report:?}"
    );
}

#[test]
fn refreshed_descriptors_survive_a_reload_of_the_file() {
    let listener = reserve();
    let http = listener.local_addr().unwrap();
    let file = topology(http);
    let newer = descriptor(1, NodeRole::Entry, http, &[11, 12]);
    serve_on(listener, ok(&newer.to_json().unwrap()));
    let live = LiveTopology::new(file.clone(), EgressProtocol::Udp);

    let report = refresh_live(&live, TIMEOUT);
    assert_eq!(report.updated(), 1, "{report}");
    assert_eq!(live.snapshot().get(&newer.id), Some(&newer));

    // The same (older) file again: the refreshed keys stay.
    live.replace(file.clone());
    assert_eq!(live.snapshot().get(&newer.id), Some(&newer));
    assert_eq!(live.refreshed().len(), 1);

    // A file with a descriptor as new as the refreshed one: the file wins.
    let moved = SocketAddr::from(([127, 0, 0, 1], 40_100));
    let mut rebuilt: Vec<NodeDescriptor> = file.nodes().to_vec();
    let node1 = NodeDescriptor::new_signed(
        &keys(1),
        NodeRole::Entry,
        moved,
        moved,
        http,
        newer.sphinx_keys.clone(),
        KEY_EPOCH,
    )
    .unwrap();
    rebuilt[0] = node1.clone();
    live.replace(Topology::build(rebuilt).unwrap());
    assert_eq!(live.snapshot().get(&node1.id), Some(&node1));
    assert!(live.refreshed().is_empty());

    // Refreshed again, then a file without the node: the overlay goes too.
    refresh_live(&live, TIMEOUT);
    let without = Topology::build([
        descriptor(2, NodeRole::Middle, closed(2), &[10, 11]),
        descriptor(3, NodeRole::Exit, closed(3), &[10, 11]),
        descriptor(4, NodeRole::Entry, closed(4), &[10, 11]),
    ])
    .unwrap();
    live.replace(without.clone());
    assert_eq!(*live.snapshot(), without);
    assert!(live.refreshed().is_empty());
}

#[test]
fn a_reloaded_file_that_changes_the_nodes_role_drops_its_refresh() {
    // (The overlay is keyed by id, and ids come from identity keys, so a
    // new identity key in the file is a different node: the old node's
    // refresh goes with it, as the previous test shows.)
    let listener = reserve();
    let http = listener.local_addr().unwrap();
    let file = topology(http);
    let newer = descriptor(1, NodeRole::Entry, http, &[11, 12]);
    serve_on(listener, ok(&newer.to_json().unwrap()));
    let live = LiveTopology::new(file.clone(), EgressProtocol::Udp);
    refresh_live(&live, TIMEOUT);
    assert_eq!(live.refreshed().len(), 1);

    let as_middle = descriptor(1, NodeRole::Middle, http, &[10, 11]);
    let reloaded = Topology::build([
        as_middle.clone(),
        descriptor(2, NodeRole::Middle, closed(2), &[10, 11]),
        descriptor(3, NodeRole::Exit, closed(3), &[10, 11]),
        descriptor(4, NodeRole::Entry, closed(4), &[10, 11]),
    ])
    .unwrap();
    live.replace(reloaded);
    assert_eq!(live.snapshot().get(&as_middle.id), Some(&as_middle));
    assert!(live.refreshed().is_empty());
}

#[test]
fn serve_answers_other_paths_with_404() {
    // The fixture's own check, so a wrong request path shows up as a 404
    // rather than as a silently accepted descriptor.
    let addr = serve_descriptor(&descriptor(1, NodeRole::Entry, closed(1), &[10, 11]));
    let response = betanet::http::client::get(addr, "/other", TIMEOUT).unwrap();
    assert_eq!(response.status, 404);
    fetch_descriptor(addr, TIMEOUT).unwrap();
}
