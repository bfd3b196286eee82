//! `SphinxProcessor::unwrap_batch` against one `unwrap` per frame: a batch
//! of up to 16 frames built from the input (mutated real packets, junk,
//! repeats of earlier frames) must give the same result for every frame,
//! leave the same bytes in every buffer and record the same replay tags.
//! The batch shares field inversions across frames, so a junk frame or a
//! replay must not disturb its neighbours.

#![no_main]

use std::collections::HashSet;

use betanet::sphinx::{FinalCommand, NodeId, ReplayTag, Unwrapped};
use betanet_fuzz::{frame_from, nodes};
use libfuzzer_sys::arbitrary::{Result, Unstructured};
use libfuzzer_sys::fuzz_target;

const MAX_BATCH: usize = 16;

fuzz_target!(|data: &[u8]| {
    let mut u = Unstructured::new(data);
    let Ok(batch) = batch_from(&mut u) else {
        return;
    };
    let processor = &nodes()[0].processor;

    let mut one_by_one = batch.clone();
    let mut seen_single: HashSet<ReplayTag> = HashSet::new();
    let expected: Vec<_> = one_by_one
        .iter_mut()
        .map(|frame| {
            processor
                .unwrap(frame, &mut seen_single)
                .map(|unwrapped| owned(&unwrapped))
        })
        .collect();

    let mut batched = batch.clone();
    let mut seen_batch: HashSet<ReplayTag> = HashSet::new();
    let got: Vec<_> = processor
        .unwrap_batch(&mut batched, &mut seen_batch)
        .into_iter()
        .map(|result| result.map(|unwrapped| owned(&unwrapped)))
        .collect();

    assert_eq!(got, expected);
    assert_eq!(batched, one_by_one, "buffers differ after unwrapping");
    assert_eq!(seen_batch, seen_single);
});

/// Frames from the input, some of them copies of earlier ones (replays
/// within the batch).
fn batch_from(u: &mut Unstructured<'_>) -> Result<Vec<Vec<u8>>> {
    let len = u.int_in_range(0..=MAX_BATCH)?;
    let mut batch: Vec<Vec<u8>> = Vec::with_capacity(len);
    for _ in 0..len {
        let frame = if !batch.is_empty() && u.ratio(1, 4)? {
            u.choose(&batch)?.clone()
        } else {
            frame_from(u)?
        };
        batch.push(frame);
    }
    Ok(batch)
}

/// A result that no longer borrows its buffer (a relay's frame is the
/// buffer itself, which is compared separately).
#[derive(Debug, PartialEq, Eq)]
enum Owned {
    Relay(NodeId, ReplayTag),
    Final(FinalCommand, Vec<u8>, ReplayTag),
}

fn owned(unwrapped: &Unwrapped<'_>) -> Owned {
    match unwrapped {
        Unwrapped::Relay {
            next, replay_tag, ..
        } => Owned::Relay(*next, *replay_tag),
        Unwrapped::Final {
            command,
            message,
            replay_tag,
        } => Owned::Final(*command, message.to_vec(), *replay_tag),
    }
}
