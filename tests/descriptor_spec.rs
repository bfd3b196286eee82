//! The worked example of `docs/spec/descriptor-v1.md` (§7) reproduced by the
//! code, so the document cannot drift from what betanet signs.

use betanet::keys::{NodeKeys, VrfSecretKey};
use betanet::role::NodeRole;
use betanet::sphinx::SphinxSecretKey;
use betanet::topology::{DESCRIPTOR_SIGNING_CONTEXT, NodeDescriptor, SphinxKeyEntry};
use ed25519_dalek::{Signature, SigningKey};
use serde_json::Value;

const SPEC: &str = include_str!("../docs/spec/descriptor-v1.md");

/// The text of §7 from its heading to the next section.
fn example_section() -> &'static str {
    let start = SPEC.find("## 7. Worked example").expect("§7 exists");
    let rest = &SPEC[start..];
    &rest[..rest[3..].find("\n## ").map_or(rest.len(), |end| end + 3)]
}

/// The body of the first fenced block of `kind` in §7.
fn block(kind: &str) -> &'static str {
    let section = example_section();
    let open = format!("```{kind}\n");
    let start = section.find(&open).expect("fenced block") + open.len();
    let len = section[start..].find("\n```").expect("closed block");
    &section[start..start + len]
}

/// The example node: the keys §7 names, its addresses and key epochs.
fn example() -> (NodeKeys, NodeDescriptor) {
    let keys = NodeKeys {
        identity: SigningKey::from_bytes(&[0x11; 32]),
        vrf: VrfSecretKey::from_bytes([0x22; 32]),
    };
    let sphinx = |epoch, secret| SphinxKeyEntry {
        epoch,
        public_key: SphinxSecretKey::from_bytes([secret; 32]).public_key(),
    };
    let mix = "[2001:db8::7]:9001".parse().unwrap();
    let http = "192.0.2.7:9101".parse().unwrap();
    let keys_list = vec![sphinx(20786, 0x33), sphinx(20787, 0x44)];
    let descriptor =
        NodeDescriptor::new_signed(&keys, NodeRole::Middle, mix, mix, http, keys_list, 86_400)
            .unwrap();
    (keys, descriptor)
}

fn signature(hex_text: &str) -> Signature {
    let bytes: [u8; 64] = hex::decode(hex_text).unwrap().try_into().unwrap();
    Signature::from_bytes(&bytes)
}

#[test]
fn signed_bytes_without_network_are_the_documented_line_up_to_vrf_key() {
    let (_, descriptor) = example();
    let line = block("text");
    let cut = line.find(",\"network\":").expect("the line has network");
    let expected = [DESCRIPTOR_SIGNING_CONTEXT, &line.as_bytes()[..cut], b"}"].concat();
    assert_eq!(descriptor.signed_message().unwrap(), expected);
    assert_eq!(expected.len(), 587);

    let section = example_section();
    let marker = "its signature is\n`";
    let at = section.find(marker).expect("the signature without network") + marker.len();
    assert_eq!(hex::encode(descriptor.signature), &section[at..at + 128]);
}

#[test]
fn documented_descriptor_with_network_is_signed_over_the_documented_line() {
    let (keys, descriptor) = example();
    let document: Value = serde_json::from_str(block("json")).expect("node.json is JSON");
    let message = [DESCRIPTOR_SIGNING_CONTEXT, block("text").as_bytes()].concat();
    assert_eq!(message.len(), 742);
    let sig = signature(document["signature"].as_str().unwrap());
    keys.identity
        .verifying_key()
        .verify_strict(&message, &sig)
        .expect("the documented signature verifies");

    // Without `network` (and with the matching signature) the document is
    // exactly the example descriptor, which verifies.
    let mut older = document.clone();
    older.as_object_mut().unwrap().remove("network");
    older["signature"] = Value::String(hex::encode(descriptor.signature));
    let parsed = NodeDescriptor::from_json(older.to_string().as_bytes()).unwrap();
    parsed.verify().unwrap();
    assert_eq!(parsed, descriptor);
}
