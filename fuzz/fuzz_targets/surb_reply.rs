//! What a replier and a SURB's creator do with hostile bytes: a request's
//! envelope (the SURBs it carries), a delivered reply datagram, the
//! recovered payload of a real SURB, and a reply chunk. Nothing may panic,
//! a decoded SURB re-encodes to the bytes it came from, and a payload the
//! SURB's path never carried must not recover as a reply.
//!
//! Input: a mode byte, then the bytes.

#![no_main]

use std::net::SocketAddr;
use std::sync::LazyLock;

use betanet::client::envelope::{decode_request, parse_chunk};
use betanet::sphinx::{
    PathHop, SphinxSecretKey, SurbKey, create_surb_with_seed, parse_reply_datagram,
};

/// A Sphinx payload's length (sphinx-v1.md).
const PAYLOAD_LEN: usize = 1024;
use libfuzzer_sys::fuzz_target;

/// A real SURB's key over a two-hop path, for recovery.
static KEY: LazyLock<SurbKey> = LazyLock::new(|| {
    let hop = |n: u8| PathHop {
        id: betanet::sphinx::NodeId::from_bytes([n; 16]),
        public_key: SphinxSecretKey::from_bytes([n; 32]).public_key(),
    };
    let addr: SocketAddr = "127.0.0.1:9000".parse().unwrap();
    create_surb_with_seed(&[hop(1), hop(2)], addr, addr, u64::MAX, &[3; 32])
        .unwrap()
        .1
});

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    match mode % 4 {
        0 => {
            if let Ok((surbs, _body)) = decode_request(rest) {
                for surb in surbs {
                    let mut again = Vec::new();
                    surb.encode_into(&mut again);
                    assert_eq!(
                        betanet::sphinx::Surb::decode(&again).map(|s| s.header().to_vec()).ok(),
                        Some(surb.header().to_vec())
                    );
                }
            }
        }
        1 => {
            let _ = parse_reply_datagram(rest);
        }
        2 => {
            let mut payload = [0u8; PAYLOAD_LEN];
            let n = rest.len().min(PAYLOAD_LEN);
            payload[..n].copy_from_slice(&rest[..n]);
            // Random bytes are not a payload the path carried: LIONESS
            // garbles them, so the zero prefix fails (but for a 2^-128
            // chance the fuzzer will not find).
            assert!(KEY.recover(&payload).is_err());
        }
        _ => {
            if let Some(chunk) = parse_chunk(rest) {
                assert!(chunk.index < chunk.count);
            }
        }
    }
});
