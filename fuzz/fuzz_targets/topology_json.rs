//! `Topology::from_json` (the `topology.json` parser, which verifies every
//! descriptor and the cross-node rules) on hostile bytes. A topology that
//! loads must index every node, have every layer filled, count each node's
//! mix addresses as members, and survive a JSON round trip unchanged.

#![no_main]

use betanet::NodeRole;
use betanet::topology::Topology;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(topology) = Topology::from_json(data) else {
        return;
    };
    assert!(!topology.is_empty());
    for role in NodeRole::ALL {
        let layer = topology.layer(role);
        assert!(!layer.is_empty(), "{role} layer is empty");
        assert!(layer.iter().all(|node| node.role == role));
    }
    for node in topology.nodes() {
        assert_eq!(topology.get(&node.id), Some(node));
        assert!(topology.is_member_ip(node.udp_addr.ip()));
        assert!(topology.is_member_ip(node.tcp_addr.ip()));
    }

    let text = topology.to_json().expect("a loaded topology encodes");
    let again = Topology::from_json(&text).expect("our own JSON loads");
    assert_eq!(again.nodes(), topology.nodes());
});
