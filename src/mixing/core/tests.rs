//! The core in virtual time: no clock is read and nothing sleeps.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use rand::{Rng, SeedableRng};

use super::*;
use crate::mixing::{ExponentialDelay, poisson_mix_bits};
use crate::sphinx::MessageId;

/// Delays of exactly `random` microseconds, so tests choose them.
struct Micros;

impl DelayPolicy for Micros {
    fn delay(&self, _tag: &ReplayTag, random: u64) -> Duration {
        Duration::from_micros(random)
    }
}

fn hop(n: u8) -> Target {
    Target::Hop {
        next: NodeId::from_bytes([n; 16]),
        addr: SocketAddr::from(([127, 0, 0, n], 9000)),
    }
}

fn send(target: Target, delay_us: u64, id: u32) -> Input<u32> {
    Input::Unwrapped {
        decision: Decision::Send(target),
        tag: ReplayTag([0; 32]),
        random: delay_us,
        packet: id,
    }
}

fn core(capacity: usize, max_group: usize) -> MixCore<u32> {
    MixCore::new(
        CoreConfig {
            capacity,
            max_group,
        },
        Arc::new(Micros),
    )
}

/// Everything released at `now`, as (key, packet ids) groups.
fn drain(core: &mut MixCore<u32>, now: Instant) -> Vec<(EgressKey, Vec<u32>)> {
    std::iter::from_fn(|| core.poll_transmit(now))
        .map(|t| (t.key, t.packets.into_iter().map(|h| h.packet).collect()))
        .collect()
}

#[test]
fn holds_each_packet_for_its_delay_and_releases_in_deadline_order() {
    let t0 = Instant::now();
    let us = Duration::from_micros;
    let mut c = core(100, 256);
    c.handle(t0, send(hop(1), 300, 3));
    c.handle(t0, send(hop(1), 100, 1));
    c.handle(t0, send(hop(1), 200, 2));
    assert_eq!(c.held(), 3);
    assert_eq!(c.poll_timeout(), Some(t0 + us(100)));
    assert!(
        drain(&mut c, t0 + us(99)).is_empty(),
        "nothing before its time"
    );
    assert_eq!(
        drain(&mut c, t0 + us(100)),
        [(EgressKey::of(&hop(1)), vec![1])]
    );
    assert_eq!(c.poll_timeout(), Some(t0 + us(200)));
    // A late poll releases everything due, still in deadline order.
    assert_eq!(
        drain(&mut c, t0 + us(500)),
        [(EgressKey::of(&hop(1)), vec![2, 3])]
    );
    assert_eq!(c.poll_timeout(), None);
    let counts = c.take_counts();
    assert_eq!((counts.admitted, counts.released), (3, 3));
}

#[test]
fn groups_released_packets_by_next_hop_and_caps_group_size() {
    let t0 = Instant::now();
    let mut c = core(100, 2);
    // Released together: hop 1 gets 1, 3, 5; hop 2 gets 2, 4.
    for id in 1..=5u32 {
        c.handle(t0, send(hop(if id % 2 == 1 { 1 } else { 2 }), 10, id));
    }
    let groups = drain(&mut c, t0 + Duration::from_micros(10));
    let (h1, h2) = (EgressKey::of(&hop(1)), EgressKey::of(&hop(2)));
    // Groups in order of their first packet; a full group's rest waits
    // for the other groups' turn.
    assert_eq!(groups, [(h1, vec![1, 3]), (h2, vec![2, 4]), (h1, vec![5])]);
}

#[test]
fn deliveries_group_by_destination_and_length() {
    let t0 = Instant::now();
    let mut c = core(100, 256);
    let to: SocketAddr = "127.0.0.1:5000".parse().unwrap();
    let deliver = |len| Target::Deliver {
        destination: to,
        message_id: MessageId([len as u8; 16]),
        len,
    };
    c.handle(t0, send(deliver(10), 0, 1));
    c.handle(t0, send(deliver(20), 0, 2));
    c.handle(t0, send(deliver(10), 0, 3));
    let groups = drain(&mut c, t0);
    assert_eq!(
        groups,
        [
            (
                EgressKey::Deliver {
                    destination: to,
                    len: 10
                },
                vec![1, 3]
            ),
            (
                EgressKey::Deliver {
                    destination: to,
                    len: 20
                },
                vec![2]
            ),
        ]
    );
}

#[test]
fn loops_cover_and_drops_are_events_and_counts_not_transmits() {
    let t0 = Instant::now();
    let mut c = core(100, 256);
    let loop_id = crate::sphinx::LoopId([7; 16]);
    let decided = |decision| Input::Unwrapped {
        decision,
        tag: ReplayTag([0; 32]),
        random: 0,
        packet: 0u32,
    };
    c.handle(t0, decided(Decision::LoopReturned { loop_id }));
    c.handle(t0, decided(Decision::CoverConsumed));
    c.handle(t0, decided(Decision::Drop(DropCause::ExitPolicy)));
    assert_eq!(
        c.poll_event(),
        Some(Event::LoopReturned { loop_id, at: t0 })
    );
    assert_eq!(c.poll_event(), None);
    assert!(c.poll_transmit(t0).is_none());
    let counts = c.take_counts();
    assert_eq!(counts.loops_returned, 1);
    assert_eq!(counts.cover_consumed, 1);
    assert_eq!(counts.dropped(DropCause::ExitPolicy), 1);
    assert_eq!(counts.admitted, 0);
    assert_eq!(c.take_counts(), CoreCounts::default(), "counts reset");
}

#[test]
fn own_packets_wait_like_forwarded_ones() {
    let t0 = Instant::now();
    let mut c = core(100, 256);
    c.handle(
        t0,
        Input::Own {
            target: hop(3),
            delay: Duration::from_millis(5),
            packet: 9,
        },
    );
    assert_eq!(c.poll_timeout(), Some(t0 + Duration::from_millis(5)));
    assert_eq!(
        drain(&mut c, t0 + Duration::from_millis(5)),
        [(EgressKey::of(&hop(3)), vec![9])]
    );
}

#[test]
fn a_full_pool_and_a_flood_of_loop_returns_are_bounded() {
    let t0 = Instant::now();
    let mut c = core(2, 256);
    for id in 0..5 {
        c.handle(t0, send(hop(1), 1_000, id));
    }
    assert_eq!(c.held(), 2);
    for _ in 0..5 {
        c.handle(
            t0,
            Input::Unwrapped {
                decision: Decision::LoopReturned {
                    loop_id: crate::sphinx::LoopId([1; 16]),
                },
                tag: ReplayTag([0; 32]),
                random: 0,
                packet: 0,
            },
        );
    }
    let counts = c.take_counts();
    assert_eq!(counts.dropped(DropCause::Overload), 3 + 3);
    assert_eq!(counts.loops_returned, 2);
}

#[test]
fn shutdown_releases_what_is_due_within_the_grace_and_drops_the_rest() {
    let t0 = Instant::now();
    let ms = Duration::from_millis;
    let mut c = core(100, 256);
    c.handle(t0, send(hop(1), 1_000, 1)); // due at 1 ms
    c.handle(t0, send(hop(1), 5_000_000, 2)); // due at 5 s
    c.begin_shutdown(t0, ms(2000));
    c.handle(t0, send(hop(1), 0, 3)); // refused: closing
    assert!(!c.is_drained());
    assert_eq!(
        drain(&mut c, t0 + ms(1)),
        [(EgressKey::of(&hop(1)), vec![1])]
    );
    assert!(c.is_drained());
    assert_eq!(c.take_counts().dropped(DropCause::Shutdown), 2);
}

/// Poisson arrivals at `rate` with exponential delays of mean `mean`, in
/// virtual time: the pool's time-averaged size, its mean departure
/// entropy, and the model's predictions.
fn poisson_run(rate: f64, mean: Duration, seconds: f64, seed: u64) -> (f64, f64, f64, f64) {
    let mut rng = rand_chacha::ChaCha12Rng::seed_from_u64(seed);
    let delay = ExponentialDelay::new(mean, Duration::from_secs(3600));
    let mut c: MixCore<u32> = MixCore::new(
        CoreConfig {
            capacity: 1_000_000,
            max_group: 256,
        },
        Arc::new(delay),
    );
    let t0 = Instant::now();
    let end = t0 + Duration::from_secs_f64(seconds);
    let mut next_arrival = t0;
    let gaps = ExponentialDelay::new(
        Duration::from_secs_f64(1.0 / rate),
        Duration::from_secs(3600),
    );
    let (mut entropy_sum, mut departures) = (0.0, 0u64);
    let warmup = t0 + mean * 20;
    loop {
        let now = match c.poll_timeout() {
            Some(release) if release < next_arrival => release,
            _ => next_arrival,
        };
        if now >= end {
            break;
        }
        if now == next_arrival {
            c.handle(now, send_random(&mut rng));
            next_arrival = now + gaps.from_uniform_bits(rng.next_u64());
        }
        let bits = c.entropy().bits();
        while let Some(t) = c.poll_transmit(now) {
            if now > warmup {
                entropy_sum += bits * t.packets.len() as f64;
                departures += t.packets.len() as u64;
            }
        }
    }
    let held = c.occupancy(end).mean_held();
    let model_held = rate * mean.as_secs_f64();
    (
        held,
        model_held,
        entropy_sum / departures.max(1) as f64,
        poisson_mix_bits(rate, mean.as_secs_f64()),
    )
}

fn send_random(rng: &mut impl Rng) -> Input<u32> {
    Input::Unwrapped {
        decision: Decision::Send(hop(1)),
        tag: ReplayTag([0; 32]),
        random: rng.next_u64(),
        packet: 0,
    }
}

#[test]
fn littles_law_holds_in_virtual_time() {
    // 2,000 packets/s held 50 ms on average: 100 held, over 200 virtual
    // seconds (400,000 packets), with no clock read and no sleep.
    let (held, model, _, _) = poisson_run(2_000.0, Duration::from_millis(50), 200.0, 1);
    let ratio = held / model;
    assert!((0.97..1.03).contains(&ratio), "held {held}, model {model}");
}

#[test]
fn entropy_follows_the_poisson_mix_model_and_grows_with_delay() {
    let (_, _, short, short_model) = poisson_run(1_000.0, Duration::from_millis(20), 60.0, 2);
    let (_, _, long, long_model) = poisson_run(1_000.0, Duration::from_millis(200), 60.0, 3);
    assert!(long > short + 3.0, "10× the delay: {short} → {long} bits");
    for (measured, model) in [(short, short_model), (long, long_model)] {
        assert!(
            (measured - model).abs() < 0.25,
            "measured {measured} bits, model {model}"
        );
    }
}
