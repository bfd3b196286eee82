//! `NodeDescriptor::from_json` and `verify` on hostile bytes (what a peer's
//! `GET /descriptor` or a copied `node.json` may hold). Parsing and every
//! read-only accessor must not panic on anything that parses; a
//! descriptor that verifies must survive a JSON round trip unchanged and
//! still verify.

#![no_main]

use betanet::NodeRole;
use betanet::topology::NodeDescriptor;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(descriptor) = NodeDescriptor::from_json(data) else {
        return;
    };
    // Accessors peers use before (or without) verifying.
    for now in [0, 1, 1_700_000_000, u64::MAX / 2, u64::MAX] {
        let epoch = descriptor.key_epoch_at(now);
        let _ = descriptor.sphinx_key_at(now);
        let _ = descriptor.sphinx_key_for_epoch(epoch);
    }
    let _ = descriptor.newest_key_epoch();
    let _ = NodeRole::from_layer(descriptor.layer);
    let signed = descriptor.signed_message();

    if descriptor.verify().is_err() {
        return;
    }
    let text = descriptor.to_json().expect("a verified descriptor encodes");
    let again = NodeDescriptor::from_json(&text).expect("our own JSON parses");
    assert_eq!(again, descriptor);
    again.verify().expect("the round trip still verifies");
    assert_eq!(
        again.signed_message().ok(),
        signed.ok(),
        "the signed bytes depend only on the values"
    );
});
