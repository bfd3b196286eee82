//! The receiver's fragment `Reassembler` fed a sequence of datagrams the
//! input chooses: raw bytes, fragments with any header (ids that collide,
//! any index and count), whole messages split in any order, and time
//! passing.
//!
//! Checked after every step: no panic, at most `max_pending` partial
//! messages, no reassembled message longer than `max_message`, and heap
//! memory (counted by a metering allocator) within what the limits allow.
//! A message split by `fragment::split` and delivered whole, in any order,
//! comes back exactly when the reassembler has room for it.

#![no_main]

use std::sync::OnceLock;
use std::time::{Duration, Instant};

use betanet::client::fragment::{self, FRAGMENT_DATA, HEADER_LEN, Reassembler};
use betanet_fuzz::alloc_meter::{self, Meter};
use libfuzzer_sys::arbitrary::{Result, Unstructured};
use libfuzzer_sys::fuzz_target;

#[global_allocator]
static ALLOCATOR: Meter = Meter;

/// What the reassembler may allocate for one partial message beyond its
/// fragments' bytes: nothing up front. Slots are allocated as fragments
/// arrive (issue 12, "bounded receivers"), so a 21-byte first fragment
/// claiming 65,535 parts no longer makes a receiver hold a 1.5 MB table.
const SLOTS_PER_MESSAGE: usize = 0;
/// Hash-map entries, the harness's own buffers and allocator rounding.
const SLACK: usize = 256 << 10;

fuzz_target!(|data: &[u8]| {
    let baseline = alloc_meter::live();
    alloc_meter::reset_peak();
    let _ = run(&mut Unstructured::new(data), data.len(), baseline);
});

fn run(u: &mut Unstructured<'_>, input_len: usize, baseline: usize) -> Result<()> {
    let max_pending = usize::from(u.int_in_range(1..=16u8)?);
    let max_message = usize::from(u.arbitrary::<u16>()?) * 16;
    let timeout = Duration::from_millis(u64::from(u.int_in_range(1..=10_000u16)?));
    let bound = max_pending * (SLOTS_PER_MESSAGE + max_message) + 4 * input_len + SLACK;

    let mut reassembler = Reassembler::new(max_pending, max_message, timeout);
    let mut now = start();
    let mut whole_messages = 0u32;
    while !u.is_empty() {
        match u.int_in_range(0..=3u8)? {
            0 => {
                let len = usize::from(u.int_in_range(0..=1100u16)?).min(u.len());
                let datagram = u.bytes(len)?;
                let out = reassembler.push(datagram, now);
                if fragment::parse(datagram).is_none_or(|f| f.count == 1) {
                    // Not a fragment, or a whole message in one: as it is.
                    let expected = fragment::parse(datagram).map_or(datagram, |f| f.data);
                    assert_eq!(out.as_deref(), Some(expected));
                } else if let Some(message) = out {
                    assert!(message.len() <= max_message);
                }
            }
            1 => {
                let datagram = fragment_from(u)?;
                if let Some(message) = reassembler.push(&datagram, now)
                    && fragment::parse(&datagram).is_some_and(|f| f.count > 1)
                {
                    assert!(message.len() <= max_message);
                }
            }
            2 => {
                whole_messages += 1;
                whole_message(
                    u,
                    &mut reassembler,
                    now,
                    whole_messages,
                    max_pending,
                    max_message,
                )?;
            }
            _ => now += Duration::from_millis(u64::from(u.arbitrary::<u16>()?)),
        }
        assert!(reassembler.pending() <= max_pending);
        let held = alloc_meter::live().saturating_sub(baseline);
        assert!(held <= bound, "{held} bytes held, bound {bound}");
    }
    let peak = alloc_meter::peak().saturating_sub(baseline);
    assert!(peak <= bound, "peak {peak} bytes, bound {bound}");
    Ok(())
}

/// A fragment header of the input's choosing (one of four message ids, any
/// index and count, valid or not) and up to one fragment of data.
fn fragment_from(u: &mut Unstructured<'_>) -> Result<Vec<u8>> {
    let mut datagram = Vec::with_capacity(HEADER_LEN + FRAGMENT_DATA);
    datagram.push(if u.ratio(15, 16)? { 1 } else { u.arbitrary()? });
    datagram.extend_from_slice(&[u.int_in_range(0..=3u8)?; 16]);
    datagram.extend_from_slice(&u.arbitrary::<u16>()?.to_be_bytes());
    datagram.extend_from_slice(&u.arbitrary::<u16>()?.to_be_bytes());
    let len = usize::from(u.arbitrary::<u16>()?) % (FRAGMENT_DATA + 1);
    let fill: u8 = u.arbitrary()?;
    datagram.resize(HEADER_LEN + len, fill);
    Ok(datagram)
}

/// Splits a message of the input's length and delivers all its fragments
/// in an order the input picks; checks it comes back when it must.
fn whole_message(
    u: &mut Unstructured<'_>,
    reassembler: &mut Reassembler,
    now: Instant,
    serial: u32,
    max_pending: usize,
    max_message: usize,
) -> Result<()> {
    let len = usize::from(u.arbitrary::<u16>()?) % (4 * FRAGMENT_DATA);
    let first: u8 = u.arbitrary()?;
    let message: Vec<u8> = (0..len).map(|i| first.wrapping_add(i as u8)).collect();
    // Ids no `fragment_from` header uses.
    let mut id = [0xee; 16];
    id[..4].copy_from_slice(&serial.to_be_bytes());
    let mut fragments = fragment::split(id, &message).expect("a short message splits");
    let mut order = Vec::with_capacity(fragments.len());
    while !fragments.is_empty() {
        let i = u.choose_index(fragments.len()).unwrap_or(0);
        order.push(fragments.swap_remove(i));
    }

    let must_fit =
        order.len() == 1 || (reassembler.pending() < max_pending && message.len() <= max_message);
    let last = order.len() - 1;
    for (i, datagram) in order.iter().enumerate() {
        let out = reassembler.push(datagram, now);
        if !must_fit {
            continue;
        }
        if i == last {
            assert_eq!(
                out.as_deref(),
                Some(&message[..]),
                "message not reassembled"
            );
        } else {
            assert_eq!(out, None, "message complete early");
        }
    }
    Ok(())
}

/// A fixed start, so runs do not depend on the clock.
fn start() -> Instant {
    static START: OnceLock<Instant> = OnceLock::new();
    *START.get_or_init(Instant::now)
}
