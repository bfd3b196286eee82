//! Every vector of `docs/spec/vectors/surb-v1.json` reproduced step by step:
//! the SURB's derived values and bytes, the reply frame, every hop's frame,
//! the delivered datagram, the recovered reply, and the tamper, replay,
//! expiry and retired-key cases.
//!
//! The derivations of `sphinx-v1.md` "Replies (SURBs)" are recomputed here
//! from the spec text (BLAKE3, LIONESS), independently of `src/sphinx/surb.rs`.
//!
//! `BETANET_WRITE_SURB_VECTORS=1 cargo test --test surb_vectors` rewrites the
//! file from the implementation (only when the format changes on purpose).

use std::collections::HashSet;
use std::net::SocketAddr;

use betanet::crypto::lioness::{self, LionessKeys};
use betanet::sphinx::geometry::{FRAME_LEN, REPLY_DATAGRAM_LEN, SURB_ID_LEN};
use betanet::sphinx::{
    DropReason, FinalCommand, MAX_REPLY, NodeId, PathHop, RoutingCommand, SURB_LEN,
    SphinxProcessor, SphinxSecretKey, Surb, SurbError, Unwrapped, create_surb_with_seed,
    parse_reply_datagram,
};
use serde_json::{Value, json};

const PATH: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/docs/spec/vectors/surb-v1.json"
);
const FIRST_HOP: &str = "127.0.0.1:9001";
const DESTINATION: &str = "127.0.0.1:40000";
const EXPIRES: u64 = 1_800_000_000;
const NOW: u64 = 1_799_999_000;

fn hex32(v: &Value) -> [u8; 32] {
    bytes(v).try_into().expect("32 bytes")
}

fn bytes(v: &Value) -> Vec<u8> {
    hex::decode(v.as_str().expect("hex string")).expect("valid hex")
}

/// Node `i` of the vectors: its secret, public key and id, all derived
/// from its index.
fn node(i: usize) -> (SphinxSecretKey, PathHop) {
    let secret = blake3::derive_key("betanet surb vectors node secret", &[i as u8]);
    let id: [u8; 16] = blake3::derive_key("betanet surb vectors node id", &[i as u8])[..16]
        .try_into()
        .unwrap();
    let secret = SphinxSecretKey::from_bytes(secret);
    let hop = PathHop {
        id: NodeId::from_bytes(id),
        public_key: secret.public_key(),
    };
    (secret, hop)
}

fn surb_seed(hops: usize) -> [u8; 32] {
    blake3::derive_key("betanet surb vectors seed", &[hops as u8])
}

fn reply_message(hops: usize) -> Vec<u8> {
    format!("reply through a {hops}-hop SURB").into_bytes()
}

/// The spec's `λ̃` from `k`, computed here from the spec text.
fn payload_keys(k: &[u8; 32]) -> LionessKeys {
    let mut out = [0u8; 128];
    let mut hasher = blake3::Hasher::new_derive_key("betanet surb v1 payload keys");
    hasher.update(k);
    hasher.finalize_xof().fill(&mut out);
    let part = |i: usize| -> [u8; 32] { out[32 * i..32 * (i + 1)].try_into().unwrap() };
    LionessKeys::new([part(0), part(1), part(2), part(3)])
}

/// One case computed from the implementation, as the file records it.
fn compute_case(hops: usize) -> Value {
    let nodes: Vec<(SphinxSecretKey, PathHop)> = (0..hops).map(node).collect();
    let path: Vec<PathHop> = nodes.iter().map(|(_, h)| *h).collect();
    let seed = surb_seed(hops);
    let first_hop: SocketAddr = FIRST_HOP.parse().unwrap();
    let destination: SocketAddr = DESTINATION.parse().unwrap();
    let (surb, key) = create_surb_with_seed(&path, first_hop, destination, EXPIRES, &seed).unwrap();
    let message = reply_message(hops);
    let frame = surb.pack_reply(&message, NOW).unwrap();

    let mut hop_records = Vec::new();
    let mut current = frame.to_vec();
    let mut datagram = Vec::new();
    for (i, (secret, _)) in nodes.iter().enumerate() {
        let processor = SphinxProcessor::new(secret.clone());
        let frame_in = current.clone();
        let mut buf = current.clone();
        let unwrapped = processor.unwrap(&mut buf, &mut HashSet::new()).unwrap();
        let tag = hex::encode(unwrapped.replay_tag().0);
        match unwrapped {
            Unwrapped::Relay { next, frame, .. } => {
                hop_records.push(json!({
                    "node": i,
                    "frame_in": hex::encode(&frame_in),
                    "replay_tag": tag,
                    "routing": hex::encode(RoutingCommand::Relay { next }.encode()),
                    "frame_out": hex::encode(frame),
                }));
                current = frame.to_vec();
            }
            Unwrapped::Final {
                command, message, ..
            } => {
                datagram = message.to_vec();
                hop_records.push(json!({
                    "node": i,
                    "frame_in": hex::encode(&frame_in),
                    "replay_tag": tag,
                    "routing": hex::encode(RoutingCommand::Final(command).encode()),
                    "datagram": hex::encode(&datagram),
                }));
            }
        }
    }
    let (_, delta) = parse_reply_datagram(&datagram).unwrap();
    let recovered = key.recover(delta).unwrap();
    json!({
        "name": format!("reply-{hops}-hops"),
        "hops_count": hops,
        "nodes": nodes.iter().map(|(s, h)| json!({
            "sphinx_secret": hex::encode(s.to_bytes()),
            "sphinx_public": hex::encode(h.public_key.0),
            "id": hex::encode(h.id.as_bytes()),
        })).collect::<Vec<_>>(),
        "surb_seed": hex::encode(seed),
        "first_hop": FIRST_HOP,
        "destination": DESTINATION,
        "expires": EXPIRES,
        "derived": {
            "header_seed": hex::encode(blake3::derive_key("betanet surb v1 header seed", &seed)),
            "payload_key": hex::encode(blake3::derive_key("betanet surb v1 payload key", &seed)),
            "surb_id": hex::encode(key.id().0),
        },
        "surb": hex::encode(&surb.to_bytes()[..]),
        "now": NOW,
        "reply": hex::encode(&message),
        "frame": hex::encode(&frame[..]),
        "hops": hop_records,
        "recovered": hex::encode(&recovered),
    })
}

fn compute_all() -> Value {
    let cases: Vec<Value> = (1..=5).map(compute_case).collect();
    let three = &cases[2];
    // Tamper: one bit of δ flipped on the way in: every hop accepts it (the
    // header is intact), the creator's check refuses it.
    let mut tampered = bytes(&three["frame"]);
    tampered[FRAME_LEN - 100] ^= 0x01;
    // Retired key: hop 0 has rotated to a fresh key.
    let new_secret = blake3::derive_key("betanet surb vectors rotated key", &[0]);
    json!({
        "format": "betanet sphinx v1 surbs",
        "constants": {
            "surb_len": SURB_LEN,
            "surb_id_len": SURB_ID_LEN,
            "max_reply": MAX_REPLY,
            "reply_datagram_len": REPLY_DATAGRAM_LEN,
        },
        "cases": cases,
        "payload_tamper": {
            "case": "reply-3-hops",
            "frame": hex::encode(&tampered),
            "hops": "accepted",
            "recovered": "payload",
        },
        "replay": {
            "case": "reply-3-hops",
            "first": "accepted",
            "second": "replay",
        },
        "expired": {
            "case": "reply-3-hops",
            "now": EXPIRES,
            "result": "expired",
        },
        "retired_key": {
            "case": "reply-3-hops",
            "node": 0,
            "new_sphinx_secret": hex::encode(new_secret),
            "reason": "mac",
        },
    })
}

fn vectors() -> Value {
    if std::env::var_os("BETANET_WRITE_SURB_VECTORS").is_some() {
        // Written whole, then renamed: tests running alongside read either
        // the old file or the new one.
        let text = serde_json::to_string_pretty(&compute_all()).unwrap() + "\n";
        let tmp = format!("{PATH}.{:?}.tmp", std::thread::current().id());
        std::fs::write(&tmp, text).unwrap();
        std::fs::rename(&tmp, PATH).unwrap();
    }
    let text = std::fs::read_to_string(PATH).expect("docs/spec/vectors/surb-v1.json exists");
    serde_json::from_str(&text).expect("vector file is JSON")
}

fn case<'a>(v: &'a Value, name: &str) -> &'a Value {
    v["cases"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == name)
        .unwrap_or_else(|| panic!("no case {name}"))
}

fn processor_of(case: &Value, i: usize) -> SphinxProcessor {
    SphinxProcessor::new(SphinxSecretKey::from_bytes(hex32(
        &case["nodes"][i]["sphinx_secret"],
    )))
}

fn path_of(case: &Value) -> Vec<PathHop> {
    case["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| {
            let secret = SphinxSecretKey::from_bytes(hex32(&n["sphinx_secret"]));
            assert_eq!(secret.public_key().0, hex32(&n["sphinx_public"]));
            PathHop {
                id: NodeId::from_bytes(bytes(&n["id"]).try_into().unwrap()),
                public_key: secret.public_key(),
            }
        })
        .collect()
}

#[test]
fn constants_match() {
    let v = vectors();
    let c = &v["constants"];
    assert_eq!(c["surb_len"], SURB_LEN);
    assert_eq!(c["surb_id_len"], SURB_ID_LEN);
    assert_eq!(c["max_reply"], MAX_REPLY);
    assert_eq!(c["reply_datagram_len"], REPLY_DATAGRAM_LEN);
}

#[test]
fn every_case_reproduces_step_by_step() {
    let v = vectors();
    let cases = v["cases"].as_array().unwrap();
    assert_eq!(cases.len(), 5, "one case per path length 1..=5");
    for case in cases {
        let name = case["name"].as_str().unwrap();
        let path = path_of(case);
        assert_eq!(path.len() as u64, case["hops_count"].as_u64().unwrap());
        let seed = hex32(&case["surb_seed"]);
        let first_hop: SocketAddr = case["first_hop"].as_str().unwrap().parse().unwrap();
        let destination: SocketAddr = case["destination"].as_str().unwrap().parse().unwrap();
        let expires = case["expires"].as_u64().unwrap();

        // The derivations, from the spec text.
        let d = &case["derived"];
        let e = blake3::derive_key("betanet surb v1 header seed", &seed);
        let k = blake3::derive_key("betanet surb v1 payload key", &seed);
        let id = &blake3::derive_key("betanet surb v1 id", &seed)[..16];
        assert_eq!(e, hex32(&d["header_seed"]), "{name}: e");
        assert_eq!(k, hex32(&d["payload_key"]), "{name}: k");
        assert_eq!(id, &bytes(&d["surb_id"])[..], "{name}: id");

        // The SURB: created exactly, laid out as the spec says.
        let (surb, key) =
            create_surb_with_seed(&path, first_hop, destination, expires, &seed).unwrap();
        let encoded = surb.to_bytes();
        assert_eq!(
            &encoded[..],
            &bytes(&case["surb"])[..],
            "{name}: SURB bytes"
        );
        assert_eq!(key.id().0, id, "{name}: SurbKey id");
        assert_eq!(encoded[0], 0x01);
        assert_eq!(&encoded[19..27], &expires.to_be_bytes());
        assert_eq!(&encoded[encoded.len() - 32..], &k);
        // The header's last command is REPLY(destination, id).
        let last = case["hops"].as_array().unwrap().last().unwrap();
        let reply_command = RoutingCommand::Final(FinalCommand::Reply {
            destination,
            surb_id: betanet::sphinx::SurbId(id.try_into().unwrap()),
        });
        assert_eq!(
            bytes(&last["routing"]),
            reply_command.encode().to_vec(),
            "{name}: REPLY command"
        );

        // The reply frame, by the implementation and by the spec text.
        let decoded = Surb::decode(&bytes(&case["surb"])).unwrap();
        let message = bytes(&case["reply"]);
        let frame = decoded
            .pack_reply(&message, case["now"].as_u64().unwrap())
            .unwrap();
        assert_eq!(frame.to_vec(), bytes(&case["frame"]), "{name}: reply frame");
        let mut by_spec = vec![0u8; 1024];
        by_spec[16..18].copy_from_slice(&(message.len() as u16).to_be_bytes());
        by_spec[18..18 + message.len()].copy_from_slice(&message);
        lioness::encrypt(&payload_keys(&k), &mut by_spec);
        assert_eq!(
            &frame[FRAME_LEN - 1024..],
            &by_spec[..],
            "{name}: δ by the spec"
        );
        assert_eq!(&frame[2..370], &encoded[27..395], "{name}: header");

        // Every hop.
        let mut current = frame.to_vec();
        for (i, hop) in case["hops"].as_array().unwrap().iter().enumerate() {
            assert_eq!(current, bytes(&hop["frame_in"]), "{name}: hop {i} frame in");
            let processor = processor_of(case, i);
            let mut cache = HashSet::new();
            let mut buf = current.clone();
            let unwrapped = processor.unwrap(&mut buf, &mut cache).unwrap();
            assert_eq!(
                unwrapped.replay_tag().0.to_vec(),
                bytes(&hop["replay_tag"]),
                "{name}: hop {i} tag"
            );
            match unwrapped {
                Unwrapped::Relay { next, frame, .. } => {
                    assert_eq!(
                        RoutingCommand::Relay { next }.encode().to_vec(),
                        bytes(&hop["routing"])
                    );
                    assert_eq!(
                        frame.to_vec(),
                        bytes(&hop["frame_out"]),
                        "{name}: hop {i} out"
                    );
                    current = frame.to_vec();
                }
                Unwrapped::Final {
                    command, message, ..
                } => {
                    assert_eq!(i + 1, path.len(), "{name}: final before the last hop");
                    assert_eq!(
                        RoutingCommand::Final(command).encode().to_vec(),
                        bytes(&hop["routing"])
                    );
                    assert_eq!(
                        message.to_vec(),
                        bytes(&hop["datagram"]),
                        "{name}: datagram"
                    );
                    assert_eq!(message.len(), REPLY_DATAGRAM_LEN);
                    assert_eq!(&message[..16], id);
                }
            }
        }

        // The creator recovers the reply.
        let datagram = bytes(&last["datagram"]);
        let (got_id, delta) = parse_reply_datagram(&datagram).unwrap();
        assert_eq!(got_id, key.id());
        let recovered = key.recover(delta).unwrap();
        assert_eq!(recovered, bytes(&case["recovered"]), "{name}: recovered");
        assert_eq!(recovered, message, "{name}: the reply itself");
    }
}

#[test]
fn file_is_what_the_implementation_computes() {
    // Catches a vector file edited by hand or an implementation drifting in
    // a field the step-by-step test does not look at.
    assert_eq!(vectors(), compute_all());
}

/// Walks `frame` through a case's hops; the final hop's datagram, or the
/// first drop.
fn walk(case: &Value, frame: &[u8]) -> Result<Vec<u8>, DropReason> {
    let mut current = frame.to_vec();
    for i in 0..case["nodes"].as_array().unwrap().len() {
        let mut buf = current.clone();
        match processor_of(case, i).unwrap(&mut buf, &mut HashSet::new())? {
            Unwrapped::Relay { frame, .. } => current = frame.to_vec(),
            Unwrapped::Final { message, .. } => return Ok(message.to_vec()),
        }
    }
    unreachable!("a case's path ends in REPLY")
}

fn key_of(case: &Value) -> betanet::sphinx::SurbKey {
    create_surb_with_seed(
        &path_of(case),
        case["first_hop"].as_str().unwrap().parse().unwrap(),
        case["destination"].as_str().unwrap().parse().unwrap(),
        case["expires"].as_u64().unwrap(),
        &hex32(&case["surb_seed"]),
    )
    .unwrap()
    .1
}

#[test]
fn payload_tamper_is_caught_by_the_creator() {
    let v = vectors();
    let t = &v["payload_tamper"];
    let case = case(&v, t["case"].as_str().unwrap());
    assert_eq!(t["hops"], "accepted");
    let datagram = walk(case, &bytes(&t["frame"])).expect("every hop accepts it");
    let (_, delta) = parse_reply_datagram(&datagram).unwrap();
    assert_eq!(t["recovered"], DropReason::Payload.as_str());
    assert_eq!(key_of(case).recover(delta), Err(SurbError::Garbled));
}

#[test]
fn a_reused_surb_is_a_replay_at_its_first_hop() {
    let v = vectors();
    let r = &v["replay"];
    let case = case(&v, r["case"].as_str().unwrap());
    let processor = processor_of(case, 0);
    let mut cache = HashSet::new();
    let mut first = bytes(&case["frame"]);
    assert!(processor.unwrap(&mut first, &mut cache).is_ok());
    assert_eq!(r["first"], "accepted");
    // A second reply through the same SURB: same header, other payload.
    let surb = Surb::decode(&bytes(&case["surb"])).unwrap();
    let mut second = surb.pack_reply(b"another reply", NOW).unwrap().to_vec();
    assert_eq!(
        processor
            .unwrap(&mut second, &mut cache)
            .unwrap_err()
            .as_str(),
        r["second"].as_str().unwrap()
    );
}

#[test]
fn an_expired_surb_is_refused_by_the_replier() {
    let v = vectors();
    let x = &v["expired"];
    let case = case(&v, x["case"].as_str().unwrap());
    let surb = Surb::decode(&bytes(&case["surb"])).unwrap();
    let now = x["now"].as_u64().unwrap();
    assert_eq!(x["result"], "expired");
    assert!(matches!(
        surb.pack_reply(b"late", now),
        Err(SurbError::Expired { .. })
    ));
    assert!(surb.pack_reply(b"in time", now - 1).is_ok());
}

#[test]
fn a_surb_after_its_key_is_retired_is_dropped() {
    let v = vectors();
    let r = &v["retired_key"];
    let case = case(&v, r["case"].as_str().unwrap());
    let node = r["node"].as_u64().unwrap() as usize;
    let rotated = SphinxProcessor::new(SphinxSecretKey::from_bytes(hex32(&r["new_sphinx_secret"])));
    let mut frame = bytes(&case["frame"]);
    assert_eq!(node, 0);
    assert_eq!(
        rotated
            .unwrap(&mut frame, &mut HashSet::new())
            .unwrap_err()
            .as_str(),
        r["reason"].as_str().unwrap()
    );
}
