//! Property tests of the Sphinx engine: random paths round-trip, tampering
//! is caught where the spec says, and no input can panic a node.

use std::collections::HashSet;
use std::net::SocketAddr;

use betanet::sphinx::{
    DropReason, FRAME_LEN, FinalCommand, LoopId, MAX_HOPS, MAX_MESSAGE, MessageId, NodeId, PathHop,
    SphinxProcessor, SphinxSecretKey, Unwrapped, create_packet_with_seed,
};
use proptest::prelude::*;

/// Header bytes: version, kind, α, γ, β.
const HEADER_END: usize = 2 + 368;

struct Node {
    id: NodeId,
    processor: SphinxProcessor,
}

fn nodes(secrets: &[[u8; 32]]) -> Vec<Node> {
    secrets
        .iter()
        .enumerate()
        .map(|(i, s)| Node {
            id: NodeId::from_bytes([i as u8 + 1; 16]),
            processor: SphinxProcessor::new(SphinxSecretKey::from_bytes(*s)),
        })
        .collect()
}

fn path(nodes: &[Node]) -> Vec<PathHop> {
    nodes
        .iter()
        .map(|n| PathHop {
            id: n.id,
            public_key: n.processor.public_key(),
        })
        .collect()
}

fn final_command() -> impl Strategy<Value = FinalCommand> {
    prop_oneof![
        (any::<[u8; 16]>(), any::<u16>(), any::<[u8; 16]>()).prop_map(|(ip, port, id)| {
            FinalCommand::Deliver {
                destination: SocketAddr::new(std::net::Ipv6Addr::from(ip).into(), port),
                message_id: MessageId(id),
            }
        }),
        (any::<[u8; 4]>(), any::<u16>()).prop_map(|(ip, port)| FinalCommand::Deliver {
            destination: SocketAddr::new(std::net::Ipv4Addr::from(ip).into(), port),
            message_id: MessageId([7; 16]),
        }),
        any::<[u8; 16]>().prop_map(|id| FinalCommand::Loop {
            loop_id: LoopId(id)
        }),
        Just(FinalCommand::Drop),
    ]
}

/// Decoding an IPv4-mapped IPv6 address gives the IPv4 address back; the
/// comparison allows for that canonicalisation.
fn same_command(a: FinalCommand, b: FinalCommand) -> bool {
    match (a, b) {
        (
            FinalCommand::Deliver {
                destination: d1,
                message_id: m1,
            },
            FinalCommand::Deliver {
                destination: d2,
                message_id: m2,
            },
        ) => {
            let canon = |d: SocketAddr| (d.ip().to_canonical(), d.port());
            m1 == m2 && canon(d1) == canon(d2)
        }
        _ => a == b,
    }
}

/// Sends `frame` through `nodes`, asserting every relay names the next node;
/// returns the final hop's result.
fn walk(
    nodes: &[Node],
    mut frame: Vec<u8>,
) -> Result<(FinalCommand, Vec<u8>), (usize, DropReason)> {
    for (i, node) in nodes.iter().enumerate() {
        match node.processor.unwrap(&mut frame, &mut HashSet::new()) {
            Ok(Unwrapped::Relay {
                next, frame: out, ..
            }) => {
                assert!(i + 1 < nodes.len(), "relay past the last hop");
                assert_eq!(next, nodes[i + 1].id);
                frame = out.to_vec();
            }
            Ok(Unwrapped::Final {
                command, message, ..
            }) => {
                assert_eq!(i + 1, nodes.len(), "final before the last hop");
                return Ok((command, message.to_vec()));
            }
            Err(reason) => return Err((i, reason)),
        }
    }
    unreachable!("every path ends in a final hop or a drop")
}

fn scenario() -> impl Strategy<Value = (Vec<[u8; 32]>, FinalCommand, Vec<u8>, [u8; 32])> {
    (
        prop::collection::vec(any::<[u8; 32]>(), 1..=MAX_HOPS),
        final_command(),
        prop::collection::vec(any::<u8>(), 0..=MAX_MESSAGE),
        any::<[u8; 32]>(),
    )
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    #[test]
    fn random_paths_round_trip((secrets, command, message, seed) in scenario()) {
        let nodes = nodes(&secrets);
        let built = create_packet_with_seed(&path(&nodes), command, &message, &seed).unwrap();
        prop_assert_eq!(built.replay_tags.len(), nodes.len());
        let (got_command, got_message) = walk(&nodes, built.frame.to_vec()).unwrap();
        prop_assert!(same_command(got_command, command), "{:?} != {:?}", got_command, command);
        prop_assert_eq!(got_message, message);
    }

    #[test]
    fn any_header_bit_flip_is_dropped_at_the_first_hop(
        (secrets, command, message, seed) in scenario(),
        bit in 0..HEADER_END * 8,
    ) {
        let nodes = nodes(&secrets);
        let built = create_packet_with_seed(&path(&nodes), command, &message, &seed).unwrap();
        let mut frame = built.frame.to_vec();
        frame[bit / 8] ^= 1 << (bit % 8);
        let (hop, reason) = walk(&nodes, frame).unwrap_err();
        prop_assert_eq!(hop, 0);
        prop_assert!(
            matches!(reason, DropReason::Malformed | DropReason::InvalidKey | DropReason::Mac),
            "unexpected reason {}", reason
        );
    }

    #[test]
    fn any_payload_bit_flip_is_caught_at_the_final_hop(
        (secrets, command, message, seed) in scenario(),
        bit in HEADER_END * 8..FRAME_LEN * 8,
    ) {
        let nodes = nodes(&secrets);
        let built = create_packet_with_seed(&path(&nodes), command, &message, &seed).unwrap();
        let mut frame = built.frame.to_vec();
        frame[bit / 8] ^= 1 << (bit % 8);
        prop_assert_eq!(walk(&nodes, frame), Err((nodes.len() - 1, DropReason::Payload)));
    }

    #[test]
    fn batch_equals_one_by_one(
        (secrets, command, message, seed) in scenario(),
        garbage in prop::collection::vec(prop::collection::vec(any::<u8>(), 0..1500), 0..4),
        flip in any::<prop::sample::Index>(),
    ) {
        let nodes = nodes(&secrets);
        let first = &nodes[0];
        let built = create_packet_with_seed(&path(&nodes), command, &message, &seed).unwrap();
        let mut tampered = built.frame.to_vec();
        let at = flip.index(FRAME_LEN);
        tampered[at] ^= 0x01;
        let mut frames = vec![built.frame.to_vec(), tampered, built.frame.to_vec()];
        frames.extend(garbage);
        for len in [FRAME_LEN, FRAME_LEN - 1] {
            let mut random_alpha = vec![0u8; len];
            random_alpha[0] = 1;
            random_alpha[2..34].copy_from_slice(&seed);
            frames.push(random_alpha);
        }

        let mut one_by_one = frames.clone();
        let mut cache = HashSet::new();
        let singles: Vec<String> = one_by_one
            .iter_mut()
            .map(|f| format!("{:?}", first.processor.unwrap(f, &mut cache)))
            .collect();
        let mut batch = frames.clone();
        let batched: Vec<String> = first
            .processor
            .unwrap_batch(&mut batch, &mut HashSet::new())
            .iter()
            .map(|r| format!("{r:?}"))
            .collect();
        prop_assert_eq!(singles, batched);
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    /// Arbitrary input never panics, whatever its length or content.
    #[test]
    fn arbitrary_bytes_never_panic(mut bytes in prop::collection::vec(any::<u8>(), 0..3000)) {
        let node = SphinxProcessor::new(SphinxSecretKey::from_bytes([9; 32]));
        let _ = node.unwrap(&mut bytes, &mut HashSet::new());
    }

    /// Frames of the right length and header bytes reach the curve and MAC
    /// checks, where random content must be dropped, not crash the node.
    #[test]
    fn random_full_frames_are_dropped(mut body in prop::collection::vec(any::<u8>(), FRAME_LEN - 2)) {
        let node = SphinxProcessor::new(SphinxSecretKey::from_bytes([9; 32]));
        let mut frame = vec![1u8, 0u8];
        frame.append(&mut body);
        let mut batch = [frame.clone()];
        let single = node.unwrap(&mut frame, &mut HashSet::new());
        prop_assert!(matches!(single, Err(DropReason::InvalidKey | DropReason::Mac)));
        let batched = node.unwrap_batch(&mut batch, &mut HashSet::new());
        prop_assert!(matches!(batched[0], Err(DropReason::InvalidKey | DropReason::Mac)));
    }
}

#[test]
fn build_errors() {
    let node = nodes(&[[1; 32]]);
    let hop = path(&node)[0];
    use betanet::sphinx::BuildError;
    assert_eq!(
        create_packet_with_seed(&[], FinalCommand::Drop, b"", &[0; 32]).unwrap_err(),
        BuildError::EmptyPath
    );
    assert_eq!(
        create_packet_with_seed(&[hop; 6], FinalCommand::Drop, b"", &[0; 32]).unwrap_err(),
        BuildError::PathTooLong(6)
    );
    assert_eq!(
        create_packet_with_seed(&[hop], FinalCommand::Drop, &[0; MAX_MESSAGE + 1], &[0; 32])
            .unwrap_err(),
        BuildError::MessageTooLong(MAX_MESSAGE + 1)
    );
    let mut bad = hop;
    bad.public_key.0 = [0; 32];
    assert_eq!(
        create_packet_with_seed(&[hop, bad], FinalCommand::Drop, b"", &[0; 32]).unwrap_err(),
        BuildError::InvalidPublicKey(1)
    );
}
