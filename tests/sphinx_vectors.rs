//! Every vector of `docs/spec/vectors/sphinx-v1.json` reproduced byte for
//! byte.

use std::collections::HashSet;

use betanet::crypto::lioness::{self, LionessKeys};
use betanet::sphinx::{
    DropReason, FinalCommand, HopKeys, NodeId, PathHop, ReplayTag, RoutingCommand, SphinxProcessor,
    SphinxPublicKey, SphinxSecretKey, Unwrapped, create_packet_with_seed, mac,
};
use serde_json::Value;

const VECTORS: &str = include_str!("../docs/spec/vectors/sphinx-v1.json");

fn vectors() -> Value {
    serde_json::from_str(VECTORS).expect("vector file is JSON")
}

fn bytes(v: &Value) -> Vec<u8> {
    hex::decode(v.as_str().expect("hex string")).expect("valid hex")
}

fn arr32(v: &Value) -> [u8; 32] {
    bytes(v).try_into().expect("32 bytes")
}

fn reason(name: &str) -> DropReason {
    DropReason::ALL
        .into_iter()
        .find(|r| r.as_str() == name)
        .unwrap_or_else(|| panic!("unknown reason {name}"))
}

fn processor(secret: &Value) -> SphinxProcessor {
    SphinxProcessor::new(SphinxSecretKey::from_bytes(arr32(secret)))
}

fn final_command(case: &Value) -> FinalCommand {
    let raw: [u8; 48] = bytes(&case["final_routing"]).try_into().unwrap();
    match RoutingCommand::decode(&raw) {
        Some(RoutingCommand::Final(command)) => command,
        other => panic!("final routing is not final: {other:?}"),
    }
}

#[test]
fn constants_match() {
    let v = vectors();
    let c = &v["constants"];
    use betanet::sphinx::geometry::*;
    for (name, ours) in [
        ("max_hops", MAX_HOPS),
        ("slot", SLOT),
        ("routing_len", ROUTING_LEN),
        ("mac_len", MAC_LEN),
        ("beta_len", BETA_LEN),
        ("header_len", HEADER_LEN),
        ("payload_len", PAYLOAD_LEN),
        ("packet_len", PACKET_LEN),
        ("frame_len", FRAME_LEN),
        ("max_message", MAX_MESSAGE),
    ] {
        assert_eq!(c[name].as_u64(), Some(ours as u64), "{name}");
    }
}

#[test]
fn primitive_hop_keys() {
    let v = vectors();
    let p = &v["primitives"]["hop_keys"];
    let keys = HopKeys::derive(&arr32(&p["shared_secret"]));
    assert_eq!(keys.rho, arr32(&p["rho"]));
    assert_eq!(keys.mu, arr32(&p["mu"]));
    assert_eq!(keys.blind, arr32(&p["blind"]));
    assert_eq!(keys.tag, ReplayTag(arr32(&p["tag"])));
    // LIONESS keys are checked through their effect: the vector's four keys
    // must be the derived ones, so encrypting with either gives one result.
    let lioness_keys: Vec<[u8; 32]> = p["lioness"].as_array().unwrap().iter().map(arr32).collect();
    let from_vector = LionessKeys::new(lioness_keys.try_into().unwrap());
    let mut a = vec![7u8; 1024];
    let mut b = a.clone();
    lioness::encrypt(&keys.lioness, &mut a);
    lioness::encrypt(&from_vector, &mut b);
    assert_eq!(a, b);
}

#[test]
fn primitive_lioness() {
    let v = vectors();
    let p = &v["primitives"]["lioness"];
    let keys: Vec<[u8; 32]> = p["keys"].as_array().unwrap().iter().map(arr32).collect();
    let keys = LionessKeys::new(keys.try_into().unwrap());
    let plain = bytes(&p["plaintext"]);
    let cipher = bytes(&p["ciphertext"]);
    let mut block = plain.clone();
    lioness::encrypt(&keys, &mut block);
    assert_eq!(block, cipher);
    lioness::decrypt(&keys, &mut block);
    assert_eq!(block, plain);
}

#[test]
fn primitive_mac() {
    let v = vectors();
    let p = &v["primitives"]["mac"];
    assert_eq!(
        mac(&arr32(&p["key"]), &bytes(&p["beta"])).to_vec(),
        bytes(&p["gamma"])
    );
}

#[test]
fn primitive_node_id() {
    let v = vectors();
    let p = &v["primitives"]["node_id"];
    let id = NodeId::from_identity_key(&arr32(&p["identity_public"]));
    assert_eq!(id.as_bytes().to_vec(), bytes(&p["id"]));
}

fn path_of(case: &Value) -> Vec<PathHop> {
    case["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| {
            let id = NodeId::from_identity_key(&arr32(&n["identity_public"]));
            assert_eq!(
                id.as_bytes().to_vec(),
                bytes(&n["id"]),
                "node id derivation"
            );
            let secret = SphinxSecretKey::from_bytes(arr32(&n["sphinx_secret"]));
            let public = SphinxPublicKey(arr32(&n["sphinx_public"]));
            assert_eq!(secret.public_key(), public, "public key derivation");
            PathHop {
                id,
                public_key: public,
            }
        })
        .collect()
}

#[test]
fn forward_cases_create_the_exact_frame() {
    let v = vectors();
    let cases = v["forward"].as_array().unwrap();
    assert_eq!(cases.len(), 5);
    for case in cases {
        let name = case["name"].as_str().unwrap();
        let path = path_of(case);
        assert_eq!(path.len() as u64, case["hops_count"].as_u64().unwrap());
        let built = create_packet_with_seed(
            &path,
            final_command(case),
            &bytes(&case["message"]),
            &arr32(&case["seed"]),
        )
        .unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(built.frame.to_vec(), bytes(&case["frame"]), "{name}: frame");
        let tags: Vec<Vec<u8>> = built.replay_tags.iter().map(|t| t.0.to_vec()).collect();
        let expected: Vec<Vec<u8>> = case["hops"]
            .as_array()
            .unwrap()
            .iter()
            .map(|h| bytes(&h["replay_tag"]))
            .collect();
        assert_eq!(tags, expected, "{name}: replay tags");
    }
}

/// Walks a forward case hop by hop with the single or the batched path.
fn walk_forward(case: &Value, batched: bool) {
    let name = case["name"].as_str().unwrap();
    let nodes = case["nodes"].as_array().unwrap();
    let hops = case["hops"].as_array().unwrap();
    let mut frame = bytes(&case["frame"]);
    for (i, hop) in hops.iter().enumerate() {
        let node = &nodes[hop["node"].as_u64().unwrap() as usize];
        let processor = processor(&node["sphinx_secret"]);
        assert_eq!(frame, bytes(&hop["frame_in"]), "{name} hop {i}: frame in");

        let keys = HopKeys::derive(&arr32(&hop["shared_secret"]));
        assert_eq!(
            keys.tag.0.to_vec(),
            bytes(&hop["replay_tag"]),
            "{name} hop {i}: tag from secret"
        );

        let mut cache = HashSet::new();
        let mut batch = [frame.clone()];
        let result = if batched {
            processor.unwrap_batch(&mut batch, &mut cache).remove(0)
        } else {
            processor.unwrap(&mut batch[0], &mut cache)
        };
        let unwrapped = result.unwrap_or_else(|r| panic!("{name} hop {i}: dropped as {r}"));
        assert_eq!(unwrapped.replay_tag().0.to_vec(), bytes(&hop["replay_tag"]));
        let routing: [u8; 48] = bytes(&hop["routing"]).try_into().unwrap();
        let expected_command = RoutingCommand::decode(&routing).unwrap();
        match unwrapped {
            Unwrapped::Relay {
                next, frame: out, ..
            } => {
                assert_eq!(
                    RoutingCommand::Relay { next },
                    expected_command,
                    "{name} hop {i}"
                );
                assert_eq!(
                    out.to_vec(),
                    bytes(&hop["frame_out"]),
                    "{name} hop {i}: frame out"
                );
                frame = out.to_vec();
            }
            Unwrapped::Final {
                command, message, ..
            } => {
                assert_eq!(
                    RoutingCommand::Final(command),
                    expected_command,
                    "{name} hop {i}"
                );
                assert_eq!(routing.to_vec(), bytes(&case["final_routing"]));
                assert_eq!(message.to_vec(), bytes(&hop["message"]), "{name}: message");
                assert_eq!(message.to_vec(), bytes(&case["message"]), "{name}: message");
                assert_eq!(i, hops.len() - 1, "{name}: final before the last hop");
            }
        }
    }
}

#[test]
fn forward_cases_unwrap_hop_by_hop() {
    for case in vectors()["forward"].as_array().unwrap() {
        walk_forward(case, false);
    }
}

#[test]
fn forward_cases_unwrap_hop_by_hop_batched() {
    for case in vectors()["forward"].as_array().unwrap() {
        walk_forward(case, true);
    }
}

#[test]
fn reject_cases_give_their_reason() {
    let v = vectors();
    let cases = v["reject"].as_array().unwrap();
    assert_eq!(cases.len(), 10);
    let mut batch = Vec::new();
    let mut expected = Vec::new();
    for case in cases {
        let name = case["name"].as_str().unwrap();
        let processor = processor(&case["node_secret"]);
        let mut frame = bytes(&case["frame"]);
        let want = reason(case["reason"].as_str().unwrap());
        let got = processor.unwrap(&mut frame, &mut HashSet::new());
        assert_eq!(got.err(), Some(want), "{name}");
        batch.push(bytes(&case["frame"]));
        expected.push(Some(want));
    }
    // All reject cases use one node key, so they also go through as a batch.
    let processor = processor(&cases[0]["node_secret"]);
    let got: Vec<_> = processor
        .unwrap_batch(&mut batch, &mut HashSet::new())
        .into_iter()
        .map(|r| r.err())
        .collect();
    assert_eq!(got, expected);
}

fn case_named<'a>(v: &'a Value, name: &str) -> &'a Value {
    v["forward"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == name)
        .unwrap()
}

#[test]
fn payload_tamper_is_caught_at_the_final_hop() {
    let v = vectors();
    let tamper = &v["payload_tamper"];
    let case = case_named(&v, tamper["case"].as_str().unwrap());
    let nodes = case["nodes"].as_array().unwrap();
    let mut frame = bytes(&tamper["frame"]);
    for (i, node) in nodes.iter().enumerate() {
        let result = processor(&node["sphinx_secret"]).unwrap(&mut frame, &mut HashSet::new());
        if i + 1 < nodes.len() {
            match result {
                Ok(Unwrapped::Relay { frame: out, .. }) => frame = out.to_vec(),
                other => panic!("hop {i} should relay the tampered packet: {other:?}"),
            }
        } else {
            let want = reason(tamper["reason_at_final_hop"].as_str().unwrap());
            assert_eq!(result.err(), Some(want));
        }
    }
}

#[test]
fn replay_is_dropped_the_second_time() {
    let v = vectors();
    let replay = &v["replay"];
    assert_eq!(replay["first"], "accepted");
    let case = case_named(&v, replay["case"].as_str().unwrap());
    let processor = processor(&case["nodes"][0]["sphinx_secret"]);
    let mut cache = HashSet::new();
    let mut first = bytes(&replay["frame"]);
    assert!(processor.unwrap(&mut first, &mut cache).is_ok());
    let mut second = bytes(&replay["frame"]);
    let want = reason(replay["second"].as_str().unwrap());
    assert_eq!(processor.unwrap(&mut second, &mut cache).err(), Some(want));

    // Within one batch the second copy is the replay, as one by one.
    let mut batch = vec![bytes(&replay["frame"]), bytes(&replay["frame"])];
    let results = processor.unwrap_batch(&mut batch, &mut HashSet::new());
    assert!(results[0].is_ok());
    assert_eq!(results[1].as_ref().err(), Some(&want));
}
