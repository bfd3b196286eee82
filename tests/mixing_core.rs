//! The node's mixing core with the node's own parts — pooled frame buffers,
//! real targets, the node's delay policies — in virtual time: no clock is
//! read, nothing sleeps, and every test is over in milliseconds.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use betanet::mixing::{
    CoreConfig, DelayPolicy, EgressKey, Event, ExponentialDelay, Input, MixCore, Transmit,
};
use betanet::pipeline::{BufferPool, Decision, DropCause, PacketBuf, Target};
use betanet::sphinx::geometry::offsets;
use betanet::sphinx::{FRAME_LEN, LoopId, MessageId, NodeId, ReplayTag};
use rand::{Rng, SeedableRng};

/// The same delay for every packet.
struct Fixed(Duration);

impl DelayPolicy for Fixed {
    fn delay(&self, _tag: &ReplayTag, _random: u64) -> Duration {
        self.0
    }
}

fn node_core(delay: Arc<dyn DelayPolicy>) -> MixCore<PacketBuf> {
    MixCore::new(
        CoreConfig {
            capacity: 10_000,
            max_group: 256,
        },
        delay,
    )
}

fn hop(n: u8) -> Target {
    Target::Hop {
        next: NodeId::from_bytes([n; 16]),
        addr: SocketAddr::from(([127, 0, 0, n], 9000)),
    }
}

fn deliver(to: SocketAddr, len: usize) -> Target {
    Target::Deliver {
        destination: to,
        message_id: MessageId([len as u8; 16]),
        len,
    }
}

/// A pooled frame whose every byte is `id`, so each packet is recognisable
/// wherever its payload is cut from.
fn frame(pool: &Arc<BufferPool>, id: u8) -> PacketBuf {
    let mut buf = pool.get();
    buf.fill_from(&[id; FRAME_LEN]);
    buf
}

fn unwrapped(target: Target, tag: ReplayTag, random: u64, packet: PacketBuf) -> Input<PacketBuf> {
    Input::Unwrapped {
        decision: Decision::Send(target),
        tag,
        random,
        packet,
    }
}

fn tag(n: u32) -> ReplayTag {
    let mut bytes = [0u8; 32];
    bytes[..4].copy_from_slice(&n.to_le_bytes());
    ReplayTag(bytes)
}

/// Everything due at `now`.
fn drain(core: &mut MixCore<PacketBuf>, now: Instant) -> Vec<Transmit<PacketBuf>> {
    std::iter::from_fn(|| core.poll_transmit(now)).collect()
}

#[test]
fn groups_real_frames_by_next_hop_and_deliveries_by_destination_and_length() {
    let pool = BufferPool::new(64);
    let t0 = Instant::now();
    let mut core = node_core(Arc::new(Fixed(Duration::from_millis(3))));
    let user: SocketAddr = "127.0.0.1:7000".parse().unwrap();
    let targets = [
        hop(1),
        deliver(user, 100),
        hop(2),
        hop(1),
        deliver(user, 300),
        deliver(user, 100),
    ];
    for (id, target) in targets.into_iter().enumerate() {
        let id = id as u8 + 1;
        core.handle(t0, unwrapped(target, tag(id.into()), 0, frame(&pool, id)));
    }
    assert!(drain(&mut core, t0 + Duration::from_micros(2_999)).is_empty());

    let groups = drain(&mut core, t0 + Duration::from_millis(3));
    let summary: Vec<(EgressKey, Vec<u8>)> = groups
        .iter()
        .map(|t| (t.key, t.packets.iter().map(|h| h.packet[0]).collect()))
        .collect();
    // One group per key, in the order of each group's first packet.
    assert_eq!(
        summary,
        [
            (EgressKey::of(&hop(1)), vec![1, 4]),
            (
                EgressKey::Deliver {
                    destination: user,
                    len: 100
                },
                vec![2, 6]
            ),
            (EgressKey::of(&hop(2)), vec![3]),
            (
                EgressKey::Deliver {
                    destination: user,
                    len: 300
                },
                vec![5]
            ),
        ]
    );
    // What egress sends: whole frames to hops, the message to destinations.
    for group in &groups {
        for held in &group.packets {
            let id = held.packet[0];
            match group.key {
                EgressKey::Hop { .. } => assert_eq!(held.payload(), &[id; FRAME_LEN][..]),
                EgressKey::Deliver { len, .. } => {
                    assert_eq!(held.payload().len(), len);
                    assert_eq!(
                        held.payload(),
                        &held.packet[offsets::MESSAGE..offsets::MESSAGE + len]
                    );
                }
            }
        }
    }
    assert_eq!(core.held(), 0);
    assert_eq!(core.poll_timeout(), None);
}

#[test]
fn packets_released_at_different_times_leave_in_different_groups() {
    let pool = BufferPool::new(8);
    let t0 = Instant::now();
    let ms = Duration::from_millis;
    let mut core = node_core(Arc::new(Fixed(ms(1))));
    core.handle(t0, unwrapped(hop(1), tag(1), 0, frame(&pool, 1)));
    core.handle(t0 + ms(1), unwrapped(hop(1), tag(2), 0, frame(&pool, 2)));
    let first = drain(&mut core, t0 + ms(1));
    assert_eq!(first.len(), 1);
    assert_eq!(first[0].packets.len(), 1);
    assert_eq!(core.poll_timeout(), Some(t0 + ms(2)));
    let second = drain(&mut core, t0 + ms(2));
    assert_eq!(second[0].packets[0].packet[0], 2);
}

#[test]
fn loop_returns_come_out_as_events_in_order_and_never_as_transmits() {
    let pool = BufferPool::new(8);
    let t0 = Instant::now();
    let mut core = node_core(Arc::new(Fixed(Duration::ZERO)));
    let loops: Vec<LoopId> = (1..=3).map(|n| LoopId([n; 16])).collect();
    for (i, loop_id) in loops.iter().enumerate() {
        let at = t0 + Duration::from_micros(10 * i as u64);
        let input = Input::Unwrapped {
            decision: Decision::LoopReturned { loop_id: *loop_id },
            tag: tag(i as u32),
            random: 0,
            packet: frame(&pool, i as u8),
        };
        assert_eq!(core.handle(at, input), None, "a loop return is not held");
    }
    assert!(core.poll_transmit(t0 + Duration::from_secs(1)).is_none());
    let events: Vec<Event> = std::iter::from_fn(|| core.poll_event()).collect();
    let expected: Vec<Event> = loops
        .iter()
        .enumerate()
        .map(|(i, loop_id)| Event::LoopReturned {
            loop_id: *loop_id,
            at: t0 + Duration::from_micros(10 * i as u64),
        })
        .collect();
    assert_eq!(events, expected);
    let counts = core.take_counts();
    assert_eq!((counts.loops_returned, counts.admitted), (3, 0));
    // The loop packets' buffers went back to the pool.
    assert_eq!(core.held(), 0);
}

/// A packet's id and when it left.
type Release = (u32, Instant);
/// What a packet was fed with: arrival, random bits, replay tag.
type Fed = (Instant, u64, ReplayTag);

/// Feeds `n` packets one every 100 µs of virtual time with `random` bits
/// from a seeded generator, then runs the core to empty, stepping virtual
/// time to each `poll_timeout`. Returns (packet id, release time) in
/// release order and each packet's (arrival, random, tag).
fn run_to_empty(core: &mut MixCore<PacketBuf>, n: u32, seed: u64) -> (Vec<Release>, Vec<Fed>) {
    let pool = BufferPool::new(n as usize);
    let mut rng = rand_chacha::ChaCha12Rng::seed_from_u64(seed);
    let t0 = Instant::now();
    let mut fed = Vec::new();
    let mut released = Vec::new();
    let mut collect = |core: &mut MixCore<PacketBuf>, now: Instant| {
        while let Some(t) = core.poll_transmit(now) {
            for held in t.packets {
                let id = u32::from_le_bytes(held.packet[..4].try_into().unwrap());
                released.push((id, now));
            }
        }
    };
    for id in 0..n {
        let at = t0 + Duration::from_micros(100 * u64::from(id));
        // Release everything due before this arrival first, as the driver
        // would have when it woke for it.
        while let Some(due) = core.poll_timeout().filter(|due| *due <= at) {
            collect(core, due);
        }
        let random = rng.next_u64();
        let mut buf = pool.get();
        let mut bytes = [0u8; FRAME_LEN];
        bytes[..4].copy_from_slice(&id.to_le_bytes());
        buf.fill_from(&bytes);
        core.handle(at, unwrapped(hop(1), tag(id), random, buf));
        fed.push((at, random, tag(id)));
    }
    let mut steps = 0;
    while let Some(due) = core.poll_timeout() {
        collect(core, due);
        steps += 1;
        assert!(steps <= n as usize, "the core must make progress each step");
    }
    (released, fed)
}

/// The order the packets must leave in: by release time, ties in arrival order.
fn expected_order(fed: &[Fed], delay: &dyn DelayPolicy) -> Vec<Release> {
    let mut expected: Vec<Release> = fed
        .iter()
        .enumerate()
        .map(|(id, (at, random, tag))| (id as u32, *at + delay.delay(tag, *random)))
        .collect();
    expected.sort_by_key(|(id, release)| (*release, *id));
    expected
}

#[test]
fn release_order_and_times_follow_the_exponential_delay_policy() {
    let policy = ExponentialDelay::new(Duration::from_millis(5), Duration::from_millis(200));
    let mut core = node_core(Arc::new(policy));
    let (released, fed) = run_to_empty(&mut core, 2_000, 7);
    assert_eq!(released.len(), 2_000);
    assert_eq!(released, expected_order(&fed, &policy));
    // The packets really were mixed: many left before a packet that came
    // in earlier.
    let overtaken = released.windows(2).filter(|w| w[0].0 > w[1].0).count();
    assert!(overtaken > 500, "only {overtaken} reorderings");
    let counts = core.take_counts();
    assert_eq!((counts.admitted, counts.released), (2_000, 2_000));
}

#[cfg(feature = "vrf")]
#[test]
fn verifiable_delays_follow_from_the_tag_alone() {
    use betanet::vrf::{Epoch, EpochDelayKey, VrfDelay, VrfOutput};

    let (mean, max) = (Duration::from_millis(5), Duration::from_millis(200));
    let key = EpochDelayKey::from_output(&VrfOutput::from_bytes([7; 64]));
    let policy = Arc::new(VrfDelay::new(Epoch(1), key.clone(), mean, max));
    let mut core = node_core(Arc::clone(&policy) as Arc<dyn DelayPolicy>);
    let (released, fed) = run_to_empty(&mut core, 1_000, 8);
    assert_eq!(released, expected_order(&fed, &*policy));
    // The random bits played no part: each release is arrival plus the
    // delay anyone holding the epoch's proof computes from the tag.
    let when: std::collections::HashMap<u32, Instant> = released.into_iter().collect();
    for (id, (at, _, tag)) in fed.iter().enumerate() {
        assert_eq!(when[&(id as u32)], *at + key.delay_for(tag, mean, max));
    }
}

#[test]
fn a_shutdown_in_virtual_time_sends_what_is_due_within_the_grace() {
    let pool = BufferPool::new(8);
    let t0 = Instant::now();
    let ms = Duration::from_millis;
    let mut core = node_core(Arc::new(ExponentialDelay::new(ms(50), ms(2_000))));
    // `random` = u64::MAX is a zero delay; 0 is the longest (capped at 2 s).
    core.handle(t0, unwrapped(hop(1), tag(1), u64::MAX, frame(&pool, 1)));
    assert_eq!(
        core.handle(t0, unwrapped(hop(1), tag(2), 0, frame(&pool, 2))),
        Some(Duration::from_micros(1_836_840))
    );
    core.begin_shutdown(t0, ms(100));
    let sent = drain(&mut core, t0);
    assert_eq!(sent.len(), 1);
    assert_eq!(sent[0].packets[0].packet[0], 1);
    assert!(core.is_drained());
    assert_eq!(core.take_counts().dropped(DropCause::Shutdown), 1);
}
