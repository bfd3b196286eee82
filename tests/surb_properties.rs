//! Properties of SURBs (`sphinx-v1.md`, "Replies (SURBs)"): round trips
//! over every path length, any bit flip garbles or drops a reply, a reused
//! SURB is a replay at its first hop, an expired or key-retired SURB is
//! refused.

use std::collections::HashSet;
use std::net::SocketAddr;

use betanet::sphinx::geometry::{FRAME_LEN, REPLY_DATAGRAM_LEN};
use betanet::sphinx::{
    DropReason, MAX_HOPS, MAX_REPLY, NodeId, PathHop, SphinxProcessor, SphinxSecretKey, Surb,
    SurbError, SurbKey, Unwrapped, create_surb_with_seed, parse_reply_datagram,
};
use proptest::prelude::*;

const EXPIRES: u64 = 2_000_000_000;
const NOW: u64 = 1_900_000_000;

fn network(hops: usize, salt: u8) -> (Vec<SphinxProcessor>, Vec<PathHop>) {
    (0..hops)
        .map(|i| {
            let secret = SphinxSecretKey::from_bytes(blake3::derive_key(
                "betanet surb properties node",
                &[i as u8, salt],
            ));
            let processor = SphinxProcessor::new(secret.clone());
            let hop = PathHop {
                id: NodeId::from_bytes([i as u8 + 1; 16]),
                public_key: secret.public_key(),
            };
            (processor, hop)
        })
        .unzip()
}

fn surb(path: &[PathHop], seed: [u8; 32]) -> (Surb, SurbKey) {
    let first: SocketAddr = "127.0.0.1:9001".parse().unwrap();
    let back: SocketAddr = "[2001:db8::7]:4000".parse().unwrap();
    create_surb_with_seed(path, first, back, EXPIRES, &seed).unwrap()
}

/// The frame through every hop: the last hop's datagram, or the drop.
fn walk(
    processors: &[SphinxProcessor],
    caches: &mut [HashSet<betanet::sphinx::ReplayTag>],
    frame: &[u8],
) -> Result<Vec<u8>, DropReason> {
    let mut current = frame.to_vec();
    for (processor, cache) in processors.iter().zip(caches.iter_mut()) {
        let mut buf = current.clone();
        match processor.unwrap(&mut buf, cache)? {
            Unwrapped::Relay { frame, .. } => current = frame.to_vec(),
            Unwrapped::Final { message, .. } => return Ok(message.to_vec()),
        }
    }
    panic!("the path ended without REPLY");
}

fn caches(n: usize) -> Vec<HashSet<betanet::sphinx::ReplayTag>> {
    (0..n).map(|_| HashSet::new()).collect()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(24))]

    /// Bytes from the network never panic the parsers: SURBs (a request's),
    /// requests, reply datagrams, and recovery of any delivered payload.
    #[test]
    fn junk_never_panics(junk in proptest::collection::vec(any::<u8>(), 0..3000)) {
        let _ = Surb::decode(&junk);
        let _ = betanet::client::envelope::decode_request(&junk);
        let _ = betanet::client::envelope::parse_chunk(&junk);
        if let Some((_, delta)) = parse_reply_datagram(&junk) {
            let (_, path) = network(2, 0);
            let (_, key) = surb(&path, [1; 32]);
            prop_assert_eq!(key.recover(delta), Err(SurbError::Garbled));
        }
        let mut sized = junk.clone();
        sized.resize(REPLY_DATAGRAM_LEN, 0x42);
        let (_, delta) = parse_reply_datagram(&sized).unwrap();
        let (_, path) = network(1, 0);
        let (_, key) = surb(&path, [2; 32]);
        prop_assert_eq!(key.recover(delta), Err(SurbError::Garbled));
    }

    #[test]
    fn replies_round_trip_on_every_path_length(
        hops in 1..=MAX_HOPS,
        seed in any::<[u8; 32]>(),
        reply in proptest::collection::vec(any::<u8>(), 0..=MAX_REPLY),
    ) {
        let (processors, path) = network(hops, seed[0]);
        let (surb, key) = surb(&path, seed);
        // The replier gets the SURB as bytes.
        let surb = Surb::decode(&surb.to_bytes()).unwrap();
        let frame = surb.pack_reply(&reply, NOW).unwrap();
        let datagram = walk(&processors, &mut caches(hops), &frame[..]).unwrap();
        prop_assert_eq!(datagram.len(), REPLY_DATAGRAM_LEN);
        let (id, delta) = parse_reply_datagram(&datagram).unwrap();
        prop_assert_eq!(id, key.id());
        prop_assert_eq!(key.recover(delta).unwrap(), reply);
    }

    #[test]
    fn any_bit_flip_garbles_or_drops_the_reply(
        hops in 1..=MAX_HOPS,
        seed in any::<[u8; 32]>(),
        bit in 0..(FRAME_LEN * 8),
    ) {
        let (processors, path) = network(hops, seed[1]);
        let (surb, key) = surb(&path, seed);
        let mut frame = surb.pack_reply(b"the reply", NOW).unwrap();
        frame[bit / 8] ^= 1 << (bit % 8);
        match walk(&processors, &mut caches(hops), &frame[..]) {
            // Dropped by a hop (header, version, kind or α changed).
            Err(_) => {}
            // Delivered: the payload was changed, and the creator refuses it.
            Ok(datagram) => {
                let (id, delta) = parse_reply_datagram(&datagram).unwrap();
                prop_assert_eq!(id, key.id());
                prop_assert_eq!(key.recover(delta), Err(SurbError::Garbled));
            }
        }
    }

    #[test]
    fn a_flip_in_the_delivered_datagram_garbles_it(
        seed in any::<[u8; 32]>(),
        bit in 0..(1024usize * 8),
    ) {
        let (processors, path) = network(3, seed[2]);
        let (surb, key) = surb(&path, seed);
        let frame = surb.pack_reply(b"the reply", NOW).unwrap();
        let mut datagram = walk(&processors, &mut caches(3), &frame[..]).unwrap();
        datagram[16 + bit / 8] ^= 1 << (bit % 8);
        let (_, delta) = parse_reply_datagram(&datagram).unwrap();
        prop_assert_eq!(key.recover(delta), Err(SurbError::Garbled));
    }
}

#[test]
fn a_reused_surb_is_dropped_as_a_replay_at_its_first_hop() {
    for hops in 1..=MAX_HOPS {
        let (processors, path) = network(hops, 9);
        let (surb, _key) = surb(&path, [hops as u8; 32]);
        let mut caches = caches(hops);
        let first = surb.pack_reply(b"first", NOW).unwrap();
        assert!(walk(&processors, &mut caches, &first[..]).is_ok());
        let second = surb.pack_reply(b"second", NOW).unwrap();
        let mut buf = second.to_vec();
        assert_eq!(
            processors[0].unwrap(&mut buf, &mut caches[0]),
            Err(DropReason::Replay),
            "{hops} hops"
        );
    }
}

#[test]
fn a_surb_is_refused_after_its_keys_are_retired() {
    let (processors, path) = network(3, 10);
    let (surb, _key) = surb(&path, [3; 32]);
    // The replier refuses it from its expiry on.
    assert!(matches!(
        surb.pack_reply(b"late", EXPIRES),
        Err(SurbError::Expired {
            expires: EXPIRES,
            now: EXPIRES
        })
    ));
    // A hop that has rotated its key drops it (here the middle one).
    let frame = surb.pack_reply(b"in time", NOW).unwrap();
    let (rotated, _) = network(3, 11);
    let mut mixed = processors.clone();
    mixed[1] = rotated[1].clone();
    assert_eq!(
        walk(&mixed, &mut caches(3), &frame[..]),
        Err(DropReason::Mac)
    );
}

#[test]
fn junk_is_never_a_surb_nor_a_reply() {
    for len in [0, 1, 426, 427, 428, 1039, 1041] {
        let junk = vec![0x01; len];
        if len != 427 {
            assert_eq!(Surb::decode(&junk), Err(SurbError::Malformed));
        }
        assert!(parse_reply_datagram(&junk).is_none());
    }
    // A SURB with another version byte.
    let (_, path) = network(1, 12);
    let (surb, key) = surb(&path, [4; 32]);
    let mut bytes = surb.to_bytes().to_vec();
    bytes[0] = 0x02;
    assert_eq!(Surb::decode(&bytes), Err(SurbError::Malformed));
    // Random payloads are refused by the creator.
    assert_eq!(key.recover(&[0x5a; 1024]), Err(SurbError::Garbled));
    assert!(matches!(
        surb.pack_reply(&vec![0; MAX_REPLY + 1], NOW),
        Err(SurbError::TooLong(_))
    ));
}
