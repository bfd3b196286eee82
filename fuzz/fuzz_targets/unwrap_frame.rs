//! `SphinxProcessor::unwrap` on hostile frames, and on real packets built
//! from the input, which must come out exactly as they went in.
//!
//! Modes (first input byte):
//! - a frame for the test node: a real packet with bits flipped, input bytes
//!   behind a valid frame prefix, or raw bytes of any length. Whatever
//!   comes out must be well formed, and a packet that got past the MAC must
//!   be a replay the second time;
//! - a packet built from the input (path over the test nodes, final
//!   command, message, seed) and unwrapped hop by hop: every hop must
//!   relay to the next, see the replay tag the builder predicted, and the
//!   last must deliver the command and message that were sent;
//! - a routing command decoded from 48 input bytes: re-encoding it must
//!   decode to the same command.

#![no_main]

use std::collections::HashSet;

use betanet::sphinx::{
    DropReason, FRAME_LEN, MAX_MESSAGE, ReplayTag, RoutingCommand, Unwrapped,
    create_packet_with_seed,
};
use betanet_fuzz::{as_decoded, final_command_from, frame_from, nodes, path_from};
use libfuzzer_sys::arbitrary::{Result, Unstructured};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let mut u = Unstructured::new(data);
    let _ = match u.int_in_range(0..=2u8) {
        Ok(0) => hostile_frame(&mut u),
        Ok(1) => built_packet(&mut u),
        _ => routing_command(&mut u),
    };
});

fn hostile_frame(u: &mut Unstructured<'_>) -> Result<()> {
    let frame = frame_from(u)?;
    let node = &nodes()[0];
    let mut seen: HashSet<ReplayTag> = HashSet::new();

    let mut first = frame.clone();
    let result = node.processor.unwrap(&mut first, &mut seen);
    let past_mac = match &result {
        Ok(Unwrapped::Relay { frame, .. }) => {
            assert_eq!(frame.len(), FRAME_LEN);
            true
        }
        Ok(Unwrapped::Final { message, .. }) => {
            assert!(message.len() <= MAX_MESSAGE);
            true
        }
        Err(DropReason::Routing | DropReason::Payload) => true,
        Err(_) => false,
    };
    if frame.len() != FRAME_LEN {
        assert_eq!(result, Err(DropReason::Malformed));
    }
    assert_eq!(seen.len(), usize::from(past_mac));

    // The same bytes again: a replay if the first got past the MAC,
    // otherwise the same refusal.
    let mut second = frame.clone();
    let again = node.processor.unwrap(&mut second, &mut seen);
    if past_mac {
        assert_eq!(again, Err(DropReason::Replay));
    } else {
        assert_eq!(again, result);
    }
    Ok(())
}

fn built_packet(u: &mut Unstructured<'_>) -> Result<()> {
    let path = path_from(u)?;
    let command = final_command_from(u)?;
    let seed: [u8; 32] = u.arbitrary()?;
    let len = u.int_in_range(0..=MAX_MESSAGE)?.min(u.len());
    let message = u.bytes(len)?;

    let hops: Vec<_> = path.iter().map(|&i| nodes()[i].hop()).collect();
    let built = create_packet_with_seed(&hops, command, message, &seed)
        .expect("a path of valid keys, at most MAX_HOPS long, and a short message");
    assert_eq!(built.replay_tags.len(), path.len());

    let mut frame = built.frame.to_vec();
    for (hop, &node) in path.iter().enumerate() {
        let mut seen: HashSet<ReplayTag> = HashSet::new();
        let result = nodes()[node].processor.unwrap(&mut frame, &mut seen);
        let last = hop + 1 == path.len();
        match result {
            Ok(Unwrapped::Relay {
                next,
                frame: _,
                replay_tag,
            }) if !last => {
                assert_eq!(next, nodes()[path[hop + 1]].id);
                assert_eq!(replay_tag, built.replay_tags[hop]);
            }
            Ok(Unwrapped::Final {
                command: got,
                message: got_message,
                replay_tag,
            }) if last => {
                assert_eq!(got, as_decoded(command));
                assert_eq!(got_message, message);
                assert_eq!(replay_tag, built.replay_tags[hop]);
            }
            other => panic!("hop {hop} of {path:?}: {other:?}"),
        }
    }
    Ok(())
}

fn routing_command(u: &mut Unstructured<'_>) -> Result<()> {
    let raw: [u8; 48] = u.arbitrary()?;
    if let Some(command) = RoutingCommand::decode(&raw) {
        assert_eq!(RoutingCommand::decode(&command.encode()), Some(command));
    }
    Ok(())
}
