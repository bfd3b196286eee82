//! Node keys, signed descriptors and topologies, through the public API and
//! real files.

use std::fs;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use betanet::NodeRole;
use betanet::keys::{
    IDENTITY_KEY_FILE, KeyError, KeygenError, KeygenParams, NodeKeys, SPHINX_KEY_DIR,
    SphinxKeyStore, VRF_KEY_FILE, keygen,
};
use betanet::sphinx::{NodeId, SphinxSecretKey};
use betanet::topology::{
    DESCRIPTOR_FILE, DescriptorError, NodeDescriptor, SphinxKeyEntry, Topology, TopologyError,
    build_topology_file,
};
use rand_chacha::ChaCha20Rng;
use rand_chacha::rand_core::SeedableRng;

const KEY_FILES: [&str; 2] = [IDENTITY_KEY_FILE, VRF_KEY_FILE];

/// The network's key epoch length in these tests, and "now" for keygen.
const KEY_EPOCH: u64 = 86_400;
const NOW: u64 = 20_000 * KEY_EPOCH + 5;

fn addr(text: &str) -> SocketAddr {
    text.parse().unwrap()
}

fn mode(path: &Path) -> u32 {
    fs::metadata(path).unwrap().permissions().mode() & 0o777
}

/// Deterministic keys for test node number `n`.
fn keys(n: u64) -> NodeKeys {
    NodeKeys::generate(&mut ChaCha20Rng::seed_from_u64(n))
}

/// Test node `n` of `role` on 10.0.0.n (UDP and TCP on 9000, HTTP on 8080).
fn node(n: u8, role: NodeRole) -> NodeDescriptor {
    let keys = keys(u64::from(n));
    let ip = IpAddr::V4(Ipv4Addr::new(10, 0, 0, n));
    let sphinx = SphinxSecretKey::generate(&mut ChaCha20Rng::seed_from_u64(1000 + u64::from(n)));
    let current = SphinxKeyEntry {
        epoch: 0,
        public_key: sphinx.public_key(),
    };
    NodeDescriptor::new_signed(
        &keys,
        role,
        SocketAddr::new(ip, 9000),
        SocketAddr::new(ip, 9000),
        SocketAddr::new(ip, 8080),
        vec![current],
        KEY_EPOCH,
    )
    .unwrap()
}

/// A Sphinx public key for test node `keys` (the node keys hold none:
/// Sphinx keys live per epoch in the key store).
fn sphinx_key_of(keys: &NodeKeys) -> betanet::sphinx::SphinxPublicKey {
    let seed = blake3::hash(&keys.identity_public_key());
    SphinxSecretKey::from_bytes(*seed.as_bytes()).public_key()
}

/// Two nodes per layer.
fn six_nodes() -> Vec<NodeDescriptor> {
    (1..=6)
        .map(|n| node(n, NodeRole::ALL[usize::from(n - 1) / 2]))
        .collect()
}

/// Every file under `dir` (recursively) with its content and mode.
fn snapshot(dir: &Path) -> Vec<(PathBuf, Vec<u8>, u32)> {
    let mut files = Vec::new();
    for entry in fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            files.push((path.clone(), Vec::new(), mode(&path)));
            files.extend(snapshot(&path));
        } else {
            let content = fs::read(&path).unwrap();
            let mode = mode(&path);
            files.push((path, content, mode));
        }
    }
    files.sort();
    files
}

fn params(role: NodeRole, udp: &str, tcp: &str, http: &str) -> KeygenParams {
    KeygenParams {
        role,
        udp_addr: addr(udp),
        tcp_addr: addr(tcp),
        http_addr: addr(http),
        key_epoch_seconds: KEY_EPOCH,
        now_unix: NOW,
        network: Default::default(),
    }
}

fn do_keygen(dir: &Path, role: NodeRole) -> Result<NodeDescriptor, KeygenError> {
    keygen(
        dir,
        params(role, "192.0.2.1:9000", "192.0.2.1:9000", "192.0.2.1:8080"),
    )
}

// ---- keys and keygen ----------------------------------------------------

#[test]
fn keygen_writes_private_key_files_and_a_verified_descriptor() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("node");
    let descriptor = do_keygen(&dir, NodeRole::Middle).unwrap();

    assert_eq!(mode(&dir), 0o700);
    for name in KEY_FILES {
        let path = dir.join(name);
        assert_eq!(mode(&path), 0o600, "{name}");
        let text = fs::read_to_string(&path).unwrap();
        assert_eq!(text.len(), 65, "{name}");
        assert!(text.ends_with('\n'));
        assert!(text[..64].bytes().all(|b| b.is_ascii_hexdigit()));
    }

    let loaded = NodeDescriptor::load(&dir.join(DESCRIPTOR_FILE)).unwrap();
    assert_eq!(loaded, descriptor);
    assert_eq!(loaded.role, NodeRole::Middle);
    assert_eq!(loaded.layer, 2);
    assert_eq!(loaded.key_epoch_seconds, KEY_EPOCH);
    // The Sphinx keys of the current and next key epochs, one file each.
    let epochs: Vec<u64> = loaded.sphinx_keys.iter().map(|k| k.epoch).collect();
    assert_eq!(epochs, vec![20_000, 20_001]);
    assert_eq!(mode(&dir.join(SPHINX_KEY_DIR)), 0o700);
    let store = SphinxKeyStore::open(&dir).unwrap();
    let held = store.load_all().unwrap();
    for entry in &loaded.sphinx_keys {
        assert_eq!(mode(&store.path_of(entry.epoch)), 0o600);
        assert_eq!(held[&entry.epoch].public_key(), entry.public_key);
    }
    assert_eq!(held.len(), 2);

    let keys = NodeKeys::load(&dir).unwrap();
    assert!(loaded.matches_keys(&keys));
    assert_eq!(keys.node_id(), loaded.id);
}

#[test]
fn descriptor_json_has_the_documented_shape() {
    let tmp = tempfile::tempdir().unwrap();
    do_keygen(tmp.path(), NodeRole::Exit).unwrap();
    let text = fs::read_to_string(tmp.path().join(DESCRIPTOR_FILE)).unwrap();
    let json: serde_json::Value = serde_json::from_str(&text).unwrap();
    let fields: Vec<&str> = json
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    let mut expected = vec![
        "version",
        "id",
        "role",
        "layer",
        "udp_addr",
        "tcp_addr",
        "http_addr",
        "identity_key",
        "sphinx_keys",
        "key_epoch_seconds",
        "vrf_key",
        "network",
        "link_keys",
        "signature",
    ];
    expected.sort_unstable();
    assert_eq!(fields, expected);
    assert_eq!(json["version"], 1);
    assert_eq!(json["role"], "exit");
    assert_eq!(json["layer"], 3);
    assert_eq!(json["udp_addr"], "192.0.2.1:9000");
    assert_eq!(json["id"].as_str().unwrap().len(), 32);
    assert_eq!(json["identity_key"].as_str().unwrap().len(), 64);
    assert_eq!(json["vrf_key"].as_str().unwrap().len(), 64);
    assert_eq!(json["signature"].as_str().unwrap().len(), 128);
    assert_eq!(json["sphinx_keys"][0]["epoch"], 20_000);
    assert_eq!(json["sphinx_keys"][1]["epoch"], 20_001);
    assert_eq!(json["key_epoch_seconds"], KEY_EPOCH);
    assert_eq!(
        json["sphinx_keys"][0]["public_key"].as_str().unwrap().len(),
        64
    );
    // The network parameters, integers only (see docs/spec/descriptor-v1.md).
    assert_eq!(json["network"]["mean_delay_us"], 50_000);
    assert_eq!(json["network"]["neighbors_k"], 0);
}

#[test]
fn second_keygen_into_the_same_dir_fails_and_touches_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    do_keygen(tmp.path(), NodeRole::Entry).unwrap();
    let before = snapshot(tmp.path());

    let error = do_keygen(tmp.path(), NodeRole::Entry).unwrap_err();
    assert!(
        matches!(error, KeygenError::Keys(KeyError::Exists { .. })),
        "{error:?}"
    );
    let message = error.to_string();
    assert!(message.contains("already exists"), "{message}");
    assert!(message.contains("never overwrites"), "{message}");
    assert_eq!(snapshot(tmp.path()), before);
}

#[test]
fn keygen_refuses_a_dir_holding_only_a_descriptor() {
    let tmp = tempfile::tempdir().unwrap();
    fs::write(tmp.path().join(DESCRIPTOR_FILE), b"{}").unwrap();
    let error = do_keygen(tmp.path(), NodeRole::Entry).unwrap_err();
    assert!(error.to_string().contains(DESCRIPTOR_FILE), "{error}");
    for name in KEY_FILES {
        assert!(!tmp.path().join(name).exists(), "{name}");
    }
}

#[test]
fn write_new_refuses_to_overwrite_any_key() {
    let tmp = tempfile::tempdir().unwrap();
    fs::write(tmp.path().join(VRF_KEY_FILE), b"precious\n").unwrap();
    let error = keys(1).write_new(tmp.path()).unwrap_err();
    assert!(matches!(error, KeyError::Exists { ref path } if path.ends_with(VRF_KEY_FILE)));
    assert_eq!(
        fs::read(tmp.path().join(VRF_KEY_FILE)).unwrap(),
        b"precious\n"
    );
    assert!(!tmp.path().join(IDENTITY_KEY_FILE).exists());
}

#[test]
fn keygen_with_an_unusable_address_leaves_no_files() {
    let tmp = tempfile::tempdir().unwrap();
    let error = keygen(
        tmp.path(),
        params(
            NodeRole::Entry,
            "0.0.0.0:9000",
            "0.0.0.0:9000",
            "127.0.0.1:8080",
        ),
    )
    .unwrap_err();
    assert!(
        matches!(
            error,
            KeygenError::Descriptor(DescriptorError::UnusableAddr { .. })
        ),
        "{error:?}"
    );
    assert_eq!(fs::read_dir(tmp.path()).unwrap().count(), 0);

    // The TCP mix listener and the HTTP listener cannot share a socket.
    let error = keygen(
        tmp.path(),
        params(
            NodeRole::Entry,
            "127.0.0.1:9000",
            "127.0.0.1:9000",
            "127.0.0.1:9000",
        ),
    )
    .unwrap_err();
    assert!(
        matches!(
            error,
            KeygenError::Descriptor(DescriptorError::TcpHttpClash(_))
        ),
        "{error:?}"
    );
    assert_eq!(fs::read_dir(tmp.path()).unwrap().count(), 0);
}

#[test]
fn load_refuses_a_group_or_world_readable_key_file() {
    let tmp = tempfile::tempdir().unwrap();
    keys(1).write_new(tmp.path()).unwrap();
    for name in KEY_FILES {
        let path = tmp.path().join(name);
        for loose in [0o644, 0o640, 0o604, 0o660] {
            fs::set_permissions(&path, fs::Permissions::from_mode(loose)).unwrap();
            let error = NodeKeys::load(tmp.path()).unwrap_err();
            assert!(matches!(error, KeyError::TooOpen { .. }), "{error:?}");
            let message = error.to_string();
            assert!(
                message.contains(&format!("chmod 600 {}", path.display())),
                "{message}"
            );
        }
        fs::set_permissions(&path, fs::Permissions::from_mode(0o600)).unwrap();
    }
    // Stricter than 0600 is fine.
    fs::set_permissions(
        tmp.path().join(VRF_KEY_FILE),
        fs::Permissions::from_mode(0o400),
    )
    .unwrap();
    NodeKeys::load(tmp.path()).unwrap();
}

#[test]
fn keys_round_trip_through_files() {
    let tmp = tempfile::tempdir().unwrap();
    let original = keys(7);
    original.write_new(tmp.path()).unwrap();
    let loaded = NodeKeys::load(tmp.path()).unwrap();
    assert_eq!(loaded.node_id(), original.node_id());
    assert_eq!(loaded.identity_public_key(), original.identity_public_key());
    assert_eq!(loaded.vrf_public_key(), original.vrf_public_key());
    assert_eq!(
        loaded.node_id(),
        NodeId::from_identity_key(&original.identity_public_key())
    );
}

#[test]
fn load_reports_missing_and_malformed_files_without_their_content() {
    let tmp = tempfile::tempdir().unwrap();
    let error = NodeKeys::load(tmp.path()).unwrap_err();
    assert!(matches!(error, KeyError::Read { .. }), "{error:?}");
    assert!(error.to_string().contains(IDENTITY_KEY_FILE), "{error}");
    assert!(error.to_string().contains("keygen"), "{error}");

    keys(2).write_new(tmp.path()).unwrap();
    let path = tmp.path().join(VRF_KEY_FILE);
    let real = fs::read_to_string(&path).unwrap();
    let bad_contents = [
        String::new(),
        real[..40].to_owned(),                           // truncated
        format!("{}ab\n", &real[..64]),                  // too long
        format!("{}zz\n", &real[..62]),                  // not hex
        format!("{}\n", "0".repeat(64)),                 // zeroed block
        format!("{}\n{}", &real[..64], "x".repeat(500)), // way too long
    ];
    for content in bad_contents {
        fs::write(&path, &content).unwrap();
        let error = NodeKeys::load(tmp.path()).unwrap_err();
        assert!(matches!(error, KeyError::Malformed { .. }), "{error:?}");
        let message = error.to_string();
        assert!(message.contains(VRF_KEY_FILE), "{message}");
        // Not even a fragment of the (possibly real) key appears.
        assert!(!message.contains(&real[..16]), "{message}");
        assert!(!message.contains(&real[40..56]), "{message}");
    }

    fs::remove_file(&path).unwrap();
    fs::create_dir(&path).unwrap();
    let error = NodeKeys::load(tmp.path()).unwrap_err();
    assert!(
        matches!(
            error,
            KeyError::NotAFile { .. } | KeyError::Read { .. } | KeyError::TooOpen { .. }
        ),
        "{error:?}"
    );
}

#[test]
fn debug_of_node_keys_shows_no_key_material() {
    let tmp = tempfile::tempdir().unwrap();
    let keys = keys(3);
    keys.write_new(tmp.path()).unwrap();
    let shown = format!("{keys:?} {keys:#?}");
    assert!(shown.contains("<redacted>"), "{shown}");
    let mut forbidden: Vec<String> = KEY_FILES
        .iter()
        .map(|name| fs::read_to_string(tmp.path().join(name)).unwrap()[..64].to_owned())
        .collect();
    forbidden.push(hex::encode(keys.identity_public_key()));
    forbidden.push(sphinx_key_of(&keys).to_string());
    forbidden.push(keys.vrf_public_key().to_string());
    for key_hex in forbidden {
        // Any 8-digit window would already be a leak.
        for window in key_hex.as_bytes().chunks(8) {
            let window = std::str::from_utf8(window).unwrap();
            assert!(!shown.contains(window), "{shown} contains {window}");
        }
    }
}

// ---- descriptors ----------------------------------------------------------

/// A change to a signed descriptor.
type Tamper = Box<dyn Fn(&mut NodeDescriptor)>;

#[test]
fn descriptor_signature_verifies_and_breaks_on_any_change() {
    let good = node(1, NodeRole::Entry);
    good.verify().unwrap();
    let other = node(2, NodeRole::Entry);

    let tampers: Vec<(&str, Tamper)> = vec![
        (
            "role and layer",
            Box::new(|d| {
                d.role = NodeRole::Middle;
                d.layer = 2;
            }),
        ),
        ("role only", Box::new(|d| d.role = NodeRole::Exit)),
        ("udp_addr", Box::new(|d| d.udp_addr = addr("10.9.9.9:9000"))),
        ("tcp_addr", Box::new(|d| d.tcp_addr = addr("10.0.0.1:9001"))),
        (
            "http_addr",
            Box::new(|d| d.http_addr = addr("10.0.0.1:8081")),
        ),
        (
            "identity_key",
            Box::new({
                let other = other.clone();
                move |d| {
                    d.identity_key = other.identity_key;
                    d.id = other.id;
                }
            }),
        ),
        (
            "id",
            Box::new({
                let other = other.clone();
                move |d| d.id = other.id
            }),
        ),
        (
            "sphinx key",
            Box::new({
                let other = other.clone();
                move |d| d.sphinx_keys[0].public_key = other.sphinx_keys[0].public_key
            }),
        ),
        ("sphinx epoch", Box::new(|d| d.sphinx_keys[0].epoch = 1)),
        ("key_epoch_seconds", Box::new(|d| d.key_epoch_seconds = 60)),
        (
            "extra sphinx key",
            Box::new({
                let other = other.clone();
                move |d| {
                    d.sphinx_keys.push(SphinxKeyEntry {
                        epoch: 5,
                        public_key: other.sphinx_keys[0].public_key,
                    })
                }
            }),
        ),
        (
            "vrf_key",
            Box::new({
                let other = other.clone();
                move |d| d.vrf_key = other.vrf_key
            }),
        ),
        ("signature", Box::new(|d| d.signature[10] ^= 1)),
        (
            "signature from another node",
            Box::new({
                let other = other.clone();
                move |d| d.signature = other.signature
            }),
        ),
        ("version", Box::new(|d| d.version = 2)),
    ];
    for (what, tamper) in tampers {
        let mut changed = good.clone();
        tamper(&mut changed);
        assert!(changed.verify().is_err(), "changing {what} went unnoticed");
    }
}

#[test]
fn descriptor_rejects_invalid_sphinx_keys_and_epoch_order() {
    let keys = keys(4);
    let sphinx = sphinx_key_of(&keys);
    let build = |entries: Vec<SphinxKeyEntry>| {
        NodeDescriptor::new_signed(
            &keys,
            NodeRole::Exit,
            addr("10.0.0.4:9000"),
            addr("10.0.0.4:9000"),
            addr("10.0.0.4:8080"),
            entries,
            KEY_EPOCH,
        )
    };
    let entry = |epoch, public_key| SphinxKeyEntry { epoch, public_key };

    assert!(matches!(build(vec![]), Err(DescriptorError::NoSphinxKey)));
    // u = 0 is a small-order point: no real key.
    let zero = betanet::sphinx::SphinxPublicKey([0; 32]);
    assert!(matches!(
        build(vec![entry(0, zero)]),
        Err(DescriptorError::InvalidSphinxKey(0))
    ));
    assert!(matches!(
        build(vec![entry(3, sphinx), entry(3, sphinx)]),
        Err(DescriptorError::SphinxEpochOrder(3))
    ));

    let rotated = betanet::sphinx::SphinxSecretKey::from_bytes([0x5a; 32]).public_key();
    let descriptor = build(vec![entry(0, sphinx), entry(10, rotated)]).unwrap();
    assert_eq!(
        descriptor.sphinx_key_for_epoch(10).unwrap().public_key,
        rotated
    );
    assert_eq!(
        descriptor.sphinx_key_for_epoch(9).unwrap().public_key,
        sphinx
    );
    assert_eq!(
        descriptor.sphinx_key_for_epoch(10).unwrap().public_key,
        rotated
    );
}

#[test]
fn descriptor_verifies_however_the_file_is_formatted() {
    let good = node(5, NodeRole::Middle);
    let pretty = String::from_utf8(good.to_json().unwrap()).unwrap();
    // Compact, and with upper-case hex: same values, so the same canonical
    // signed bytes.
    let compact = serde_json::to_string(&good).unwrap();
    let upper = pretty.replace(
        &hex::encode(good.identity_key),
        &hex::encode_upper(good.identity_key),
    );
    assert_ne!(upper, pretty);
    for text in [pretty, compact, upper] {
        let parsed = NodeDescriptor::from_json(text.as_bytes()).unwrap();
        parsed.verify().unwrap();
        assert_eq!(parsed, good);
    }
}

#[test]
fn descriptor_parsing_never_panics_on_bad_input() {
    let good = String::from_utf8(node(6, NodeRole::Exit).to_json().unwrap()).unwrap();
    // Every truncation (short of the final newline, which is optional).
    for len in 0..good.trim_end().len() {
        assert!(NodeDescriptor::from_json(&good.as_bytes()[..len]).is_err());
    }
    // Wrong hex lengths, bad hex, unknown and missing fields, wrong types.
    let value: serde_json::Value = serde_json::from_str(&good).unwrap();
    let edits: Vec<(&str, serde_json::Value)> = vec![
        ("id", "abcd".into()),
        ("id", "zz".repeat(16).into()),
        ("identity_key", "ab".repeat(31).into()),
        ("identity_key", "ab".repeat(33).into()),
        ("vrf_key", "".into()),
        ("signature", "ab".repeat(63).into()),
        ("layer", 300.into()),
        ("layer", (-1).into()),
        ("version", "1".into()),
        ("role", "relay".into()),
        ("udp_addr", "localhost:80".into()),
        ("udp_addr", "10.0.0.1".into()),
        (
            "sphinx_keys",
            serde_json::json!([{"epoch": 0, "public_key": "ab"}]),
        ),
        (
            "sphinx_keys",
            serde_json::json!([{"epoch": -1, "public_key": "ab".repeat(32)}]),
        ),
        ("sphinx_keys", serde_json::json!({})),
        ("surprise", "field".into()),
    ];
    for (field, replacement) in edits {
        let mut edited = value.clone();
        edited[field] = replacement;
        let text = serde_json::to_vec(&edited).unwrap();
        assert!(
            NodeDescriptor::from_json(&text).is_err(),
            "{field}: {edited}"
        );
    }
    let mut missing = value.clone();
    missing.as_object_mut().unwrap().remove("vrf_key");
    assert!(NodeDescriptor::from_json(&serde_json::to_vec(&missing).unwrap()).is_err());
    for garbage in [
        &b""[..],
        b"null",
        b"[]",
        b"\xff\xfe",
        b"{\"version\":1}",
        &[b'{'; 10_000],
    ] {
        assert!(NodeDescriptor::from_json(garbage).is_err());
    }
}

#[test]
fn descriptor_load_names_the_file_and_save_is_atomic() {
    let tmp = tempfile::tempdir().unwrap();
    let path = tmp.path().join("n.json");
    let good = node(7, NodeRole::Entry);
    good.save(&path).unwrap();
    good.save(&path).unwrap();
    assert_eq!(NodeDescriptor::load(&path).unwrap(), good);
    assert_eq!(
        fs::read_dir(tmp.path()).unwrap().count(),
        1,
        "temporary left behind"
    );

    let mut tampered = good.clone();
    tampered.udp_addr = addr("10.0.0.99:9000");
    tampered.save(&path).unwrap();
    let error = NodeDescriptor::load(&path).unwrap_err();
    assert!(error.to_string().contains("n.json"), "{error}");
    assert!(error.to_string().contains("signature"), "{error}");

    let error = NodeDescriptor::load(&tmp.path().join("missing.json")).unwrap_err();
    assert!(matches!(error, DescriptorError::Read { .. }));
}

// ---- topologies -----------------------------------------------------------

#[test]
fn topology_build_indexes_nodes_by_id_and_layer() {
    let nodes = six_nodes();
    // Input order must not matter.
    let topology = Topology::build(nodes.iter().rev().cloned()).unwrap();
    assert_eq!(topology.len(), 6);
    assert!(!topology.is_empty());
    for role in NodeRole::ALL {
        let layer = topology.layer(role);
        assert_eq!(layer.len(), 2);
        assert!(layer.iter().all(|d| d.role == role));
        assert!(layer[0].id < layer[1].id);
    }
    let layers: Vec<u8> = topology.nodes().iter().map(|d| d.layer).collect();
    assert_eq!(layers, [1, 1, 2, 2, 3, 3]);
    for descriptor in &nodes {
        assert_eq!(topology.get(&descriptor.id), Some(descriptor));
        assert!(topology.contains(&descriptor.id));
    }
    let stranger = NodeId::from_bytes([0xee; 16]);
    assert!(topology.get(&stranger).is_none());
    assert!(!topology.contains(&stranger));
}

#[test]
fn topology_rejects_a_tampered_descriptor() {
    let mut nodes = six_nodes();
    nodes[3].udp_addr = addr("10.0.0.77:9000");
    let tampered = nodes[3].id;
    let error = Topology::build(nodes).unwrap_err();
    match &error {
        TopologyError::InvalidNode { id, error } => {
            assert_eq!(*id, tampered);
            assert!(matches!(error, DescriptorError::BadSignature));
        }
        other => panic!("{other:?}"),
    }
    assert!(error.to_string().contains(&tampered.to_string()), "{error}");
}

#[test]
fn topology_rejects_duplicate_ids_and_addresses() {
    let mut nodes = six_nodes();
    nodes.push(nodes[0].clone());
    assert!(matches!(
        Topology::build(nodes),
        Err(TopologyError::DuplicateId(_))
    ));

    // A different node on node 1's UDP address.
    let keys = keys(50);
    let clash = NodeDescriptor::new_signed(
        &keys,
        NodeRole::Exit,
        addr("10.0.0.1:9000"),
        addr("10.0.0.50:9000"),
        addr("10.0.0.50:8080"),
        vec![SphinxKeyEntry {
            epoch: 0,
            public_key: sphinx_key_of(&keys),
        }],
        KEY_EPOCH,
    )
    .unwrap();
    let mut nodes = six_nodes();
    nodes.push(clash);
    let error = Topology::build(nodes).unwrap_err();
    assert!(
        matches!(
            error,
            TopologyError::DuplicateAddr {
                protocol: "UDP",
                ..
            }
        ),
        "{error:?}"
    );

    // One node's HTTP port on another node's TCP mix port.
    let clash = NodeDescriptor::new_signed(
        &keys,
        NodeRole::Exit,
        addr("10.0.0.50:9000"),
        addr("10.0.0.50:9000"),
        addr("10.0.0.1:9000"),
        vec![SphinxKeyEntry {
            epoch: 0,
            public_key: sphinx_key_of(&keys),
        }],
        KEY_EPOCH,
    )
    .unwrap();
    let mut nodes = six_nodes();
    nodes.push(clash);
    let error = Topology::build(nodes).unwrap_err();
    assert!(
        matches!(
            error,
            TopologyError::DuplicateAddr {
                protocol: "TCP",
                ..
            }
        ),
        "{error:?}"
    );
}

#[test]
fn topology_requires_every_layer() {
    for missing in NodeRole::ALL {
        let nodes = six_nodes().into_iter().filter(|d| d.role != missing);
        let error = Topology::build(nodes).unwrap_err();
        assert!(
            matches!(error, TopologyError::MissingLayer(role) if role == missing),
            "{error:?}"
        );
        assert!(error.to_string().contains(missing.as_str()), "{error}");
    }
    assert!(Topology::build(Vec::new()).is_err());
}

#[test]
fn topology_save_load_round_trip() {
    let tmp = tempfile::tempdir().unwrap();
    let path = tmp.path().join("topology.json");
    let topology = Topology::build(six_nodes()).unwrap();
    topology.save(&path).unwrap();
    let loaded = Topology::load(&path).unwrap();
    assert_eq!(loaded, topology);
    let json: serde_json::Value = serde_json::from_slice(&fs::read(&path).unwrap()).unwrap();
    assert_eq!(json["version"], 1);
    assert_eq!(json["nodes"].as_array().unwrap().len(), 6);
}

#[test]
fn topology_load_names_the_file_and_the_failing_node() {
    let tmp = tempfile::tempdir().unwrap();
    let path = tmp.path().join("topology.json");
    let topology = Topology::build(six_nodes()).unwrap();
    let mut json: serde_json::Value = serde_json::from_slice(&topology.to_json().unwrap()).unwrap();
    json["nodes"][4]["http_addr"] = "10.0.0.5:8081".into();
    let victim = json["nodes"][4]["id"].as_str().unwrap().to_owned();
    fs::write(&path, serde_json::to_vec(&json).unwrap()).unwrap();
    let error = Topology::load(&path).unwrap_err().to_string();
    assert!(error.contains("topology.json"), "{error}");
    assert!(error.contains(&victim), "{error}");

    json["version"] = 2.into();
    fs::write(&path, serde_json::to_vec(&json).unwrap()).unwrap();
    let error = Topology::load(&path).unwrap_err().to_string();
    assert!(error.contains("version 2"), "{error}");
}

#[test]
fn topology_parsing_never_panics_on_bad_input() {
    let text = Topology::build(six_nodes()).unwrap().to_json().unwrap();
    // Every 7th truncation keeps the test fast; a complete file parses.
    for len in (0..text.len() - 1).step_by(7) {
        assert!(Topology::from_json(&text[..len]).is_err());
    }
    Topology::from_json(&text).unwrap();
    for garbage in [
        &b"{}"[..],
        b"{\"version\":1}",
        b"{\"version\":1,\"nodes\":[]}",
        b"{\"version\":1,\"nodes\":[{}]}",
        b"{\"version\":1,\"nodes\":[],\"extra\":0}",
        b"[1,2,3]",
        b"\x00\x01",
    ] {
        assert!(Topology::from_json(garbage).is_err());
    }
}

#[test]
fn member_ips_are_udp_and_tcp_addresses() {
    let topology = Topology::build(six_nodes()).unwrap();
    for n in 1..=6 {
        assert!(topology.is_member_ip(IpAddr::V4(Ipv4Addr::new(10, 0, 0, n))));
    }
    // Dual-stack sockets report IPv4 peers as IPv4-mapped IPv6.
    let mapped = Ipv4Addr::new(10, 0, 0, 3).to_ipv6_mapped();
    assert!(topology.is_member_ip(IpAddr::V6(mapped)));
    assert!(!topology.is_member_ip(IpAddr::V4(Ipv4Addr::new(10, 0, 0, 7))));
    assert!(!topology.is_member_ip(IpAddr::V6(Ipv6Addr::LOCALHOST)));

    // An HTTP-only IP does not make a member.
    let keys = keys(60);
    let mut nodes = six_nodes();
    nodes.push(
        NodeDescriptor::new_signed(
            &keys,
            NodeRole::Middle,
            addr("10.0.1.1:9000"),
            addr("[2001:db8::1]:9000"),
            addr("10.0.2.2:8080"),
            vec![SphinxKeyEntry {
                epoch: 0,
                public_key: sphinx_key_of(&keys),
            }],
            KEY_EPOCH,
        )
        .unwrap(),
    );
    let topology = Topology::build(nodes).unwrap();
    assert!(topology.is_member_ip("10.0.1.1".parse().unwrap()));
    assert!(topology.is_member_ip("2001:db8::1".parse().unwrap()));
    assert!(!topology.is_member_ip("10.0.2.2".parse().unwrap()));
}

#[test]
fn build_topology_file_from_keygen_output() {
    let tmp = tempfile::tempdir().unwrap();
    let mut inputs = Vec::new();
    for (n, role) in NodeRole::ALL.into_iter().enumerate() {
        let dir = tmp.path().join(format!("node{n}"));
        let ip = format!("127.0.0.{}", n + 1);
        let (mix, http) = (format!("{ip}:9000"), format!("{ip}:8080"));
        keygen(&dir, params(role, &mix, &mix, &http)).unwrap();
        inputs.push(dir.join(DESCRIPTOR_FILE));
    }
    let out = tmp.path().join("topology.json");
    let built = build_topology_file(&out, &inputs).unwrap();
    assert_eq!(built.len(), 3);
    assert_eq!(Topology::load(&out).unwrap(), built);

    // A broken input is named, and the old output is left alone.
    let before = fs::read(&out).unwrap();
    fs::write(&inputs[1], b"{\"version\": 1").unwrap();
    let error = build_topology_file(&out, &inputs).unwrap_err();
    assert!(matches!(error, TopologyError::Descriptor(_)), "{error:?}");
    assert!(error.to_string().contains("node1"), "{error}");
    assert_eq!(fs::read(&out).unwrap(), before);
}
